#!/bin/bash
# bench/verify.sh - RCPT latency of recipient verification at the old
# server (SPEC 10): a RCPT for an address not in the table, answered by an
# RCPT probe of the legacy server, then the same address again, answered
# from the cache.
#
# The old server is smtp-sink (it accepts every RCPT), the domain has
# --verify-legacy on and an empty table. One SMTP connection sends, for
# COUNT distinct unknown addresses, MAIL FROM, RCPT TO (timed), RSET; then
# the same COUNT addresses again. Only the RCPT round trip is timed, with
# the monotonic clock. Prints p50, p99 and max of both rounds.
#
# Environment (defaults): MXRELAYD=./mxrelayd RELAYCTL=./relayctl COUNT=500

BENCH_SRC=$(cd "$(dirname "$0")" && pwd) || exit 1
# shellcheck source=bench/lib.sh
. "$BENCH_SRC/lib.sh"

COUNT=${COUNT:-500}

bench_init
mx_check_binaries
command -v smtp-sink >/dev/null || die "smtp-sink not found (apt-get install postfix)"
note "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

OLD_PORT=$(free_port) || die "no free port"
smtp-sink -u root -c "127.0.0.1:$OLD_PORT" 1024 >"$BENCH_DIR/sink.log" 2>&1 &
bench_track $!
wait_port "$OLD_PORT" || die "smtp-sink did not come up"

mx_start
# every address is probed once: no probe budget in the way
cat >>"$MX_DIR/mxrelay.conf" <<CONF
verify = { max_probes_per_minute = 100000; };
CONF
mx_ctl reload >/dev/null || die "reload"
mx_ctl domain add example.test --legacy "127.0.0.1:$OLD_PORT" >/dev/null || die "domain add"
mx_ctl domain set example.test --verify-legacy on >/dev/null || die "domain set"

perl -MIO::Socket::INET -MTime::HiRes=clock_gettime,CLOCK_MONOTONIC -e '
	my ($port, $n) = @ARGV;
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port)
	    or die "connect: $!\n";
	sub reply { my $c; while (my $l = <$s>) { $l =~ /^(\d{3})([ -])/ or die "bad: $l"; $c = $1; return $c if $2 eq " " } die "closed\n" }
	sub cmd { print $s "$_[0]\r\n"; return reply() }
	reply(); cmd("EHLO bench.test");
	sub stats { my @v = sort { $a <=> $b } @_; sprintf("p50_ms=%.2f p99_ms=%.2f max_ms=%.2f", map { $_ * 1000 } $v[int(@v * 0.5)], $v[int(@v * 0.99)], $v[-1]) }
	for my $round ("probed", "cached") {
		my @t;
		for my $i (1 .. $n) {
			cmd("MAIL FROM:<a\@src.test>") == 250 or die "MAIL\n";
			my $t0 = clock_gettime(CLOCK_MONOTONIC);
			my $c = cmd("RCPT TO:<user$i\@example.test>");
			push @t, clock_gettime(CLOCK_MONOTONIC) - $t0;
			$c == 250 or die "RCPT user$i: $c\n";
			cmd("RSET");
		}
		printf "verify RCPT, %s (%d addresses): %s\n", $round, $n, stats(@t);
	}
' "$MX_PORT" "$COUNT" || die "the RCPT client failed"
mx_ctl stats | grep '^verify_' | sed 's/^/# /' >&2
mx_stop
