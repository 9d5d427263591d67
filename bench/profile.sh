#!/bin/bash
# bench/profile.sh - where mxrelayd's time goes, end to end, in numbers that
# do not depend on the machine's load: instructions (callgrind), system calls
# (strace -c -f), syncs and allocations per message.
#
#   smtp-source -s CLIENTS -m N -l SIZE -> mxrelayd -> smtp-sink
#
# The daemon runs under the tool chosen by TOOL, relays N messages to a
# counting smtp-sink, and is stopped with SIGTERM once the sink has them
# all (and the queue is empty), so that the tool writes its report.
#
#   TOOL=strace     syscalls per message, by name (strace -c -f), and the
#                   syncs (fsync, fdatasync, syncfs) per message
#   TOOL=callgrind  top functions by instructions (exclusive and inclusive),
#                   instructions and allocations (malloc, calloc, realloc
#                   calls, counted by bench/cgcalls.py) per message; the
#                   callgrind.out file is kept in OUT (default
#                   ./callgrind.out.mxrelayd)
#
# Environment (defaults): TOOL=strace N=500 CLIENTS=10 SIZE=4096
#   MXRELAYD=./mxrelayd RELAYCTL=./relayctl TOP=25 RUN_TIMEOUT=600

BENCH_SRC=$(cd "$(dirname "$0")" && pwd) || exit 1
# shellcheck source=bench/lib.sh
. "$BENCH_SRC/lib.sh"

TOOL=${TOOL:-strace}
N=${N:-500}
CLIENTS=${CLIENTS:-10}
SIZE=${SIZE:-4096}
TOP=${TOP:-25}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
OUT=${OUT:-./callgrind.out.mxrelayd}

case $TOOL in
strace) command -v strace >/dev/null || die "strace not found (apt-get install strace)" ;;
callgrind) command -v valgrind >/dev/null || die "valgrind not found (apt-get install valgrind)" ;;
*) die "TOOL must be strace or callgrind" ;;
esac

bench_init
mx_check_binaries
OUT=$(realpath -m "$OUT")

SINK_PORT=$(free_port) || die "no free port"
smtp-sink -u root -c -m 1024 127.0.0.1:"$SINK_PORT" 1024 >"$BENCH_DIR/sink.out" 2>&1 &
bench_track $!
wait_port "$SINK_PORT" || die "smtp-sink did not come up"

# the daemon under the tool: lib.sh starts "$MXRELAYD", so wrap it
WRAP=$BENCH_DIR/wrap.sh
case $TOOL in
strace) echo "exec strace -f -c -o $BENCH_DIR/strace.out $(realpath "$MXRELAYD") \"\$@\"" >"$WRAP" ;;
callgrind) echo "exec valgrind -q --tool=callgrind --callgrind-out-file=$OUT $(realpath "$MXRELAYD") \"\$@\"" >"$WRAP" ;;
esac
chmod +x "$WRAP"
REAL_MXRELAYD=$MXRELAYD
MXRELAYD=$WRAP
BENCH_START_TIMEOUT=120
mx_start
MXRELAYD=$REAL_MXRELAYD
mx_ctl domain add example.test --legacy "[127.0.0.1]:$SINK_PORT" >/dev/null || die "domain add failed"
mx_ctl address add joe@example.test >/dev/null || die "address add failed"

note "$TOOL: $N messages of $SIZE octets from $CLIENTS clients"
base=$(sink_count)
run_bg "$SMTP_SOURCE" -s "$CLIENTS" -m "$N" -l "$SIZE" -f sender@src.test \
    -t joe@example.test "127.0.0.1:$MX_PORT" >"$BENCH_DIR/source.out" 2>&1 ||
	{ tail -n 5 "$BENCH_DIR/source.out" >&2; die "smtp-source failed"; }
deadline=$(($(date +%s) + RUN_TIMEOUT))
while [ $(($(sink_count) - base)) -lt "$N" ]; do
	[ "$(date +%s)" -lt "$deadline" ] || die "timeout: the sink has $(($(sink_count) - base)) of $N"
	sleep 0.2
done
# the last delivered records and unlinks are synced after the sink's 250
while mx_ctl --json status 2>/dev/null | grep -Eq '"messages": *[1-9]'; do
	[ "$(date +%s)" -lt "$deadline" ] || die "timeout: queue not empty"
	sleep 0.2
done
sleep 1
# the wrapper exec'd the tool: valgrind runs the daemon in its own
# process, strace as its child (signal that one: a tracer stopped by a
# signal might not write its report)
target=$MX_PID
[ "$TOOL" = callgrind ] || target=$(pgrep -P "$MX_PID" | head -n 1)
kill -TERM "$target"
bench_wait_gone "$MX_PID" 120 || die "$TOOL did not exit"
bench_untrack "$MX_PID"
MX_PID=""

case $TOOL in
strace)
	echo "syscalls per message (strace -c -f, $N messages of $SIZE octets, $CLIENTS clients; start-up included)"
	awk -v n="$N" '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
		name = $NF; calls = $4
		printf "%-20s %10d %8.2f\n", name, calls, calls / n
		if (name ~ /^(fsync|fdatasync|syncfs)$/) syncs += calls
		total += calls
	} END {
		printf "%-20s %10d %8.2f\n", "total", total, total / n
		printf "%-20s %10d %8.2f\n", "syncs", syncs, syncs / n
	}' "$BENCH_DIR/strace.out" | sort -k2 -n -r | head -n "$TOP"
	;;
callgrind)
	total=$(callgrind_annotate "$OUT" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
	echo "instructions: $total total, $(awk -v t="$total" -v n="$N" 'BEGIN { printf "%.0f", t / n }') per message (start-up included)"
	python3 "$BENCH_SRC/cgcalls.py" "$OUT" malloc calloc realloc free |
		awk -v n="$N" '{ printf "%s calls: %d, %.1f per message\n", $1, $2, $2 / n }'
	echo "--- exclusive"
	callgrind_annotate "$OUT" 2>/dev/null | sed -n '/^Ir/,$p' | sed -n "3,$((TOP + 2))p"
	echo "--- inclusive"
	callgrind_annotate --inclusive=yes "$OUT" 2>/dev/null | sed -n '/^Ir/,$p' | sed -n "3,$((TOP + 2))p"
	;;
esac
