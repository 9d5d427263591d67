# switch_basic.t - relayctl switch and history (SPEC 7): the mode is
# durable and survives a restart, switching to the current mode succeeds
# and says so, the legacy preflight wants a legacy server, --force skips
# it, every switch is in the history with time, from, to and uid, and
# --json works for both commands.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use Time::HiRes qw(time sleep);

need_programs('smtp-sink');
watchdog(60);

my $hosting = MxPeers::Sink->new(lmtp => 1);		# accepts every RCPT
my $old = MxPeers::Sink->new;
# switch.require_propagation off: this test is about the switch itself, not
# the MX propagation gate (t/check_mx.t tests that)
my $mx = delivery_daemon(hosting => "lmtp:[127.0.0.1]:" . $hosting->port,
    config => { switch => { require_propagation => JSON::PP::false } });

$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '127.0.0.1:' . $old->port);
$mx->ctl_ok('domain', 'add', 'bare.test', '--mode', 'hosted');
$mx->ctl_ok('address', 'add', $_) for qw(joe@example.test mary@example.test);
$mx->ctl_ok('address', 'add', 'info@example.test', '--alias', 'joe@example.test');

# usage errors (exit 2)
my ($rc, $out, $err) = $mx->ctl('switch', 'example.test');
is($rc, 2, 'switch without a mode is a usage error');
($rc, $out, $err) = $mx->ctl('switch', 'example.test', 'sideways');
is($rc, 2, 'unknown mode is a usage error');
($rc, $out, $err) = $mx->ctl('switch', 'example.test', 'hosted', '--at', 'tomorrow');
is($rc, 2, '--at that is not ISO 8601 is a usage error');
like($err, qr/ISO 8601/, '... and says which format');
($rc, $out, $err) = $mx->ctl('switch', 'example.test', 'hosted', '--at', '2001-01-01T00:00:00Z');
is($rc, 2, '--at in the past is a usage error');
($rc, $out, $err) = $mx->ctl('switch', 'nosuch.test', 'hosted');
is($rc, 1, 'unknown domain: refused');
like($err, qr/nosuch\.test: not found/, '... named');

# to the current mode: succeeds and says so, no history row
($rc, $out, $err) = $mx->ctl('switch', 'example.test', 'legacy');
is($rc, 0, 'switch to the current mode succeeds');
like($out, qr/example\.test: already legacy/, '... and says so');

# before legacy: at least one legacy server (bare.test has none)
($rc, $out, $err) = $mx->ctl('switch', 'bare.test', 'legacy');
is($rc, 1, 'switch to legacy without a legacy server is refused');
like($err, qr/no legacy server/, '... with the reason');
($rc, $out, $err) = $mx->ctl('switch', 'bare.test', 'legacy', '--force');
is($rc, 0, '--force skips the legacy preflight') or diag($err);

# legacy -> hosted with the preflight (the LMTP sink accepts both mailboxes)
my $t0 = time;
($rc, $out, $err) = $mx->ctl('switch', 'example.test', 'hosted');
my $dt = time - $t0;
is($rc, 0, 'switch example.test hosted') or diag($err);
like($out, qr/^example\.test: legacy -> hosted \(\d+ deliver(y|ies) in flight to the old route/,
    'human output: from -> to with the in-flight count');
diag(sprintf 'switch with preflight took %.1f ms', $dt * 1000);
like($hosting->log . $mx->log, qr/probe done .*accepted=2 refused=0/, 'the probe asked for the two mailboxes (not the alias)');
is($hosting->count, 0, 'the probe sent no message');

my ($jrc, $j) = $mx->ctl_json('domain', 'show', 'example.test');
is($j->{mode} // (MxTest::deep_find($j, 'mode'))[0], 'hosted', 'domain show: hosted');

# JSON switch back, with --wait (nothing in flight)
($jrc, $j) = $mx->ctl_json('switch', 'example.test', 'legacy', '--wait');
is($jrc, 0, 'switch --json back to legacy --wait');
is_deeply([@{$j}{qw(domain from to changed inflight inflight_left)}],
    ['example.test', 'hosted', 'legacy', JSON::PP::true, 0, 0], 'JSON members')
    or diag(explain $j);

# history: every switch with time, from, to, uid
($rc, $out, $err) = $mx->ctl('history', 'example.test');
is($rc, 0, 'history');
my @rows = grep { /^\d{4}-\d\d-\d\dT/ } split /\n/, $out;
is(scalar @rows, 2, 'two switches in the history (not the no-op)') or diag($out);
like($rows[0] // '', qr/^\S+\s+legacy\s+hosted\s+$<\s/, 'first: legacy -> hosted by our uid');
like($rows[1] // '', qr/^\S+\s+hosted\s+legacy\s+$<\s/, 'second: hosted -> legacy');
($jrc, $j) = $mx->ctl_json('history', 'example.test');
is(scalar @{$j->{history} || []}, 2, 'history --json: two rows');
{
	my (undef, $st) = $mx->ctl_json('stats');
	is($st->{switches}, 3, 'relayctl stats: switches 3 (bare.test once, example.test twice; the no-op not counted)');
}
my $h = $j->{history}[0] || {};
ok(abs(($h->{time} // 0) - time) < 60, 'history time is now');
is($h->{uid}, $<, 'history uid is the caller (SO_PEERCRED)');
($rc) = $mx->ctl('history', 'nosuch.test');
is($rc, 1, 'history of an unknown domain: refused');

# durable: survives a restart (and a kill -9)
$mx->ctl_ok('switch', 'example.test', 'hosted', '--force');
$mx->kill9;
$mx->start;
($jrc, $j) = $mx->ctl_json('domain', 'show', 'example.test');
is($j->{mode} // (MxTest::deep_find($j, 'mode'))[0], 'hosted', 'hosted after kill -9 and restart');
($jrc, $j) = $mx->ctl_json('history', 'example.test');
is(scalar @{$j->{history} || []}, 3, 'history survives the restart');
like($j->{history}[2]{note} // '', qr/--force/, 'the note says --force');
($jrc, $j) = $mx->ctl_json('stats');
is($j->{switches}, 0, 'relayctl stats: switches counts since this start (none yet)');

$mx->stop_ok;
done_testing;
