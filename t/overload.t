# overload.t - when the queue is full or the spool's disk is short of space,
# MAIL gets 452 4.3.1 and nothing is accepted that could not be kept; once
# there is room again mail is taken (issue 12: graceful overload; the
# spool-busy 421 4.3.2 at the greeting is in t/faults.t, which can slow
# the disk down on demand)
use strict;
use warnings;
use Test::More;
use MxTest;

watchdog(90);

my $MSG = "Subject: overload\r\n\r\nbody\r\n";
my $GiB = 1024 * 1024 * 1024;

# free octets for an unprivileged writer in DIR, as statvfs(2) (df -B1) says
sub avail {
	my ($dir) = @_;
	my ($rc, $out) = MxTest::run_cmd('df', '-B1', '--output=avail', $dir);
	my ($n) = $out =~ /(\d+)\s*\z/;
	return $n;
}

# mail_reply - a fresh session's reply to MAIL (with PARAMS)
sub mail_reply {
	my ($mx, $params) = @_;
	my $c = $mx->session;
	my $r = $c->cmd('MAIL FROM:<s@src.test>' . ($params // ''));
	$c->cmd('QUIT');
	return $r;
}

sub stat_of {
	my ($mx, $key) = @_;
	my (undef, $st) = $mx->ctl_json('stats');
	return $st->{$key} // -1;
}

# 1. limits.max_queued: the old server is down and the queue fills up
{
	my $mx = MxTest::Daemon->new(config => { limits => { max_queued => 3 } });
	$mx->start;
	$mx->setup(domains => ['example.test'], addresses => ['joe@example.test']);
	my $c = $mx->session;
	for my $i (1 .. 3) {
		like($c->transaction('s@src.test', ['joe@example.test'], $MSG),
		    qr/^250 2\.0\.0 Ok: queued as /, "max_queued 3: message $i queued");
	}
	is($c->cmd('MAIL FROM:<s@src.test>'), '452 4.3.1 Error: queue full, try again later',
	    'the 4th MAIL: 452 4.3.1 queue full');
	like($c->cmd('RCPT TO:<joe@example.test>'), qr/^503 /,
	    'no transaction was started by the refused MAIL');
	$c->cmd('RSET');
	my @ids = $mx->queue_ids;
	is(scalar @ids, 3, 'the queue holds the 3 acknowledged messages, nothing more');
	like($mx->log, qr/smtp mail refused from=<s\@src\.test> client=127\.0\.0\.1 reason="queue full/,
	    'the log says why');
	is(stat_of($mx, 'refused_queue_full'), 1, 'relayctl stats: refused_queue_full 1');

	$mx->ctl_ok('queue', 'delete', $ids[0]);
	like($c->transaction('s@src.test', ['joe@example.test'], $MSG),
	    qr/^250 2\.0\.0 Ok: queued as /, 'with room in the queue again, the next message is queued');
	$c->cmd('QUIT');
	ok($mx->alive, 'the daemon lives');
	$mx->stop_ok;
}

# 2. limits.queue_minfree: the spool's file system is short of space
{
	my $mx = MxTest::Daemon->new(config => { limits => { queue_minfree => \((1 << 50) . 'L') } });
	my ($rc, $out, $err) = MxTest::run_cmd(MxTest::mxrelayd_bin(), '-t', '-c', $mx->write_config);
	is($rc, 0, 'mxrelayd -t takes limits.queue_minfree') or diag("$out$err");
	$mx->start;
	$mx->setup(domains => ['example.test'], addresses => ['joe@example.test']);
	my $r;
	# the free space is read off the loop, once a second: wait for it
	wait_until(sub { ($r = mail_reply($mx)) =~ /^452 /; }, 5);
	is($r, '452 4.3.1 Error: insufficient system storage',
	    'queue_minfree 1 PiB: MAIL gets 452 4.3.1');
	is(stat_of($mx, 'refused_disk_space') > 0 ? 1 : 0, 1, 'relayctl stats: refused_disk_space counted');

	# Room for what the limits need, but not for a declared SIZE=: the
	# space needed is max(queue_minfree, 1.5 x max_message_size) + SIZE.
	my $free = avail($mx->spool_dir);
	cmp_ok($free, '>', 2 * $GiB, 'the test needs 2 GiB free on the spool\'s file system');
	# libconfig: integers over 2^31 need the L suffix
	$mx->{config}{limits}{queue_minfree} = \(($free - 256 * 1024 * 1024) . 'L');
	$mx->{config}{limits}{max_message_size} = \($GiB . 'L');
	$mx->write_config;
	($rc, $out, $err) = $mx->ctl('reload');
	is($rc, 0, 'reload with queue_minfree = free - 256 MiB') or diag("$out$err");
	wait_until(sub { ($r = mail_reply($mx)) =~ /^250 /; }, 5);
	is($r, '250 2.1.0 Ok', 'MAIL without SIZE=: 250');
	is(mail_reply($mx, ' SIZE=' . (512 * 1024 * 1024)), '452 4.3.1 Error: insufficient system storage',
	    'MAIL SIZE=512 MiB, more than the room left above queue_minfree: 452 4.3.1');
	is(mail_reply($mx, ' SIZE=1000'), '250 2.1.0 Ok', 'MAIL SIZE=1000: 250');
	my $c = $mx->session;
	like($c->transaction('s@src.test', ['joe@example.test'], $MSG),
	    qr/^250 2\.0\.0 Ok: queued as /, 'a message is queued');
	$c->cmd('QUIT');
	ok($mx->alive, 'the daemon lives');
	$mx->stop_ok;
}

done_testing();
