# limits.t - size, recipients, line length, timeouts, connections, hops, pregreet (SPEC 3, 5)
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use MxTest;

watchdog(90);
my $mx = MxTest::Daemon->new(config => { limits => {
	max_message_size => 10000,
	max_recipients => 3,
	command_timeout => 2,
	data_timeout => 2,
	max_connections => 5,
	max_connections_per_client => 2,
} });
$mx->start;
$mx->setup(domains => ['example.test'],
    addresses => [map { "u$_\@example.test" } 1 .. 5]);

# size
my $c = $mx->smtp;
$c->reply;
my ($r, $kw) = $c->ehlo('client.test');
ok((grep { $_ eq 'SIZE 10000' } @$kw), 'EHLO advertises SIZE 10000') or diag($r);
is($c->cmd('MAIL FROM:<s@src.test> SIZE=10001'), '552 5.3.4 Message size exceeds fixed limit',
    'SIZE= over the limit: 552 5.3.4');
like($c->cmd('MAIL FROM:<s@src.test> SIZE=9000'), qr/^250 2\.1\.0 /, 'SIZE= under the limit: 250');

# recipients
like($c->cmd("RCPT TO:<u$_\@example.test>"), qr/^250 /, "RCPT $_ of 3 accepted") for 1 .. 3;
is($c->cmd('RCPT TO:<u4@example.test>'), '452 4.5.3 Too many recipients', '4th recipient: 452 4.5.3 Too many recipients');
is($c->cmd('RCPT TO:<u5@example.test>'), '452 4.5.3 Too many recipients', '5th recipient: 452 4.5.3 too');

# data over the limit
like($c->cmd('DATA'), qr/^354 /, 'DATA');
my $big = "Subject: big\r\n\r\n" . (('x' x 78) . "\r\n") x 250;	# 20 kB
$c->send($big . ".\r\n");
is($c->reply, '552 5.3.4 Message size exceeds fixed limit', 'data over the limit: 552 5.3.4');
is_deeply([$mx->queue_ids], [], 'nothing queued for the oversized message');
like($c->cmd('RSET'), qr/^250 /, 'session goes on after 552');

# a message just under the limit passes
my $ok = $c->transaction('s@src.test', ['u1@example.test'], "Subject: fits\r\n\r\n" . (('y' x 78) . "\r\n") x 100);
like($ok, qr/^250 2\.0\.0 Ok: queued as /, '8 kB message queued');

# line length
is($c->cmd('NOOP ' . ('x' x 595)), '500 5.5.2 Line too long', '602-octet command line: 500 5.5.2 Line too long');
like($c->cmd('NOOP'), qr/^250 /, 'session continues: NOOP 250');
like($c->cmd('NOOP ' . ('x' x 505)), qr/^250 /, 'a line of exactly 512 octets (with CRLF) is fine');
is($c->cmd('NOOP ' . ('x' x 506)), '500 5.5.2 Line too long', '513 octets: 500 5.5.2');
is($c->cmd('MAIL FROM:<' . ('a' x 600) . '@src.test>'), '500 5.5.2 Line too long', 'long MAIL line: 500 5.5.2');
like($c->cmd('RCPT TO:<u1@example.test>'), qr/^503 5\.5\.1 /, 'no transaction was opened by the long MAIL line');
is($c->cmd('NOOP ' . ('z' x 200000)), '500 5.5.2 Line too long', '200 kB line: one 500 5.5.2');
is($c->pending(0.3), '', 'only one reply for the long line');
like($c->cmd('NOOP'), qr/^250 /, 'session continues after 200 kB line');

# hops
my $hdr = join('', map { "Received: from hop$_.test by relay$_.test; Thu, 1 Jan 2026 00:00:00 +0000\r\n" } 1 .. 50);
my $fifty = $c->transaction('s@src.test', ['u1@example.test'], $hdr . "Subject: 50 hops\r\n\r\nbody\r\n");
like($fifty, qr/^250 2\.0\.0 Ok: queued as /, '50 Received: headers: accepted');
my $hdr51 = $hdr . "Received: from hop51.test by relay51.test; Thu, 1 Jan 2026 00:00:00 +0000\r\n";
is($c->transaction('s@src.test', ['u1@example.test'], $hdr51 . "Subject: 51 hops\r\n\r\nbody\r\n"),
    '554 5.4.6 Too many hops', '51 Received: headers: 554 5.4.6 Too many hops');
is(scalar(my @q = $mx->queue_ids), 2, 'only the two good messages are queued');
like($c->cmd('QUIT'), qr/^221 /, 'QUIT');
$c->close;

# command timeout
$c = $mx->session;
my $t0 = time;
$r = $c->reply(8);
like($r, qr/^421 4\.4\.2 /, 'idle after EHLO: 421 4.4.2');
my $dt = time - $t0;
ok($dt >= 1.5 && $dt < 6, sprintf('timeout after about command_timeout=2 s (%.1f s)', $dt));
ok($c->closed(3), 'closed after the timeout');

