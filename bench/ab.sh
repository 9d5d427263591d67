#!/bin/bash
# bench/ab.sh - two or more mxrelayd binaries side by side, alternating, on
# the same end-to-end load: smtp-source (CLIENTS sessions, N messages of
# SIZE octets) -> mxrelayd -> smtp-sink, timed until the queue is empty.
# Prints per run the messages per second and the CPU seconds of mxrelayd
# (all threads, from /proc). For a change's before/after (bench/README.md):
#
#   bench/ab.sh /tmp/mx-before /tmp/mx-after     # N=5000 CLIENTS=50 SIZE=4096 RUNS=2
#
# Environment: N, CLIENTS, SIZE, RUNS, RELAYCTL (default ./relayctl).

BENCH_SRC=$(cd "$(dirname "$0")" && pwd) || exit 1
# shellcheck source=bench/lib.sh
. "$BENCH_SRC/lib.sh"

N=${N:-5000}
CLIENTS=${CLIENTS:-50}
SIZE=${SIZE:-4096}
RUNS=${RUNS:-2}
RELAYCTL=${RELAYCTL:-./relayctl}
[ $# -ge 1 ] || die "usage: $0 MXRELAYD..."
bench_init
note "load average: $(cut -d' ' -f1-3 /proc/loadavg); file system: $(stat -f -c %T "$BENCH_DIR")"

# one_run BIN - start BIN on a fresh spool with a fresh sink, run the load
one_run() {
	local bin=$1 d port sport sink mx t0 t1 c0 c1 q i
	d=$(mktemp -d "$BENCH_DIR/run.XXXX")
	mkdir -p "$d/spool" "$d/state"
	port=$(free_port) && sport=$(free_port) || die "no free port"
	smtp-sink -u root -c -m 1024 "127.0.0.1:$sport" 1024 >"$d/sink.out" 2>&1 &
	sink=$!
	bench_track "$sink"
	cat >"$d/c.conf" <<CONF
server = { hostname = "mx.bench.test"; listen = [ "127.0.0.1:$port" ]; user = "root"; };
paths = { spool = "$d/spool"; state = "$d/state"; control_socket = "$d/ctl"; };
filters = { spf = { enabled = false; }; dnsbl = { zones = [ ]; }; };
CONF
	"$bin" -c "$d/c.conf" 2>"$d/log" &
	mx=$!
	bench_track "$mx"
	wait_port "$port" || die "$bin did not come up"
	"$RELAYCTL" -s "$d/ctl" domain add example.test --legacy "[127.0.0.1]:$sport" >/dev/null &&
	    "$RELAYCTL" -s "$d/ctl" address add joe@example.test >/dev/null || die "relayctl"
	c0=$(awk '{ print $14 + $15 }' "/proc/$mx/stat")
	t0=$(now_ns)
	smtp-source -s "$CLIENTS" -m "$N" -l "$SIZE" -f s@src.test -t joe@example.test \
	    "127.0.0.1:$port" || die "smtp-source failed"
	for i in $(seq 1 1200); do
		q=$("$RELAYCTL" -s "$d/ctl" --json status |
		    perl -MJSON::PP -0 -e 'print decode_json(<STDIN>)->{queue}{messages}')
		[ "$q" = 0 ] && break
		sleep 0.05
	done
	t1=$(now_ns)
	c1=$(awk '{ print $14 + $15 }' "/proc/$mx/stat")
	awk -v b="$bin" -v n="$N" -v a="$t0" -v z="$t1" -v c="$((c1 - c0))" \
	    -v hz="$(getconf CLK_TCK)" 'BEGIN { s = (z - a) / 1e9;
	    printf "%-28s %8.1f msg/s %7.2f s wall %6.2f s CPU\n", b, n / s, s, c / hz }'
	kill -TERM "$mx" "$sink" 2>/dev/null
	bench_wait_gone "$mx" 10
	bench_untrack "$mx"
	bench_untrack "$sink"
	rm -rf "$d"
}

echo "# N=$N CLIENTS=$CLIENTS SIZE=$SIZE, until the queue is empty"
for r in $(seq 1 "$RUNS"); do
	for bin in "$@"; do
		one_run "$bin"
	done
done
