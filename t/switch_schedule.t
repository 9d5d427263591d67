# switch_schedule.t - scheduled switches (SPEC 7): `switch --at TIME` is
# durable (it survives a restart and fires), `--cancel` drops it, TIME is
# ISO 8601 in local time unless an offset is given, and a scheduled switch
# whose preflight fails is logged and left in the history.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use POSIX qw(strftime);
use Time::HiRes qw(time sleep);

need_programs('smtp-sink');
watchdog(60);

my $hosting = MxPeers::Sink->new(lmtp => 1);
my $old = MxPeers::Sink->new;
# switch.require_propagation off: this test is about the switch itself, not
# the MX propagation gate (t/check_mx.t tests that)
my $mx = delivery_daemon(hosting => "lmtp:[127.0.0.1]:" . $hosting->port,
    config => { switch => { require_propagation => JSON::PP::false } });
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '127.0.0.1:' . $old->port);
$mx->ctl_ok('domain', 'add', 'bare.test', '--mode', 'hosted');
$mx->ctl_ok('address', 'add', 'joe@example.test');

sub mode_of {
	my ($d) = @_;
	my ($rc, $j) = $mx->ctl_json('domain', 'show', $d);
	return $j ? $j->{mode} : undef;
}

# --at with an explicit offset (UTC), 3 s ahead
my $at = int(time) + 3;
my $iso = strftime('%Y-%m-%dT%H:%M:%SZ', gmtime $at);
my ($rc, $j) = $mx->ctl_json('switch', 'example.test', 'hosted', '--at', $iso);
is($rc, 0, "switch example.test hosted --at $iso");
is($j->{at}, $at, 'the time is read as UTC (Z)');
($rc, $j) = $mx->ctl_json('history', 'example.test');
is($j->{scheduled}{to}, 'hosted', 'history shows the pending switch');
is(mode_of('example.test'), 'legacy', 'still legacy before the time');

# it survives a restart and fires
$mx->stop;
$mx->start;
ok(wait_until(sub { (mode_of('example.test') // '') eq 'hosted' }, 8, 0.1),
    'the scheduled switch fired after the restart');
cmp_ok(time, '>=', $at, '... not before its time');
($rc, $j) = $mx->ctl_json('history', 'example.test');
my $h = $j->{history}[-1] || {};
is_deeply([@{$h}{qw(from to uid)}], ['legacy', 'hosted', $<], 'history: legacy -> hosted by the uid that scheduled it');
like($h->{note} // '', qr/^scheduled for /, 'history note: scheduled');
ok(!defined $j->{scheduled}, 'nothing pending any more');

# local time without an offset, then --cancel
$at = int(time) + 3600;
my $local = strftime('%Y-%m-%dT%H:%M:%S', localtime $at);
($rc, $j) = $mx->ctl_json('switch', 'example.test', 'legacy', '--at', $local);
is($rc, 0, "switch --at $local (local time)");
is($j->{at}, $at, 'read as local time');
my ($crc, $out, $err) = $mx->ctl('switch', 'example.test', '--cancel');
is($crc, 0, 'switch --cancel');
like($out, qr/scheduled switch to legacy at .* cancelled/, '... says what it dropped');
($crc, $out, $err) = $mx->ctl('switch', 'example.test', '--cancel');
is($crc, 1, 'a second --cancel is refused: nothing scheduled');
($crc, $out, $err) = $mx->ctl('switch', 'example.test', 'legacy', '--cancel');
is($crc, 2, '--cancel with a mode is a usage error');
$mx->restart;
($rc, $j) = $mx->ctl_json('history', 'example.test');
ok(!defined $j->{scheduled}, 'the cancellation is durable');
is(mode_of('example.test'), 'hosted', 'the mode is durable');

# a scheduled switch that its preflight refuses: logged, in the history
$at = int(time) + 2;
($rc, $j) = $mx->ctl_json('switch', 'bare.test', 'legacy', '--at',
    strftime('%Y-%m-%dT%H:%M:%S+00:00', gmtime $at));
is($rc, 0, 'switch bare.test legacy --at (bare.test has no legacy server)');
ok(wait_log($mx, qr/switch scheduled refused domain=bare\.test/, 8),
    'the refused scheduled switch is logged');
($rc, $j) = $mx->ctl_json('history', 'bare.test');
$h = $j->{history}[-1] || {};
ok($h->{note} && !$h->{applied}, 'it is left in the history, not applied')
    or diag(explain $j);
like($h->{note} // '', qr/no legacy server/, '... with the reason');
ok(!defined $j->{scheduled}, '... and no longer pending');
is(mode_of('bare.test'), 'hosted', 'bare.test is still hosted');
($crc, $out) = $mx->ctl('history', 'bare.test');
like($out, qr/NOT APPLIED: scheduled switch refused/, 'human history marks it');

$mx->stop_ok;
done_testing;
