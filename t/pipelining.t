# pipelining.t - RFC 2920: a whole transaction in two writes (SPEC 5)
use strict;
use warnings;
use Test::More;
use MxTest;

watchdog(60);
my $mx = MxTest::Daemon->new;
$mx->start;
$mx->setup(domains => ['example.test'], addresses => ['joe@example.test', 'mary@example.test']);

my $c = $mx->smtp;
like($c->reply, qr/^220 /, 'greeting');
ok($c->send("EHLO client.test\r\nMAIL FROM:<s\@src.test>\r\nRCPT TO:<joe\@example.test>\r\n"
    . "RCPT TO:<mary\@example.test>\r\nDATA\r\n"), 'EHLO, MAIL, two RCPT, DATA in one write');
my $ehlo = $c->reply;
like($ehlo, qr/\A250-mx\.test\.example/, '1st reply: EHLO');
like($ehlo, qr/^250[ -]PIPELINING$/m, 'EHLO offers PIPELINING');
like($c->reply, qr/^250 2\.1\.0 /, '2nd reply: MAIL 250 2.1.0');
like($c->reply, qr/^250 2\.1\.5 /, '3rd reply: RCPT joe 250 2.1.5');
like($c->reply, qr/^250 2\.1\.5 /, '4th reply: RCPT mary 250 2.1.5');
like($c->reply, qr/^354 /, '5th reply: DATA 354');
is($c->pending(0.3), '', 'no further reply');

my $body = "Subject: pipelined\r\n\r\nline 1\r\nline 2\r\n";
ok($c->send($body . ".\r\nQUIT\r\n"), 'body, end of data and QUIT in one write');
my $r = $c->reply;
like($r, qr/^250 2\.0\.0 Ok: queued as \S+\z/, 'end of data: 250 queued');
like($c->reply, qr/^221 /, 'QUIT: 221');
ok($c->closed(3), 'closed after QUIT');

my @ids = $mx->queue_ids;
is(scalar @ids, 1, 'message queued exactly once');
my ($id) = ($r // '') =~ /queued as (\S+)/;
is($ids[0], $id, 'the queued file is the acknowledged ID');
my $s = $id ? $mx->spool($id) : undef;
is_deeply($s ? $s->{rcpts} : undef, ['<joe@example.test>', '<mary@example.test>'], 'both recipients in one message');
my $m = $s ? $s->{message} : '';
$m =~ s/\A(Received:.*?\r\n)(?![ \t])//s;
is($m, $body, 'body intact');

# a 100 KB body, the end of data and QUIT in one write: read in bulk
# (beyond libevent's 4 KiB per read), the QUIT arriving while the message
# is being committed waits for the 250
$c = $mx->smtp;
$c->reply;
$c->send("EHLO client.test\r\nMAIL FROM:<s\@src.test>\r\nRCPT TO:<joe\@example.test>\r\nDATA\r\n");
$c->reply for 1 .. 3;
like($c->reply, qr/^354 /, 'large body: DATA 354');
my $big = "Subject: big\r\n\r\n" . join('', map { sprintf("%05d %s\r\n", $_, 'b' x 90) } 1 .. 1050);
ok($c->send($big . ".\r\nQUIT\r\n"), 'large body (' . length($big) . ' octets), end of data and QUIT in one write');
my $rb = $c->reply(10);
like($rb // '', qr/^250 2\.0\.0 Ok: queued as \S+\z/, 'large body: 250 queued');
like($c->reply // '', qr/^221 /, 'large body: QUIT answered after the 250');
ok($c->closed(3), 'large body: closed after QUIT');
my ($bid) = ($rb // '') =~ /queued as (\S+)/;
my $bs = $bid ? $mx->spool($bid) : undef;
my $bm = $bs ? $bs->{message} : '';
$bm =~ s/\A(Received:.*?\r\n)(?![ \t])//s;
ok($bm eq $big, 'large body intact in the spool');

# refused commands inside a pipelined group, then a second transaction
$c = $mx->smtp;
$c->reply;
$c->send("EHLO client.test\r\nMAIL FROM:<s\@src.test>\r\nRCPT TO:<x\@other.test>\r\n"
    . "RCPT TO:<nobody\@example.test>\r\nRCPT TO:<joe\@example.test>\r\nDATA\r\n");
like($c->reply, qr/^250-/, 'EHLO');
like($c->reply, qr/^250 /, 'MAIL');
like($c->reply, qr/^554 5\.7\.1 /, 'foreign RCPT refused in the group');
like($c->reply, qr/^550 5\.1\.1 /, 'unknown RCPT refused in the group');
like($c->reply, qr/^250 /, 'good RCPT accepted in the group');
like($c->reply, qr/^354 /, 'DATA 354 (one valid recipient)');
$c->send("Subject: 2\r\n\r\nx\r\n.\r\nMAIL FROM:<s\@src.test>\r\nRCPT TO:<mary\@example.test>\r\nDATA\r\n");
like($c->reply, qr/^250 2\.0\.0 Ok: queued as /, 'first message queued');
like($c->reply, qr/^250 /, 'next MAIL');
like($c->reply, qr/^250 /, 'next RCPT');
like($c->reply, qr/^354 /, 'next DATA');
$c->send("Subject: 3\r\n\r\ny\r\n.\r\nQUIT\r\n");
like($c->reply, qr/^250 2\.0\.0 Ok: queued as /, 'second message queued');
like($c->reply, qr/^221 /, 'QUIT');
is(scalar(my @q = $mx->queue_ids), 4, 'four messages in total');

# DATA refused in a group with no valid recipient: the body lines that
# follow must not be taken as data
$c = $mx->session;
$c->send("MAIL FROM:<s\@src.test>\r\nRCPT TO:<x\@other.test>\r\nDATA\r\n");
like($c->reply, qr/^250 /, 'MAIL');
like($c->reply, qr/^554 /, 'RCPT refused');
like($c->reply, qr/^(503|554) 5\.5\.1 /, 'DATA refused: no valid recipients');
like($c->cmd('NOOP'), qr/^250 /, 'session still usable');
$c->cmd('QUIT');
is(scalar(my @q2 = $mx->queue_ids), 4, 'still four messages');

# swaks --pipeline
my ($rc, $out, $sid) = $mx->swaks('--pipeline', '--from', 's@src.test', '--to', 'joe@example.test,mary@example.test');
is($rc, 0, 'swaks --pipeline succeeds') or diag($out);
ok($sid, 'swaks --pipeline message queued');

$mx->stop_ok;
done_testing();
