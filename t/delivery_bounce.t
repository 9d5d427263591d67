# delivery_bounce.t - a 5xx bounces at once: a DSN (RFC 3464) goes from <>
# to the sender's domain by MX lookup; never a DSN for a <> sender (SPEC 6)
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use Time::HiRes qw(time sleep);

need_programs('smtp-sink', 'dnsmasq', 'dig');
watchdog(60);

my $hard = MxPeers::Sink->new(hard => 'RCPT',
    hard_reply => '550 5.1.1 <joe@example.test>: Recipient address rejected: User unknown');
my $hard_dot = MxPeers::Sink->new(hard => '.',
    hard_reply => '554 5.7.1 Message content rejected');
my $bsink = MxPeers::Sink->new(hostname => 'mx.sender.test');	# the sender's MX
my $dns = MxPeers::DNS->new(
	mx => [['sender.test', 'mx.sender.test', 10]],
	a => [['mx.sender.test', '127.0.0.1']]);
my $mx = delivery_daemon(dns => $dns, bounce_sink => $bsink,
    delivery => { retry_schedule => [300] });

$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '[127.0.0.1]:' . $hard->port);
$mx->ctl_ok('domain', 'add', 'b.test', '--legacy', '[127.0.0.1]:' . $hard_dot->port);
$mx->ctl_ok('address', 'add', $_) for qw(joe@example.test joe@b.test);

# --- 5xx to RCPT --------------------------------------------------------------
my $body = "From: Alice <a\@sender.test>\r\nTo: joe\@example.test\r\nSubject: will bounce\r\n"
    . "Message-ID: <bounce1.$$\@sender.test>\r\n\r\nthe bounced body\r\n";
my $id = submit($mx, 'a@sender.test', ['joe@example.test'], $body);
ok($id, 'message queued') or BAIL_OUT('cannot queue');

