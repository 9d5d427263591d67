# smtp_basic.t - greeting, EHLO keywords, simple commands, one real transaction (SPEC 5)
use strict;
use warnings;
use Test::More;
use MxTest;

watchdog(60);
my $mx = MxTest::Daemon->new(config => { limits => { max_message_size => 10485760 } });
$mx->start;
$mx->setup(domains => ['example.test'], addresses => ['joe@example.test']);

# greeting and EHLO
my $c = $mx->smtp;
is($c->reply, '220 mx.test.example ESMTP', 'greeting is exactly "220 HOSTNAME ESMTP"');

my ($r, $kw) = $c->ehlo('client.test');
like($r, qr/\A250-mx\.test\.example\b/, 'EHLO reply starts with 250-HOSTNAME');
like($r, qr/^250 [^\n]*\z/m, 'EHLO reply ends with a "250 " line');
is_deeply([sort map { uc } @$kw],
    [sort 'PIPELINING', 'SIZE 10485760', '8BITMIME', 'ENHANCEDSTATUSCODES', 'SMTPUTF8'],
    'EHLO keywords: exactly PIPELINING, SIZE <max_message_size>, 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8 (no STARTTLS without certificate)')
    or diag($r);
ok(!grep({ /^XCLIENT/i } @$kw), 'XCLIENT not offered to a client outside xclient_hosts');

like($c->cmd('NOOP'), qr/^250 2\.0\.0\b/, 'NOOP 250 2.0.0');
like($c->cmd('RSET'), qr/^250 2\.0\.0\b/, 'RSET 250 2.0.0');
like($c->cmd('HELP'), qr/^214[ -]/, 'HELP answered 214');
like($c->cmd('VRFY joe@example.test'), qr/^252 /, 'VRFY of a known address: 252');
like($c->cmd('VRFY nobody@example.test'), qr/^252 /, 'VRFY of an unknown address: 252 (reveals nothing)');
like($c->cmd('EXPN staff'), qr/^252 /, 'EXPN 252');
my $u = $c->cmd('FROBNICATE now');
like($u, qr/^50[02] 5\.5\.[12] /, 'unknown command 500/502 5.5.x');
like($c->cmd('noop'), qr/^250 /, 'commands are case-insensitive');
like($c->cmd('QUIT'), qr/^221 2\.0\.0\b/, 'QUIT 221 2.0.0');
ok($c->closed(3), 'connection closed after QUIT');

# MAIL before EHLO/HELO
$c = $mx->smtp;
$c->reply;
like($c->cmd('MAIL FROM:<a@src.test>'), qr/^503 5\.5\.1 /, 'MAIL before EHLO/HELO: 503 5.5.1');
like($c->cmd('RCPT TO:<joe@example.test>'), qr/^503 5\.5\.1 /, 'RCPT before MAIL: 503 5.5.1');
like($c->cmd('DATA'), qr/^503 5\.5\.1 /, 'DATA before MAIL: 503 5.5.1');

# HELO
$r = $c->cmd('HELO client.test');
like($r, qr/\A250 mx\.test\.example\b[^\n]*\z/, 'HELO: a single line 250 HOSTNAME');
like($c->cmd('MAIL FROM:<a@src.test>'), qr/^250 2\.1\.0\b/, 'MAIL after HELO: 250 2.1.0');
like($c->cmd('MAIL FROM:<b@src.test>'), qr/^503 5\.5\.1 /, 'nested MAIL: 503 5.5.1');
like($c->cmd('DATA'), qr/^(503 5\.5\.1|554 5\.5\.1) /, 'DATA without any recipient refused');
like($c->cmd('RSET'), qr/^250 /, 'RSET');
like($c->cmd('MAIL FROM:<>'), qr/^250 2\.1\.0\b/, 'MAIL FROM:<> (null sender) accepted');
like($c->cmd('RCPT TO:<joe@example.test>'), qr/^250 2\.1\.5\b/, 'RCPT to a known mailbox: 250 2.1.5');
like($c->cmd('QUIT'), qr/^221 /, 'QUIT');
$c->close;

