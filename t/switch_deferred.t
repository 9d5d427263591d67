# switch_deferred.t - queued mail follows the switch (SPEC 7): mail
# deferred by the old server (4xx at RCPT, next retry minutes away)
# reaches the hosting (Dovecot LMTP) within 2 s of the switch, and the
# same the other way round: mail deferred by the hosting goes to the
# legacy server at once after a switch back.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use Time::HiRes qw(time sleep);

need_programs('smtp-sink', 'dovecot');
watchdog(60);

my $N = 5;
my $old = MxPeers::Sink->new(soft => 'RCPT');		# the old server defers
my $dove = MxPeers::Dovecot->new(users => ['joe@example.test']);
# switch.require_propagation off: this test is about the switch itself, not
# the MX propagation gate (t/check_mx.t tests that)
my $mx = delivery_daemon(hosting => $dove->destination,
    delivery => { retry_schedule => [600] },
    config => { switch => { require_propagation => JSON::PP::false } });
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '127.0.0.1:' . $old->port);
$mx->ctl_ok('address', 'add', 'joe@example.test');

my @ids;
for my $i (1 .. $N) {
	push @ids, submit($mx, 'a@src.test', ['joe@example.test'],
	    "From: a\@src.test\r\nSubject: deferred $i\r\n\r\nbody $i\r\n");
}
is(scalar(grep { defined } @ids), $N, "$N messages queued");
ok(wait_until(sub { attempt_lines($mx, undef, 'joe@example.test', 'deferred') >= $N }, 15, 0.05),
    'the old server deferred all of them') or diag($mx->log_tail(2000));
is(scalar($dove->maildir_files('joe@example.test')), 0, 'nothing at the hosting yet');

my $t0 = time;
my ($rc, $out, $err) = $mx->ctl('switch', 'example.test', 'hosted');
is($rc, 0, 'switch example.test hosted') or diag($err);
like($out, qr/legacy -> hosted/, 'it says so');
ok(wait_until(sub { $dove->maildir_files('joe@example.test') >= $N }, 2, 0.02),
    "all $N deferred messages reached the hosting within 2 s of the switch");
my $dt = time - $t0;
diag(sprintf "deferred mail at the hosting %.0f ms after the switch command", $dt * 1000);
ok(wait_log($mx, qr/switch rescheduled domain=example\.test recipients=$N\b/, 2),
    "the log says $N deferred recipients were rescheduled");
ok(wait_queue_empty($mx, 5), 'the queue is empty');

# the other way: the hosting defers (Dovecot stopped), switch back to a
# legacy server that accepts
$dove->stop;
my $good = MxPeers::Sink->new;
$mx->ctl_ok('domain', 'set', 'example.test', '--legacy', '127.0.0.1:' . $good->port);
my $id = submit($mx, 'a@src.test', ['joe@example.test'], "Subject: back\r\n\r\nback\r\n");
ok($id, 'one more message queued while hosted');
ok(wait_until(sub { attempt_lines($mx, $id, undef, 'deferred') >= 1 }, 15, 0.05),
    'the unreachable hosting defers it') or diag($mx->log_tail(2000));
$t0 = time;
($rc, $out, $err) = $mx->ctl('switch', 'example.test', 'legacy');
is($rc, 0, 'switch example.test legacy (a legacy server is configured)') or diag($err);
ok(wait_until(sub { $good->count >= 1 }, 2, 0.02),
    'it reached the legacy server within 2 s of the switch back');
diag(sprintf "deferred mail at the legacy server %.0f ms after the switch back", (time - $t0) * 1000);

$mx->stop_ok;
done_testing;
