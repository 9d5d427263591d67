# delivery_queue.t - relayctl queue list [DOMAIN] | queue show ID |
# queue flush [DOMAIN] | queue delete ID [--bounce] (SPEC 8)
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use Time::HiRes qw(time sleep);

need_programs('smtp-sink', 'dnsmasq', 'dig');
watchdog(60);

my $REPLY = '450 4.2.1 Mailbox temporarily unavailable';
my $sink = MxPeers::Sink->new(soft => 'RCPT', soft_reply => $REPLY);
my $bsink = MxPeers::Sink->new;
my $dns = MxPeers::DNS->new(
	mx => [['sender.test', 'mx.sender.test', 10]],
	a => [['mx.sender.test', '127.0.0.1']]);
# no retry by itself during the test: only queue flush makes an attempt
my $mx = delivery_daemon(dns => $dns, bounce_sink => $bsink,
    delivery => { retry_schedule => [600] });
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '[127.0.0.1]:' . $sink->port);
$mx->ctl_ok('domain', 'add', 'b.test', '--legacy', '[127.0.0.1]:' . $sink->port);
$mx->ctl_ok('address', 'add', $_) for qw(joe@example.test mary@example.test joe@b.test);

my $m1 = submit($mx, 'a@sender.test', ['joe@example.test'], "Subject: m1\r\nMessage-ID: <m1.$$\@sender.test>\r\n\r\nx\r\n");
my $m2 = submit($mx, 'a@sender.test', ['joe@example.test', 'mary@example.test'],
    "Subject: m2\r\nMessage-ID: <m2.$$\@sender.test>\r\n\r\nx\r\n");
my $m3 = submit($mx, 'a@sender.test', ['joe@b.test'], "Subject: m3\r\nMessage-ID: <m3.$$\@sender.test>\r\n\r\nx\r\n");
ok($m1 && $m2 && $m3, 'three messages queued') or BAIL_OUT('cannot queue');
for my $id ($m1, $m2, $m3) {
	ok(wait_log($mx, qr/\b\Q$id\E\b.*status=deferred/, 15), "$id: first attempt deferred");
}

# --- queue list ------------------------------------------------------------
my $out = $mx->ctl_ok('queue', 'list');
like($out, qr/\Q$_\E/, "queue list shows $_") for ($m1, $m2, $m3);
like($out, qr/a\@sender\.test/, 'queue list shows the sender');
like($out, qr/joe\@example\.test/, 'queue list shows recipients');
my ($rc, $j, $raw) = $mx->ctl_json('queue', 'list');
is($rc, 0, 'queue list --json exits 0');
ok($j && deep_has_value($j, $_), "queue list --json has $_") for ($m1, $m2, $m3);
$out = $mx->ctl_ok('queue', 'list', 'example.test');
like($out, qr/\Q$m1\E/, 'queue list example.test: m1');
like($out, qr/\Q$m2\E/, 'queue list example.test: m2');
unlike($out, qr/\Q$m3\E/, 'queue list example.test: not m3 (b.test)');
$out = $mx->ctl_ok('queue', 'list', 'b.test');
like($out, qr/\Q$m3\E/, 'queue list b.test: m3');
unlike($out, qr/\Q$m1\E|\Q$m2\E/, 'queue list b.test: not m1, m2');

# --- queue show ------------------------------------------------------------
$out = $mx->ctl_ok('queue', 'show', $m2);
like($out, qr/\Q$m2\E/, 'queue show: the ID');
like($out, qr/a\@sender\.test/, 'queue show: the sender');
like($out, qr/joe\@example\.test/, 'queue show: joe');
like($out, qr/mary\@example\.test/, 'queue show: mary');
like($out, qr/deferred/i, 'queue show: recipient state deferred');
like($out, qr/\Q$REPLY\E/, "queue show: the downstream's last reply");
($rc, $j) = $mx->ctl_json('queue', 'show', $m2);
is($rc, 0, 'queue show --json exits 0');
ok($j && deep_has_value($j, $m2), 'queue show --json: the ID');
ok($j && (deep_has_value($j, 'mary@example.test') || deep_has_value($j, '<mary@example.test>')),
    'queue show --json: mary');
my ($rc2, $o2, $e2) = $mx->ctl('queue', 'show', '00000000DEADBEEF');
is($rc2, 1, 'queue show of an unknown ID: exit 1');
like("$o2$e2", qr/\S/, 'with a reason');

# --- queue flush DOMAIN, queue flush -------------------------------------
$sink->restart;			# accepts from now on
my $t = time;
$mx->ctl_ok('queue', 'flush', 'example.test');
is($sink->wait_count(2, 10), 2, 'queue flush example.test: m1 and m2 delivered at once (schedule says 600 s)')
    or diag($mx->log_tail(3000));
ok(wait_queue_empty($mx, 10, $m1, $m2), 'm1, m2 left the queue');
sleep 2;
ok((grep { $_ eq $m3 } $mx->queue_ids), 'm3 (b.test) not flushed, still queued');
is($sink->count, 2, 'and not delivered');
$mx->ctl_ok('queue', 'flush');
is($sink->wait_count(3, 10), 3, 'queue flush: m3 delivered');
ok(wait_queue_empty($mx, 10), 'queue empty');
$out = $mx->ctl_ok('queue', 'list');
unlike($out, qr/\Q$m1\E|\Q$m2\E|\Q$m3\E/, 'queue list no longer shows them');

