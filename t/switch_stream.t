# switch_stream.t - a switch in the middle of a steady stream of mail
# (SPEC 7, 9): 20 messages/s for 10 s (shortened from 20 s to keep the
# test under a minute) to a legacy-mode domain, `relayctl switch DOMAIN
# hosted` after 5 s. Every acknowledged message must reach exactly one of
# the two downstreams (duplicates counted), and no delivery attempt to the
# old server may start after the command returned: smtp-sink creates its
# dump file when MAIL FROM arrives, so the file's birth time (statx,
# nanoseconds) is when the attempt reached the old server.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use POSIX ();
use Time::HiRes qw(time sleep);

need_programs('smtp-sink', 'stat');
watchdog(90);

my $RATE = 20;		# messages per second
my $SECS = 10;		# length of the stream
my $SWITCH_AT = 5;	# seconds into the stream

my $old = MxPeers::Sink->new;			# the customer's old server
my $hosting = MxPeers::Sink->new(lmtp => 1);	# the hosting (LMTP)
# switch.require_propagation off: this test is about the switch itself, not
# the MX propagation gate (t/check_mx.t tests that)
my $mx = delivery_daemon(hosting => "lmtp:[127.0.0.1]:" . $hosting->port,
    config => { switch => { require_propagation => JSON::PP::false } });
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '127.0.0.1:' . $old->port);
$mx->ctl_ok('address', 'add', 'joe@example.test');

# does this file system record birth times?
my ($brc, $bout) = run_cmd('stat', '-c', '%.9W', $mx->dir);
my $have_btime = $brc == 0 && $bout =~ /^[1-9]\d*\.\d+/;

# the stream, from a child: one line per acknowledged message
my $acklog = $mx->dir . "/acked";
my $t_start = time;
my $pid = stream_start(mx => $mx, rate => $RATE, secs => $SECS, t0 => $t_start,
    file => $acklog, tag => 'stream', rcpt => 'joe@example.test');

sleep($t_start + $SWITCH_AT - time);
my $t_cmd = time;
my ($rc, $out, $err) = $mx->ctl('switch', 'example.test', 'hosted');
my $t_ret = time;
is($rc, 0, 'switch example.test hosted in the middle of the stream') or diag($err);
like($out, qr/legacy -> hosted \(\d+ deliver/, 'it prints the deliveries in flight');
diag(sprintf "switch returned after %.1f ms: %s", ($t_ret - $t_cmd) * 1000, $out);

waitpid($pid, 0);
my @acked = stream_acked($acklog);
cmp_ok(scalar @acked, '>=', $RATE * $SECS * 0.9, 'the stream was acknowledged')
    or diag(scalar @acked . ' acknowledged');

ok(wait_queue_empty($mx, 30), 'the queue drains') or diag($mx->log_tail(3000));
sleep 0.3;	# smtp-sink finishes its last dump files

# every acknowledged message: exactly one copy, at one of the two
my ($seen, $msgs) = copies_by_message_id(old => $old, hosting => $hosting);
my @late = $have_btime ? attempts_after($msgs->{old} || [], $t_ret) : ();
my ($missing, $dups, $to_old, $to_new) = (0, 0, 0, 0);
for my $mid (@acked) {
	my $where = $seen->{$mid} || [];
	$missing++ if @$where == 0;
	$dups++ if @$where > 1;
	$to_old += grep { $_ eq 'old' } @$where;
	$to_new += grep { $_ eq 'hosting' } @$where;
}
is($missing, 0, 'no acknowledged message is missing');
is($dups, 0, 'no message reached the downstreams twice (duplicates counted)');
cmp_ok($to_old, '>', 0, "the old server got the mail before the switch ($to_old)");
cmp_ok($to_new, '>', 0, "the hosting got the mail after the switch ($to_new)");
# the SPEC 9 check needs the dump files' birth times: never skip it
BAIL_OUT('no file birth times on this file system: the switch timing check cannot run')
    unless $have_btime;
is(scalar @late, 0, 'no attempt to the old server started after the command returned')
    or diag(join("\n", @late[0 .. ($#late < 9 ? $#late : 9)]));

$mx->stop_ok;
done_testing;
