#!/usr/bin/perl
# bench/holdconns.pl - open COUNT SMTP connections and hold them.
#
# usage: holdconns.pl [-s NSRC] [-t SECS] PORT COUNT READYFILE [TIMEOUT]
# Connects COUNT times to 127.0.0.1:PORT, in batches, reading each 220
# banner (so the server has really taken the session on) before the next
# batch, then writes "COUNT\n" to READYFILE and holds the connections until
# killed or TIMEOUT seconds (default 300) pass.
#   -s NSRC  spread the connections over the source addresses 127.0.0.2 ..
#            127.0.0.(NSRC+1): one source address has only ~28,000
#            ephemeral ports (default 1: the kernel's choice)
#   -t SECS  slow trickle instead of idle: every connection sends one octet
#            of "NOOP\r\n" every SECS seconds (spread evenly over the
#            connections), so the server holds partial command lines
# The caller raises the descriptor limit (ulimit -n) before running it.
# Exits 1 if a connection or a banner fails.
use strict;
use warnings;
use Getopt::Std;
use IO::Poll qw(POLLIN POLLERR POLLHUP);
use Socket qw(PF_INET SOCK_STREAM IPPROTO_TCP inet_aton pack_sockaddr_in);
use Time::HiRes qw(time sleep);

my %opt;
getopts('s:t:', \%opt) or die "usage: $0 [-s NSRC] [-t SECS] PORT COUNT READYFILE [TIMEOUT]\n";
my ($port, $count, $ready, $timeout) = @ARGV;
die "usage: $0 [-s NSRC] [-t SECS] PORT COUNT READYFILE [TIMEOUT]\n" unless defined $ready;
$timeout //= 300;
my $nsrc = $opt{s} // 0;
my $trickle = $opt{t} // 0;
my $banner_timeout = 60;	# per batch
my $batch = 500;

my $dst = pack_sockaddr_in($port, inet_aton('127.0.0.1'));
my @socks;

# connect_one - a blocking connect (loopback: the kernel completes the
# handshake whether or not the server has accepted yet)
sub connect_one {
	my ($i) = @_;
	socket(my $s, PF_INET, SOCK_STREAM, IPPROTO_TCP) or die "holdconns: socket: $!\n";
	if ($nsrc > 0) {
		my $src = '127.0.0.' . (2 + $i % $nsrc);
		bind($s, pack_sockaddr_in(0, inet_aton($src)))
		    or die "holdconns: bind $src (#$i): $!\n";
	}
	connect($s, $dst) or die "holdconns: connect #$i: $!\n";
	return $s;
}

# banners - read the 220 of every socket in @$list
sub banners {
	my ($list) = @_;
	my $poll = IO::Poll->new;
	my %buf;
	$poll->mask($_ => POLLIN) for @$list;
	my $end = time + $banner_timeout;
	while ($poll->handles) {
		my $left = $end - time;
		die "holdconns: " . scalar($poll->handles) . " banners missing\n" if $left <= 0;
		$poll->poll($left);
		for my $s ($poll->handles(POLLIN | POLLERR | POLLHUP)) {
			my $n = sysread($s, my $b, 512);
			die "holdconns: connection closed before banner ($!)\n" unless $n;
			$buf{fileno $s} .= $b;
			next unless $buf{fileno $s} =~ /\n/;
			die "holdconns: bad banner: $buf{fileno $s}" unless $buf{fileno $s} =~ /^220/;
			$poll->remove($s);
		}
	}
}

for (my $i = 0; $i < $count; $i += $batch) {
	my @b;
	for my $j ($i .. ($i + $batch < $count ? $i + $batch : $count) - 1) {
		push @b, connect_one($j);
	}
	banners(\@b);
	push @socks, @b;
}

open my $fh, '>', "$ready.tmp" or die "holdconns: $ready: $!\n";
print $fh scalar(@socks), "\n";
close $fh;
rename "$ready.tmp", $ready or die "holdconns: rename: $!\n";

my $end = time + $timeout;
if ($trickle <= 0 || !@socks) {
	sleep $timeout;
	exit 0;
}
# slow trickle: one octet per connection per $trickle seconds, in order
my @line = split //, "NOOP\r\n";
my @pos = (0) x @socks;
my $gap = $trickle / @socks;
my $next = time;
for (my $k = 0; time < $end; $k = ($k + 1) % @socks) {
	my $s = $socks[$k];
	syswrite($s, $line[$pos[$k]], 1) or die "holdconns: write #$k: $!\n";
	$pos[$k] = ($pos[$k] + 1) % @line;
	$next += $gap;
	my $wait = $next - time;
	sleep $wait if $wait > 0.001;
}
exit 0;
