#!/bin/bash
# bench/idle_mem.sh - mxrelayd memory with many idle connections.
#
# Starts mxrelayd, reads its VmRSS (/proc/PID/status), opens CONNS idle
# SMTP connections (each has received its 220 banner), reads VmRSS again
# and prints the growth per connection. For contrast (Postfix runs one
# smtpd process per connection, so the figures are not the same kind),
# it then opens PF_CONNS connections to a private Postfix instance and
# prints the summed RSS and PSS of its smtpd processes.
#
# Environment (defaults):
#   MXRELAYD=./mxrelayd RELAYCTL=./relayctl
#   CONNS=1000, PF_CONNS=100 (0 skips the Postfix contrast),
#   SETTLE=2 seconds to wait before reading memory,
#   BENCH_STANDIN=1: smtp-sink plays mxrelayd (self-test of this script).

BENCH_SRC=$(cd "$(dirname "$0")" && pwd) || exit 1
# shellcheck source=bench/lib.sh
. "$BENCH_SRC/lib.sh"

CONNS=${CONNS:-1000}
PF_CONNS=${PF_CONNS:-100}
SETTLE=${SETTLE:-2}
BENCH_STANDIN=${BENCH_STANDIN:-0}

# Room for the client's and the server's descriptors, both started from here.
ulimit -n $((CONNS + PF_CONNS + 1024)) 2>/dev/null ||
	die "cannot raise the descriptor limit to $((CONNS + PF_CONNS + 1024))"

bench_init
[ "$BENCH_STANDIN" = 1 ] || mx_check_binaries
note "$(nproc) CPUs, load $(cut -d" " -f1-3 /proc/loadavg), kernel $(uname -r), descriptor limit $(ulimit -n)"

if [ "$BENCH_STANDIN" = 1 ]; then
	MX_PORT=$(free_port) || die "no free port"
	smtp-sink -u postfix -m $((CONNS + 10)) 127.0.0.1:"$MX_PORT" 1024 >/dev/null 2>&1 &
	MX_PID=$!
	bench_track "$MX_PID"
	wait_port "$MX_PORT" || die "smtp-sink did not come up"
	LABEL=smtp-sink
else
	mx_start
	LABEL=mxrelayd
fi
sleep "$SETTLE"
rss0=$(rss_kb "$MX_PID") || die "no /proc/$MX_PID/status"
hold "$MX_PORT" "$CONNS"
sleep "$SETTLE"
rss1=$(rss_kb "$MX_PID") || die "$LABEL died with $CONNS connections open"
unhold

printf '%-10s %11s %12s %12s %14s\n' server connections "RSS idle kB" "RSS with kB" "per conn bytes"
printf '%-10s %11d %12d %12d %14d\n' "$LABEL" "$CONNS" "$rss0" "$rss1" \
    $(( (rss1 - rss0) * 1024 / CONNS ))

if [ "$PF_CONNS" -gt 0 ]; then
	pf_start $((PF_CONNS + 20))
	master=$(tr -d ' ' <"$PF_DIR/spool/pid/master.pid")
	hold "$PF_PORT" "$PF_CONNS"
	sleep "$SETTLE"
	read -r n rss pss <<<"$(smtpd_mem "$master")"
	unhold
	pf_stop
	echo
	echo "Postfix contrast (one smtpd process per connection; RSS counts shared pages in every process, PSS shares them out):"
	printf '%-10s %11s %10s %12s %12s %15s\n' server connections processes "RSS sum kB" "PSS sum kB" "PSS/conn bytes"
	printf '%-10s %11d %10d %12d %12d %15d\n' "postfix" "$PF_CONNS" "$n" "$rss" "$pss" \
	    $(( pss * 1024 / (n > 0 ? n : 1) ))
fi
