# faults.t - the spool's own trouble, made on demand (./configure
# --enable-fault-injection, MXRELAY_FAULTS; see src/fault.h): a full disk
# while receiving is 452 4.3.1, an fsync error 451 4.3.0, nothing is
# acknowledged or left half-written, the log names the real error, and
# the next message goes through (SPEC 5, 9; issue 15)
use strict;
use warnings;
use Test::More;
use MxTest;
use Time::HiRes qw(sleep);

watchdog(60);

# files under the spool's incoming/ and queue/
sub spool_files {
	my ($mx) = @_;
	my @f;
	for my $d ('incoming', 'queue') {
		opendir(my $dh, $mx->spool_dir . "/$d") or next;
		push @f, map { "$d/$_" } grep { !/^\./ } readdir $dh;
	}
	return sort @f;
}

# run - one daemon with MXRELAY_FAULTS=$faults: the first message fails
# with $want, the second is queued
sub run {
	my ($faults, $want, $logged, $name) = @_;
	local $ENV{MXRELAY_FAULTS} = $faults;
	my $mx = MxTest::Daemon->new;
	$mx->start;
	$mx->setup(domains => ['example.test'], addresses => ['joe@example.test']);
	my $c = $mx->session;
	my $r = $c->transaction('s@src.test', ['joe@example.test'], "Subject: $name\r\n\r\nbody\r\n");
	BAIL_OUT('mxrelayd was built without --enable-fault-injection')
	    unless $mx->log =~ /fault injection armed: \Q$faults\E/;
	is($r, $want, "$name: $want");
	is_deeply([spool_files($mx)], [], "$name: nothing in incoming/ or queue/");
	like($mx->log, $logged, "$name: the log names the error");
	unlike($mx->log, qr/spool .* failed.*: Success/, "$name: never \"Success\"");
	like($c->transaction('s@src.test', ['joe@example.test'], "Subject: next\r\n\r\nbody\r\n"),
	    qr/^250 2\.0\.0 Ok: queued as /, "$name: the next message is queued");
	is(scalar(my @q = $mx->queue_ids), 1, "$name: exactly that one is in the queue");
	$c->cmd('QUIT');
	ok($mx->alive, "$name: the daemon lives");
	$mx->stop_ok;
}

run('spool_write=ENOSPC*1', '452 4.3.1 Error: insufficient system storage',
    qr/spool commit failed: No space left on device/, 'disk full while receiving');
run('spool_write=EDQUOT*1', '452 4.3.1 Error: insufficient system storage',
    qr/spool commit failed: Disk quota exceeded/, 'quota exceeded while receiving');
run('spool_sync=EIO*1', '451 4.3.0 Error: queue file write error',
    qr/spool sync failed batch=1 changes=0: Input\/output error/, 'EIO on fsync');
# A slow disk (issue 12): while the oldest message has waited 2 s for its
# sync, a new client gets 421 4.3.2 at the greeting; the message waiting
# is acknowledged once its sync is done, and new clients are served again.
{
	local $ENV{MXRELAY_FAULTS} = 'spool_sync=sleep:5000*1';
	my $mx = MxTest::Daemon->new;
	$mx->start;
	$mx->setup(domains => ['example.test'], addresses => ['joe@example.test']);
	my $a = $mx->session;
	like($a->cmd('MAIL FROM:<s@src.test>'), qr/^250 /, 'slow disk: MAIL');
	like($a->cmd('RCPT TO:<joe@example.test>'), qr/^250 /, 'slow disk: RCPT');
	like($a->cmd('DATA'), qr/^354 /, 'slow disk: DATA');
	$a->send("Subject: slow\r\n\r\nbody\r\n.\r\n");
	sleep 2.6;
	my $b = $mx->smtp;
	is($b->reply, '421 4.3.2 ' . $mx->hostname . ' Error: system busy, try again later',
	    'slow disk: a new client during the stall gets 421 4.3.2');
	ok($b->closed, 'slow disk: and is disconnected');
	like($a->reply, qr/^250 2\.0\.0 Ok: queued as /, 'slow disk: the waiting message is acknowledged');
	is(scalar(my @q = $mx->queue_ids), 1, 'slow disk: and queued');
	my $c = $mx->session;
	like($c->transaction('s@src.test', ['joe@example.test'], "Subject: after\r\n\r\nbody\r\n"),
	    qr/^250 2\.0\.0 Ok: queued as /, 'slow disk: after the stall a new client is served');
	like($mx->log, qr/spool behind: oldest commit waiting \d+ ms, new sessions refused with 421 4\.3\.2/,
	    'slow disk: logged when it starts');
	like($mx->log, qr/spool caught up: new sessions admitted again/, 'slow disk: and when it ends');
	my (undef, $st) = $mx->ctl_json('stats');
	is($st->{refused_spool_busy}, 1, 'slow disk: relayctl stats refused_spool_busy 1');
	$a->cmd('QUIT');
	$c->cmd('QUIT');
	$mx->stop_ok;
}
done_testing();
