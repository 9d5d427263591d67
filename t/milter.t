# milter.t - the milter client against a small milter of our own
# (t/lib/MxMilter.pm): what the milter sees, accept, reject, tempfail,
# discard, the nofilter split, header and body changes, added recipients
# (ours only), and milters that are down, hang or send a broken packet
# (on_error tempfail or accept; other sessions go on; nothing lost)
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use MxMilter;
use Time::HiRes qw(time sleep);
use HTTP::Tiny;

need_programs('smtp-sink');
watchdog(90);

my $sink = MxPeers::Sink->new;

# daemon - mxrelayd with the chain given as (socket, timeout, on_error)
# triples; example.test goes to the sink, nofilter@example.test skips the
# milters
sub daemon {
	my @chain;
	my $i = 0;
	while (my ($sock, $timeout, $on_error) = splice(@_, 0, 3)) {
		$i++;
		push @chain, "{ name = \"m$i\"; socket = \"$sock\"; timeout = $timeout;"
		    . " on_error = \"$on_error\"; }";
	}
	my $mx = delivery_daemon(delivery => { retry_schedule => [300] },
	    config => { filters => { milters => \('( ' . join(', ', @chain) . ' )') } });
	$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '[127.0.0.1]:' . $sink->port);
	$mx->ctl_ok('address', 'add', $_) for qw(joe@example.test mary@example.test);
	$mx->ctl_ok('address', 'add', 'nofilter@example.test', '--nofilter');
	return $mx;
}

my $n = 0;
sub msg {
	my ($subject) = @_;
	$n++;
	return "From: a\@sender.test\r\nSubject: $subject\r\nX-Drop: one\r\nX-Drop: two\r\n"
	    . "Message-ID: <m$n.$$\@sender.test>\r\n\r\nbody of $subject\r\n";
}

# send_msg - one transaction on a new session: the reply to the end of data
sub send_msg {
	my ($mx, $rcpts, $body) = @_;
	my $c = $mx->session;
	my $r = $c->transaction('a@sender.test', $rcpts, $body);
	$c->cmd('QUIT');
	$c->close;
	return $r // 'EOF';
}

# sink_with - the sink's messages whose text matches RE
sub sink_with {
	my ($re) = @_;
	return grep { $_->{text} =~ $re } $sink->messages;
}

# --- accept: what the milter sees ------------------------------------------
my $acc = MxMilter->new(mode => 'accept');
my $mx = daemon($acc->socket, 10, 'tempfail');
my $r = send_msg($mx, ['joe@example.test', 'nofilter@example.test'], msg('seen'));
like($r, qr/^250 2\.0\.0 Ok: queued as (\S+)/, 'accepted by the milter: 250');
my ($qid) = $r =~ /queued as (\S+)/;
ok(wait_until(sub { sink_with(qr/Subject: seen/) == 1 }, 15, 0.1), 'delivered to the sink');
my $seen = $acc->log;
like($seen, qr/^O /m, 'option negotiation');
like($seen, qr/^C unknown\|4.*127\.0\.0\.1\|/m, 'SMFIC_CONNECT with the client address');
like($seen, qr/^D C.*\{client_addr\}\|127\.0\.0\.1\|/m, '{client_addr} macro');
like($seen, qr/^D C.*\{i\}\|\Q$qid\E\|/m, '{i} macro is the queue ID');
like($seen, qr/^H client\.test\|/m, 'HELO');
like($seen, qr/^M <a\@sender\.test>\|/m, 'MAIL');
like($seen, qr/^R <joe\@example\.test>\|/m, 'RCPT of the filtered recipient');
unlike($seen, qr/^R <nofilter\@example\.test>/m, 'the nofilter recipient is not shown');
like($seen, qr/^L Received\|from client\.test/m, 'our Received: header first');
like($seen, qr/^L Subject\|seen\|/m, 'the Subject header, value without its space');
like($seen, qr/^N /m, 'end of headers');
like($seen, qr/^B body of seen\\r\\n/m, 'body with CRLF');
like($seen, qr/^E /m, 'end of message');
like($mx->log, qr/smtp queued id=\Q$qid\E .*milters="m1=accept\/\d+ms"/, 'verdict and time in the queued line');
my (undef, $st) = $mx->ctl_json("stats");
is($st->{milter_m1_accept}, 1, 'relayctl stats: milter_m1_accept')
    or diag(explain($st));
$mx->stop_ok;

