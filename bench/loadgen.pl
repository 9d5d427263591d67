#!/usr/bin/perl
# bench/loadgen.pl - open-loop SMTP load: new sessions at a fixed rate,
# whether or not the server keeps up (smtp-source, by contrast, waits for
# each session before it starts the next one).
#
# usage: loadgen.pl PORT RATE SECS SIZE [MAXOPEN]
# Starts RATE sessions per second for SECS seconds to 127.0.0.1:PORT, each
# one message of SIZE octets from sender@src.test to joe@example.test:
#   banner, EHLO, then MAIL RCPT DATA pipelined, the body and "." with QUIT.
# At most MAXOPEN (default 20000) sessions are open at once; a session that
# would exceed it is not started and counted as "skipped" (the offered rate
# then stops being the rate asked for: the script says so). A session gets
# SESSION_TIMEOUT (60 s) in all.
#
# Prints one line per outcome on stdout, "KEY COUNT":
#   offered      sessions the schedule asked for
#   started      sessions connected
#   acked        messages answered 250 after the data
#   refused:STAGE:CODE  the first reply that was not the expected one, by
#                stage (banner, ehlo, mail, rcpt, data, dot) and code (with
#                its enhanced code when it has one: 421:4.7.0, 421:4.3.2)
#   closed:STAGE connection closed without a reply
#   timeout      sessions cut at SESSION_TIMEOUT
#   skipped      sessions not started (MAXOPEN)
#   connect_err  connect(2) failed
#   secs         how long the schedule took
use strict;
use warnings;
use Errno qw(EINPROGRESS EAGAIN);
use IO::Poll qw(POLLIN POLLOUT POLLERR POLLHUP);
use Socket qw(PF_INET SOCK_STREAM IPPROTO_TCP inet_aton pack_sockaddr_in);
use Fcntl qw(F_GETFL F_SETFL O_NONBLOCK);
use Time::HiRes qw(time);

my ($port, $rate, $secs, $size, $maxopen) = @ARGV;
die "usage: $0 PORT RATE SECS SIZE [MAXOPEN]\n" unless defined $size;
$maxopen //= 20000;
my $session_timeout = 60;
my $dst = pack_sockaddr_in($port, inet_aton('127.0.0.1'));

# the message: headers, then lines of 78 octets up to SIZE
my $body = "From: <sender\@src.test>\r\nTo: <joe\@example.test>\r\nSubject: load\r\n\r\n";
my $line = ('x' x 76) . "\r\n";
$body .= $line while length($body) < $size;
$body .= ".\r\nQUIT\r\n";
my $txn = "MAIL FROM:<sender\@src.test>\r\nRCPT TO:<joe\@example.test>\r\nDATA\r\n";

my %count;
my %sess;		# fileno -> session
my $poll = IO::Poll->new;
my $nsrc = 8;		# source addresses 127.0.0.2 .. 127.0.0.9

sub finish {
	my ($s, $key) = @_;
	$count{$key}++ if defined $key;
	$poll->remove($s->{fh});
	delete $sess{fileno $s->{fh}};
	close $s->{fh};
}

sub start {
	my ($i) = @_;
	socket(my $fh, PF_INET, SOCK_STREAM, IPPROTO_TCP) or do { $count{connect_err}++; return };
	bind($fh, pack_sockaddr_in(0, inet_aton('127.0.0.' . (2 + $i % $nsrc))));
	fcntl($fh, F_SETFL, fcntl($fh, F_GETFL, 0) | O_NONBLOCK);
	if (!connect($fh, $dst) && $! != EINPROGRESS) {
		$count{connect_err}++;
		close $fh;
		return;
	}
	$count{started}++;
	my $s = { fh => $fh, stage => 'banner', in => '', out => '', want => 1,
	    end => time + $session_timeout };
	$sess{fileno $fh} = $s;
	$poll->mask($fh => POLLIN);
}

# reply - one whole reply (last line "DDD ") from the input, or undef
sub reply {
	my ($s) = @_;
	while ($s->{in} =~ s/^([^\n]*)\n//) {
		my $l = $1;
		next unless $l =~ /^(\d{3})(?: |\r|$)/;
		# the enhanced code too (421 4.7.0 at the limit, 421 4.3.2 spool busy)
		$s->{ecode} = $l =~ /^\d{3} ([245]\.\d{1,3}\.\d{1,3})\b/ ? ":$1" : "";
		return $1 if $l =~ /^(\d{3})/;
	}
	return undef;
}

sub send_more {
	my ($s) = @_;
	while (length $s->{out}) {
		my $n = syswrite($s->{fh}, $s->{out});
		if (!defined $n) {
			return 1 if $! == EAGAIN;
			return 0;
		}
		substr($s->{out}, 0, $n, '');
	}
	return 1;
}

# advance - act on the replies received so far
sub advance {
	my ($s) = @_;
	while (defined(my $code = reply($s))) {
		my $st = $s->{stage};
		my %ok = (banner => 220, ehlo => 250, mail => 250, rcpt => 250,
		    data => 354, dot => 250, quit => 221);
		if ($code != $ok{$st}) {
			finish($s, "refused:$st:$code$s->{ecode}");
			return;
		}
		if ($st eq 'banner') {
			$s->{out} .= "EHLO load.src.test\r\n";
			$s->{stage} = 'ehlo';
		} elsif ($st eq 'ehlo') {
			$s->{out} .= $txn;
			$s->{stage} = 'mail';
		} elsif ($st eq 'mail') {
			$s->{stage} = 'rcpt';
		} elsif ($st eq 'rcpt') {
			$s->{stage} = 'data';
		} elsif ($st eq 'data') {
			$s->{out} .= $body;
			$s->{stage} = 'dot';
		} elsif ($st eq 'dot') {
			$count{acked}++;
			$s->{stage} = 'quit';
		} else {
			finish($s);
			return;
		}
	}
	if (!send_more($s)) {
		finish($s, "closed:$s->{stage}");
		return;
	}
	$poll->mask($s->{fh} => POLLIN | (length $s->{out} ? POLLOUT : 0));
}

my $t0 = time;
my $offered = int($rate * $secs);
my $next_start = 0;
my $last_sweep = $t0;
while ($next_start < $offered || %sess) {
	my $now = time;
	while ($next_start < $offered && $t0 + $next_start / $rate <= $now) {
		if (keys(%sess) >= $maxopen) {
			$count{skipped}++;
		} else {
			start($next_start);
		}
		$next_start++;
	}
	my $wait = $next_start < $offered ? $t0 + $next_start / $rate - time : 0.5;
	$wait = 0 if $wait < 0;
	$poll->poll($wait) if %sess;
	for my $fh ($poll->handles(POLLIN | POLLERR | POLLHUP)) {
		my $s = $sess{fileno $fh} or next;
		my $n = sysread($fh, my $buf, 65536);
		if (!defined $n && $! == EAGAIN) {
			next;
		}
		if (!$n) {
			# a closed connection after our QUIT went out is the end
			finish($s, $s->{stage} eq 'quit' ? undef : "closed:$s->{stage}");
			next;
		}
		$s->{in} .= $buf;
		advance($s);
	}
	for my $fh ($poll->handles(POLLOUT)) {
		my $s = $sess{fileno $fh} or next;
		advance($s);
	}
	if (time - $last_sweep >= 1) {
		$last_sweep = time;
		for my $s (values %sess) {
			finish($s, 'timeout') if $s->{end} < $last_sweep;
		}
	}
}
$count{offered} = $offered;
$count{secs} = sprintf('%.1f', time - $t0);
print "$_ $count{$_}\n" for sort keys %count;
