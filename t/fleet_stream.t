# fleet_stream.t - a switch in the middle of a steady stream of mail into
# two hosts of one fleet (issue 10, SPEC 7): 10 messages/s into each of
# mx1 and mx2 for 8 s to a legacy-mode domain, `relayctl switch DOMAIN
# hosted` on mx1 after 4 s. Every acknowledged message reaches exactly one
# downstream, and neither host starts an attempt at the old server after
# the command returned (smtp-sink creates its dump file at MAIL FROM: the
# file's birth time is when the attempt reached the old server).
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use MxPg;
use POSIX ();
use Time::HiRes qw(time sleep);

need_programs('smtp-sink', 'stat');
watchdog(120);

my $RATE = 10;		# messages per second and host
my $SECS = 8;
my $SWITCH_AT = 4;

my $pg = MxPg->shared;
my $db = $pg->new_database;
my $old = MxPeers::Sink->new;
my $hosting = MxPeers::Sink->new(lmtp => 1);
my @mx = $pg->fleet($db, 2, hosting => 'lmtp:[127.0.0.1]:' . $hosting->port);
$mx[0]->ctl_ok('domain', 'add', 'example.test', '--legacy', '127.0.0.1:' . $old->port);
$mx[0]->ctl_ok('address', 'add', 'joe@example.test');
ok(MxPg::wait_addresses($mx[1], 'example.test', 1), 'mx2 has the domain');

my ($brc, $bout) = run_cmd('stat', '-c', '%.9W', $mx[0]->dir);
BAIL_OUT('no file birth times on this file system: the switch timing check cannot run')
    unless $brc == 0 && $bout =~ /^[1-9]\d*\.\d+/;

# the streams, one child per host: one line per acknowledged message
my $t_start = time;
my @kids = map { stream_start(mx => $mx[$_], rate => $RATE, secs => $SECS,
    t0 => $t_start, file => $mx[$_]->dir . '/acked', tag => "s$_",
    rcpt => 'joe@example.test') } 0, 1;

sleep($t_start + $SWITCH_AT - time);
my ($rc, $out, $err) = $mx[0]->ctl('switch', 'example.test', 'hosted');
my $t_ret = time;
is($rc, 0, 'switch on mx1 in the middle of the streams') or diag($err);
like($out, qr/^  mx2\.test applied \d+ ms$/m, 'mx2 applied it before the command returned')
    or diag($out);

waitpid($_, 0) for @kids;
my @acked = map { stream_acked($_->dir . '/acked') } @mx;
cmp_ok(scalar @acked, '>=', 2 * $RATE * $SECS * 0.9, 'the streams were acknowledged')
    or diag(scalar @acked . ' acknowledged');
ok(wait_queue_empty($mx[$_], 30), 'queue drains on mx' . ($_ + 1)) for 0, 1;
sleep 0.3;

my ($seen, $msgs) = copies_by_message_id(old => $old, hosting => $hosting);
my @late = attempts_after($msgs->{old} || [], $t_ret);
my ($missing, $dups, %to) = (0, 0);
for my $mid (@acked) {
	my $where = $seen->{$mid} || [];
	$missing++ if @$where == 0;
	$dups++ if @$where > 1;
	my ($k) = $mid =~ /^s(\d)\./;
	$to{"$k $_"}++ for @$where;
}
is($missing, 0, 'no acknowledged message is missing');
is($dups, 0, 'no message reached the downstreams twice');
for my $k (0, 1) {
	cmp_ok($to{"$k old"} // 0, '>', 0, "mx" . ($k + 1) . " sent to the old server before the switch");
	cmp_ok($to{"$k hosting"} // 0, '>', 0, "mx" . ($k + 1) . " sent to the hosting after it");
}
is(scalar @late, 0, 'no attempt at the old server started after the command returned, on either host')
    or diag(join("\n", @late[0 .. ($#late < 9 ? $#late : 9)]));

$_->stop_ok for @mx;
done_testing;
