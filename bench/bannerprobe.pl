#!/usr/bin/perl
# bench/bannerprobe.pl - how long a new client waits for its banner.
#
# usage: bannerprobe.pl PORT COUNT
# COUNT times, one after the other: connect to 127.0.0.1:PORT, time from
# the connect call until the "220" line has arrived (monotonic clock), send
# QUIT and close. Prints "COUNT P50_MS P99_MS MAX_MS FAILED"; a connection
# refused, closed or answered with anything but 220 (a 421 when the server
# is full) counts as failed, not as a latency.
use strict;
use warnings;
use IO::Socket::INET;
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC sleep);

my ($port, $count) = @ARGV;
die "usage: $0 PORT COUNT\n" unless defined $count;
my (@ms, $failed);
$failed = 0;
for (1 .. $count) {
	my $t0 = clock_gettime(CLOCK_MONOTONIC);
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
	    Proto => 'tcp', Timeout => 10);
	my $l = $s ? <$s> : undef;
	my $t1 = clock_gettime(CLOCK_MONOTONIC);
	if (defined $l && $l =~ /^220/) {
		push @ms, ($t1 - $t0) * 1000;
		print $s "QUIT\r\n";
	} else {
		$failed++;
	}
	close $s if $s;
	sleep 0.01;	# a new client now and then, not a flood
}
@ms = sort { $a <=> $b } @ms;
my $pct = sub { @ms ? $ms[int($_[0] * $#ms + 0.5)] : -1 };
printf "%d %.3f %.3f %.3f %d\n", scalar(@ms), $pct->(0.50), $pct->(0.99),
    @ms ? $ms[-1] : -1, $failed;
