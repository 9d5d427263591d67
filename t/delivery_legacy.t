# delivery_legacy.t - legacy routes: preference order, failover from a dead
# or deferring first server, recipients unchanged, the per-attempt log line
# (SPEC 4, 6; relayctl domain add --legacy [IP]:PORT/PREF)
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use Time::HiRes qw(time sleep);

need_programs('smtp-sink', 'postfix');
watchdog(60);

my $dead = closed_port();			# nobody listens here, for the whole test
my $sink = MxPeers::Sink->new(hostname => 'old.example.test');
my $sink_b = MxPeers::Sink->new;		# second choice of b.test
my $soft = MxPeers::Sink->new(soft => 'RCPT');	# first choice of b.test: 4xx
my $pref_lo = MxPeers::Sink->new;		# c.test pref 10
my $pref_hi = MxPeers::Sink->new;		# c.test pref 20
# a real Postfix as the old server of d.test, relaying to a sink
my $behind_pf = MxPeers::Sink->new;
my $pf = MxPeers::Postfix->new(relay_domains => 'd.test',
    relayhost => '[127.0.0.1]:' . $behind_pf->port);

# a retry schedule far longer than the test: whatever arrives quickly was
# delivered by failover inside the first attempt, not by a retry
my $mx = delivery_daemon(delivery => { retry_schedule => [300] });

$mx->ctl_ok('domain', 'add', 'example.test',
    '--legacy', "[127.0.0.1]:$dead/10", '--legacy', "[127.0.0.1]:" . $sink->port . '/20');
$mx->ctl_ok('domain', 'add', 'b.test',
    '--legacy', '[127.0.0.1]:' . $soft->port . '/10', '--legacy', '[127.0.0.1]:' . $sink_b->port . '/20');
# given in the reverse order: preference decides, not the order
$mx->ctl_ok('domain', 'add', 'c.test',
    '--legacy', '[127.0.0.1]:' . $pref_hi->port . '/20', '--legacy', '[127.0.0.1]:' . $pref_lo->port . '/10');
$mx->ctl_ok('domain', 'add', 'd.test', '--legacy', '127.0.0.1:' . $pf->port);
$mx->ctl_ok('address', 'add', $_) for qw(joe@example.test mary@example.test
    Info@example.test joe@b.test joe@c.test joe@d.test mary@d.test);

# --- failover from a dead first server -----------------------------------
my $body = "From: a\@src.test\r\nTo: joe\@example.test\r\nSubject: failover\r\n"
    . "Message-ID: <failover.$$\@src.test>\r\n\r\nfailover body\r\n";
my $id = submit($mx, 'a@src.test', ['joe@example.test', 'mary@example.test', 'INFO@example.test'], $body);
ok($id, 'message for three example.test recipients queued') or BAIL_OUT('cannot queue');

is($sink->wait_count(1, 15), 1, 'arrived at the second legacy server (first one dead) within 15 s');
my ($m) = $sink->messages;
$m //= { rcpts => [], text => '' };
is($m->{mail}, '<a@src.test>', 'envelope sender unchanged');
is_deeply([sort @{$m->{rcpts}}],
    [sort '<joe@example.test>', '<mary@example.test>', '<INFO@example.test>'],
    'all recipients in one transaction, addresses unchanged (case kept: the old server owns its aliases)');
my ($ok, $prefix) = our_headers_then($m->{text}, crlf_to_lf($body));
ok($ok, "the downstream got the client's message after our header fields")
    or diag("got:\n$m->{text}");
like($prefix // '', qr/^Received: from \S+ \(\[127\.0\.0\.1\]\)\n\tby mx\.test\.example \(mxrelayd\) with E?SMTP id \Q$id\E;/m,
    'our Received: header with the queue ID');

