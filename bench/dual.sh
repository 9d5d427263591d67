#!/bin/bash
# bench/dual.sh - dual delivery (relayctl domain set DOMAIN --dual on):
# end-to-end throughput of a dual-delivery domain beside a single-route
# domain, in the same run of one mxrelayd.
#
#   single.test: legacy mode, its legacy server a counting smtp-sink S1
#   dual.test:   legacy mode with --dual on, its legacy server a counting
#                smtp-sink S2 (the primary) and hosting.destination a
#                counting LMTP smtp-sink H (the copies)
#
# Runs alternate (single, dual, single, ...) so that machine drift hits
# both. Each run: smtp-source -s CLIENTS -m N -l SIZE to joe@DOMAIN; the
# time runs from the first connection until every message is at its
# sink(s): for dual.test N at S2 and N copies at H. "accepted" is until
# smtp-source had every 250 (accepted messages per second).
#
# Environment (defaults): MXRELAYD=./mxrelayd RELAYCTL=./relayctl
#   N=2000 SIZE=4096 CLIENTS=10 RUNS=3 RUN_TIMEOUT=300 TMPDIR BENCH_KEEP=1

BENCH_SRC=$(cd "$(dirname "$0")" && pwd) || exit 1
# shellcheck source=bench/lib.sh
. "$BENCH_SRC/lib.sh"

N=${N:-2000}
SIZE=${SIZE:-4096}
CLIENTS=${CLIENTS:-10}
RUNS=${RUNS:-3}
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
SMTP_SINK=${SMTP_SINK:-smtp-sink}

declare -A SINK_PORT SINK_PID

# sink_start NAME [-L] - a counting smtp-sink on a free port
sink_start() {
	local name=$1; shift
	SINK_PORT[$name]=$(free_port) || die "no free port"
	"$SMTP_SINK" -u root -c -m 1024 "$@" 127.0.0.1:"${SINK_PORT[$name]}" 1024 \
	    >"$BENCH_DIR/sink.$name" 2>&1 &
	SINK_PID[$name]=$!
	bench_track "${SINK_PID[$name]}"
	wait_port "${SINK_PORT[$name]}" || die "smtp-sink $name did not come up"
}

# sink_count NAME - messages sink NAME has received (its last mesg= counter)
sink_count() {
	local n
	n=$(tail -c 400 "$BENCH_DIR/sink.$1" 2>/dev/null | tr '\r' '\n' |
	    grep -o 'mesg=[0-9]*' | tail -n 1 | cut -d= -f2)
	echo "${n:-0}"
}

# one_run DOMAIN SINK... - N messages to joe@DOMAIN until each SINK has N
# more than before; sets RUN_SECS, ACK_SECS
one_run() {
	local dom=$1; shift
	local sinks=("$@") t0 t1 tack="" src rc deadline done_all s
	declare -A base
	for s in "${sinks[@]}"; do base[$s]=$(sink_count "$s"); done
	t0=$(now_ns)
	deadline=$(($(date +%s) + RUN_TIMEOUT))
	"$SMTP_SOURCE" -s "$CLIENTS" -m "$N" -l "$SIZE" -f sender@src.test \
	    -t "joe@$dom" "127.0.0.1:$MX_PORT" >"$BENCH_DIR/source.out" 2>&1 &
	src=$!
	bench_track "$src"
	while :; do
		if [ -z "$tack" ] && ! kill -0 "$src" 2>/dev/null; then
			wait "$src"
			rc=$?
			bench_untrack "$src"
			tack=$(now_ns)
			[ "$rc" -eq 0 ] || { tail -n 5 "$BENCH_DIR/source.out" >&2; return 1; }
		fi
		done_all=1
		for s in "${sinks[@]}"; do
			[ $(($(sink_count "$s") - base[$s])) -ge "$N" ] || done_all=0
		done
		[ -n "$tack" ] && [ "$done_all" = 1 ] && break
		if [ "$(date +%s)" -ge "$deadline" ]; then
			note "$dom: timeout after $RUN_TIMEOUT s"
			return 1
		fi
		sleep 0.05
	done
	t1=$(now_ns)
	RUN_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
	ACK_SECS=$(awk -v a="$t0" -v b="$tack" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
	return 0
}

bench_init
mx_check_binaries
cp "$MXRELAYD" "$BENCH_DIR/mxrelayd.bin" || die "cannot copy $MXRELAYD"
cp "$RELAYCTL" "$BENCH_DIR/relayctl.bin" || die "cannot copy $RELAYCTL"
MXRELAYD=$BENCH_DIR/mxrelayd.bin
RELAYCTL=$BENCH_DIR/relayctl.bin
command -v "$SMTP_SOURCE" >/dev/null || die "smtp-source not found (apt-get install postfix)"

sink_start s1
sink_start s2
sink_start h -L
MX_EXTRA_CONF="hosting = { destination = \"lmtp:[127.0.0.1]:${SINK_PORT[h]}\"; };"
mx_start
mx_ctl domain add single.test --legacy "[127.0.0.1]:${SINK_PORT[s1]}" >/dev/null || die "domain add"
mx_ctl domain add dual.test --legacy "[127.0.0.1]:${SINK_PORT[s2]}" >/dev/null || die "domain add"
mx_ctl address add joe@single.test >/dev/null || die "address add"
mx_ctl address add joe@dual.test >/dev/null || die "address add"
mx_ctl domain set dual.test --dual on >/dev/null || die "domain set --dual on"

note "$(nproc) CPUs, load $(cut -d" " -f1-3 /proc/loadavg); $N messages of $SIZE octets, $CLIENTS clients, $RUNS runs each"
SINGLE="" DUAL="" SINGLE_ACK="" DUAL_ACK=""
for ((r = 1; r <= RUNS; r++)); do
	one_run single.test s1 || die "single.test run failed"
	note "run $r single.test: all at the sink in $RUN_SECS s (accepted in $ACK_SECS s)"
	SINGLE="$SINGLE $RUN_SECS"; SINGLE_ACK="$SINGLE_ACK $ACK_SECS"
	one_run dual.test s2 h || die "dual.test run failed"
	note "run $r dual.test: all at the old server and every copy at the hosting in $RUN_SECS s (accepted in $ACK_SECS s)"
	DUAL="$DUAL $RUN_SECS"; DUAL_ACK="$DUAL_ACK $ACK_SECS"
done
# shellcheck disable=SC2086
s=$(median $SINGLE); d=$(median $DUAL); sa=$(median $SINGLE_ACK); da=$(median $DUAL_ACK)
awk -v n="$N" -v s="$s" -v d="$d" -v sa="$sa" -v da="$da" 'BEGIN {
	printf "single_accepted_msgs_per_s %.1f\n", n / sa
	printf "dual_accepted_msgs_per_s %.1f\n", n / da
	printf "dual_vs_single_accepted %.2f\n", sa / da
	printf "single_e2e_msgs_per_s %.1f\n", n / s
	printf "dual_e2e_msgs_per_s %.1f\n", n / d
	printf "dual_vs_single_e2e %.2f\n", s / d
}'
echo "copies at the hosting: $(sink_count h) (of $((N * RUNS)) messages sent to dual.test)"
mx_ctl stats | grep '^copies_'
mx_stop
