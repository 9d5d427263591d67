# delivery_retry.t - 4xx defers on delivery.retry_schedule, the next attempt
# delivers; a 4xx at the end of data too (SPEC 6: Retry)
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use Time::HiRes qw(time sleep);

need_programs('smtp-sink');
watchdog(60);

# downstreams that defer everything at first: 4xx to RCPT, 4xx to the dot
my $rcpt_sink = MxPeers::Sink->new(soft => 'RCPT',
    soft_reply => '450 4.2.0 <joe@example.test>: Mailbox busy, try later');
my $dot_sink = MxPeers::Sink->new(soft => '.',
    soft_reply => '451 4.3.0 Temporary failure at end of data');
my $mx = delivery_daemon(delivery => { retry_schedule => [1, 2] });

$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '[127.0.0.1]:' . $rcpt_sink->port);
$mx->ctl_ok('domain', 'add', 'b.test', '--legacy', '[127.0.0.1]:' . $dot_sink->port);
$mx->ctl_ok('address', 'add', $_) for qw(joe@example.test joe@b.test);

my $body = "Subject: retry\r\nMessage-ID: <retry.$$\@src.test>\r\n\r\nretry body\r\n";
my $id = submit($mx, 'a@src.test', ['joe@example.test'], $body);
ok($id, 'message queued') or BAIL_OUT('cannot queue');
my $id2 = submit($mx, 'a@src.test', ['joe@b.test'], "Subject: retry dot\r\n\r\nretry dot body\r\n");
ok($id2, 'message for b.test queued');

# the first attempts are deferred and logged as such
ok(wait_log($mx, qr/\b\Q$id\E\b.*status=deferred/, 15), 'first attempt deferred (4xx to RCPT)')
    or diag($mx->log_tail(3000));
my ($d) = attempt_lines($mx, $id, 'joe@example.test', 'deferred');
my $f = attempt_fields($d // '');
is($f->{relay_port}, $rcpt_sink->port, 'log: relay=...:PORT of the deferring server');
like($f->{dsn} // '', qr/^4\.2\.0\z/, "log: dsn=4.2.0 (the downstream's enhanced code)");
like($d // '', qr/450 4\.2\.0 <joe\@example\.test>: Mailbox busy/, "log: the downstream's reply");
ok(defined $f->{delay}, 'log: delay=');
ok(wait_log($mx, qr/\b\Q$id2\E\b.*status=deferred/, 15), 'b.test: deferred (4xx to the final dot)');
($d) = attempt_lines($mx, $id2, 'joe@b.test', 'deferred');
like($d // '', qr/451 4\.3\.0 Temporary failure at end of data/, "log: the 451 reply to the dot");
ok((grep { $_ eq $id } $mx->queue_ids), 'deferred message still queued');

# the downstreams recover: the next attempts (1 s, 2 s, 2 s... later) deliver
# (the dot-deferring sink dumped the deferred copies too: count afresh)
$dot_sink->stop;
my $dot_before = $dot_sink->count;
$rcpt_sink->restart;
$dot_sink->restart;
is($rcpt_sink->wait_count(1, 20), 1, 'delivered after retry') or diag($mx->log_tail(3000));
is($dot_sink->wait_count($dot_before + 1, 20), $dot_before + 1, 'b.test delivered after retry');
ok(wait_queue_empty($mx, 10, $id, $id2), 'both left the queue');
my ($m) = $rcpt_sink->messages;
my ($ok) = our_headers_then($m ? $m->{text} : '', crlf_to_lf($body));
ok($ok, 'the message delivered after the retry is intact');
my @sent = attempt_lines($mx, $id, 'joe@example.test', 'sent');
is(scalar @sent, 1, 'one status=sent line');
like($sent[0] // '', qr/\bdelay=/, 'sent line has delay=');
ok(scalar(attempt_lines($mx, $id, 'joe@example.test', 'deferred')) >= 1, 'at least one deferred line before it');
is(scalar(my @b = attempt_lines($mx, undef, undef, 'bounced')), 0, 'nothing bounced');
sleep 1.5;
is($rcpt_sink->count, 1, 'delivered exactly once');

$mx->stop_ok;
done_testing();
