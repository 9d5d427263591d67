# fleet_cutover.t - the cutover safety net in a fleet (issues 10 and 18):
# a hold set on mx1 stops deliveries of mail mx2 accepted, --unknown
# tempfail set on mx1 makes mx2 answer 450, --dual on set on mx1 makes mx2
# deliver a copy, the history names the host, and the release on mx1
# delivers what waited on mx2.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use MxPg;

need_programs('smtp-sink');
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
$A->ctl_ok('address', 'add', 'joe@example.test');
ok(wait_until(sub { rcpt($B, 'joe@example.test') eq '250' }, 10, 0.05),
    'the table reached mx2');

# --unknown tempfail on mx1: mx2 answers 450
is(rcpt($B, 'nobody@example.test'), '550', 'mx2: unknown 550');
$A->ctl_ok('domain', 'set', 'example.test', '--unknown', 'tempfail');
ok(wait_until(sub { rcpt($B, 'nobody@example.test') eq '450' }, 10, 0.05),
    'after --unknown tempfail on mx1, mx2 answers 450');

# a hold on mx1 holds mx2's deliveries; the release on mx1 sends them
$A->ctl_ok('domain', 'set', 'example.test', '--hold', 'on');
ok(wait_until(sub { shown($B, 'hold') }, 10, 0.05), 'mx2 sees the hold');
ok(submit($B, 'a@src.test', ['joe@example.test'], "Subject: held in a fleet\r\n\r\nx\r\n"),
    'a message into mx2 while held');
sleep 1.5;
is($old->count, 0, 'nothing delivered while held');
$A->ctl_ok('domain', 'set', 'example.test', '--hold', 'off');
is($old->wait_count(1, 15), 1, 'released on mx1: mx2 delivers at once');

# dual delivery turned on on mx1: mx2 delivers the copy
$A->ctl_ok('domain', 'set', 'example.test', '--dual', 'on');
ok(wait_until(sub { shown($B, 'dual') }, 10, 0.05), 'mx2 sees dual delivery');
ok(submit($B, 'a@src.test', ['joe@example.test'], "Subject: dual in a fleet\r\n\r\nx\r\n"),
    'a message into mx2');
is($old->wait_count(2, 15), 2, 'the primary at the old server');
is($hosting->wait_count(1, 15), 1, 'the copy at the hosting');

my (undef, $h) = $B->ctl_json('history', 'example.test');
my @set = grep { $_->{event} eq 'setting' } @{$h ? $h->{history} : []};
is(scalar @set, 4, 'four setting rows in the fleet\'s history, read on mx2');
is($set[0]{host}, 'mx1.test', '... naming mx1') if @set;
$A->stop_ok;
$B->stop_ok;
done_testing;
