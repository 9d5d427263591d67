# input_hygiene.t - what an outside probe found (issue 15): bare LF ending a
# command, NUL octets in the body, a forged comment in HELO, lines over 998
# octets; each with its default and its other setting (SPEC 5, mxrelay.conf(5))
use strict;
use warnings;
use Test::More;
use MxTest;

watchdog(60);
# helo_check off: the forged HELO below must reach the Received header
my $mx = MxTest::Daemon->new(config => { filters => { helo_check => JSON::PP::false } });
$mx->start;
$mx->setup(domains => ['example.test'], addresses => ['joe@example.test']);

# the message body of the only queued file whose id is not in %seen
my %seen;
sub new_message {
	my ($d) = @_;
	my @ids = grep { !$seen{$_}++ } $d->queue_ids;
	return undef unless @ids == 1;
	my $s = $d->spool($ids[0]);
	return $s ? $s->{message} : undef;
}

# 1. bare LF ends no command: 500 5.5.2, and nothing of the line is done
my $c = $mx->smtp;
$c->reply;
$c->send("EHLO x.test\nMAIL FROM:<s\@src.test>\n");
is($c->reply, '500 5.5.2 Error: bare <LF> received', 'EHLO ended by a bare LF: 500 5.5.2');
is($c->reply, '500 5.5.2 Error: bare <LF> received', 'MAIL ended by a bare LF: 500 5.5.2');
like($c->cmd('MAIL FROM:<s@src.test>'), qr/^503 5\.5\.1 /, 'the bare-LF EHLO was not taken: MAIL needs EHLO');
like($c->cmd('EHLO x.test'), qr/^250[ -]/, 'EHLO with CRLF: 250');
$c->send("NOOP\r\nNOOP\nNOOP\r\n");
like($c->reply, qr/^250 /, 'CRLF NOOP: 250');
is($c->reply, '500 5.5.2 Error: bare <LF> received', 'bare-LF NOOP between two good ones: 500');
like($c->reply, qr/^250 /, 'the next CRLF line is read normally');
is($c->pending(0.3), '', 'no other reply');

# 2. NUL octets in the body: 550 5.6.0, nothing queued
like($c->transaction('s@src.test', ['joe@example.test'],
    "Subject: nul\r\n\r\nbefore\r\n\x00.\r\nafter\x00\r\n"),
    qr/^550 5\.6\.0 Message contains NUL characters\z/, 'NUL in the body: 550 5.6.0');
is_deeply([$mx->queue_ids], [], 'nothing queued for the NUL message');

# 3. HELO with a forged comment: the Received header keeps no structure of it
my $evil = 'x.test (by fake.example with ESMTPS; ) X-Evil: yes';
like($c->cmd("EHLO $evil"), qr/^250[ -]/, 'EHLO with spaces and parentheses is taken');
like($c->transaction('s@src.test', ['joe@example.test'], "Subject: helo\r\n\r\nbody\r\n"),
    qr/^250 2\.0\.0 /, 'message after the odd EHLO queued');
my $m = new_message($mx) // '';
my ($rcvd) = $m =~ /\A(Received:.*?\r\n)(?![ \t])/s;
like($rcvd // '', qr/^Received: from x\.test%20%28by%20fake\.example%20with%20ESMTPS%3B%20%29%20X-Evil:%20yes \(\[127\.0\.0\.1\]\)\r\n\tby /,
    'Received: from carries the HELO with every other octet as %HH') or diag($m);
unlike($m, qr/^X-Evil/m, 'no X-Evil header line appears');

# 4. a 5,000-octet body line is folded to lines of at most 998 octets
like($c->cmd('EHLO client.test'), qr/^250[ -]/, 'EHLO');
my $long = 'L' x 5000;
like($c->transaction('s@src.test', ['joe@example.test'], "Subject: long\r\n\r\n$long\r\nend\r\n"),
    qr/^250 2\.0\.0 /, '5000-octet line accepted (long_lines = fold)');
$m = new_message($mx) // '';
my $max = 0;
for (split /\r\n/, $m) { $max = length if length > $max }
is($max, 998, 'longest line in the spool is 998 octets');
(my $joined = $m) =~ s/\r\n //g;
like($joined, qr/\r\n\Q$long\E\r\nend\r\n\z/, 'unfolding CRLF SP gives the line back');
like($c->cmd('QUIT'), qr/^221 /, 'QUIT');
$mx->stop_ok;

# the other settings: bare LF taken, NULs stripped, long lines refused
my $lax = MxTest::Daemon->new(config => { server => {
	reject_bare_lf => JSON::PP::false, nul_bytes => 'strip', long_lines => 'refuse' } });
$lax->start;
$lax->setup(domains => ['example.test'], addresses => ['joe@example.test']);
$c = $lax->smtp;
$c->reply;
$c->send("EHLO x.test\n");
like($c->reply, qr/^250[ -]/, 'reject_bare_lf = false: a bare LF ends the command');
like($c->transaction('s@src.test', ['joe@example.test'], "Subject: nul\r\n\r\nbefore\r\n\x00.\r\nafter\x00\r\n"),
    qr/^250 2\.0\.0 /, 'nul_bytes = strip: the message is queued');
$m = new_message($lax) // '';
unlike($m, qr/\x00/, 'no NUL octet in the spool');
like($m, qr/\r\nbefore\r\n\.\r\nafter\r\n\z/, 'the NUL line became a plain "." line (stuffed again on the way out)');
is($c->transaction('s@src.test', ['joe@example.test'], "Subject: long\r\n\r\n" . ('L' x 999) . "\r\n"),
    '550 5.6.0 Message has lines over 998 characters', 'long_lines = refuse: 999 octets refused with 550 5.6.0');
like($c->transaction('s@src.test', ['joe@example.test'], "Subject: long\r\n\r\n" . ('L' x 998) . "\r\n"),
    qr/^250 2\.0\.0 /, '998 octets pass');
is(scalar(my @q = $lax->queue_ids), 2, 'two messages queued, not the refused one');
$c->cmd('QUIT');
$lax->stop_ok;
done_testing();