ok(wait_log($mx, qr/\b\Q$id\E\b.*status=bounced/, 15), 'bounced at once on 550') or diag($mx->log_tail(3000));
my ($l) = attempt_lines($mx, $id, 'joe@example.test', 'bounced');
my $f = attempt_fields($l // '');
is($f->{relay_port}, $hard->port, 'log: relay=...:PORT of the refusing server');
like($f->{dsn} // '', qr/^5\.1\.1\z/, 'log: dsn=5.1.1');
like($l // '', qr/550 5\.1\.1 <joe\@example\.test>: Recipient address rejected/, "log: the downstream's reply");
is(scalar(my @dl = attempt_lines($mx, $id, undef, 'deferred')), 0, 'a 5xx is not retried');

is($bsink->wait_count(1, 15), 1, "a DSN reached the sender's MX (MX lookup, delivery.smtp_port)");
my ($b) = $bsink->messages;
$b //= { rcpts => [], text => '' };
is($b->{mail}, '<>', 'DSN envelope sender is <>');
is_deeply($b->{rcpts}, ['<a@sender.test>'], 'DSN envelope recipient is the original sender');
my ($hdr) = split /\n\n/, $b->{text}, 2;
$hdr //= '';
like($hdr, qr/^To: .*a\@sender\.test/mi, 'To: the sender');
like($hdr, qr/^From: /mi, 'From: present');
like($hdr, qr/^Subject: /mi, 'Subject: present');
like($hdr, qr/^Date: /mi, 'Date: present');
like($hdr, qr/^Message-ID: <[^>]+>/mi, 'Message-ID: present');
like($hdr, qr/^MIME-Version: 1\.0/mi, 'MIME-Version: 1.0');
my $dsn = parse_dsn($b->{text});
ok($dsn, 'multipart/report') or diag($b->{text});
$dsn //= { rcpts => [], message => {}, parts => [] };
is(lc($dsn->{report_type} // ''), 'delivery-status', 'report-type=delivery-status');
is_deeply([@{$dsn->{parts}}[0, 1]], ['text/plain', 'message/delivery-status'],
    'parts: text/plain, then message/delivery-status');
like($dsn->{message}{'reporting-mta'} // '', qr/^dns;\s*mx\.test\.example\z/i, 'Reporting-MTA: dns; mx.test.example');
is(scalar @{$dsn->{rcpts}}, 1, 'one recipient group');
my $r = $dsn->{rcpts}[0] // {};
like($r->{'final-recipient'} // '', qr/^rfc822;\s*joe\@example\.test\z/i, 'Final-Recipient: rfc822; joe@example.test');
is(lc($r->{action} // ''), 'failed', 'Action: failed');
is($r->{status}, '5.1.1', 'Status: 5.1.1');
like($r->{'diagnostic-code'} // '', qr/^smtp;\s*550 5\.1\.1 <joe\@example\.test>: Recipient address rejected/i,
    "Diagnostic-Code: smtp; the downstream's reply");
like($r->{'remote-mta'} // '', qr/^dns;\s*\S+/i, 'Remote-MTA: dns; ...');
like($b->{text}, qr/^Message-ID: <bounce1\.$$\@sender\.test>/mi, "the original's header returned");
ok(wait_queue_empty($mx, 10, $id), 'bounced message left the queue');
# the DSN itself was delivered (log) and left the queue
ok(wait_log($mx, qr/to=<a\@sender\.test>.*status=sent/, 10), 'log: the DSN status=sent to a@sender.test');
ok(wait_queue_empty($mx, 10), 'queue empty (DSN delivered)');

# --- 5xx to the final dot -------------------------------------------------
my $id2 = submit($mx, 'a@sender.test', ['joe@b.test'], "Subject: content\r\nMessage-ID: <bounce2.$$\@sender.test>\r\n\r\nx\r\n");
ok($id2, 'b.test message queued');
is($bsink->wait_count(2, 15), 2, '554 to the dot: second DSN');
my ($b2) = grep { $_->{text} =~ /bounce2\.$$/ } $bsink->messages;
my $dsn2 = parse_dsn($b2 ? $b2->{text} : '') // { rcpts => [] };
my $r2 = $dsn2->{rcpts}[0] // {};
like($r2->{'final-recipient'} // '', qr/^rfc822;\s*joe\@b\.test\z/i, 'Final-Recipient: rfc822; joe@b.test');
is(lc($r2->{action} // ''), 'failed', 'Action: failed');
is($r2->{status}, '5.7.1', 'Status: 5.7.1');
like($r2->{'diagnostic-code'} // '', qr/554 5\.7\.1 Message content rejected/, 'Diagnostic-Code has the 554');

# --- no DSN for a message from <> -----------------------------------------
my $id3 = submit($mx, '', ['joe@example.test'], "Subject: from null\r\n\r\nx\r\n");
ok($id3, 'message from <> queued');
ok(wait_log($mx, qr/\b\Q$id3\E\b.*status=bounced/, 15), 'message from <> bounced');
ok(wait_queue_empty($mx, 10, $id3), 'and left the queue');
sleep 2;
is($bsink->count, 2, 'no DSN was sent for it');
ok(wait_queue_empty($mx, 5), 'queue empty: no DSN pending either');

# --- a DSN that cannot be delivered is not bounced again ------------------
# the sender's domain does not exist (NXDOMAIN): the DSN to it fails for
# good, and a failed DSN (its sender is <>) produces nothing more
my $id4 = submit($mx, 'a@nowhere.test', ['joe@example.test'], "Subject: to nowhere\r\n\r\nx\r\n");
ok($id4, 'message from a@nowhere.test queued');
ok(wait_log($mx, qr/\b\Q$id4\E\b.*status=bounced/, 15), 'bounced');
ok(wait_log($mx, qr/to=<a\@nowhere\.test>.*status=bounced/, 15),
    'the DSN to a domain that does not exist (NXDOMAIN) bounces at once');
ok(wait_queue_empty($mx, 10), 'queue empty: no loop of bounces');
sleep 1;
is($bsink->count, 2, 'nothing more reached the sink');

$mx->stop_ok;
done_testing();