# --- queue delete, queue delete --bounce ---------------------------------
$sink->restart(soft => 'RCPT', soft_reply => $REPLY);
my $m4 = submit($mx, 'a@sender.test', ['joe@example.test'], "Subject: m4\r\nMessage-ID: <m4.$$\@sender.test>\r\n\r\nx\r\n");
my $m5 = submit($mx, 'a@sender.test', ['joe@example.test', 'mary@example.test'],
    "Subject: m5\r\nMessage-ID: <m5.$$\@sender.test>\r\n\r\nx\r\n");
ok($m4 && $m5, 'two more queued');
for my $id ($m4, $m5) {
	ok(wait_log($mx, qr/\b\Q$id\E\b.*status=deferred/, 15), "$id deferred");
}
$mx->ctl_ok('queue', 'delete', $m4);
ok(wait_queue_empty($mx, 5, $m4), 'queue delete: m4 gone from SPOOL/queue');
unlike($mx->ctl_ok('queue', 'list'), qr/\Q$m4\E/, 'and from queue list');
($rc2) = $mx->ctl('queue', 'show', $m4);
is($rc2, 1, 'queue show of the deleted ID: exit 1');
$mx->ctl_ok('queue', 'delete', $m5, '--bounce');
ok(wait_queue_empty($mx, 5, $m5), 'queue delete --bounce: m5 gone');
is($bsink->wait_count(1, 15), 1, 'queue delete --bounce: a DSN to the sender');
my ($b) = $bsink->messages;
$b //= { rcpts => [], text => '' };
is($b->{mail}, '<>', 'DSN from <>');
is_deeply($b->{rcpts}, ['<a@sender.test>'], 'DSN to a@sender.test');
my $dsn = parse_dsn($b->{text}) // { rcpts => [] };
is_deeply([sort map { lc($_->{'final-recipient'} // '') =~ s/^rfc822;\s*//r } @{$dsn->{rcpts}}],
    ['joe@example.test', 'mary@example.test'], 'Final-Recipient: joe and mary');
is_deeply([map { lc($_->{action} // '') } @{$dsn->{rcpts}}], ['failed', 'failed'], 'Action: failed for both');
like($_->{status} // '', qr/^5\.\d+\.\d+\z/, 'Status: 5.X.Y') for @{$dsn->{rcpts}};
like($b->{text}, qr/m5\.$$\@sender\.test/, 'the DSN is about m5');
($rc2) = $mx->ctl('queue', 'delete', '00000000DEADBEEF');
is($rc2, 1, 'queue delete of an unknown ID: exit 1');

# deleted messages are never delivered afterwards
$sink->restart;
$mx->ctl_ok('queue', 'flush');
sleep 2;
is($sink->count, 3, 'nothing of m4, m5 delivered after a flush');
ok(wait_queue_empty($mx, 10), 'queue empty (the DSN was delivered)');
is($bsink->count, 1, 'no DSN for the plain delete');

# --- queue delete --bounce while an attempt is running --------------------
# the old server waits 3 s before its DATA reply, then defers at the dot:
# the recipient was in flight at the delete and is bounced when the
# attempt ends without delivering it
$sink->restart(soft => '.', soft_reply => '451 4.3.0 try again later', extra => ['-w', 3]);
my $m6 = submit($mx, 'a@sender.test', ['joe@example.test'],
    "Subject: m6\r\nMessage-ID: <m6.$$\@sender.test>\r\n\r\nx\r\n");
ok($m6, 'm6 queued');
ok(wait_until(sub { $mx->ctl_ok('queue', 'show', $m6) =~ /active/ }, 10),
    'm6: joe is in an attempt (queue show: active)');
my $out6 = $mx->ctl_ok('queue', 'delete', $m6, '--bounce');
like($out6, qr/bounce sent to the sender for 1 recipient/, 'the in-flight recipient is counted in the bounce');
ok(wait_log($mx, qr/\b\Q$m6\E\b.*to=<joe\@example\.test>.*status=deferred/, 10),
    'the attempt ended: deferred by the old server');
is($bsink->wait_count(2, 15), 2, 'a DSN for m6 reached the sender');
my ($b6) = grep { $_->{text} =~ /m6\.$$\@sender\.test/ } $bsink->messages;
$dsn = parse_dsn($b6 ? $b6->{text} : '') // { rcpts => [] };
is_deeply([map { lc($_->{'final-recipient'} // '') =~ s/^rfc822;\s*//r } @{$dsn->{rcpts}}],
    ['joe@example.test'], 'its Final-Recipient: joe');
ok(wait_queue_empty($mx, 10), 'queue empty again');

# the per-attempt log lines carry the SPEC 6 fields
my ($d) = attempt_lines($mx, $m1, 'joe@example.test', 'deferred');
my $f = attempt_fields($d // '');
ok($f->{relay} && defined $f->{delay} && $f->{dsn} && $f->{status}, 'deferred line: relay, delay, dsn, status')
    or diag($d // 'none');

$mx->stop_ok;
done_testing();
