# state_upgrade.t - a SQLite state written by the single-host build of the
# migration assistant (schema version 3 with its pilot, MX and verification
# tables, before the fleet's steps) is brought to this build's schema: the
# pilot, the verify-legacy flag and the history are kept, and the state
# works afterwards.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;

need_programs('sqlite3');
watchdog(60);

my $mx = MxTest::Daemon->new;
my ($rc, $out, $err) = run_cmd('sqlite3', $mx->dir . '/state/mxrelay.db',
    '.read ' . $ENV{MX_SRCDIR} . '/t/data/state-v3-assistant.sql');
is($rc, 0, 'a version 3 state of the single-host assistant') or diag($err);
$mx->start;
like($mx->log, qr/store schema migrated version=5 \(from a single-host version 3\)/,
    'it is migrated to version 5');
my (undef, $j) = $mx->ctl_json('domain', 'show', 'example.test');
is_deeply($j->{overrides}, [{ address => 'joe@example.test', route => 'hosted' }],
    'the pilot is kept');
ok($j->{verify_legacy}, 'the verify-legacy flag is kept');
is($j->{addresses}, 2, 'the addresses are kept');
(undef, $j) = $mx->ctl_json('history', 'example.test');
is_deeply([map { [$_->{event}, $_->{address}, $_->{host}] } @{$j->{history} || []}],
    [['route', 'joe@example.test', '']], 'the history is kept (no host before)');
$mx->ctl_ok('address', 'set', 'joe@example.test', '--route', 'domain');
(undef, $j) = $mx->ctl_json('history', 'example.test');
is($j->{history}[1]{host} // '', $mx->hostname, 'a new history row names the host');
$mx->ctl_ok('address', 'set', 'mary@example.test', '--route', 'legacy');
$mx->ctl_ok('address', 'remove', 'mary@example.test');
$mx->ctl_ok('address', 'add', 'mary@example.test');
$mx->restart;
(undef, $j) = $mx->ctl_json('domain', 'show', 'example.test');
is_deeply($j->{overrides}, [], 'a removed address took its override with it');
is(scalar(() = $mx->log =~ /schema migrated/g), 1, 'a restart migrates nothing');
$mx->stop_ok;
done_testing;
