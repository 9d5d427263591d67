# fleet.t - three mxrelayd hosts on one PostgreSQL database (issue 10):
# a change on one host is answered at RCPT on the others, a host cut off
# from the database catches up from the change log, a switch returns only
# when every live host applied it (or its lease expired, named), a host
# whose lease lapsed delivers nothing until it caught up (never under the
# old mode), and a scheduled switch fires once for the fleet.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use MxPg;
use HTTP::Tiny;
use POSIX qw(strftime);
use Time::HiRes qw(time sleep);

need_programs('smtp-sink');
watchdog(150);

my $pg = MxPg->shared;
my $db = $pg->new_database;
my $proxy = MxPg::Proxy->new($pg->port);	# between mx2 and the database
my $old = MxPeers::Sink->new;			# the customer's old server
my $hosting = MxPeers::Sink->new;		# the hosting

my $mport = MxTest::free_port();		# mx2's /metrics
sub host {
	my ($name, $port, %extra) = @_;
	return delivery_daemon(hosting => 'smtp:[127.0.0.1]:' . $hosting->port,
	    config => { server => { hostname => $name },
	    state => $pg->state_config($db, port => $port), %extra });
}
# lease_gauge - mx2's mxrelay_fleet_may_deliver from /metrics, or undef
sub lease_gauge {
	my $r = HTTP::Tiny->new(timeout => 5)->get("http://127.0.0.1:$mport/metrics");
	return $r->{success} && $r->{content} =~ /^mxrelay_fleet_may_deliver (\d)$/m ? $1 : undef;
}
my $A = host('mx1.test', $pg->port);
my $B = host('mx2.test', $proxy->port,
    metrics => { listen => "127.0.0.1:$mport" });
my $C = host('mx3.test', $pg->port);
like($A->log, qr/startup .*backend=postgresql database="$db on 127\.0\.0\.1:\d+"/,
    'the start line names the backend and the database');

sub rcpt { MxPg::rcpt_code(@_) }
sub mode_on {
	my ($mx, $d) = @_;
	my (undef, $j) = $mx->ctl_json('domain', 'show', $d);
	return $j ? $j->{mode} : '';
}

# a change on A is answered on B and C, without a reload
$A->ctl_ok('domain', 'add', 'example.test', '--legacy', '127.0.0.1:' . $old->port);
$A->ctl_ok('address', 'add', 'joe@example.test');
ok(wait_until(sub { rcpt($B, 'joe@example.test') eq '250' }, 5, 0.05),
    'address added on mx1: accepted at RCPT on mx2');
ok(wait_until(sub { rcpt($C, 'joe@example.test') eq '250' }, 5, 0.05),
    '... and on mx3');
my $file = $A->dir . '/import.txt';
spew($file, join('', map { "user$_\n" } 1 .. 300));
$A->ctl_ok('import', 'example.test', $file);
ok(wait_until(sub { rcpt($B, 'user300@example.test') eq '250' }, 10, 0.05),
    'an import on mx1 is answered on mx2');
my (undef, $j) = $B->ctl_json('domain', 'show', 'example.test');
is($j->{addresses}, 301, 'mx2 has all 301 addresses');
unlike($B->log, qr/store opened.*\n(?s:.*)store opened/, 'mx2 did not reload');
$B->ctl_ok('address', 'remove', 'user300@example.test');
ok(wait_until(sub { rcpt($A, 'user300@example.test') eq '550' }, 5, 0.05),
    'a remove on mx2 reaches mx1');

# B cut off: it misses the notification and catches up from the log
$proxy->cut;
$A->ctl_ok('address', 'add', 'late@example.test');
sleep 0.3;
is(rcpt($B, 'late@example.test'), '550', 'cut off, mx2 has not seen the change');
is(rcpt($B, 'joe@example.test'), '250', '... and answers RCPT from memory');
my ($rc, $out, $err) = $B->ctl('address', 'add', 'x@example.test');
is($rc, 1, 'cut off, a change on mx2 fails (exit 1)');
like($err, qr/postgresql/, '... with a reason that names the database') or diag($err);
$proxy->restore;
ok(wait_until(sub { rcpt($B, 'late@example.test') eq '250' }, 10, 0.1),
    'reconnected, mx2 caught up from the change log');
