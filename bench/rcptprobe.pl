#!/usr/bin/perl
# bench/rcptprobe.pl - time RCPT replies on one SMTP connection.
#
# usage: rcptprobe.pl PORT STARTFILE STOP OUTFILE
# One connection to 127.0.0.1:PORT: EHLO, then cycles of
#   MAIL FROM:<sender@src.test>, RCPT TO:<ADDR> (timed), RSET
# where ADDR alternates between joe@example.test (in the table) and an
# unknown address of the same domain, so that both the hit and the miss
# paths of the address lookup are timed. Only the RCPT round trip is timed,
# with the monotonic clock. STARTFILE is created once the first cycle is
# done. STOP is a number of seconds to run, or a file name: the probe runs
# until that file exists (bounded by 3600 s). OUTFILE gets one line:
#   count=N p50_ms=X p99_ms=X max_ms=X codes=250:N,550:N,... reconnects=N
# If the server closes the session (an error limit), the probe reconnects
# and counts it; the lost RCPT is not timed.
# Exits 1 on a connection error or a reply that is not 250/550 to RCPT
# (after writing OUTFILE, so 4xx replies are reported, not hidden).
use strict;
use warnings;
use IO::Socket::INET;
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC);

my ($port, $startfile, $stop, $outfile) = @ARGV;
die "usage: $0 PORT STARTFILE STOP OUTFILE\n" unless defined $outfile;
my $hard_limit = 3600;

my $s;

# reply - read one (possibly multi-line) reply; return its code, or 0 when
# the server closed the connection
sub reply {
	my $code;
	while (1) {
		my $l = <$s>;
		return 0 unless defined $l;
		die "rcptprobe: bad reply: $l" unless $l =~ /^(\d{3})([ -])/;
		$code = $1;
		return $code if $2 eq ' ';
	}
}

# cmd - send a command line and return the reply code
sub cmd {
	print $s "$_[0]\r\n";
	return reply();
}

# session - (re)connect and say EHLO
sub session {
	$s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
	    Proto => 'tcp', Timeout => 10) or die "rcptprobe: connect: $!\n";
	$s->autoflush(1);
	$s->timeout(60);
	my $c = reply();
	die "rcptprobe: banner $c\n" unless $c == 220;
	$c = cmd('EHLO probe.bench.test');
	die "rcptprobe: EHLO $c\n" unless $c == 250;
}

$SIG{PIPE} = 'IGNORE';
session();
my $reconnects = 0;
my $c;
my $t_start = clock_gettime(CLOCK_MONOTONIC);
my $until_file = $stop !~ /^\d+(\.\d+)?$/;
my (@lat, %codes);
my $bad = '';
my $i = 0;
while (1) {
	my $now = clock_gettime(CLOCK_MONOTONIC);
	last if $now - $t_start > $hard_limit;
	if ($until_file) {
		last if -e $stop;
	} else {
		last if $now - $t_start >= $stop;
	}
	$c = cmd('MAIL FROM:<sender@src.test>');
	# A server may close after so many refused recipients (Postfix's
	# smtpd_hard_error_limit does): start a new session and go on.
	if ($c == 0 || $c == 421) {
		$reconnects++;
		session();
		next;
	}
	die "rcptprobe: MAIL $c\n" unless $c == 250;
	my $rcpt = ($i++ % 2) ? "nobody$i\@example.test" : 'joe@example.test';
	my $t0 = clock_gettime(CLOCK_MONOTONIC);
	print $s "RCPT TO:<$rcpt>\r\n";
	$c = reply();
	if ($c == 0) {
		$reconnects++;
		session();
		next;
	}
	push @lat, clock_gettime(CLOCK_MONOTONIC) - $t0;
	$codes{$c}++;
	$bad = "RCPT $rcpt: $c" if $c != 250 && $c != 550;
	$c = cmd('RSET');
	if ($c == 0 || $c == 421) {
		$reconnects++;
		session();
	} elsif ($c != 250) {
		die "rcptprobe: RSET $c\n";
	}
	if ($i == 1) {
		open my $fh, '>', $startfile or die "rcptprobe: $startfile: $!\n";
		close $fh;
	}
}
cmd('QUIT');

@lat = sort { $a <=> $b } @lat;
# pct - the P-th percentile (nearest rank), in milliseconds
sub pct {
	my $p = shift;
	return 0 unless @lat;
	my $k = int($p / 100 * @lat + 0.999999) - 1;
	$k = 0 if $k < 0;
	return $lat[$k] * 1000;
}
open my $out, '>', $outfile or die "rcptprobe: $outfile: $!\n";
printf $out "count=%d p50_ms=%.3f p99_ms=%.3f max_ms=%.3f codes=%s reconnects=%d\n",
    scalar(@lat), pct(50), pct(99), (@lat ? $lat[-1] * 1000 : 0),
    join(',', map { "$_:$codes{$_}" } sort keys %codes), $reconnects;
close $out;
die "rcptprobe: unexpected reply to $bad\n" if $bad;
exit 0;
