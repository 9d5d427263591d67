# pilot.t - pilot addresses (SPEC 10, relayctl address set ADDRESS --route):
# one address goes to the hosting (Dovecot LMTP) while the rest of its
# legacy domain goes to the old server (smtp-sink), and the reverse after
# the switch; the preflight refuses a pilot whose mailbox the hosting lacks;
# domain show, switch and history name the overrides; they survive a
# restart and an address update, and go with the address.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;

need_programs('smtp-sink', 'dovecot');
watchdog(90);

my $dove = MxPeers::Dovecot->new(users => ['joe@example.test', 'mary@example.test']);
my $old = MxPeers::Sink->new;
my $mx = delivery_daemon(hosting => $dove->destination,
    # the MX propagation gate is not what this test is about
    config => { switch => { require_propagation => JSON::PP::false } });
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '127.0.0.1:' . $old->port);
$mx->ctl_ok('address', 'add', $_) for map { "$_\@example.test" } qw(joe mary ann);

# usage and refusals
my ($rc, $out, $err) = $mx->ctl('address', 'set', 'joe@example.test');
is($rc, 2, 'address set without --route: usage error');
($rc, $out, $err) = $mx->ctl('address', 'set', 'joe@example.test', '--route', 'elsewhere');
is($rc, 2, '--route elsewhere: usage error');
like($err, qr/expected hosted, legacy or domain/, '... says what is expected');
($rc, $out, $err) = $mx->ctl('address', 'set', 'nobody@example.test', '--route', 'hosted');
is($rc, 1, 'an address not in the table cannot be a pilot');
like($err, qr/nobody\@example\.test: not found/, '... and is named');

# the preflight: the hosting does not know ann
($rc, $out, $err) = $mx->ctl('address', 'set', 'ann@example.test', '--route', 'hosted');
is($rc, 1, 'pilot refused: the hosting lacks the mailbox');
like($err, qr/preflight: the hosting .* does not accept the mailbox/, '... the reason');
like($err, qr/^  ann\@example\.test: 550 /m, '... with the hosting\'s reply');
my ($jrc, $j) = $mx->ctl_json('domain', 'show', 'example.test');
is_deeply($j->{overrides}, [], 'nothing was set');

# joe moves first
$out = $mx->ctl_ok('address', 'set', 'JOE@example.test', '--route', 'hosted');
like($out, qr/address joe\@example\.test: route hosted \(was domain\) \(domain example\.test is legacy\): its mail goes to the hosting/,
    'the pilot is set, and the answer says where its mail goes');
$out = $mx->ctl_ok('domain', 'show', 'example.test');
like($out, qr/^pilot addresses: joe\@example\.test -> hosted$/m, 'domain show lists the pilot');
($jrc, $j) = $mx->ctl_json('domain', 'show', 'example.test');
is_deeply($j->{overrides}, [{ address => 'joe@example.test', route => 'hosted' }],
    'domain show --json: overrides');

my $id = submit($mx, 'a@src.test', ['joe@example.test', 'mary@example.test'],
    "Subject: pilot\r\n\r\nfirst\r\n");
ok($id, 'one message for the pilot and a colleague');
ok(wait_until(sub { $dove->maildir_files('joe@example.test') == 1 }, 10, 0.1),
    'the pilot\'s copy is in the hosting\'s mailbox');
is($old->wait_count(1), 1, 'the colleague\'s went to the old server');
my ($m) = $old->messages;
is_deeply($m->{rcpts}, ['<mary@example.test>'], '... for mary only');
is($dove->maildir_files('mary@example.test'), 0, 'mary has nothing at the hosting');
ok(wait_queue_empty($mx, 10, $id), 'the message left the queue');

# ann stays behind; the switch's preflight does not ask the hosting about her
$out = $mx->ctl_ok('address', 'set', 'ann@example.test', '--route', 'legacy');
like($out, qr/route legacy \(was domain\).*its mail goes to the legacy servers/, 'ann stays at the old server');
$out = $mx->ctl_ok('switch', 'example.test', 'hosted');
like($out, qr/legacy -> hosted/, 'the switch passes its preflight (ann is not asked)');
like($out, qr/^pilot addresses: ann\@example\.test -> legacy\n\s+joe\@example\.test -> hosted$/m,
    'the switch lists the overrides it leaves in place');
like($out, qr/leaves the pilot addresses above on their own route/, '... and says so');

$id = submit($mx, 'a@src.test', [map { "$_\@example.test" } qw(joe mary ann)],
    "Subject: after\r\n\r\nsecond\r\n");
ok($id, 'after the switch: a message for joe, mary and ann');
ok(wait_until(sub { $dove->maildir_files('joe@example.test') == 2 &&
    $dove->maildir_files('mary@example.test') == 1 }, 10, 0.1),
    'joe and mary get theirs at the hosting');
is($old->wait_count(2), 2, 'ann\'s copy went to the old server');
($m) = grep { $_->{text} =~ /second/ } $old->messages;
is_deeply($m->{rcpts}, ['<ann@example.test>'], '... for ann only');

# the history has every change, naming the address
($jrc, $j) = $mx->ctl_json('history', 'example.test');
my @h = map { [$_->{address} // '-', $_->{from}, $_->{to}] } @{$j->{history}};
is_deeply(\@h, [['joe@example.test', 'domain', 'hosted'], ['ann@example.test', 'domain', 'legacy'],
    ['-', 'legacy', 'hosted']], 'history: both overrides and the switch') or diag(explain $j);
$out = $mx->ctl_ok('history', 'example.test');
like($out, qr/domain\s+hosted\s+\d+\s+address joe\@example\.test route: relayctl address set/,
    'history (human) names the pilot');

# kept across an update of the entry and a restart; dropped with --route domain
$mx->ctl_ok('address', 'add', 'ann@example.test', '--nofilter');
$mx->restart;
($jrc, $j) = $mx->ctl_json('domain', 'show', 'example.test');
is_deeply($j->{overrides}, [{ address => 'ann@example.test', route => 'legacy' },
    { address => 'joe@example.test', route => 'hosted' }],
    'the overrides survive an update of the address and a restart');
$out = $mx->ctl_ok('address', 'set', 'joe@example.test', '--route', 'domain');
like($out, qr/route domain \(was hosted\) \(domain example\.test is hosted\)/, 'joe follows his domain again');
$out = $mx->ctl_ok('address', 'set', 'joe@example.test', '--route', 'domain');
like($out, qr/route domain, unchanged/, 'setting it again changes nothing');
$mx->ctl_ok('address', 'remove', 'ann@example.test');
$mx->ctl_ok('address', 'add', 'ann@example.test');
($jrc, $j) = $mx->ctl_json('domain', 'show', 'example.test');
is_deeply($j->{overrides}, [], 'the override went with the removed address');
($jrc, $j) = $mx->ctl_json('history', 'example.test');
is(scalar @{$j->{history}}, 4, 'one more history row (joe back to domain), none for the no-op');

$mx->stop_ok;
done_testing;
