# cutover_hold.t - the hold and the per-domain queue lifetime (SPEC 10):
# relayctl domain set DOMAIN --hold on|off: a stream of mail for a held
# domain is accepted and reaches no downstream (another domain's mail
# goes on), the hold survives kill -9, and on release every acknowledged
# message is delivered, none bounced although delivery.max_lifetime (3 s)
# passed during the hold; --max-lifetime SECONDS|default: a domain's own
# lifetime, longer or shorter than delivery.max_lifetime, for mail queued
# before the command too.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use Time::HiRes qw(time sleep);

need_programs('smtp-sink', 'dnsmasq', 'dig');
watchdog(90);

my $sink = MxPeers::Sink->new;
my $soft = MxPeers::Sink->new(soft => 'RCPT',
    soft_reply => '451 4.3.2 System not accepting network messages');
my $bsink = MxPeers::Sink->new;
my $dns = MxPeers::DNS->new(
	mx => [['sender.test', 'mx.sender.test', 10]],
	a => [['mx.sender.test', '127.0.0.1']]);
my $LIFETIME = 3;
my $mx = delivery_daemon(dns => $dns, bounce_sink => $bsink,
    delivery => { retry_schedule => [1], max_lifetime => $LIFETIME },
    config => { switch => { require_propagation => JSON::PP::false } });

$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '127.0.0.1:' . $sink->port);
$mx->ctl_ok('domain', 'add', 'other.test', '--legacy', '127.0.0.1:' . $sink->port);
$mx->ctl_ok('address', 'add', $_) for qw(joe@example.test mary@example.test bob@other.test);

# --- the hold -----------------------------------------------------------
my $out = $mx->ctl_ok('domain', 'set', 'example.test', '--hold', 'on');
like($out, qr/^domain example\.test: updated, .*; held$/m, 'domain set --hold on');
like($mx->ctl_ok('domain', 'show', 'example.test'), qr/^hold:\s+on since \S+ \(no delivery attempt; mail queues\)$/m,
    'domain show: hold on since ...');
like($mx->ctl_ok('status'), qr/^held:\s+example\.test \(no delivery attempt\)$/m, 'status names the held domain');
my (undef, $st) = $mx->ctl_json('status');
is_deeply($st->{held}, ['example.test'], 'status --json: held');
my ($rc, $o, $e) = $mx->ctl('domain', 'set', 'example.test', '--hold', 'maybe');
is($rc, 2, '--hold maybe: usage error');

my $t0 = time;
my @ids;
for my $i (1 .. 20) {
	my $id = submit($mx, 'a@sender.test', [$i % 2 ? 'joe@example.test' : 'mary@example.test'],
	    "Subject: held $i\r\nMessage-ID: <held.$i.$$\@sender.test>\r\n\r\nheld $i\r\n");
	push @ids, $id if $id;
}
is(scalar @ids, 20, 'a stream of 20 messages for the held domain is accepted');
my $other = submit($mx, 'a@sender.test', ['bob@other.test'], "Subject: other\r\n\r\nnot held\r\n");
ok($other, 'a message for another domain is accepted');
is($sink->wait_count(1, 10), 1, "the other domain's message is delivered at once");

# past delivery.max_lifetime while held
sleep 0.2 while time - $t0 < $LIFETIME + 1.5;
is($sink->count, 1, 'nothing of the held domain reached the downstream');
is(scalar(grep { my $id = $_; attempt_lines($mx, $id) } @ids), 0, 'no delivery attempt was logged for it');
my $q = $mx->ctl_ok('queue', 'list', 'example.test');
my @held = $q =~ /^\s+<\S+\@example\.test>\s+on hold\b/mg;
is(scalar @held, 20, 'queue list: 20 recipients on hold');
my $ck = join '', ($mx->ctl('check', 'example.test'))[1, 2];
like($ck, qr/^hold:\s+on since /m, 'check shows the hold');
note("check while held:\n$ck");

# hold, switch, look, release: a held domain can be switched both ways
# and its mail still waits
$mx->ctl_ok('switch', 'example.test', 'hosted', '--force');
$mx->ctl_ok('switch', 'example.test', 'legacy');
like($mx->ctl_ok('domain', 'show', 'example.test'), qr/^hold:\s+on since /m, 'switched twice while held: still held');
sleep 1.2;
is($sink->count, 1, '... and nothing delivered');

