# durability.t - an acknowledged message survives kill -9; an unacknowledged one leaves no trace (SPEC 6)
use strict;
use warnings;
use Test::More;
use MxTest;

watchdog(90);
my $mx = MxTest::Daemon->new;
$mx->start;
$mx->setup(domains => ['example.test'], addresses => ['joe@example.test', 'mary@example.test']);

# acknowledged, then kill -9 at once
my $body = "Subject: durable\r\nMessage-ID: <durable\@src.test>\r\n\r\n"
    . join('', map { "line $_ of the durable message\r\n" } 1 .. 200);
my $c = $mx->session;
like($c->cmd('MAIL FROM:<s@src.test>'), qr/^250 /, 'MAIL');
like($c->cmd('RCPT TO:<joe@example.test>'), qr/^250 /, 'RCPT joe');
like($c->cmd('RCPT TO:<mary@example.test>'), qr/^250 /, 'RCPT mary');
like($c->cmd('DATA'), qr/^354 /, 'DATA');
$c->send($body . ".\r\n");
my $r = $c->reply;
$mx->kill9;
like($r, qr/^250 2\.0\.0 Ok: queued as \S+\z/, '250 queued, then kill -9 immediately');
my ($id) = ($r // '') =~ /queued as (\S+)/;
$id //= 'none';

$mx->start;
ok(-f $mx->queue_dir . "/$id", 'after restart: SPOOL/queue/ID exists');
my $s = $mx->spool($id);
ok($s, 'spool file complete and parsable');
is($s && $s->{sender}, '<s@src.test>', 'sender kept');
is_deeply($s ? $s->{rcpts} : undef, ['<joe@example.test>', '<mary@example.test>'], 'recipients kept');
my $m = $s ? $s->{message} : '';
$m =~ s/\A(Received:.*?\r\n)(?![ \t])//s;
is($m, $body, 'full message content kept');
# relayctl queue list/show come with the delivery engine (issue 3).
like($mx->log, qr/spool recovered messages=1 /, 'the recovery scan counted the message');
is($mx->queue_count, 1, 'relayctl status --json: 1 message queued');

# kill -9 in the middle of DATA: nothing queued after restart
$c = $mx->session;
$c->cmd('MAIL FROM:<s@src.test>');
$c->cmd('RCPT TO:<joe@example.test>');
like($c->cmd('DATA'), qr/^354 /, 'DATA for the interrupted message');
$c->send("Subject: interrupted\r\n\r\n" . ("half a message\r\n" x 2000));
sleep 0.3;
$mx->kill9;
$c->close;
$mx->start;
is_deeply([$mx->queue_ids], [$id], 'after restart: only the acknowledged message in SPOOL/queue');
is($mx->queue_count, 1, 'status still counts 1 message');

# kill -9 right after the end of data was sent, before reading the reply:
# either it was acknowledged (and then it is in the queue) or it is not queued
$c = $mx->session;
$c->cmd('MAIL FROM:<s@src.test>');
$c->cmd('RCPT TO:<joe@example.test>');
$c->cmd('DATA');
$c->send("Subject: race\r\n\r\nrace\r\n.\r\n");
select(undef, undef, undef, 0.002);
$mx->kill9;
my $late = $c->reply(2);
$mx->start;
my @after = $mx->queue_ids;
if (defined $late && $late =~ /queued as (\S+)/) {
	my $rid = $1;
	ok((grep { $_ eq $rid } @after), "race: acknowledged $rid is in the queue");
} else {
	note('race: not acknowledged; the spool checks below cover this case');
}
for my $q (@after) {
	ok($mx->spool($q), "spool file $q is complete");
}

# graceful stop keeps the queue too
$mx->stop_ok;
$mx->start;
ok(-f $mx->queue_dir . "/$id", 'queue kept across SIGTERM and restart');
$mx->stop_ok;
done_testing();
