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

HOLD_PID=""

# hold - open COUNT connections to PORT in the background, wait for banners
hold() {
	local port=$1 count=$2 ready=$BENCH_DIR/ready.$1 i=0
	rm -f "$ready"
	perl "$BENCH_SRC"/holdconns.pl "$port" "$count" "$ready" 600 &
	HOLD_PID=$!
	bench_track "$HOLD_PID"
	while ! [ -s "$ready" ]; do
		kill -0 "$HOLD_PID" 2>/dev/null || die "could not hold $count connections to port $port"
		i=$((i + 1))
		[ "$i" -ge 600 ] && die "timed out opening $count connections"
		sleep 0.1
	done
}

# unhold - close the held connections
unhold() {
	kill -TERM "$HOLD_PID" 2>/dev/null
	wait "$HOLD_PID" 2>/dev/null
	bench_untrack "$HOLD_PID"
	HOLD_PID=""
}

# smtpd_mem - sum VmRSS and Pss (kB) of the smtpd children of master PID;
# prints "count rss pss"
smtpd_mem() {
	local master=$1 pid n=0 rss=0 pss=0 v
	for pid in $(ps --ppid "$master" -o pid=,comm= | awk '$2 == "smtpd" { print $1 }'); do
		v=$(rss_kb "$pid") || continue
		rss=$((rss + v))
		v=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null)
		pss=$((pss + ${v:-0}))
		n=$((n + 1))
	done
	echo "$n $rss $pss"
}

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
