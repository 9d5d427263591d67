#!/usr/bin/perl
# bench/holdconns.pl - open COUNT idle SMTP connections and hold them.
#
# usage: holdconns.pl PORT COUNT READYFILE [TIMEOUT]
# Connects COUNT times to 127.0.0.1:PORT, reads each 220 banner (so the
# server has really taken the session on), then writes "COUNT\n" to
# READYFILE and sleeps until killed or TIMEOUT seconds (default 300) pass.
# The caller raises the descriptor limit (ulimit -n) before running it.
# Exits 1 if a connection or a banner fails.
use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time);

my ($port, $count, $ready, $timeout) = @ARGV;
die "usage: $0 PORT COUNT READYFILE [TIMEOUT]\n" unless defined $ready;
$timeout //= 300;
my $banner_timeout = 30;

my @socks;
my $sel = IO::Select->new;
my %pending;
for my $i (1 .. $count) {
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
	    Proto => 'tcp', Timeout => 10)
	    or die "holdconns: connect #$i: $!\n";
	push @socks, $s;
	$sel->add($s);
	$pending{fileno $s} = '';
}

# Read banners as they come, without blocking on any single one.
my $end = time + $banner_timeout;
while (%pending) {
	my $left = $end - time;
	die "holdconns: " . scalar(keys %pending) . " banners missing\n" if $left <= 0;
	for my $s ($sel->can_read($left)) {
		my $fd = fileno $s;
		my $n = sysread($s, my $buf, 512);
		die "holdconns: connection closed before banner\n" unless $n;
		$pending{$fd} .= $buf;
		if ($pending{$fd} =~ /\n/) {
			die "holdconns: bad banner: $pending{$fd}" unless $pending{$fd} =~ /^220/;
			delete $pending{$fd};
			$sel->remove($s);
		}
	}
}

open my $fh, '>', "$ready.tmp" or die "holdconns: $ready: $!\n";
print $fh scalar(@socks), "\n";
close $fh;
rename "$ready.tmp", $ready or die "holdconns: rename: $!\n";

sleep $timeout;
exit 0;
