# fleet_dbdown.t - the database goes away during a stream of mail (issue
# 10): PostgreSQL is stopped with `pg_ctl stop -m immediate` and started
# again. RCPT keeps answering from memory, relayctl changes are refused
# with a reason that names the database, deliveries wait while the lease
# is lapsed, and nothing acknowledged is lost.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use MxPg;
use POSIX ();
use Time::HiRes qw(time sleep);

need_programs('smtp-sink');
watchdog(120);

my $RATE = 10;
my $SECS = 8;

my $pg = MxPg->shared;
my $db = $pg->new_database;
my $hosting = MxPeers::Sink->new;
my $mx = delivery_daemon(hosting => 'smtp:[127.0.0.1]:' . $hosting->port,
    config => { server => { hostname => 'mx1.test' },
    state => $pg->state_config($db) });
$mx->ctl_ok('domain', 'add', 'example.test', '--mode', 'hosted');
$mx->ctl_ok('address', 'add', 'joe@example.test');

my $acklog = $mx->dir . '/acked';
my $t_start = time;
my $pid = stream_start(mx => $mx, rate => $RATE, secs => $SECS, t0 => $t_start,
    file => $acklog, tag => 'down', rcpt => 'joe@example.test');

sleep($t_start + 2 - time);
$pg->stop('immediate');
my ($rc, $out, $err) = $mx->ctl('address', 'add', 'new@example.test');
is($rc, 1, 'database down: relayctl address add fails (exit 1)');
like($err, qr/postgresql database/, '... and the reason names the database') or diag($err);
($rc, undef, $err) = $mx->ctl('switch', 'example.test', 'legacy', '--force');
is($rc, 1, 'database down: a switch fails') or diag($err);
sleep 3.5;	# past the lease
my $held = $hosting->count;
sleep 1;
is($hosting->count, $held, 'the lease lapsed: no delivery starts') or diag($mx->log_tail(2000));
$pg->restart;

waitpid($pid, 0);
my @acked = stream_acked($acklog);
cmp_ok(scalar @acked, '>=', $RATE * $SECS * 0.9, 'the stream was acknowledged throughout')
    or diag(scalar @acked . ' acknowledged');
ok(wait_queue_empty($mx, 30), 'the queue drains after the database is back')
    or diag($mx->log_tail(3000));
sleep 0.3;
my ($seen) = copies_by_message_id(hosting => $hosting);
is(scalar(grep { !$seen->{$_} } @acked), 0, 'no acknowledged message is lost');
is(scalar(grep { @{$seen->{$_} || []} > 1 } @acked), 0, 'none delivered twice');
ok(wait_until(sub { ($mx->ctl('address', 'add', 'new@example.test'))[0] == 0 }, 15, 0.5),
    'the database is back: relayctl changes work again');
my (undef, $j) = $mx->ctl_json('stats');
cmp_ok($j->{fleet_lease_lapses} // 0, '>=', 1, 'the lapse is counted');
like($mx->log, qr/fleet reconnected: catching up/, 'the reconnection is logged');

# a restart while the database is down waits for it, and says so
$mx->stop_ok;
$pg->stop('immediate');
my $kid = fork // die "fork: $!";
if ($kid == 0) {
	sleep 2;
	eval { $pg->restart };
	POSIX::_exit($@ ? 1 : 0);
}
my $t0 = time;
$mx->start;
waitpid($kid, 0);
is($?, 0, 'the cluster came back');
cmp_ok(time - $t0, '>=', 1.5, 'mxrelayd waited for the database to start');
like($mx->log, qr/store waiting for the database: .*next try in \d+ ms/,
    'and said so');
is(($mx->ctl_json('domain', 'show', 'example.test'))[1]{addresses}, 2,
    'the state is the database\'s');

$mx->stop_ok;
done_testing;