ok(wait_queue_empty($mx, 10, $id), 'message left the queue once every recipient was delivered');
my @sent = attempt_lines($mx, $id, 'joe@example.test', 'sent');
is(scalar @sent, 1, 'one status=sent log line for joe') or diag($mx->log_tail(3000));
my $f = attempt_fields($sent[0] // '');
is($f->{relay_ip}, '127.0.0.1', 'log: relay=HOST[127.0.0.1]:PORT');
is($f->{relay_port}, $sink->port, 'log: relay port is the live (second) server');
ok(defined $f->{delay}, 'log: delay=');
like($f->{dsn} // '', qr/^2\.\d+\.\d+\z/, 'log: dsn=2.X.Y');
like($f->{line} // '', qr/250[ -]2\.0\.0 Ok/, "log: the downstream's reply");
for my $r ('mary@example.test', 'INFO@example.test') {
	is(scalar(my @l = attempt_lines($mx, $id, $r, 'sent')), 1, "one status=sent log line for $r");
}
is(scalar(my @b = attempt_lines($mx, $id, undef, 'bounced')), 0, 'nothing bounced');

# --- failover from a first server answering 4xx --------------------------
$body = "Subject: soft first\r\nMessage-ID: <soft.$$\@src.test>\r\n\r\nx\r\n";
$id = submit($mx, 'a@src.test', ['joe@b.test'], $body);
ok($id, 'message for b.test queued');
is($sink_b->wait_count(1, 15), 1, 'first server 4xx: delivered by the second within 15 s');
is($soft->count, 0, 'the deferring server stored nothing');
ok(wait_queue_empty($mx, 10, $id), 'b.test message left the queue');
($f) = map { attempt_fields($_) } attempt_lines($mx, $id, 'joe@b.test', 'sent');
is($f && $f->{relay_port}, $sink_b->port, 'log: sent through the second server');

# --- preference order ------------------------------------------------------
for my $n (1 .. 3) {
	ok(submit($mx, 'a@src.test', ['joe@c.test'], "Subject: pref $n\r\n\r\nx\r\n"), "c.test message $n queued");
}
is($pref_lo->wait_count(3, 15), 3, 'all three went to the preference 10 server');
is($pref_hi->count, 0, 'none to the preference 20 server (listed first)');

# --- a real Postfix smtpd as the old server -------------------------------
$body = "From: a\@src.test\r\nTo: joe\@d.test\r\nDate: Sat, 21 Nov 2026 06:00:00 +0000\r\n"
    . "Subject: through postfix\r\nMessage-ID: <pf.$$\@src.test>\r\n\r\n"
    . "..dots\r\n.\r\n\xc3\xa9\r\n" . ('z' x 990) . "\r\n";
$id = submit($mx, 'a@src.test', ['joe@d.test', 'mary@d.test'], $body, mail_params => 'BODY=8BITMIME');
ok($id, 'message for d.test queued');
is($behind_pf->wait_count(1, 20), 1, 'Postfix accepted it from us and passed it on')
    or diag($mx->log_tail(2000) . $pf->log);
($m) = $behind_pf->messages;
$m //= { rcpts => [], text => '' };
is_deeply([sort @{$m->{rcpts}}], ['<joe@d.test>', '<mary@d.test>'], 'both recipients, one transaction');
($ok, $prefix) = our_headers_then($m->{text}, crlf_to_lf($body));
ok($ok, "the client's message intact behind Postfix") or diag("got:\n$m->{text}");
like($prefix // '', qr/\(mxrelayd\) with E?SMTP id \Q$id\E;/, 'our Received: header there');
ok(wait_queue_empty($mx, 10, $id), 'd.test message left the queue');
($f) = map { attempt_fields($_) } attempt_lines($mx, $id, 'joe@d.test', 'sent');
like($f ? $f->{line} : '', qr/250 2\.0\.0 Ok: queued as [0-9A-F]+/, "log: Postfix's reply with its queue ID");

# --- several messages to one destination ---------------------------------
my @ids;
for my $n (1 .. 20) {
	push @ids, submit($mx, "s$n\@src.test", ['mary@example.test'],
	    "Subject: batch $n\r\nMessage-ID: <batch$n.$$\@src.test>\r\n\r\nbatch $n\r\n");
}
is(scalar(grep { defined } @ids), 20, '20 more messages queued');
is($sink->wait_count(21, 20), 21, 'all 20 delivered');
my %seen;
$seen{$_}++ for map { $_->{text} =~ /^Message-ID: <(batch\d+)\./m ? "$1" : () } $sink->messages;
is(scalar(keys %seen), 20, 'each of the 20 exactly once') or diag(explain \%seen);
is(scalar(grep { $_ != 1 } values %seen), 0, 'no duplicates');
ok(wait_queue_empty($mx, 10), 'queue empty');
my (undef, $st) = $mx->ctl_json('stats');
ok(($st->{deliveries_sent_legacy} // 0) >= 20, 'relayctl stats: deliveries_sent_legacy')
    or diag(explain $st);
is($st->{deliveries_sent_hosted}, 0, 'no hosted deliveries');

$mx->stop_ok;
done_testing();
