# durability_loop.t - a crash loop (issue 15): clients stream mail while
# mxrelayd is killed with SIGKILL at random moments, 20 times, and
# restarted each time. At the end every message that got a 250 is at the
# sink at least once (SPEC 6: at least once, never lost); duplicates are
# counted and reported, not failed.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

need_programs('smtp-sink');
watchdog(120);

my $KILLS = $ENV{MX_LOOP_KILLS} || 20;
my $CLIENTS = 4;
my ($UP_MIN, $UP_MAX) = (0.3, 1.2);	# seconds the daemon runs between kills

my $sink = MxPeers::Sink->new;
my $mx = delivery_daemon(delivery => { retry_schedule => [1, 1, 2] });
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '[127.0.0.1]:' . $sink->port);
$mx->ctl_ok('address', 'add', 'joe@example.test');
my $dir = tmpdir();
my $stop = "$dir/stop";

# client - send numbered messages on persistent sessions until the stop
# file appears; a message whose 250 was not seen is sent again on a new
# connection (as an MTA would); every 250 is recorded by Message-ID
sub client {
	my ($k) = @_;
	open(my $log, '>>', "$dir/acked.$k") or POSIX::_exit(2);
	$log->autoflush(1);
	my ($c, $n) = (undef, 1);
	while (!-e $stop) {
		my $mid = "loop.$k.$n.$$\@src.test";
		if (!$c) {
			$c = eval { $mx->session(timeout => 5) };
			if (!$c) { sleep 0.05; next; }
		}
		my $r = $c->transaction("s$k\@src.test", ['joe@example.test'],
		    "Message-ID: <$mid>\r\nSubject: loop $k $n\r\n\r\n" . ("line $n\r\n" x (1 + $n % 20)));
		if (defined $r && $r =~ /^250 2\.0\.0 Ok: queued as /) {
			print $log "$mid\n";
			$n++;
			next;
		}
		$c->close;
		undef $c;
	}
	$c->cmd('QUIT') if $c;
	close $log;
}

sub acked {
	my %a;
	for my $k (1 .. $CLIENTS) {
		open(my $fh, '<', "$dir/acked.$k") or next;
		while (<$fh>) { chomp; $a{$_} = 1; }
	}
	return \%a;
}

my $t0 = time;
my @kids;
for my $k (1 .. $CLIENTS) {
	my $pid = fork;
	die "fork: $!" unless defined $pid;
	if ($pid == 0) {
		$SIG{ALRM} = 'DEFAULT';
		client($k);
		POSIX::_exit(0);	# no END blocks: the parent owns the peers
	}
	push @kids, $pid;
}

srand($ENV{MX_LOOP_SEED} // time);
my $restarted = 0;
for my $i (1 .. $KILLS) {
	sleep($UP_MIN + rand($UP_MAX - $UP_MIN));
	$mx->kill9;
	$restarted++ if eval { $mx->start; 1 };
	last unless $mx->alive;
}
is($restarted, $KILLS, "killed with SIGKILL and restarted $KILLS times");
sleep 1;	# some mail after the last restart
MxTest::spew($stop, '');
my %running = map { $_ => 1 } @kids;
wait_until(sub {
	for my $p (keys %running) { delete $running{$p} if waitpid($p, WNOHANG) == $p; }
	return !%running;
}, 20, 0.1);
ok(!%running, 'all clients finished');
kill 'KILL', keys %running;
waitpid($_, 0) for keys %running;

my $acked = acked();
my $nacked = keys %$acked;
ok($nacked > 10 * $KILLS / 2, "mail flowed between the kills ($nacked acknowledged)");

my %got;
my $scan = sub {
	%got = ();
	for my $m ($sink->messages) {
		my ($mid) = $m->{text} =~ /^Message-ID: <([^>]+)>/m;
		$got{$mid}++ if defined $mid;
	}
	return !grep { !$got{$_} } keys %$acked;
};
ok(wait_until($scan, 40, 0.5), 'every acknowledged message reached the sink');
ok(wait_queue_empty($mx, 30), 'queue empty at the end');
sleep 0.2;
$scan->();
my @missing = grep { !$got{$_} } sort keys %$acked;
is(scalar @missing, 0, 'missing acknowledged messages: ' . scalar @missing)
    or diag("missing (first 20): @missing[0 .. ($#missing < 19 ? $#missing : 19)]");
my ($delivered, $dups) = (0, 0);
for my $mid (keys %$acked) {
	next unless $got{$mid};
	$delivered++;
	$dups += $got{$mid} - 1;
}
my $unacked = grep { !$acked->{$_} } keys %got;
diag(sprintf('crash loop: kills=%d acknowledged=%d delivered=%d missing=%d duplicated=%d '
    . 'unacknowledged-but-delivered=%d elapsed=%.0fs',
    $KILLS, $nacked, $delivered, scalar @missing, $dups, $unacked, time - $t0));
$mx->stop_ok;
done_testing();
