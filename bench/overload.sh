#!/bin/bash
# bench/overload.sh - mxrelayd offered more than it can take: what it
# accepts, what it refuses and with which code, its memory, and whether
# everything it acknowledged reaches the downstream.
#
#   bench/loadgen.pl (new sessions at a fixed rate, open loop)
#       -> mxrelayd -> smtp-sink -c (counts what it receives)
#
# 1. The sustainable rate: the same set-up, CALIB_MSGS messages from
#    smtp-source with CALIB_CLIENTS clients (closed loop), end to end
#    (unless RATE is given).
# 2. FACTOR (2) times that rate for SECS (60) seconds from loadgen.pl:
#    VmRSS of mxrelayd is sampled every second (the peak is shown).
# 3. After the load: wait until mxrelayd's queue is empty, then compare the
#    sink's count with the messages loadgen.pl had answered 250.
#
# Printed: offered and accepted rates, refusals by stage and code, sessions
# that timed out on the client side, peak RSS, acknowledged vs delivered.
#
# mxrelayd's limits.max_connections is as high as the descriptor limit
# allows (2 x max_connections + 2048 <= ulimit -n), at most MAXOPEN.
#
# Environment (defaults): FACTOR=2 SECS=60 SIZE=4096 RATE (measured)
#   CALIB_MSGS=3000 CALIB_CLIENTS=50 MAXOPEN=20000 DRAIN_TIMEOUT=600

BENCH_SRC=$(cd "$(dirname "$0")" && pwd) || exit 1
# shellcheck source=bench/lib.sh
. "$BENCH_SRC/lib.sh"

FACTOR=${FACTOR:-2}
SECS=${SECS:-60}
SIZE=${SIZE:-4096}
RATE=${RATE:-}
CALIB_MSGS=${CALIB_MSGS:-3000}
CALIB_CLIENTS=${CALIB_CLIENTS:-50}
MAXOPEN=${MAXOPEN:-20000}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-600}

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((MAXOPEN + 1024)) ] || MAXOPEN=$(($(ulimit -n) - 1024))
# max_connections as far as the descriptor limit has room for (mxrelayd
# wants 2 x max_connections + 2048, src/nofile.h): beyond it, 421 4.7.0
MX_MAX_CONNECTIONS=$(( ($(ulimit -n) - 2048) / 2 ))
[ "$MX_MAX_CONNECTIONS" -le "$MAXOPEN" ] || MX_MAX_CONNECTIONS=$MAXOPEN

queue_messages() {
	mx_ctl --json status | grep -o '"messages": *[0-9]*' | head -n 1 | grep -o '[0-9]*$'
}

bench_init
mx_check_binaries
note "$(nproc) CPUs, load $(cut -d" " -f1-3 /proc/loadavg), kernel $(uname -r)," \
    "queue on $(stat -f -c %T "$BENCH_DIR") ($BENCH_DIR), descriptor limit $(ulimit -n)"

SINK_PORT=$(free_port) || die "no free port"
smtp-sink -u root -c -m 1024 127.0.0.1:"$SINK_PORT" 4096 >"$BENCH_DIR/sink.out" 2>&1 &
bench_track $!
wait_port "$SINK_PORT" || die "smtp-sink did not come up"
mx_start
mx_ctl domain add example.test --legacy "[127.0.0.1]:$SINK_PORT" >/dev/null || die "domain add failed"
mx_ctl address add joe@example.test >/dev/null || die "address add failed"

if [ -z "$RATE" ]; then
	base=$(sink_count)
	t0=$(now_ns)
	run_bg "$SMTP_SOURCE" -s "$CALIB_CLIENTS" -m "$CALIB_MSGS" -l "$SIZE" -f sender@src.test \
	    -t joe@example.test "127.0.0.1:$MX_PORT" >"$BENCH_DIR/source.out" 2>&1 ||
		{ tail -n 5 "$BENCH_DIR/source.out" >&2; die "smtp-source failed"; }
	while [ $(($(sink_count) - base)) -lt "$CALIB_MSGS" ]; do sleep 0.05; done
	RATE=$(awk -v n="$CALIB_MSGS" -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%d", n / ((b - a) / 1e9) }')
	note "sustainable: $RATE msg/s end to end ($CALIB_MSGS messages, $CALIB_CLIENTS clients, smtp-source)"
fi
OFFER=$(awk -v r="$RATE" -v f="$FACTOR" 'BEGIN { printf "%d", r * f }')
note "offering $OFFER sessions/s for $SECS s (loadgen.pl, at most $MAXOPEN open; max_connections $MX_MAX_CONNECTIONS)"

base=$(sink_count)
perl "$BENCH_SRC"/loadgen.pl "$MX_PORT" "$OFFER" "$SECS" "$SIZE" "$MAXOPEN" >"$BENCH_DIR/load.out" \
    2>"$BENCH_DIR/load.err" &
load=$!
bench_track "$load"
peak=0
while kill -0 "$load" 2>/dev/null; do
	r=$(rss_kb "$MX_PID") || die "mxrelayd died under load"
	[ "$r" -gt "$peak" ] && peak=$r
	sleep 1
done
wait "$load" || { cat "$BENCH_DIR/load.err" >&2; die "loadgen.pl failed"; }
bench_untrack "$load"
acked=$(awk '$1 == "acked" { print $2 }' "$BENCH_DIR/load.out")
acked=${acked:-0}
secs=$(awk '$1 == "secs" { print $2 }' "$BENCH_DIR/load.out")

deadline=$(($(date +%s) + DRAIN_TIMEOUT))
t0=$(now_ns)
while [ "$(queue_messages)" != 0 ]; do
	[ "$(date +%s)" -lt "$deadline" ] || die "queue not empty after $DRAIN_TIMEOUT s"
	sleep 0.2
done
drain=$(awk -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
delivered=$(($(sink_count) - base))

echo "sustainable rate: $RATE msg/s; offered: $OFFER sessions/s for $SECS s (the schedule took $secs s)"
awk -v secs="$secs" '
	$1 == "offered" || $1 == "started" || $1 == "skipped" || $1 == "timeout" || $1 == "connect_err" {
		printf "%-24s %8d\n", $1, $2 }
	$1 == "acked" { printf "%-24s %8d   %.1f msg/s over the %s s of the schedule\n", "acknowledged (250)", $2, $2 / secs, secs }
	$1 ~ /^(refused|closed):/ { printf "%-24s %8d\n", $1, $2 }' "$BENCH_DIR/load.out"
echo "mxrelayd peak RSS: $peak kB"
echo "after the load: queue drained in $drain s; acknowledged $acked, delivered $delivered" \
    "($([ "$delivered" -ge "$acked" ] && echo "none lost" || echo "LOST $((acked - delivered))"))"
[ "$delivered" -ge "$acked" ] || exit 1
