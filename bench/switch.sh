#!/bin/bash
# bench/switch.sh - `relayctl switch` with 100,000 messages queued for the
# domain (SPEC 7: it returns within 100 ms whatever the queue holds).
#
# The spool is filled directly in the format of doc/spool.md (genspool.pl):
# COUNT messages for joe@example.test, each deferred once by the old
# server, next attempt an hour away. mxrelayd starts on it with the domain
# in legacy mode (its legacy server is a port nobody listens on) and
# MAILBOXES mailboxes, the hosting being smtp-sink in LMTP mode. Then:
#  1. `relayctl switch example.test hosted`: preflight (RCPT probe of the
#     MAILBOXES mailboxes), durable switch, reschedule of the COUNT
#     deferred recipients. Timed from the command's start to its exit.
#  2. the first delivery at the hosting: birth time of smtp-sink's first
#     dump file (created at MAIL FROM), minus the command's start.
#  3. SWITCH_BACK_AFTER seconds later, with most of the queue still there
#     and deliveries in flight: `relayctl switch example.test legacy`, timed.
# Prints the figures on stdout and the daemon's own log lines of the
# switches (elapsed_ms = request to durable switch, inside the daemon).
#
# Environment (defaults): MXRELAYD=./mxrelayd RELAYCTL=./relayctl
#   COUNT=100000 MAILBOXES=1000 SWITCH_BACK_AFTER=2

BENCH_SRC=$(cd "$(dirname "$0")" && pwd) || exit 1
# shellcheck source=bench/lib.sh
. "$BENCH_SRC/lib.sh"

COUNT=${COUNT:-100000}
MAILBOXES=${MAILBOXES:-1000}
SWITCH_BACK_AFTER=${SWITCH_BACK_AFTER:-2}

bench_init
mx_check_binaries
command -v smtp-sink >/dev/null || die "smtp-sink not found (apt-get install postfix)"
note "load average: $(cut -d' ' -f1-3 /proc/loadavg); file system: $(stat -f -c %T "$BENCH_DIR")"

# the hosting: smtp-sink speaking LMTP, one dump file per message
SINK_PORT=$(free_port) || die "no free port"
mkdir -p "$BENCH_DIR/dump"
smtp-sink -u root -L -c -d "$BENCH_DIR/dump/%s." "127.0.0.1:$SINK_PORT" 1024 \
    >"$BENCH_DIR/sink.log" 2>&1 &
bench_track $!
wait_port "$SINK_PORT" || die "smtp-sink did not come up"
DEAD_PORT=$(free_port) || die "no free port"

MX_DIR=$BENCH_DIR/mx
MX_SOCK=$MX_DIR/control.sock
mkdir -p "$MX_DIR/spool" "$MX_DIR/state"
note "writing $COUNT spool files"
t0=$(now_ns)
perl "$BENCH_SRC/genspool.pl" "$MX_DIR/spool" "$COUNT" joe@example.test || die "genspool failed"
note "spool written in $(( ($(now_ns) - t0) / 1000000 )) ms"
MX_PORT=$(free_port) || die "no free port"
cat >"$MX_DIR/mxrelay.conf" <<CONF
server = { hostname = "mx.bench.test"; listen = [ "127.0.0.1:$MX_PORT" ]; user = "root"; };
paths = { spool = "$MX_DIR/spool"; state = "$MX_DIR/state"; control_socket = "$MX_SOCK"; };
hosting = { destination = "lmtp:[127.0.0.1]:$SINK_PORT"; };
delivery = { retry_schedule = [ 3600 ]; connect_timeout = 5; };
filters = { spf = { enabled = false; }; dnsbl = { zones = [ ]; }; };
# the benchmark measures the switch, not the MX propagation gate
switch = { require_propagation = false; };
CONF
"$MXRELAYD" -c "$MX_DIR/mxrelay.conf" 2>"$MX_DIR/log" &
MX_PID=$!
bench_track "$MX_PID"
i=0
while ! [ -S "$MX_SOCK" ] || ! wait_port "$MX_PORT" 1; do
	kill -0 "$MX_PID" 2>/dev/null || { tail -n 20 "$MX_DIR/log" >&2; die "mxrelayd exited at startup"; }
	i=$((i + 1))
	[ "$i" -ge 120 ] && die "mxrelayd did not come up"
	sleep 1
done
grep -E 'queue loaded|spool recovered' "$MX_DIR/log" | sed 's/^/# /' >&2

mx_ctl domain add example.test --legacy "127.0.0.1:$DEAD_PORT" >/dev/null || die "domain add"
seq 1 "$MAILBOXES" | sed 's/^/user/' >"$BENCH_DIR/boxes"
echo joe >>"$BENCH_DIR/boxes"
mx_ctl import example.test "$BENCH_DIR/boxes" >/dev/null || die "import"
queued=$(mx_ctl --json status | perl -MJSON::PP -0 -e 'print decode_json(<STDIN>)->{queue}{messages}')
note "queued messages: $queued; mailboxes: $((MAILBOXES + 1))"

# the cost of running relayctl itself (fork, exec, connect), for scale
t0=$(now_ns)
mx_ctl status >/dev/null
t_status=$(now_ns)

# 1. the switch, with the preflight
t_cmd=$(now_ns)
out=$(mx_ctl switch example.test hosted) || die "switch refused: $out"
t_ret=$(now_ns)
note "$out"

# 2. the first delivery at the hosting
first=""
for _ in $(seq 1 100); do
	first=$(find "$BENCH_DIR/dump" -type f -print0 | xargs -0 -r stat -c '%.9W' | sort -n | head -1)
	[ -n "$first" ] && break
	sleep 0.05
done
[ -n "$first" ] || die "nothing reached the hosting within 5 s"

# 3. switch back while the queue is still nearly full
sleep "$SWITCH_BACK_AFTER"
delivered=$(find "$BENCH_DIR/dump" -type f | wc -l)
t_back=$(now_ns)
out2=$(mx_ctl switch example.test legacy) || die "switch back refused: $out2"
t_back_ret=$(now_ns)
note "$out2"

echo "queued messages for the domain:        $queued"
# ms EXPR - EXPR (nanoseconds, integer arithmetic awk can hold) in milliseconds
ms() { awk "BEGIN { printf \"%.3f\", ($1) / 1000000 }"; }
printf 'relayctl status, command (for scale):  %.1f ms\n' "$(ms "$t_status - $t0")"
echo "mailboxes probed by the preflight:     $((MAILBOXES + 1))"
printf 'switch hosted (preflight), command:   %.1f ms\n' "$(ms "$t_ret - $t_cmd")"
printf 'switch to first delivery at hosting:  %.1f ms\n' "$(ms "$first * 1000000000 - $t_cmd")"
printf 'switch legacy (%s delivered, rest queued), command: %.1f ms\n' "$delivered" \
    "$(ms "$t_back_ret - $t_back")"
grep -E ' switch domain=| switch rescheduled| probe done' "$MX_DIR/log" | sed 's/^/daemon: /'
mx_ctl history example.test | sed 's/^/history: /'