# durable: kill -9 and restart, still held
$mx->kill9;
$mx->restart;
like($mx->ctl_ok('domain', 'show', 'example.test'), qr/^hold:\s+on since /m, 'after kill -9 and restart: still held');
sleep 1.5;
is($sink->count, 1, '... and still nothing delivered');

$out = $mx->ctl_ok('domain', 'set', 'example.test', '--hold', 'off');
unlike($out, qr/held/, 'domain set --hold off');
is($sink->wait_count(21, 20), 21, 'on release every acknowledged message is delivered');
ok(wait_queue_empty($mx, 10, @ids), 'the queue is empty');
is(scalar(grep { attempt_lines($mx, $_, undef, 'bounced') } @ids), 0, 'none bounced');
sleep 0.5;
is($bsink->count, 0, 'no DSN was sent');
my %got = map { /Subject: (held \d+)/ ? ($1 => 1) : () } map { $_->{text} } $sink->messages;
is(scalar(keys %got), 20, 'each of the 20 arrived');
my $h = $mx->ctl_ok('history', 'example.test');
like($h, qr/^\S+\s+off\s+on\s+\d+\s+domain set --hold(?: \(on \S+\))?$/m, 'history: hold off -> on');
like($h, qr/^\S+\s+on\s+off\s+\d+\s+domain set --hold(?: \(on \S+\))?$/m, 'history: hold on -> off');

# --- the per-domain lifetime ---------------------------------------------
$mx->ctl_ok('domain', 'add', 'long.test', '--legacy', '127.0.0.1:' . $soft->port);
$mx->ctl_ok('domain', 'add', 'short.test', '--legacy', '127.0.0.1:' . $soft->port);
$mx->ctl_ok('address', 'add', $_) for qw(joe@long.test joe@short.test);
($rc) = $mx->ctl('domain', 'set', 'long.test', '--max-lifetime', 'soon');
is($rc, 2, '--max-lifetime soon: usage error');
($rc) = $mx->ctl('domain', 'set', 'long.test', '--max-lifetime', '0');
is($rc, 2, '--max-lifetime 0: usage error');
$out = $mx->ctl_ok('domain', 'set', 'long.test', '--max-lifetime', '3600');
like($out, qr/; max lifetime 3600 s/, 'long.test: --max-lifetime 3600 (longer than delivery.max_lifetime)');
$mx->ctl_ok('domain', 'set', 'short.test', '--max-lifetime', '600');
$t0 = time;
my $lid = submit($mx, 'a@sender.test', ['joe@long.test'], "Subject: long\r\n\r\nx\r\n");
my $sid = submit($mx, 'a@sender.test', ['joe@short.test'], "Subject: short\r\n\r\nx\r\n");
ok($lid && $sid, 'one message to each queued');
ok(wait_log($mx, qr/\b\Q$sid\E\b.*status=deferred/, 10), 'short.test deferred by its old server');
# queued mail follows the new lifetime
$mx->ctl_ok('domain', 'set', 'short.test', '--max-lifetime', '2');
ok(wait_log($mx, qr/\b\Q$sid\E\b.*status=bounced/, 15), 'short.test bounces once its own lifetime (2 s) passed');
is($bsink->wait_count(1, 15), 1, 'its DSN went to the sender');
sleep 0.2 while time - $t0 < $LIFETIME + 2;
is(scalar attempt_lines($mx, $lid, undef, 'bounced'), 0,
    "long.test's mail has outlived delivery.max_lifetime ($LIFETIME s) and did not bounce");
cmp_ok(scalar attempt_lines($mx, $lid, undef, 'deferred'), '>=', 2, '... it is retried');
like($mx->ctl_ok('queue', 'list', 'long.test'), qr/<joe\@long\.test>\s+deferred/, '... and stays in the queue');
$out = $mx->ctl_ok('domain', 'set', 'long.test', '--max-lifetime', 'default');
unlike($out, qr/max lifetime/, '--max-lifetime default');
like($mx->ctl_ok('domain', 'show', 'long.test'), qr/^max lifetime:\s+default \(delivery\.max_lifetime\)$/m,
    'domain show: default');
ok(wait_log($mx, qr/\b\Q$lid\E\b.*status=bounced/, 10), 'back to the default: it bounces now');
like($mx->ctl_ok('history', 'long.test'), qr/^\S+\s+3600\s+default\s+\d+\s+domain set --max-lifetime(?: \(on \S+\))?$/m,
    'history: 3600 -> default');

$mx->stop_ok;
done_testing();
