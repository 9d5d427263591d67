# trickle.t - a client trickling octets cannot hold a session: a command
# line must be complete within command_timeout of its first octet, and
# the DATA phase ends within data_timeout (plus time for what arrived at
# SMTP_MIN_DATA_RATE), although the client is never silent (SPEC 9)
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use MxTest;

watchdog(60);
my $mx = MxTest::Daemon->new(config => { limits => { command_timeout => 2, data_timeout => 2 } });
$mx->start;
$mx->setup(domains => ['example.test'], addresses => ['joe@example.test']);

# trickle - send BYTES one octet every STEP seconds until a reply comes or
# LIMIT seconds pass; returns (reply, seconds)
sub trickle {
	my ($c, $bytes, $step, $limit) = @_;
	my $t0 = time;
	for my $i (0 .. 1_000_000) {
		my $b = substr($bytes, $i % length $bytes, 1);
		last unless $c->send($b);
		my $p = $c->pending($step);
		return ($p, time - $t0) if length $p;
		last if time - $t0 > $limit;
	}
	return ('', time - $t0);
}

# a command line trickled one octet per 0.4 s: the idle timer never fires
my $c = $mx->session;
my ($r, $dt) = trickle($c, 'NOOP ' . ('x' x 300), 0.4, 10);
like($r, qr/^421 4\.4\.2 /, 'trickled command line: 421 4.4.2');
ok($dt >= 1.8 && $dt < 4.5, sprintf('cut about command_timeout=2 s after its first octet (%.1f s)', $dt));
ok($c->closed(3), 'connection closed');

# a trickled line that ends in time is served, and the clock restarts
$c = $mx->session;
($r, $dt) = trickle($c, "NOOP\r\n", 0.2, 5);
like($r, qr/^250 /, 'a command completed within the deadline is answered');
($r, $dt) = trickle($c, "NOOP\r\n", 0.2, 5);
like($r, qr/^250 /, 'and the next one gets its own deadline');
$c->cmd('QUIT');

# the DATA phase trickled: cut although every octet came within the idle timeout
$c = $mx->session;
$c->cmd('MAIL FROM:<s@src.test>');
$c->cmd('RCPT TO:<joe@example.test>');
like($c->cmd('DATA'), qr/^354 /, 'DATA');
($r, $dt) = trickle($c, "Subject: slow\r\n\r\n" . ('y' x 200), 0.4, 10);
like($r, qr/^421 4\.4\.2 /, 'trickled DATA: 421 4.4.2');
ok($dt >= 1.8 && $dt < 4.5, sprintf('cut about data_timeout=2 s after the 354 (%.1f s)', $dt));
ok($c->closed(3), 'connection closed');
is_deeply([$mx->queue_ids], [], 'nothing queued');
like($mx->log, qr/smtp deadline exceeded in=command/, 'log names the command deadline');
like($mx->log, qr/smtp deadline exceeded in=data/, 'log names the data deadline');

# a normal message in one go is unaffected
$c = $mx->session;
like($c->transaction('s@src.test', ['joe@example.test'], "Subject: ok\r\n\r\nfast\r\n"),
    qr/^250 2\.0\.0 /, 'a message sent at once is queued');
$c->cmd('QUIT');
$mx->stop_ok;
done_testing();
