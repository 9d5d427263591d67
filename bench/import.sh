#!/bin/bash
# bench/import.sh - address table import time, and RCPT latency during it.
#
# Starts mxrelayd with domain example.test and joe@example.test, then:
#  1. baseline: one SMTP connection times RCPT replies (MAIL, RCPT, RSET
#     cycles, monotonic clock; hit and miss addresses alternate) for
#     BASELINE_SECS seconds with nothing else going on;
#  2. import: `relayctl import example.test FILE` of COUNT generated lines
#     (mailboxes and aliases mixed, bench/genimport.pl), timed, while the
#     same probe runs from just before the import starts until it returns.
# Prints the import wall time and RCPT count/p50/p99/max for both phases.
# A 4xx to RCPT during the import is counted in "codes" and fails the run.
#
# Environment (defaults):
#   MXRELAYD=./mxrelayd RELAYCTL=./relayctl
#   COUNT=100000 lines, BASELINE_SECS=5, IMPORT_TIMEOUT=600,
#   BENCH_STANDIN=1: self-test; a Postfix instance stands in for mxrelayd
#     and the "import" is postmap of a hash: relay_recipient_maps.

BENCH_SRC=$(cd "$(dirname "$0")" && pwd) || exit 1
# shellcheck source=bench/lib.sh
. "$BENCH_SRC/lib.sh"

COUNT=${COUNT:-100000}
BASELINE_SECS=${BASELINE_SECS:-5}
IMPORT_TIMEOUT=${IMPORT_TIMEOUT:-600}
BENCH_STANDIN=${BENCH_STANDIN:-0}

PROBE_PID=""

# probe_start - start the RCPT probe against PORT, running until STOP
# (seconds or a file name); results go to $BENCH_DIR/probe.$NAME
probe_start() {
	local name=$1 port=$2 stop=$3 i=0
	rm -f "$BENCH_DIR/started.$name"
	perl "$BENCH_SRC"/rcptprobe.pl "$port" "$BENCH_DIR/started.$name" "$stop" \
	    "$BENCH_DIR/probe.$name" &
	PROBE_PID=$!
	bench_track "$PROBE_PID"
	while ! [ -e "$BENCH_DIR/started.$name" ]; do
		kill -0 "$PROBE_PID" 2>/dev/null || die "RCPT probe failed to start"
		i=$((i + 1))
		[ "$i" -ge 300 ] && die "RCPT probe did not start within 30 s"
		sleep 0.1
	done
}

# probe_wait - wait for the probe; set PROBE_RESULT to its result line
# (not in a subshell: only this shell can wait for its children)
probe_wait() {
	local name=$1 rc
	wait "$PROBE_PID"
	rc=$?
	bench_untrack "$PROBE_PID"
	PROBE_PID=""
	[ -s "$BENCH_DIR/probe.$name" ] || die "RCPT probe ($name) gave no result"
	PROBE_RESULT=$(cat "$BENCH_DIR/probe.$name")
	return "$rc"
}

# field - value of KEY in a "k=v k=v" line
field() {
	tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"
}

bench_init
[ "$BENCH_STANDIN" = 1 ] || mx_check_binaries
note "$(nproc) CPUs, load $(cut -d" " -f1-3 /proc/loadavg), kernel $(uname -r), state on $(stat -f -c %T "$BENCH_DIR") ($BENCH_DIR)"

FILE=$BENCH_DIR/import.txt
perl "$BENCH_SRC"/genimport.pl example.test "$COUNT" >"$FILE" || die "cannot generate $FILE"
note "generated $COUNT lines in $FILE"

if [ "$BENCH_STANDIN" = 1 ]; then
	pf_start 100
	PORT=$PF_PORT
	LABEL="postfix+postmap (stand-in)"
	MAP=$PF_DIR/etc/rcpts
	echo "joe@example.test ok" >"$MAP"
	postmap "hash:$MAP"
	# No tarpit for the probe's refused recipients.
	postconf -c "$PF_DIR/etc" "relay_recipient_maps = hash:$MAP" \
	    smtpd_error_sleep_time=0 smtpd_soft_error_limit=1000000 \
	    smtpd_hard_error_limit=1000000
	postfix -c "$PF_DIR/etc" reload >/dev/null 2>&1
	sleep 1
	perl -ne 'next if /^#/; /^(\w+)/ and print "$1\@example.test ok\n"' "$FILE" >"$MAP.new"
	echo "joe@example.test ok" >>"$MAP.new"
	mv "$MAP.new" "$MAP"
	IMPORT_CMD=(postmap "hash:$MAP")
else
	mx_start
	PORT=$MX_PORT
	LABEL=mxrelayd
	mx_ctl domain add example.test --legacy "127.0.0.1:$(free_port)" >/dev/null ||
		die "relayctl domain add failed"
	mx_ctl address add joe@example.test >/dev/null || die "relayctl address add failed"
	IMPORT_CMD=("$RELAYCTL" -s "$MX_SOCK" import example.test "$FILE")
fi

note "baseline: RCPT probe for $BASELINE_SECS s, no import"
probe_start baseline "$PORT" "$BASELINE_SECS"
probe_wait baseline || die "baseline probe failed: $PROBE_RESULT"
base=$PROBE_RESULT

note "import of $COUNT lines with the RCPT probe running"
probe_start import "$PORT" "$BENCH_DIR/import.done"
t0=$(now_ns)
run_bg timeout "$IMPORT_TIMEOUT" "${IMPORT_CMD[@]}" >"$BENCH_DIR/import.out" 2>&1
irc=$?
t1=$(now_ns)
touch "$BENCH_DIR/import.done"
probe_wait import
prc=$?
during=$PROBE_RESULT
if [ "$irc" -ne 0 ]; then
	tail -n 20 "$BENCH_DIR/import.out" >&2
	die "import failed (exit $irc)"
fi
note "import output: $(wc -l <"$BENCH_DIR/import.out") lines; last: $(tail -n 1 "$BENCH_DIR/import.out")"
if [ "$BENCH_STANDIN" != 1 ]; then
	mx_ctl address show "$(printf 'alias%06d@example.test' "$(( COUNT - COUNT % 10 - 1 ))")" >/dev/null 2>&1 ||
		note "WARNING: the last alias of the file is not in the table after the import"
fi
isecs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')

echo "server: $LABEL"
printf 'import: %d lines in %s s (%.0f lines/s)\n' "$COUNT" "$isecs" \
    "$(awk -v n="$COUNT" -v t="$isecs" 'BEGIN { print n / t }')"
printf '%-16s %8s %9s %9s %9s   %s\n' "RCPT latency" count p50_ms p99_ms max_ms "codes (reconnects)"
for row in "baseline:$base" "during import:$during"; do
	name=${row%%:*}
	line=${row#*:}
	printf '%-16s %8s %9s %9s %9s   %s\n' "$name" "$(field "$line" count)" \
	    "$(field "$line" p50_ms)" "$(field "$line" p99_ms)" \
	    "$(field "$line" max_ms)" "$(field "$line" codes) ($(field "$line" reconnects))"
done
[ "$prc" -eq 0 ] || die "RCPT probe saw unexpected replies during the import"