(undef, $j) = $B->ctl_json('stats');
cmp_ok($j->{fleet_catchups} // 0, '>=', 1, 'mx2 counts the catch-up');

# a switch returns when every live host has applied it
my $t0 = time;
($rc, $out, $err) = $A->ctl('switch', 'example.test', 'hosted', '--force');
is($rc, 0, 'switch on mx1') or diag($err);
like($out, qr/^  mx2\.test applied \d+ ms$/m, 'mx2 answered');
like($out, qr/^  mx3\.test applied \d+ ms$/m, 'mx3 answered');
is(mode_on($B, 'example.test'), 'hosted', 'mx2 is hosted when the command returns');
is(mode_on($C, 'example.test'), 'hosted', 'mx3 is hosted when the command returns');
(undef, $j) = $A->ctl_json('status');
is(scalar @{$j->{fleet}{hosts} || []}, 3, 'status lists the three hosts');
ok((grep { $_->{name} eq 'mx2.test' && $_->{lease_valid} } @{$j->{fleet}{hosts}}),
    'status: mx2 has a live lease');

# B cut off while A switches back: A returns once B's lease expired and
# names it; B delivers nothing meanwhile, and nothing under the old mode
$proxy->cut;
$t0 = time;
($rc, $out, $err) = $A->ctl('switch', 'example.test', 'legacy');
my $took = time - $t0;
is($rc, 0, 'switch back to legacy on mx1 while mx2 is cut off') or diag($err);
like($out, qr/^  mx2\.test lease expired, will catch up before delivering$/m,
    'the answer names mx2: lease expired');
like($out, qr/^  mx3\.test applied/m, 'mx3 applied it');
cmp_ok($took, '>', 0.5, sprintf('the command waited for the lease (%.1f s)', $took));
my $hosted_at_return = $hosting->count;
my $id = submit($B, 'a@src.test', ['joe@example.test'],
    "Subject: during the cut\r\n\r\nbody\r\n");
ok($id, 'mx2 accepts mail while cut off (RCPT from memory)');
sleep 1.5;
is($hosting->count, $hosted_at_return, 'mx2 delivered nothing to the hosting after the command returned');
my $old_before = $old->count;
is($B->queue_count, 1, 'mx2 holds the message: no lease, no delivery');
like($B->log, qr/fleet lease lapsed/, 'mx2 logged its lapsed lease');
is(lease_gauge(), 0, '/metrics on mx2: mxrelay_fleet_may_deliver 0 while cut off');
$proxy->restore;
ok(wait_until(sub { $old->count > $old_before }, 15, 0.1),
    'back, mx2 delivers under the new mode (legacy)') or diag($B->log_tail(3000));
ok(wait_queue_empty($B, 10), 'mx2 queue empty');
is(lease_gauge(), 1, '/metrics on mx2: mxrelay_fleet_may_deliver 1 once back');
(undef, $j) = $B->ctl_json('stats');
cmp_ok($j->{fleet_lease_lapses} // 0, '>=', 1, 'mx2 counts the lapse');

# a scheduled switch fires once for the fleet
my $at = int(time) + 2;
$A->ctl_ok('switch', 'example.test', 'hosted', '--force', '--at',
    strftime('%Y-%m-%dT%H:%M:%SZ', gmtime $at));
ok(wait_until(sub { mode_on($B, 'example.test') eq 'hosted' &&
    mode_on($C, 'example.test') eq 'hosted' && mode_on($A, 'example.test') eq 'hosted' },
    10, 0.1), 'the scheduled switch fired: hosted on the three hosts');
sleep 1;
(undef, $j) = $C->ctl_json('history', 'example.test');
my @fired = grep { ($_->{note} // '') =~ /^scheduled for / } @{$j->{history} || []};
is(scalar @fired, 1, 'one history entry for the scheduled switch');
like($fired[0]{host} // '', qr/^mx[123]\.test$/, "... naming the host that ran it ($fired[0]{host})");
my @manual = grep { ($_->{note} // '') !~ /^scheduled/ } @{$j->{history} || []};
is_deeply([map { $_->{host} } @manual], ['mx1.test', 'mx1.test'],
    'the two switches by hand name mx1, where they ran') or diag(explain \@manual);

# a scheduled switch that its preflight refuses: refused, and logged, once
$A->ctl_ok('domain', 'add', 'bare.test', '--mode', 'hosted');
# the switch is scheduled on mx2: it must have applied mx1's change first
ok(wait_until(sub { (mode_on($B, 'bare.test') // '') eq 'hosted' }, 10, 0.05),
    'mx2 has applied the new domain');
$at = int(time) + 2;
$B->ctl_ok('switch', 'bare.test', 'legacy', '--at',
    strftime('%Y-%m-%dT%H:%M:%SZ', gmtime $at));
ok(wait_until(sub { my (undef, $h) = $A->ctl_json('history', 'bare.test');
    @{$h->{history} || []} == 1 }, 10, 0.1), 'the refused scheduled switch is in the history');
sleep 2.5;	# the other hosts' timers have fired too
(undef, $j) = $C->ctl_json('history', 'bare.test');
is(scalar @{$j->{history}}, 1, 'once');
ok(!$j->{history}[0]{applied}, '... not applied');
my @refused = grep { /switch scheduled refused domain=bare\.test/ } map { $_->log } $A, $B, $C;
is(scalar @refused, 1, 'one host ran the preflight and logged the refusal');
is(mode_on($_, 'bare.test'), 'hosted', 'bare.test still hosted') for $A, $B, $C;

$_->stop_ok for $A, $B, $C;
done_testing;
