# fleet_wait.t - `relayctl switch --wait` in a fleet (issue 10): it also
# waits for the deliveries to the old route that another host has in
# flight, and names each host.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use MxPg;
use Time::HiRes qw(time sleep);

need_programs('smtp-sink');
watchdog(90);

my $pg = MxPg->shared;
my $db = $pg->new_database;
my $old = MxPeers::Sink->new(extra => ['-w', 3]);	# answers DATA after 3 s
my $hosting = MxPeers::Sink->new;
my @mx = $pg->fleet($db, 2, hosting => 'smtp:[127.0.0.1]:' . $hosting->port);
$mx[0]->ctl_ok('domain', 'add', 'example.test', '--legacy', '127.0.0.1:' . $old->port);
$mx[0]->ctl_ok('address', 'add', 'joe@example.test');
ok(MxPg::wait_addresses($mx[1], 'example.test', 1), 'mx2 has the domain');

# mx2 has a delivery in flight to the old server (it answers DATA slowly)
ok(submit($mx[1], 'a@src.test', ['joe@example.test'], "Subject: slow\r\n\r\nbody\r\n"),
    'a message into mx2');
ok(wait_until(sub { $old->count >= 1 }, 10, 0.05), 'mx2 is delivering it to the old server');
my $t0 = time;
my ($rc, $j) = $mx[0]->ctl_json('switch', 'example.test', 'hosted', '--force', '--wait');
my $took = time - $t0;
is($rc, 0, 'switch --wait on mx1');
is($j->{inflight}, 0, 'nothing in flight on mx1 itself');
is_deeply([map { [$_->{host}, $_->{answer}] } @{$j->{drained} || []}],
    [['mx2.test', 'drained']], 'mx2 answered: drained') or diag(explain $j);
cmp_ok($took, '>', 1, sprintf('the command waited for mx2\'s delivery (%.1f s)', $took));
ok(wait_queue_empty($mx[1], 5), 'mx2 finished that delivery');
($rc, my $out) = $mx[0]->ctl('switch', 'example.test', 'legacy', '--force', '--wait');
like($out, qr/^  mx2\.test none left in flight$/m, 'human output names mx2') or diag($out);

$_->stop_ok for @mx;
done_testing;
