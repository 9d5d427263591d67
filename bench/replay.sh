#!/bin/bash
# bench/replay.sh - how long the commit journal's replay holds up a start
# after a crash (doc/spool.md "Commit journal"):
#
#   smtp-source -s 10 -m N -l 4096 -> mxrelayd -> smtp-sink (every message
#   delivered), then kill -9 of mxrelayd, then a start on the same spool:
#   its "spool journal replayed ..." and "spool recovered ..." log lines.
#
# Environment (defaults): N=14000 (about one 64 MiB generation of 4 KB
#   messages), MXRELAYD=./mxrelayd RELAYCTL=./relayctl

BENCH_SRC=$(cd "$(dirname "$0")" && pwd) || exit 1
# shellcheck source=bench/lib.sh
. "$BENCH_SRC/lib.sh"

N=${N:-14000}
MXRELAYD=${MXRELAYD:-./mxrelayd}
RELAYCTL=${RELAYCTL:-./relayctl}
bench_init
d=$BENCH_DIR
mkdir -p "$d/spool" "$d/state"
port=$(free_port) && sport=$(free_port) || die "no free port"
smtp-sink -u root -c -m 1024 "127.0.0.1:$sport" 1024 >"$d/sink.out" 2>&1 &
bench_track $!
cat >"$d/c.conf" <<CONF
server = { hostname = "mx.bench.test"; listen = [ "127.0.0.1:$port" ]; user = "root"; };
paths = { spool = "$d/spool"; state = "$d/state"; control_socket = "$d/ctl"; };
filters = { spf = { enabled = false; }; dnsbl = { zones = [ ]; }; };
CONF
"$MXRELAYD" -c "$d/c.conf" 2>"$d/log1" &
mx=$!
bench_track "$mx"
wait_port "$port" || die "mxrelayd did not come up"
"$RELAYCTL" -s "$d/ctl" domain add example.test --legacy "[127.0.0.1]:$sport" >/dev/null &&
    "$RELAYCTL" -s "$d/ctl" address add joe@example.test >/dev/null || die "relayctl"
smtp-source -s 10 -m "$N" -l 4096 -f s@src.test -t joe@example.test "127.0.0.1:$port" ||
    die "smtp-source failed"
sleep 1
note "journal: $(stat -c %s "$d/spool/journal") octets; kill -9"
kill -KILL "$mx"
bench_wait_gone "$mx" 10
bench_untrack "$mx"
"$MXRELAYD" -c "$d/c.conf" 2>"$d/log2" &
mx=$!
bench_track "$mx"
wait_port "$port" || die "mxrelayd did not come back"
grep -E "spool journal replayed|spool recovered" "$d/log2" | sed 's/^mxrelayd: //'
