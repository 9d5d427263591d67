#!/bin/bash
# bench/phases.sh - where one client's message time goes, read off the wire:
# smtp-source with one session (a new connection per message, HELO, no
# pipelining) -> relay -> smtp-sink, the relay's port captured by tcpdump
# on the loopback, each session cut into phases by bench/phases.pl
# (banner, each command and its reply, the client's time between them,
# the data and the commit). mxrelayd, then Postfix, in the same run.
#
# This is how the 100 KB, one-client cell of e2e.sh was taken apart: the
# reply to the end of data (the commit) is the largest phase, and the
# client's time before MAIL and RCPT has a tail of half a millisecond, when
# the sink and the relay's delivery hold both CPUs. tcpdump costs CPU of
# its own: compare the phases, not the rate, with e2e.sh's.
#
# Environment (defaults): N=500 SIZE=102400 SERVERS="mxrelayd postfix"
# Needs tcpdump (apt-get install tcpdump).

BENCH_SRC=$(cd "$(dirname "$0")" && pwd) || exit 1
# shellcheck source=bench/lib.sh
. "$BENCH_SRC/lib.sh"

N=${N:-500}
SIZE=${SIZE:-102400}
SERVERS=${SERVERS:-mxrelayd postfix}
command -v tcpdump >/dev/null || die "tcpdump not found (apt-get install tcpdump)"
bench_init
note "load average: $(cut -d' ' -f1-3 /proc/loadavg); file system: $(stat -f -c %T "$BENCH_DIR")"

SINK_PORT=$(free_port) || die "no free port"
smtp-sink -u root -c -m 1024 "127.0.0.1:$SINK_PORT" 1024 >"$BENCH_DIR/sink.out" 2>&1 &
bench_track $!
wait_port "$SINK_PORT" || die "smtp-sink did not come up"

# measure NAME PORT - N messages through the relay on PORT, captured
measure() {
	local name=$1 port=$2 cap=$BENCH_DIR/$1.tcpdump td t0 t1
	# a warm-up outside the capture: first connections, first files
	smtp-source -s 1 -m 20 -l "$SIZE" -f s@src.test -t joe@example.test \
	    "127.0.0.1:$port" || die "$name: smtp-source failed"
	tcpdump -tt -n -l -A -s 160 -i lo "tcp port $port" >"$cap" 2>"$cap.err" &
	td=$!
	bench_track "$td"
	sleep 1
	t0=$(now_ns)
	smtp-source -s 1 -m "$N" -l "$SIZE" -f s@src.test -t joe@example.test \
	    "127.0.0.1:$port" || die "$name: smtp-source failed"
	t1=$(now_ns)
	sleep 0.5
	kill -INT "$td" 2>/dev/null
	wait "$td" 2>/dev/null
	bench_untrack "$td"
	awk -v s="$name" -v n="$N" -v a="$t0" -v b="$t1" -v z="$SIZE" 'BEGIN {
	    printf "%s: %d messages of %d octets, acknowledged at %.1f msg/s under tcpdump\n",
	    s, n, z, n / ((b - a) / 1e9) }'
	perl "$BENCH_SRC/phases.pl" "$port" <"$cap"
	echo
}

for s in $SERVERS; do
	case $s in
	mxrelayd)
		mx_check_binaries
		mx_start
		mx_ctl domain add example.test --legacy "[127.0.0.1]:$SINK_PORT" >/dev/null &&
		    mx_ctl address add joe@example.test >/dev/null || die "relayctl failed"
		measure mxrelayd "$MX_PORT"
		mx_stop ;;
	postfix)
		pf_start 60
		postconf -c "$PF_DIR/etc" -e "relay_transport = relay:[127.0.0.1]:$SINK_PORT" ||
			die "postconf failed"
		"$POSTFIX" -c "$PF_DIR/etc" reload >/dev/null 2>&1 || die "postfix reload failed"
		sleep 1
		measure postfix "$PF_PORT"
		pf_stop ;;
	*) die "unknown server $s" ;;
	esac
done
