# delivery_hosted.t - hosted domain: delivery over LMTP to Dovecot, one
# recipient accepted and one refused, the refused one bounced to the
# sender's MX (SPEC 6: per-recipient state, LMTP per-recipient replies)
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use Time::HiRes qw(time sleep);

need_programs('smtp-sink', 'dovecot', 'dnsmasq', 'dig');
watchdog(60);

# Dovecot knows joe, not mary; mxrelayd's table has both
my $dove = MxPeers::Dovecot->new(users => ['joe@example.test']);
my $bsink = MxPeers::Sink->new;				# the sender's MX
my $dns = MxPeers::DNS->new(
	mx => [['sender.test', 'mx.sender.test', 10]],
	a => [['mx.sender.test', '127.0.0.1']]);
my $mx = delivery_daemon(hosting => $dove->destination, dns => $dns,
    bounce_sink => $bsink, delivery => { retry_schedule => [300] });

$mx->ctl_ok('domain', 'add', 'example.test', '--mode', 'hosted');
$mx->ctl_ok('address', 'add', $_) for qw(joe@example.test mary@example.test);

my $body = "From: a\@sender.test\r\nTo: joe\@example.test, mary\@example.test\r\n"
    . "Subject: hosted\r\nMessage-ID: <hosted.$$\@sender.test>\r\n\r\n"
    . "hosted body\r\n.leading dot\r\n\xc3\xa9t\xc3\xa9\r\n";
my $id = submit($mx, 'a@sender.test', ['joe@example.test', 'mary@example.test'], $body,
    mail_params => 'BODY=8BITMIME');
ok($id, 'message for joe and mary queued') or BAIL_OUT('cannot queue');

# joe: stored in his maildir by Dovecot
ok(wait_until(sub { $dove->maildir_files('joe@example.test') >= 1 }, 15, 0.1),
    "joe's copy stored by Dovecot LMTP") or diag($dove->log);
my @joe = $dove->messages('joe@example.test');
is(scalar @joe, 1, 'exactly one copy for joe');
my ($ok, $prefix) = our_headers_then($joe[0] // '', crlf_to_lf($body));
ok($ok, "joe's copy is the client's message after header fields")
    or diag("got:\n" . ($joe[0] // ''));
like($prefix // '', qr/\(mxrelayd\) with E?SMTP id \Q$id\E;/, 'our Received: header with the queue ID');
is(scalar($dove->maildir_files('mary@example.test')), 0, 'nothing stored for mary');

# mary: refused by the hosting, bounced at once (5xx), DSN to the sender's MX
is($bsink->wait_count(1, 15), 1, "a DSN reached the sender's MX");
my ($dsnmsg) = $bsink->messages;
$dsnmsg //= { rcpts => [], text => '' };
is($dsnmsg->{mail}, '<>', 'DSN sent from <>');
is_deeply($dsnmsg->{rcpts}, ['<a@sender.test>'], 'DSN sent to the original sender');
my $dsn = parse_dsn($dsnmsg->{text});
ok($dsn, 'DSN is a multipart/report') or diag($dsnmsg->{text});
$dsn //= { rcpts => [], message => {} };
is(lc($dsn->{report_type} // ''), 'delivery-status', 'report-type=delivery-status');
like($dsn->{message}{'reporting-mta'} // '', qr/^dns;\s*mx\.test\.example\z/i, 'Reporting-MTA: dns; mx.test.example');
is(scalar @{$dsn->{rcpts}}, 1, 'one recipient in the report (joe was delivered)');
my $r = $dsn->{rcpts}[0] // {};
like($r->{'final-recipient'} // '', qr/^rfc822;\s*mary\@example\.test\z/i, 'Final-Recipient: rfc822; mary@example.test');
is(lc($r->{action} // ''), 'failed', 'Action: failed');
like($r->{status} // '', qr/^5\.1\.1\z/, "Status: 5.1.1 (Dovecot's enhanced code)");
like($r->{'diagnostic-code'} // '', qr/^smtp;\s*550\b/i, 'Diagnostic-Code: smtp; 550 ...');
like($dsnmsg->{text}, qr/^Message-ID: <hosted\.$$\@sender\.test>/mi, "the original's header is returned");

ok(wait_queue_empty($mx, 10, $id), 'message left the queue (joe delivered, mary bounced)');

# the log: one line per recipient with the SPEC 6 fields
my ($js) = attempt_lines($mx, $id, 'joe@example.test', 'sent');
ok($js, 'log: status=sent for joe') or diag($mx->log_tail(3000));
my $f = attempt_fields($js // '');
is($f->{relay_ip}, '127.0.0.1', 'log: relay=...[127.0.0.1]');
is($f->{relay_port}, $dove->port, 'log: relay port is the LMTP port');
ok(defined $f->{delay}, 'log: delay=');
like($f->{dsn} // '', qr/^2\.0\.0\z/, 'log: dsn=2.0.0');
like($js // '', qr/Saved/, "log: Dovecot's per-recipient reply");
my ($mb) = attempt_lines($mx, $id, 'mary@example.test', 'bounced');
ok($mb, 'log: status=bounced for mary');
$f = attempt_fields($mb // '');
like($f->{dsn} // '', qr/^5\.1\.1\z/, 'log: dsn=5.1.1 for mary');
like($mb // '', qr/550/, "log: Dovecot's 550 for mary");
is(scalar(my @d = attempt_lines($mx, $id, undef, 'deferred')), 0, 'nothing deferred');

# a second message to both: again one copy for joe only, and the DSN
ok(submit($mx, '', ['joe@example.test', 'mary@example.test'], "Subject: from null\r\n\r\nx\r\n"),
    'message from <> to joe and mary queued');
ok(wait_until(sub { $dove->maildir_files('joe@example.test') >= 2 }, 15, 0.1), 'joe got the second message');
ok(wait_queue_empty($mx, 10), 'queue empty');
sleep 1.5;
is($bsink->count, 1, 'no DSN for mary when the sender is <>');

$mx->stop_ok;
done_testing();
