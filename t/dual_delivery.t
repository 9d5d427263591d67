# dual_delivery.t - dual delivery through the client transition (SPEC 10,
# relayctl domain set DOMAIN --dual on|off). Old server: smtp-sink; the
# hosting: an LMTP smtp-sink; external forwards and bounces: an smtp-sink
# behind dnsmasq MX records. In legacy mode a message arrives once at the
# old server (recipient unchanged) and once at the hosting (an alias as
# its hosted mailboxes, no external forward); after switch hosted the
# hosting is primary and the old server gets the copy; after --dual off
# nothing more reaches the old server. kill -9 with both legs pending:
# each completes after the restart. A copy the old server refuses (5xx)
# never makes a bounce, does not delay the primary and expires after
# delivery.copy_lifetime with its log line and counter.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use Time::HiRes qw(time sleep);

need_programs('smtp-sink', 'dnsmasq', 'dig');
watchdog(120);

my $D = 'example.test';
my $old = MxPeers::Sink->new;
my $host = MxPeers::Sink->new(lmtp => 1);
my $mxsink = MxPeers::Sink->new;	# ext.test and sender.test by MX
my $dns = MxPeers::DNS->new(
	mx => [['ext.test', 'mx.ext.test', 10], ['sender.test', 'mx.sender.test', 10]],
	a => [['mx.ext.test', '127.0.0.1'], ['mx.sender.test', '127.0.0.1']]);
my $COPY_LIFETIME = 8;
my $mx = delivery_daemon(hosting => 'lmtp:[127.0.0.1]:' . $host->port, dns => $dns,
    bounce_sink => $mxsink,
    delivery => { retry_schedule => [1], copy_lifetime => $COPY_LIFETIME },
    config => { srs => { domain => 'fwd.example.net', secret => 'dual-test-secret-0123456789' },
	switch => { require_propagation => JSON::PP::false } });

$mx->ctl_ok('domain', 'add', $D, '--legacy', '127.0.0.1:' . $old->port);
$mx->ctl_ok('address', 'add', "joe\@$D");
$mx->ctl_ok('address', 'add', "mary\@$D");
$mx->ctl_ok('address', 'add', "info\@$D", '--alias', "mary\@$D,dan\@ext.test");

my $n = 0;
sub send_to {
	my ($to) = @_;
	$n++;
	my $id = submit($mx, 'a@sender.test', [$to], "Subject: dual $n\r\nMessage-ID: <dual.$n.$$\@sender.test>\r\n\r\nmessage $n\r\n");
	ok($id, "message $n to $to queued") or BAIL_OUT('cannot queue');
	return ($id, "dual $n");
}
# rcpts_of - the recipients each of SINK's messages with SUBJECT had
sub rcpts_of {
	my ($sink, $subject) = @_;
	return map { @{$_->{rcpts}} } grep { $_->{text} =~ /^Subject: \Q$subject\E$/m } $sink->messages;
}

# --- legacy mode: primary legacy, copy to the hosting --------------------
my ($rc, $o, $e) = $mx->ctl('domain', 'set', $D, '--dual', 'maybe');
is($rc, 2, '--dual maybe: usage error');
# in legacy mode the hosting must accept every mailbox first
$host->restart(lmtp => 1, hard => 'RCPT');
($rc, $o, $e) = $mx->ctl('domain', 'set', $D, '--dual', 'on');
is($rc, 1, '--dual on refused while the hosting rejects the mailboxes');
like($o . $e, qr/preflight: the hosting does not accept 2 mailboxes:\n  joe\@example\.test: 5\d\d/,
    '... the preflight names them');
unlike($mx->ctl_ok('domain', 'show', $D), qr/^dual delivery:\s+on/m, '... and dual delivery stays off');
$host->restart(lmtp => 1);
my $out = $mx->ctl_ok('domain', 'set', $D, '--dual', 'on');
like($out, qr/; dual delivery/, 'domain set --dual on (the preflight at the hosting passed)');
like($mx->ctl_ok('domain', 'show', $D), qr/^dual delivery:\s+on \(primary legacy, a copy to the hosting\)$/m,
    'domain show: dual delivery on, primary legacy');
like($mx->ctl_ok('status'), qr/^dual:\s+example\.test \(copies to the hosting\)$/m, 'status names it');

my ($id1, $s1) = send_to("joe\@$D");
is($old->wait_count(1, 10), 1, 'the old server got it');
is($host->wait_count(1, 10), 1, 'the hosting got the copy');
is_deeply([rcpts_of($old, $s1)], ["<joe\@$D>"], 'old server: the recipient unchanged');
is_deeply([rcpts_of($host, $s1)], ["<joe\@$D>"], 'hosting: the mailbox');
ok(wait_log($mx, qr/\b\Q$id1\E\b.*to=<joe\@example\.test>.*route=hosted.*status=sent copy=yes/, 5),
    'the copy logs copy=yes');
ok(wait_queue_empty($mx, 10, $id1), 'the message left the queue once both legs were done');

