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
sport=$(free_port) || die "no free port"
smtp-sink -u root -c -m 1024 "127.0.0.1:$sport" 1024 >"$BENCH_DIR/sink.out" 2>&1 &
bench_track $!
mx_start
mx_ctl domain add example.test --legacy "[127.0.0.1]:$sport" >/dev/null || die "relayctl"
mx_ctl address add joe@example.test >/dev/null || die "relayctl"
smtp-source -s 10 -m "$N" -l 4096 -f s@src.test -t joe@example.test "127.0.0.1:$MX_PORT" ||
    die "smtp-source failed"
sleep 1
note "journal: $(stat -c %s "$MX_DIR/spool/journal") octets; kill -9"
kill -KILL "$MX_PID"
bench_wait_gone "$MX_PID" 10
bench_untrack "$MX_PID"
mx_start		# the same spool
grep -E "spool journal replayed|spool recovered" "$MX_DIR/log" | sed 's/^mxrelayd: //'
mx_stop
