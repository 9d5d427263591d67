#!/bin/bash
# bench/accept.sh - messages accepted per second, mxrelayd beside Postfix.
#
# Both servers run on this machine, on 127.0.0.1, in the same run, each
# started fresh (empty queue) for every measured run, runs interleaved
# (postfix, mxrelayd, postfix, ...) so that drift of the machine hits both.
# The load is Postfix's smtp-source with identical options for both:
#   smtp-source -s CLIENTS -m N -l SIZE -f sender@src.test -t joe@example.test
# smtp-source aborts on any reply that is not 2xx (no -A), so a run that
# completes had every message acknowledged with 250.
#
# Environment (defaults):
#   MXRELAYD=./mxrelayd RELAYCTL=./relayctl
#   N=5000 messages per measured run, RUNS=3 (median reported),
#   CLIENTS=50 parallel sessions, SIZE=4096 payload bytes,
#   WARMUP=500 messages sent (and not timed) before each measured run,
#   REUSE=0: one message per connection (as an MX sees it); REUSE=1 adds
#     smtp-source -d (many messages per connection),
#   SERVERS="postfix mxrelayd" (which ones to run),
#   RUN_TIMEOUT=600 seconds allowed per smtp-source run,
#   TMPDIR: where the queues live (must be a real disk for fsync to count).
#   BENCH_STANDIN=1: smtp-sink plays mxrelayd (self-test of this script).

BENCH_SRC=$(cd "$(dirname "$0")" && pwd) || exit 1
# shellcheck source=bench/lib.sh
. "$BENCH_SRC/lib.sh"

N=${N:-5000}
RUNS=${RUNS:-3}
CLIENTS=${CLIENTS:-50}
SIZE=${SIZE:-4096}
WARMUP=${WARMUP:-500}
REUSE=${REUSE:-0}
SERVERS=${SERVERS:-postfix mxrelayd}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
BENCH_STANDIN=${BENCH_STANDIN:-0}

SRC_OPTS="-s $CLIENTS -l $SIZE -f sender@src.test -t joe@example.test"
[ "$REUSE" = 1 ] && SRC_OPTS="$SRC_OPTS -d"

# send - run smtp-source for COUNT messages at PORT; set SEND_SECS
send() {
	local count=$1 port=$2 t0 t1
	t0=$(now_ns)
	# shellcheck disable=SC2086
	run_bg timeout "$RUN_TIMEOUT" "$SMTP_SOURCE" $SRC_OPTS -m "$count" \
	    "127.0.0.1:$port" >"$BENCH_DIR/source.out" 2>&1 || {
		cat "$BENCH_DIR/source.out" >&2
		return 1
	}
	t1=$(now_ns)
	SEND_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }')
}

# standin_start - smtp-sink in mxrelayd's place, to check this script
standin_start() {
	MX_PORT=$(free_port) || die "no free port"
	smtp-sink -u postfix 127.0.0.1:"$MX_PORT" 1024 >/dev/null 2>&1 &
	MX_PID=$!
	bench_track "$MX_PID"
	wait_port "$MX_PORT" || die "smtp-sink did not come up"
}

# server_up - start a fresh instance of server $1 and set PORT
server_up() {
	case $1 in
	postfix)
		pf_start "$((CLIENTS + 50))"
		PORT=$PF_PORT ;;
	mxrelayd)
		if [ "$BENCH_STANDIN" = 1 ]; then
			standin_start
		else
			mx_start
			mx_ctl domain add example.test --legacy "127.0.0.1:$(free_port)" >/dev/null ||
				die "relayctl domain add failed"
			mx_ctl address add joe@example.test >/dev/null ||
				die "relayctl address add failed"
		fi
		PORT=$MX_PORT ;;
	esac
}

# server_down - stop server $1 and drop its queue
server_down() {
	case $1 in
	postfix) pf_stop; rm -rf "$BENCH_DIR/pf" ;;
	mxrelayd) mx_stop; rm -rf "$BENCH_DIR/mx" ;;
	esac
}

# one_run - warm up then time N messages against server $1; set RUN_SECS
# (not run in a subshell, so that the exit trap sees every process started)
one_run() {
	local s=$1 secs queued
	server_up "$s"
	if [ "$WARMUP" -gt 0 ]; then
		send "$WARMUP" "$PORT" || die "$s: warm-up failed"
	fi
	send "$N" "$PORT" || die "$s: run failed"
	secs=$SEND_SECS
	# Cross-check with the server's own count of queued messages.
	queued=""
	if [ "$s" = postfix ]; then
		queued=$(pf_queue_count)
	elif [ "$BENCH_STANDIN" != 1 ]; then
		queued=$(mx_ctl --json status | perl -MJSON::PP -0777 -ne \
		    'print decode_json($_)->{queue}{messages} // ""')
	fi
	[ -z "$queued" ] || [ "$queued" -eq $((WARMUP + N)) ] ||
		note "WARNING: $s queue holds $queued messages, expected $((WARMUP + N))"
	server_down "$s"
	RUN_SECS=$secs
}

bench_init
if [ "$BENCH_STANDIN" != 1 ]; then
	case " $SERVERS " in *" mxrelayd "*) mx_check_binaries ;; esac
fi
command -v "$SMTP_SOURCE" >/dev/null || die "smtp-source not found (apt-get install postfix)"

note "$(nproc) CPUs, load $(cut -d" " -f1-3 /proc/loadavg), kernel $(uname -r), postfix $(postconf -dh mail_version)," \
    "queues on $(stat -f -c %T "$BENCH_DIR") ($BENCH_DIR)"
note "smtp-source $SRC_OPTS -m $N (warm-up $WARMUP), $RUNS runs each"
[ "$BENCH_STANDIN" = 1 ] && note "STAND-IN MODE: smtp-sink plays mxrelayd"

declare -A TIMES
for ((r = 1; r <= RUNS; r++)); do
	for s in $SERVERS; do
		one_run "$s"
		note "run $r $s: $RUN_SECS s"
		TIMES[$s]="${TIMES[$s]:-} $RUN_SECS"
	done
done

printf '%-10s %9s %9s %10s   %s\n' server messages seconds msgs/s "runs (s)"
declare -A RATE
for s in $SERVERS; do
	# shellcheck disable=SC2086
	med=$(median ${TIMES[$s]})
	RATE[$s]=$(awk -v n="$N" -v t="$med" 'BEGIN { printf "%.1f", n / t }')
	label=$s
	[ "$s" = mxrelayd ] && [ "$BENCH_STANDIN" = 1 ] && label="smtp-sink"
	printf '%-10s %9d %9.3f %10s  %s\n' "$label" "$N" "$med" "${RATE[$s]}" "${TIMES[$s]}"
done
if [ -n "${RATE[postfix]:-}" ] && [ -n "${RATE[mxrelayd]:-}" ]; then
	awk -v a="${RATE[mxrelayd]}" -v b="${RATE[postfix]}" \
	    -v l="$([ "$BENCH_STANDIN" = 1 ] && echo smtp-sink || echo mxrelayd)" \
	    'BEGIN { printf "ratio %s/postfix: %.2f\n", l, a / b }'
fi
