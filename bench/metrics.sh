#!/bin/bash
# bench/metrics.sh - the cost of a Prometheus scrape (GET /metrics) with a
# full queue: it is rendered on the event loop, walking every queued
# message, so it is also how long SMTP sessions wait while it runs.
#
# The spool is filled directly (genspool.pl): COUNT messages for
# joe@example.test, deferred once. mxrelayd starts on it with DOMAINS
# domains (each with two series per mode) and metrics.listen set; then
# SCRAPES scrapes, one at a time, each timed from connect to the last byte.
# Prints the median and the slowest scrape, and the exposition's size.
#
# Environment (defaults): MXRELAYD=./mxrelayd RELAYCTL=./relayctl
#   COUNT=100000 DOMAINS=1000 SCRAPES=20

BENCH_SRC=$(cd "$(dirname "$0")" && pwd) || exit 1
# shellcheck source=bench/lib.sh
. "$BENCH_SRC/lib.sh"

COUNT=${COUNT:-100000}
DOMAINS=${DOMAINS:-1000}
SCRAPES=${SCRAPES:-20}

bench_init
mx_check_binaries
note "load average: $(cut -d' ' -f1-3 /proc/loadavg); file system: $(stat -f -c %T "$BENCH_DIR")"

MX_DIR=$BENCH_DIR/mx
MX_SOCK=$MX_DIR/control.sock
mkdir -p "$MX_DIR/spool" "$MX_DIR/state"
note "writing $COUNT spool files"
perl "$BENCH_SRC/genspool.pl" "$MX_DIR/spool" "$COUNT" joe@example.test || die "genspool failed"
MX_PORT=$(free_port) || die "no free port"
METRICS_PORT=$(free_port) || die "no free port"
DEAD_PORT=$(free_port) || die "no free port"
cat >"$MX_DIR/mxrelay.conf" <<CONF
server = { hostname = "mx.bench.test"; listen = [ "127.0.0.1:$MX_PORT" ]; user = "root"; };
paths = { spool = "$MX_DIR/spool"; state = "$MX_DIR/state"; control_socket = "$MX_SOCK"; };
delivery = { retry_schedule = [ 3600 ]; connect_timeout = 5; };
filters = { spf = { enabled = false; }; dnsbl = { zones = [ ]; }; };
metrics = { listen = "127.0.0.1:$METRICS_PORT"; };
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
mx_ctl domain add example.test --legacy "127.0.0.1:$DEAD_PORT" >/dev/null || die "domain add"
for n in $(seq 2 "$DOMAINS"); do
	mx_ctl domain add "d$n.test" --legacy "127.0.0.1:$DEAD_PORT" >/dev/null || die "domain add d$n.test"
done
queued=$(mx_ctl --json status | perl -MJSON::PP -0 -e 'print decode_json(<STDIN>)->{queue}{messages}')
note "queued messages: $queued; domains: $DOMAINS"

perl -MIO::Socket::INET -MTime::HiRes=time -e '
	my ($port, $n) = @ARGV;
	my (@ms, $bytes);
	for (1 .. $n) {
		my $t0 = time;
		my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port,
		    Proto => "tcp", Timeout => 30) or die "connect: $!\n";
		print $s "GET /metrics HTTP/1.0\r\nHost: bench\r\n\r\n";
		local $/;
		my $r = <$s>;
		push @ms, (time - $t0) * 1000;
		die "bad answer\n" unless $r =~ m{^HTTP/1\.\d 200 };
		$bytes = length($r) - index($r, "\r\n\r\n") - 4;
	}
	@ms = sort { $a <=> $b } @ms;
	printf "scrape_ms_median %.1f\nscrape_ms_max %.1f\nexposition_bytes %d\n",
	    $ms[$#ms / 2], $ms[-1], $bytes;' "$METRICS_PORT" "$SCRAPES" || die "scrape failed"
echo "queued_messages $queued"
echo "domains $DOMAINS"