# A real transaction with swaks
my $data = "Subject: basic\nX-Test: smtp_basic\n\nline one\n.dot line\nlast";
my $datafile = MxTest::spew($mx->dir . '/data.txt', $data);
my ($rc, $out, $id) = $mx->swaks('--from', 'sender@src.test', '--to', 'joe@example.test',
    '--helo', 'client.test', '--data', $datafile);
is($rc, 0, 'swaks transaction succeeds') or diag($out);
like($out, qr/<-\s+250 2\.0\.0 Ok: queued as \S+/, 'end of data: 250 2.0.0 Ok: queued as ID');
ok(defined $id && $id =~ /^[A-Za-z0-9]+\z/, 'queue ID is alphanumeric') or diag($out);

SKIP: {
	skip 'no queue id', 10 unless defined $id;
	ok(-f $mx->queue_dir . "/$id", 'spool file SPOOL/queue/ID exists after 250');
	my $s = $mx->spool($id);
	ok($s, 'spool file parses') or skip 'unparsable spool file', 8;
	is($s->{version}, '1', 'first line MXRELAY-SPOOL 1');
	is($s->{header}[0][0], 'MXRELAY-SPOOL', 'MXRELAY-SPOOL is the first line');
	is($s->{id}, $id, 'id line');
	is($s->{sender}, '<sender@src.test>', 'sender line');
	is_deeply($s->{rcpts}, ['<joe@example.test>'], 'one rcpt line');
	(my $client = $data) =~ s/\n/\r\n/g;
	$client =~ s/^\.\././mg;
	$client .= "\r\n";
	my $msg = $s->{message};
	my ($received) = $msg =~ /\A(Received:.*?\r\n)(?![ \t])/s;
	ok($received, 'message starts with our Received: header') or diag(substr($msg, 0, 300));
	$received //= '';
	is(substr($msg, length $received), $client,
	    'after the Received: header, the message is exactly the client data (CRLF, dot-unstuffed)');
	like($received, qr/\Q$id\E/, 'Received: contains the queue ID');
	like($received, qr/client\.test/, 'Received: contains the client HELO');
	like($received, qr/127\.0\.0\.1/, 'Received: contains the client IP');
	like($received, qr/mx\.test\.example/, 'Received: contains our hostname');
	is($s->{size} + 0, length $msg, 'size line = message octets');
}

# raw transaction with dot-stuffing and 8-bit data
$c = $mx->session;
my $body = "Subject: raw\r\n\r\n..leading dot\r\n...two dots\r\n\xc3\xa9t\xc3\xa9 8bit\r\n";
$r = $c->cmd('MAIL FROM:<s@src.test> BODY=8BITMIME');
like($r, qr/^250 /, 'MAIL with BODY=8BITMIME');
like($c->cmd('RCPT TO:<joe@example.test>'), qr/^250 /, 'RCPT');
like($c->cmd('DATA'), qr/^354 /, 'DATA 354');
$c->send($body . ".\r\n");
$r = $c->reply;
like($r, qr/^250 2\.0\.0 Ok: queued as (\S+)\z/, 'raw message queued');
my ($id2) = ($r // '') =~ /queued as (\S+)/;
SKIP: {
	skip 'not queued', 1 unless $id2;
	my $s = $mx->spool($id2);
	my $m = $s ? $s->{message} : '';
	$m =~ s/\A(Received:.*?\r\n)(?![ \t])//s;
	(my $unstuffed = $body) =~ s/^\.//mg;
	is($m, $unstuffed, 'spooled data is dot-unstuffed, 8-bit octets kept');
}
like($c->cmd('QUIT'), qr/^221 /, 'QUIT');

is(scalar(my @q = $mx->queue_ids), 2, 'exactly two messages in the queue');
$mx->stop_ok;
done_testing();
