# smuggling.t - bare LF / bare CR never end a line or the data (SPEC 5, SMTP smuggling)
use strict;
use warnings;
use Test::More;
use MxTest;

watchdog(60);
my $mx = MxTest::Daemon->new;
$mx->start;
$mx->setup(domains => ['example.test'], addresses => ['joe@example.test', 'mary@example.test']);

my $smuggled = "MAIL FROM:<admin\@src.test>\r\nRCPT TO:<mary\@example.test>\r\nDATA\r\n"
    . "Subject: smuggled\r\n\r\nsmuggled body\r\n";
my @payloads = (
	["\n.\n", 'LF.LF'],
	["\n.\r\n", 'LF.CRLF'],
	["\r\n.\n", 'CRLF.LF'],
	["\r.\r\n", 'CR.CRLF'],
	["\r\n.\r", 'CRLF.CR'],
	["\r.\r", 'CR.CR'],
	["\n", 'a lone bare LF'],
	["\r", 'a lone bare CR'],
	["\n.\n$smuggled", 'LF.LF + smuggled MAIL FROM'],
	["\r\n.\n$smuggled", 'CRLF.LF + smuggled MAIL FROM'],
	["\n.\r\n$smuggled", 'LF.CRLF + smuggled MAIL FROM'],
	["\r.\r\n$smuggled", 'CR.CRLF + smuggled MAIL FROM'],
);

my $c = $mx->session;
for my $p (@payloads) {
	my ($bytes, $name) = @$p;
	like($c->cmd('MAIL FROM:<s@src.test>'), qr/^250 /, "$name: MAIL");
	like($c->cmd('RCPT TO:<joe@example.test>'), qr/^250 /, "$name: RCPT");
	like($c->cmd('DATA'), qr/^354 /, "$name: DATA");
	$c->send("Subject: $name\r\n\r\nbefore$bytes" . "after\r\n.\r\n");
	my $r = $c->reply;
	is($r, '550 5.6.11 Bare LF/CR not allowed', "$name: 550 5.6.11 Bare LF/CR not allowed");
	is($c->pending(0.3), '', "$name: no other reply (nothing smuggled was executed)");
	if (!defined $r) { $c = $mx->session; next; }
	like($c->cmd('RSET'), qr/^250 /, "$name: RSET afterwards");
}
is_deeply([$mx->queue_ids], [], 'nothing queued by any bare LF/CR message');

# the session is still usable: a clean message is queued exactly once
my $body = "Subject: clean\r\n\r\nclean line\r\n";
my $r = $c->transaction('s@src.test', ['joe@example.test'], $body);
like($r, qr/^250 2\.0\.0 Ok: queued as \S+\z/, 'clean message in the same session queued');
my @ids = $mx->queue_ids;
is(scalar @ids, 1, 'exactly one message in the queue');
my $s = @ids ? $mx->spool($ids[0]) : undef;
is_deeply($s ? $s->{rcpts} : undef, ['<joe@example.test>'], 'queued for joe only (nothing for mary)');
my $m = $s ? $s->{message} : '';
$m =~ s/\A(Received:.*?\r\n)(?![ \t])//s;
is($m, $body, 'clean message intact');
like($c->cmd('QUIT'), qr/^221 /, 'QUIT');

# a CRLF.CRLF split over many small writes is still one end of data
$c = $mx->session;
$c->cmd('MAIL FROM:<s@src.test>');
$c->cmd('RCPT TO:<joe@example.test>');
$c->cmd('DATA');
for my $chunk ("Subject: split\r", "\n\r\nx\r", "\n", ".", "\r", "\n") {
	$c->send($chunk);
	select(undef, undef, undef, 0.05);
}
like($c->reply, qr/^250 2\.0\.0 Ok: queued as /, 'end of data split across writes recognised');
$c->cmd('QUIT');
is(scalar(my @q = $mx->queue_ids), 2, 'two messages queued in total');
my (undef, $st) = $mx->ctl_json('stats');
ok(($st->{messages_refused_bare_lf} // 0) > 0, 'relayctl stats: messages_refused_bare_lf counts them')
    or diag(explain $st);
is($st->{messages_refused_bare_lf}, $st->{messages_refused}, 'every refusal here was a bare LF/CR one');

$mx->stop_ok;
done_testing();