my ($id2, $s2) = send_to("info\@$D");
ok(wait_queue_empty($mx, 10, $id2), 'the alias message is done');
is_deeply([rcpts_of($old, $s2)], ["<info\@$D>"], 'old server: the alias as written (the old server owns it)');
is_deeply([rcpts_of($host, $s2)], ["<mary\@$D>"], 'hosting: the copy goes to its hosted mailbox only');
sleep 0.5;
is($mxsink->count, 0, 'the copy adds no external delivery (dan@ext.test) and no bounce');
my (undef, $st) = $mx->ctl_json('stats');
is($st->{copies_sent}, 2, 'stats: copies_sent 2');

# --- switch: primary hosted, copy to the old server ----------------------
$out = $mx->ctl_ok('switch', $D, 'hosted');
like($out, qr/^note: dual delivery is on: the legacy route goes on receiving copies/m,
    'the switch says the old route goes on receiving copies');
my ($id3, $s3) = send_to("joe\@$D");
my ($id4, $s4) = send_to("info\@$D");
ok(wait_queue_empty($mx, 15, $id3, $id4), 'both delivered on both legs');
is_deeply([rcpts_of($host, $s3)], ["<joe\@$D>"], 'after the switch the hosting gets the primary');
is_deeply([rcpts_of($old, $s3)], ["<joe\@$D>"], '... and the old server the copy');
is_deeply([rcpts_of($host, $s4)], ["<mary\@$D>"], 'the alias: the primary expands it at the hosting');
is($mxsink->wait_count(1, 10), 1, '... and forwards dan@ext.test (the primary alone)');
is_deeply([rcpts_of($old, $s4)], ["<info\@$D>"], '... the old server gets the copy, the alias unchanged');
like($mx->ctl_ok('history', $D), qr/^\S+\s+off\s+on\s+\d+\s+domain set --dual(?: \(on \S+\))?$/m, 'history: --dual off -> on');

# --- kill -9 with both legs pending --------------------------------------
$old->stop;
$host->stop;
my ($id5, $s5) = send_to("joe\@$D");
ok(wait_log($mx, qr/\b\Q$id5\E\b.*route=hosted.*status=deferred(?! copy)/, 10), 'primary deferred (hosting down)');
ok(wait_log($mx, qr/\b\Q$id5\E\b.*route=legacy.*status=deferred copy=yes/, 10), 'copy deferred (old server down)');
$mx->kill9;
$old->start;
$host->start;
$mx->restart;
ok(wait_queue_empty($mx, 15, $id5), 'after kill -9 and restart the message is done');
cmp_ok(scalar(rcpts_of($host, $s5)), '>=', 1, 'the primary arrived (at least once)');
cmp_ok(scalar(rcpts_of($old, $s5)), '>=', 1, 'the copy arrived (at least once)');

# --- a copy that fails: no bounce, no delay, expiry ------------------------
$old->restart(hard => 'RCPT');
my $t0 = time;
my ($id6, $s6) = send_to("joe\@$D");
ok(wait_until(sub { scalar(my @x = rcpts_of($host, $s6)) == 1 }, 10, 0.1),
    'the primary is delivered at once');
cmp_ok(time - $t0, '<', 5, '... not held up by the failing copy');
ok(wait_log($mx, qr/\b\Q$id6\E\b.*route=legacy.*status=deferred copy=yes \(5\d\d/, 10),
    'the copy refused with 5xx is deferred, not bounced');
ok(wait_log($mx, qr/\b\Q$id6\E\b.*status=expired copy=yes \(copy dropped, never bounced/, $COPY_LIFETIME + 10),
    "the copy expires after copy_lifetime ($COPY_LIFETIME s) with its log line");
cmp_ok(time - $t0, '>=', $COPY_LIFETIME - 1, '... not before');
ok(wait_queue_empty($mx, 10, $id6), 'the message left the queue');
(undef, $st) = $mx->ctl_json('stats');
cmp_ok($st->{copies_expired}, '>=', 1, 'stats: copies_expired');
cmp_ok($st->{copies_deferred}, '>=', 2, 'stats: copies_deferred');
sleep 0.5;
is($mxsink->count, 1, 'no bounce was sent to the sender');
is(scalar(grep { /\b\Q$id6\E\b.*status=bounced/ } split /\n/, $mx->log), 0, 'nothing bounced');

# --- dual off: nothing more reaches the old server -----------------------
$old->restart;
$out = $mx->ctl_ok('domain', 'set', $D, '--dual', 'off');
unlike($out, qr/dual delivery/, 'domain set --dual off');
my $before = $old->count;
my ($id7, $s7) = send_to("joe\@$D");
ok(wait_queue_empty($mx, 10, $id7), 'delivered');
is_deeply([rcpts_of($host, $s7)], ["<joe\@$D>"], 'the hosting got it');
sleep 1;
is($old->count, $before, 'nothing more reached the old server');

$mx->stop_ok;
done_testing();
