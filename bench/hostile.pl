#!/usr/bin/perl
# bench/hostile.pl - mxrelayd against slow and hostile clients (issue 15):
# prints the reply each abuse gets, mxrelayd's RSS (VmRSS now, VmHWM peak)
# after each, and a normal client's transaction latency with and without
# thousands of slowloris sessions open.
#
#   perl bench/hostile.pl            (MXRELAYD=./mxrelayd RELAYCTL=./relayctl)
#
# Environment (defaults): SLOW=5000 slowloris sessions (one octet every
# SLOW_EVERY=10 s), LINE_MB=64 (endless command line), HEADER_MB=64
# (endless header line), RCPTS=100000, MESSAGE_MB=1024, SAMPLES=20 normal
# transactions per latency figure. Runs as root (raises ulimit -n).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../t/lib";
use MxTest;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

$ENV{MXRELAYD} //= './mxrelayd';
$ENV{RELAYCTL} //= './relayctl';
$MxTest::MXRELAYD = $ENV{MXRELAYD};
$MxTest::RELAYCTL = $ENV{RELAYCTL};
my $SLOW = $ENV{SLOW} // 5000;
my $SLOW_EVERY = $ENV{SLOW_EVERY} // 10;
my $LINE_MB = $ENV{LINE_MB} // 64;
my $HEADER_MB = $ENV{HEADER_MB} // 64;
my $RCPTS = $ENV{RCPTS} // 100000;
my $MESSAGE_MB = $ENV{MESSAGE_MB} // 1024;
my $SAMPLES = $ENV{SAMPLES} // 20;

my $mx = MxTest::Daemon->new(config => { limits => {
	max_connections => $SLOW + 1000, max_connections_per_client => $SLOW + 1000 } });
$mx->start;
$mx->setup(domains => ['example.test'], addresses => ['joe@example.test']);

sub mem {
	my $s = MxTest::slurp('/proc/' . $mx->pid . '/status') // '';
	my ($rss) = $s =~ /^VmRSS:\s+(\d+)/m;
	my ($hwm) = $s =~ /^VmHWM:\s+(\d+)/m;
	return sprintf('rss=%.1fMB peak=%.1fMB', ($rss // 0) / 1024, ($hwm // 0) / 1024);
}

# latency - median seconds of SAMPLES whole transactions on fresh sessions
sub latency {
	my @t;
	for (1 .. $SAMPLES) {
		my $t0 = time;
		my $c = $mx->session;
		my $r = $c->transaction('s@src.test', ['joe@example.test'], "Subject: normal\r\n\r\nbody\r\n");
		die "normal transaction failed: " . ($r // 'none') . "\n" unless defined $r && $r =~ /^250 /;
		$c->cmd('QUIT');
		push @t, time - $t0;
	}
	@t = sort { $a <=> $b } @t;
	return sprintf('median=%.1fms max=%.1fms', 1000 * $t[@t / 2], 1000 * $t[-1]);
}

# send_mb - MB mebibytes of CHUNK-sized pieces; stops early when the server
# closes; returns the octets sent
sub send_mb {
	my ($c, $mb, $piece) = @_;
	my $chunk = $piece x (65536 / length $piece);
	my $sent = 0;
	for (1 .. $mb * 16) {
		last unless $c->send($chunk);
		$sent += length $chunk;
	}
	return $sent;
}

printf "%-34s %s\n", 'idle', mem();
printf "%-34s %s\n", 'normal latency', latency();

# slowloris: SLOW sessions, each trickling one octet every SLOW_EVERY s
my $holder = fork // die "fork: $!";
if ($holder == 0) {
	my @s;
	for (1 .. $SLOW) {
		my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mx->port,
		    Proto => 'tcp') or last;
		push @s, $s;
	}
	print STDERR "# slowloris: $#s+1 sessions open\n";
	while (1) {
		for my $s (@s) { syswrite($s, 'N'); }
		sleep $SLOW_EVERY;
	}
}
sleep 5 + $SLOW / 2000;
printf "%-34s %s\n", "with $SLOW slowloris sessions", mem();
printf "%-34s %s\n", "normal latency under slowloris", latency();
kill 'KILL', $holder;
waitpid($holder, 0);
sleep 1;

# an endless command line
my $c = $mx->session;
my $t0 = time;
my $n = send_mb($c, $LINE_MB, 'x');
$c->send("\r\n");
my $r = $c->reply(30) // 'none';
printf "%-34s %s (%.0f MB in %.2fs) %s\n", 'endless command line', $r, $n / 2**20, time - $t0, mem();
$c->close;

# an endless header line
$c = $mx->session;
$c->cmd('MAIL FROM:<s@src.test>');
$c->cmd('RCPT TO:<joe@example.test>');
$c->cmd('DATA');
$t0 = time;
$c->send('Subject: ');
$n = send_mb($c, $HEADER_MB, 'h');
$c->send("\r\n\r\nbody\r\n.\r\n");
$r = $c->reply(120) // 'none';
printf "%-34s %s (%.0f MB in %.2fs) %s\n", 'endless header line', $r, $n / 2**20, time - $t0, mem();
$c->close;

# 100,000 RCPTs, pipelined in batches of 100
$c = $mx->session;
$c->cmd('MAIL FROM:<s@src.test>');
my %codes;
$t0 = time;
for (my $i = 0; $i < $RCPTS; $i += 100) {
	$c->send(join('', map { "RCPT TO:<joe+$_\@example.test>\r\n" } $i + 1 .. $i + 100));
	for (1 .. 100) {
		my $x = $c->reply(30);
		$codes{defined $x ? substr($x, 0, 9) : 'none'}++;
		last unless defined $x;
	}
}
printf "%-34s %s in %.2fs %s\n", "$RCPTS RCPTs",
    join(' ', map { "$_ x$codes{$_}" } sort keys %codes), time - $t0, mem();
$c->close;

# a 1 GB message
$c = $mx->session;
$c->cmd('MAIL FROM:<s@src.test>');
$c->cmd('RCPT TO:<joe@example.test>');
$c->cmd('DATA');
$t0 = time;
$n = send_mb($c, $MESSAGE_MB, ('m' x 76) . "\r\n");
$c->send(".\r\n");
$r = $c->reply(300) // 'none';
printf "%-34s %s (%.0f MB in %.2fs) %s\n", "$MESSAGE_MB MB message", $r, $n / 2**20, time - $t0, mem();
$c->close;

printf "%-34s %s\n", 'normal latency afterwards', latency();
printf "%-34s %s\n", 'at the end', mem();
$mx->stop;
