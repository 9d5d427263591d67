# fleet_pilot.t - the migration assistant's state in a fleet (issues 10
# and 11): a pilot override set on mx1 routes mail that mx2 accepted, the
# verify-legacy flag and the addresses the old server accepted on one host
# are seen by the other, the history names the host that set the pilot,
# and an override set back to the domain's mode is gone on both.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use MxPg;

need_programs('smtp-sink', 'postfix');
watchdog(90);

my $pg = MxPg->shared;
my $db = $pg->new_database;
my $old = MxPeers::Sink->new;			# the customer's old server
my $hosting = MxPeers::Sink->new;		# the hosting

my ($A, $B) = $pg->fleet($db, 2,
    hosting => 'smtp:[127.0.0.1]:' . $hosting->port);

sub rcpt { MxPg::rcpt_code(@_) }
sub shown { MxPg::domain_field($_[0], 'example.test', $_[1]) }

$A->ctl_ok('domain', 'add', 'example.test', '--legacy', '127.0.0.1:' . $old->port);
$A->ctl_ok('address', 'add', $_) for qw(joe@example.test mary@example.test);
ok(wait_until(sub { rcpt($B, 'mary@example.test') eq '250' }, 10, 0.05),
    'the table reached mx2');

# a pilot set on mx1 routes on mx2
my $out = $A->ctl_ok('address', 'set', 'joe@example.test', '--route', 'hosted');
like($out, qr/route hosted \(was domain\)/, 'pilot set on mx1');
ok(wait_until(sub { my $o = shown($B, 'overrides');
    $o && @$o == 1 && $o->[0]{address} eq 'joe@example.test' &&
    $o->[0]{route} eq 'hosted' }, 10, 0.05),
    'mx2 lists the pilot in domain show');
ok(submit($B, 'a@src.test', ['joe@example.test', 'mary@example.test'],
    "Subject: pilot in a fleet\r\n\r\nhello\r\n"), 'a message into mx2');
is($hosting->wait_count(1), 1, 'the pilot\'s copy went to the hosting');
my ($m) = $hosting->messages;
is_deeply($m ? $m->{rcpts} : [], ['<joe@example.test>'], '... for joe only');
is($old->wait_count(1), 1, 'the colleague\'s went to the old server');
($m) = $old->messages;
is_deeply($m ? $m->{rcpts} : [], ['<mary@example.test>'], '... for mary only');

# the history is the fleet's and names the host
my (undef, $h) = $B->ctl_json('history', 'example.test');
my @route = grep { $_->{event} eq 'route' } @{$h ? $h->{history} : []};
is(scalar @route, 1, 'one route entry in the history, read on mx2');
is($route[0]{host}, 'mx1.test', '... naming mx1, which set it') if @route;
is($route[0]{address}, 'joe@example.test', '... and the pilot') if @route;
like($B->ctl_ok('history', 'example.test'),
    qr/address joe\@example\.test route: .* \(on mx1\.test\)$/m,
    'history (human) ends the row with the host');

# recipient verification: the flag, and an address learnt on mx1. The old
# server is a Postfix that knows new@verify.test (smtp-sink accepts any
# address: a catch-all, which verification does not trust)
my $pf = MxPeers::Postfix->new(relay_domains => 'verify.test',
    relayhost => '[127.0.0.1]:' . $old->port,
    extra => { relay_recipient_maps => 'inline:{ new@verify.test=ok }' });
$A->ctl_ok('domain', 'add', 'verify.test', '--legacy', '127.0.0.1:' . $pf->port);
$A->ctl_ok('domain', 'set', 'verify.test', '--verify-legacy', 'on');
ok(wait_until(sub { my (undef, $j) = $B->ctl_json('domain', 'show', 'verify.test');
    $j && $j->{verify_legacy} }, 10, 0.05),
    'verify-legacy set on mx1 is on at mx2');
is(rcpt($A, 'new@verify.test'), '250',
    'mx1: an unknown address the old server accepts gets 250');
ok(wait_until(sub {
	my (undef, $o) = $B->ctl('address', 'list', 'verify.test', '--verified');
	($o // '') =~ /new\@verify\.test/ }, 10, 0.05),
    'mx2 lists the address mx1 verified');
$pf->stop;	# mx2 cannot ask the old server now: its answer is mx1's
is(rcpt($B, 'new@verify.test'), '250', 'mx2 accepts it from what mx1 learnt');
is(rcpt($B, 'other@verify.test'), '450', '... while it cannot verify another');

# back to the domain's mode, on mx2 this time
$B->ctl_ok('address', 'set', 'joe@example.test', '--route', 'domain');
ok(wait_until(sub { my $o = shown($A, 'overrides'); $o && @$o == 0 }, 10, 0.05),
    'the pilot dropped on mx2 is gone on mx1');

$_->stop_ok for $A, $B;
done_testing();