# the client a front proxy handed over by XCLIENT is the one the milter sees
my $mport = free_port();
$mx = delivery_daemon(delivery => { retry_schedule => [300] }, config => {
    server => { xclient_hosts => ['127.0.0.1'] }, metrics => { listen => "127.0.0.1:$mport" },
    filters => { milters => \('( { name = "m1"; socket = "' . $acc->socket . '"; } )') } });
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '[127.0.0.1]:' . $sink->port);
$mx->ctl_ok('address', 'add', 'joe@example.test');
{
	my $c = $mx->session;
	like($c->cmd('XCLIENT ADDR=192.0.2.9 PORT=4242 HELO=proxied.example') // '', qr/^220/, 'XCLIENT accepted');
	like($c->cmd('EHLO proxied.example') // '', qr/^250/, 'EHLO again');
	like($c->transaction('a@sender.test', ['joe@example.test'], msg('xclient')) // '', qr/^250 /, 'queued');
	$c->close;
}
like($acc->log, qr/^C unknown\|4.*192\.0\.2\.9\|/m, 'SMFIC_CONNECT with the handed-over address');
like($acc->log, qr/^D C.*\{client_addr\}\|192\.0\.2\.9\|\{client_port\}\|4242\|/m, '{client_addr} and {client_port} after XCLIENT');
my $scrape = HTTP::Tiny->new(timeout => 5)->get("http://127.0.0.1:$mport/metrics");
like($scrape->{content} // '', qr/^mxrelay_milter_verdicts_total\{milter="m1",verdict="accept"\} 1$/m,
    'GET /metrics: the verdict per milter');
like($scrape->{content} // '', qr/^mxrelay_milter_seconds_total\{milter="m1"\} [0-9.]+$/m, 'and its time');
$mx->stop_ok;

# --- reject: filtered only 550; mixed: queued for the nofilter one ----------
my $rej = MxMilter->new(mode => 'reject');
$mx = daemon($rej->socket, 10, 'tempfail');
$r = send_msg($mx, ['joe@example.test'], msg('rejected'));
like($r, qr/^550 5\.7\.1 Test milter says no/, "the milter's 550 passed on");
$r = send_msg($mx, ['joe@example.test', 'nofilter@example.test'], msg('mixed'));
like($r, qr/^250 /, 'mixed transaction: 250 (queued for the nofilter recipient)');
($qid) = $r =~ /queued as (\S+)/;
ok(wait_until(sub { sink_with(qr/Subject: mixed/) == 1 }, 15, 0.1), 'one copy delivered');
my ($m) = sink_with(qr/Subject: mixed/);
is_deeply($m->{rcpts}, ['<nofilter@example.test>'], 'to the nofilter recipient only');
like($mx->log, qr/milter rcpt refused id=\Q$qid\E to=<joe\@example\.test> milter=m1 reply="550 5\.7\.1 Test milter says no"/,
    'the refused copy is logged with the reason');
like($mx->log, qr/smtp queued id=\Q$qid\E from=<a\@sender\.test> nrcpt=1 /, 'queued for one recipient');
is(scalar(sink_with(qr/Subject: rejected/)), 0, 'the rejected message went nowhere');
$mx->stop_ok;

# --- tempfail, discard ----------------------------------------------------
my $tf = MxMilter->new(mode => 'tempfail');
$mx = daemon($tf->socket, 10, 'tempfail');
$r = send_msg($mx, ['joe@example.test', 'nofilter@example.test'], msg('tempfailed'));
like($r, qr/^451 4\.7\.1 Test milter says later/, 'tempfail: 451 for the whole message');
$mx->stop_ok;
my $dis = MxMilter->new(mode => 'discard');
$mx = daemon($dis->socket, 10, 'tempfail');
$r = send_msg($mx, ['joe@example.test'], msg('discarded'));
like($r, qr/^250 /, 'discard: 250');
like($mx->log, qr/smtp message discarded id=\S+ from=<a\@sender\.test> milters="m1=discard/, 'discard logged');
is(scalar($mx->queue_ids), 0, 'nothing queued');
$mx->stop_ok;

# --- header and body changes, in chain order after an accepting milter ------
my $ed = MxMilter->new(mode => 'edit');
$mx = daemon($acc->socket, 10, 'tempfail', $ed->socket, 10, 'tempfail');
$r = send_msg($mx, ['joe@example.test'], msg('to edit'));
like($r, qr/^250 /, 'edited message: 250');
ok(wait_until(sub { sink_with(qr/new body line 2\n\z/) == 1 }, 15, 0.1), 'edited message delivered');
($m) = sink_with(qr/X-Test-Milter/);
my $t = $m->{text} // '';
like($t, qr/\AX-Test-Top: first\nReceived: from client\.test/, 'inserted header on top');
like($t, qr/^Subject: changed subject$/m, 'Subject changed');
like($t, qr/^X-Drop: two$/m, 'second X-Drop kept');
unlike($t, qr/^X-Drop: one$/m, 'first X-Drop deleted');
like($t, qr/^X-Test-Milter: edited\n\nnew body line 1\nnew body line 2\n\z/m, 'added header last, then the new body');
# the removal joins the next group commit, or one 20 ms later (doc/spool.md)
ok(wait_queue_empty($mx, 10), 'queue empty after delivery');
$mx->stop_ok;

# --- recipients added: ours delivered, others refused ----------------------
my $addin = MxMilter->new(mode => 'addrcpt:mary@example.test');
$mx = daemon($addin->socket, 10, 'tempfail');
$r = send_msg($mx, ['joe@example.test'], msg('add ours'));
like($r, qr/^250 /, 'message with an added recipient of ours: 250');
ok(wait_until(sub { my %r = map { $_ => 1 } map { @{$_->{rcpts}} } sink_with(qr/Subject: add ours/);
    join(' ', sort keys %r) eq '<joe@example.test> <mary@example.test>' }, 15, 0.1),
    'delivered to joe and the added mary') or diag(explain([map { $_->{rcpts} } $sink->messages]));
$mx->stop_ok;
my $del = MxMilter->new(mode => 'delrcpt:mary@example.test');
$mx = daemon($del->socket, 10, 'tempfail');
$r = send_msg($mx, ['joe@example.test', 'mary@example.test'], msg('del mary'));
like($r, qr/^250 /, 'message with a recipient removed: 250');
like($mx->log, qr/milter rcpt removed id=\S+ to=<mary\@example\.test>/, 'the removal is logged');
ok(wait_queue_empty($mx, 10), 'delivered');
is_deeply([map { @{$_->{rcpts}} } sink_with(qr/Subject: del mary/)], ['<joe@example.test>'],
    'to joe only');
$mx->stop_ok;
my $addout = MxMilter->new(mode => 'addrcpt:victim@elsewhere.test');
$mx = daemon($addout->socket, 10, 'tempfail');
$r = send_msg($mx, ['joe@example.test'], msg('add theirs'));
like($r, qr/^250 /, 'message with an outside recipient added: 250');
like($mx->log, qr/milter rcpt add refused id=\S+ to=<victim\@elsewhere\.test> reason=relay/, 'the outside recipient is refused and logged');
ok(wait_until(sub { sink_with(qr/Subject: add theirs/) == 1 }, 15, 0.1), 'delivered');
($m) = sink_with(qr/Subject: add theirs/);
is_deeply($m->{rcpts}, ['<joe@example.test>'], 'to joe only: nothing relayed');
ok(wait_queue_empty($mx, 10), 'nothing left in the queue');
$mx->stop_ok;

# --- quarantine: held until released, across a restart ----------------------
my $qm = MxMilter->new(mode => 'quarantine');
$mx = daemon($qm->socket, 10, 'tempfail');
$r = send_msg($mx, ['joe@example.test'], msg('quarantined'));
like($r, qr/^250 /, 'quarantined message: 250');
($qid) = $r =~ /queued as (\S+)/;
$qid //= 'none';
like($mx->log, qr/milter quarantine id=\Q$qid\E milter=m1 reason="test quarantine"/, 'quarantine logged');
my $held = $mx->ctl_ok('queue', 'list', '--held');
like($held, qr/^\Q$qid\E .*\(held: test quarantine\)/m, 'queue list --held shows it with the reason');
my (undef, $hj) = $mx->ctl_json('queue', 'list', '--held');
is($hj->{messages}[0]{held} // '', 'test quarantine', 'JSON: held reason');
like(MxTest::slurp($mx->queue_dir . "/$qid") // '', qr/^held test quarantine$/m, 'the spool file says held');
sleep 1.5;
is(scalar(sink_with(qr/Subject: quarantined/)), 0, 'not delivered while held');
$mx->stop_ok;
$mx->start;
like($mx->ctl_ok('queue', 'list', '--held'), qr/^\Q$qid\E /m, 'still held after a restart');
my ($rc, $out, $err) = $mx->ctl('queue', 'release', '0000000000000001');
isnt($rc, 0, 'release of an unknown ID refused');
like($mx->ctl_ok('queue', 'release', $qid), qr/^\Q$qid\E: released$/m, 'queue release');
ok(wait_until(sub { sink_with(qr/Subject: quarantined/) == 1 }, 15, 0.1), 'delivered after the release');
ok(wait_queue_empty($mx, 10), 'queue empty');
like($mx->ctl_ok('queue', 'list', '--held'), qr/^no held message$/m, 'nothing held');
$mx->stop_ok;

# held mail expires like other mail (here: dropped, as configured)
$mx = delivery_daemon(delivery => { retry_schedule => [300], max_lifetime => 2 },
    config => { filters => { quarantine_expiry => 'drop',
	milters => \('( { name = "q"; socket = "' . $qm->socket . '"; } )') } });
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '[127.0.0.1]:' . $sink->port);
$mx->ctl_ok('address', 'add', 'joe@example.test');
$r = send_msg($mx, ['joe@example.test'], msg('held expires'));
like($r, qr/^250 /, 'quarantined again');
ok(wait_queue_empty($mx, 10), 'gone after max_lifetime');
like($mx->log, qr/queue held message expired action=drop reason="test quarantine"/, 'expiry logged');
is(scalar(sink_with(qr/Subject: held expires/)), 0, 'never delivered');
$mx->stop_ok;

# --- broken milters -----------------------------------------------------------
my $down = closed_port();
$mx = daemon("inet:127.0.0.1:$down", 5, 'tempfail');
my $t0 = time;
$r = send_msg($mx, ['joe@example.test'], msg('down'));
like($r, qr/^451 4\.7\.1 /, 'milter not listening: 451');
cmp_ok(time - $t0, '<', 5, 'at once');
like($mx->log, qr/milter m1 error="connection refused" on_error=tempfail/, 'logged');
$mx->stop_ok;
$mx = daemon("inet:127.0.0.1:$down", 5, 'accept');
$r = send_msg($mx, ['joe@example.test'], msg('down accept'));
like($r, qr/^250 /, 'milter not listening, on_error accept: 250');
ok(wait_until(sub { sink_with(qr/Subject: down accept/) == 1 }, 15, 0.1), 'and delivered');
$mx->stop_ok;

my $hang = MxMilter->new(mode => 'hang');
$mx = daemon($hang->socket, 2, 'tempfail');
{
	# the hung transaction on one session, others meanwhile
	my $c = $mx->session;
	ok($c->cmd('MAIL FROM:<a@sender.test>') =~ /^250/ && $c->cmd('RCPT TO:<joe@example.test>') =~ /^250/
	    && $c->cmd('DATA') =~ /^354/, 'transaction to the hung milter');
	$t0 = time;
	$c->send(msg('hang') . ".\r\n");
	my $o = $mx->session;
	like($o->cmd('NOOP') // '', qr/^250/, 'another session is served meanwhile');
	cmp_ok(time - $t0, '<', 1.5, 'at once');
	$o->close;
	$r = $c->reply(10) // 'EOF';
	like($r, qr/^451 4\.7\.1 /, 'hung milter: 451');
	my $took = time - $t0;
	ok($took >= 1.5 && $took < 5, 'after its timeout of 2 s') or diag("took $took s");
	like($c->cmd('NOOP') // '', qr/^250/, 'the session goes on');
	$c->close;
}
like($mx->log, qr/milter m1 error="timeout"/, 'timeout logged');
$mx->stop_ok;

for my $mode (qw(truncated garbage)) {
	my $bad = MxMilter->new(mode => $mode);
	$mx = daemon($bad->socket, 5, 'tempfail');
	$r = send_msg($mx, ['joe@example.test'], msg($mode));
	like($r, qr/^451 4\.7\.1 /, "$mode reply: 451");
	is(scalar($mx->queue_ids), 0, 'nothing queued');
	$mx->stop_ok;
	$mx = daemon($bad->socket, 5, 'accept');
	$r = send_msg($mx, ['joe@example.test'], msg("$mode accept"));
	like($r, qr/^250 /, "$mode reply, on_error accept: 250");
	ok(wait_until(sub { sink_with(qr/Subject: \Q$mode\E accept/) == 1 }, 15, 0.1), 'and delivered unchanged');
	$mx->stop_ok;
}

done_testing;
