# nofile.t - the descriptor budget (src/nofile.c): under a hard limit too
# low for max_connections, new sessions get 421 4.7.0 before they eat into
# the descriptors kept for the rest of the daemon, and DATA gets 451 4.3.0
# (before the data is sent) when the message file would; the transaction
# stays and a later DATA goes through
use strict;
use warnings;
use Test::More;
use MxTest;

use constant LIMIT => 120;		# a quarter (30) is kept: 90 sessions

watchdog(60);
my $dir = MxTest::tmpdir();
# a hard limit the daemon cannot raise (ulimit -n sets both)
my $wrap = MxTest::spew("$dir/mxrelayd-limited",
    "#!/bin/sh\nulimit -n " . LIMIT . " || exit 125\nexec '$MxTest::MXRELAYD' \"\$@\"\n");
chmod 0755, $wrap or BAIL_OUT("chmod $wrap: $!");

my $mx = MxTest::Daemon->new(config => { limits => { max_connections => 1000,
    max_connections_per_client => 1000 } });
{
	local $MxTest::MXRELAYD = $wrap;
	$mx->start;
}
$mx->setup(domains => ['example.test'], addresses => ['joe@example.test']);
like($mx->log, qr/startup nofile=${\LIMIT} below 2\*max_connections\+2048=4048: sessions capped at 90/,
    'the daemon logs that it cannot raise its limit, and the cap');
my $cap = 90;

my @c = map { $mx->session } 1 .. $cap;
is(scalar(@c), $cap, "$cap sessions fit");
my $extra = $mx->smtp;
is($extra->reply, '421 4.7.0 ' . $mx->hostname . ' Error: too many connections',
    'one more session: 421 4.7.0 before it eats into the reserve');
ok($extra->closed(3), 'and is closed');
like($mx->log, qr/smtp refused client=127\.0\.0\.1 reason=nofile/, 'logged reason=nofile');

# one session less and one message file fill the budget
like($c[-1]->cmd('QUIT'), qr/^221 /, 'one session leaves');
$c[-1]->close;
pop @c;
wait_until(sub { $mx->log =~ /smtp disconnect reason=quit/ }, 5);
my ($a, $b) = @c;
for my $s ($a, $b) {
	like($s->cmd('MAIL FROM:<s@src.test>'), qr/^250 /, 'MAIL');
	like($s->cmd('RCPT TO:<joe@example.test>'), qr/^250 /, 'RCPT');
}
like($a->cmd('DATA'), qr/^354 /, 'first DATA: 354 (its file fits)');
is($b->cmd('DATA'), '451 4.3.0 Error: too busy, try again later',
    'second DATA: 451 4.3.0 before any data is sent');
like($mx->log, qr/smtp busy reason=nofile/, 'logged');
$a->send("Subject: one\r\n\r\nfirst\r\n.\r\n");
like($a->reply, qr/^250 2\.0\.0 Ok: queued as /, 'the first message is queued');
like($b->cmd('DATA'), qr/^354 /, 'DATA again once the file is closed: 354 (the transaction stayed)');
$b->send("Subject: two\r\n\r\nsecond\r\n.\r\n");
like($b->reply, qr/^250 2\.0\.0 Ok: queued as /, 'the second message is queued');
is(scalar(my @q = $mx->queue_ids), 2, 'both messages in the queue');
$_->close for @c;

$mx->stop_ok;
done_testing();