# data timeout
$c = $mx->session;
$c->cmd('MAIL FROM:<s@src.test>');
$c->cmd('RCPT TO:<u1@example.test>');
like($c->cmd('DATA'), qr/^354 /, 'DATA');
$c->send("Subject: slow\r\n\r\nfirst half of the mes");
$r = $c->reply(8);
like($r, qr/^421 4\.4\.2 /, 'stalled in the middle of DATA: 421 4.4.2');
ok($c->closed(3), 'closed after the data timeout');
is(scalar(my @q2 = $mx->queue_ids), 2, 'nothing queued for the interrupted message');

# connection limits: 2 per client address, 5 in all
sleep 0.5;
my @held;
my $client = sub {
	my ($addr) = @_;
	my $k = $mx->smtp(local_addr => $addr);
	return ($k, $k->reply(5));
};
my ($a1, $g1) = $client->('127.0.0.1');
my ($a2, $g2) = $client->('127.0.0.1');
like($g1, qr/^220 /, '1st connection from 127.0.0.1: 220');
like($g2, qr/^220 /, '2nd connection from 127.0.0.1: 220');
my ($a3, $g3) = $client->('127.0.0.1');
like($g3, qr/^421 4\.7\.0 /, '3rd connection from 127.0.0.1 (max_connections_per_client=2): 421 4.7.0');
ok($a3->closed(3), '... and closed');
my ($b1, $h1) = $client->('127.0.0.2');
my ($b2, $h2) = $client->('127.0.0.2');
my ($d1, $k1) = $client->('127.0.0.3');
like($_, qr/^220 /, 'connections 3-5 from other addresses: 220') for $h1, $h2, $k1;
my ($d2, $k2) = $client->('127.0.0.4');
like($k2, qr/^421 4\.7\.0 /, '6th connection (max_connections=5): 421 4.7.0');
ok($d2->closed(3), '... and closed');
like($a1->cmd('NOOP'), qr/^250 /, 'held sessions unaffected');
$a1->cmd('QUIT');
$a1->close;
my $after = wait_until(sub {
	my ($k, $g) = $client->('127.0.0.5');
	return $g && $g =~ /^220 / ? $k : undef;
}, 5, 0.2);
ok($after, 'a slot is free again once a session ended');
$_->close for grep { $_ } $a2, $b1, $b2, $d1, $after;

# too many refusals: a session that collects SMTP_MAX_ERRORS (50) 5xx
# replies is closed with 421 4.7.0 (no endless probing of the table)
ok(wait_until(sub { ($mx->status_json // {})->{connections}{current} == 0 }, 5, 0.1),
    'every session above has ended');
$c = $mx->session;
like($c->cmd('MAIL FROM:<s@src.test>'), qr/^250 /, 'MAIL');
my @r = map { $c->cmd("RCPT TO:<nobody$_\@example.test>") } 1 .. 50;
is(scalar(grep { /^550 5\.1\.1 / } @r), 50, '50 unknown recipients: 550 5.1.1 each');
like($c->reply(3) // '', qr/^421 4\.7\.0 .*too many errors/,
    'the 50th refusal is followed by 421 4.7.0 too many errors');
ok($c->closed(3), '... and the session is closed');

# a client that never reads its replies: after the write timeout
# (command_timeout 2 s) the session is gone, its slot free again
{
	use Socket qw(PF_INET SOCK_STREAM SOL_SOCKET SO_RCVBUF inet_aton pack_sockaddr_in);
	socket(my $sk, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
	setsockopt($sk, SOL_SOCKET, SO_RCVBUF, 4096);
	connect($sk, pack_sockaddr_in($mx->port, inet_aton('127.0.0.1'))) or die "connect: $!";
	my $flood = "NOOP\r\n" x 20000;
	my $sent = 0;
	my $t0 = time;
	while ($sent < 5 * length($flood) && time - $t0 < 10) {
		my $w = '';
		vec($w, fileno($sk), 1) = 1;
		last unless select(undef, my $wo = $w, undef, 1) > 0;
		my $n = syswrite($sk, $flood);
		last unless defined $n && $n > 0;
		$sent += $n;
	}
	ok($sent > 0, "a non-reading client sent $sent octets of NOOPs");
	ok(wait_until(sub { ($mx->status_json // {})->{connections}{current} == 0 }, 20, 0.2),
	    'its session is freed after the write timeout (no stuck connection)');
	close $sk;
}

$mx->stop_ok;

# pregreet: a second daemon that waits 2 s before its banner
my $pg = MxTest::Daemon->new(config => { filters => { pregreet_wait => 2 } });
$pg->start;
sleep 0.3;
$c = $pg->smtp;
$c->send("EHLO early.test\r\n");
$r = $c->reply(8);
like($r, qr/^554 5\.5\.1 /, 'talking before the banner: 554 5.5.1');
unlike($r // '', qr/^220/m, 'no banner for the early talker');
ok($c->closed(3), 'early talker disconnected');

$c = $pg->smtp;
$t0 = time;
$r = $c->reply(8);
$dt = time - $t0;
is($r, '220 mx.test.example ESMTP', 'patient client gets 220');
ok($dt >= 1.5, sprintf('banner after pregreet_wait (%.1f s)', $dt));
like($c->cmd('EHLO patient.test'), qr/^250[ -]/, 'patient client can talk');
$c->cmd('QUIT');
$pg->stop_ok;
done_testing();
