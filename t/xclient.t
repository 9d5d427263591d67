# xclient.t - XCLIENT only for server.xclient_hosts, HELO sanitising, SIGTERM 421 (SPEC 2, 5)
use strict;
use warnings;
use Test::More;
use MxTest;

watchdog(60);

# default: nobody may use XCLIENT
my $plain = MxTest::Daemon->new;
$plain->start;
my $c = $plain->session;
like($c->cmd('XCLIENT ADDR=192.0.2.9'), qr/^550 5\.7\.0 /, 'XCLIENT refused with 550 5.7.0 outside xclient_hosts');
like($c->cmd('NOOP'), qr/^250 /, 'session goes on');
$c->cmd('QUIT');
$plain->stop_ok;

# 127.0.0.0/8 allowed
my $mx = MxTest::Daemon->new(config => { server => { xclient_hosts => ['127.0.0.0/8'] },
	# the HELO check would refuse the control characters this test sanitises
	filters => { helo_check => JSON::PP::false } });
$mx->start;
$mx->setup(domains => ['example.test'], addresses => ['joe@example.test']);
$c = $mx->smtp;
$c->reply;
my ($r, $kw) = $c->ehlo('proxy.test');
ok((grep { /^XCLIENT\b/i } @$kw), 'EHLO offers XCLIENT to a client inside xclient_hosts') or diag($r);
like($c->cmd('XCLIENT ADDR=192.0.2.9 NAME=[UNAVAILABLE] HELO=real-client.test PROTO=ESMTP'),
    qr/\A220 mx\.test\.example\b/, 'XCLIENT answered with a new 220 greeting');
like($c->cmd('MAIL FROM:<s@src.test>'), qr/^503 5\.5\.1 /, 'MAIL after XCLIENT without EHLO: 503 5.5.1');
like($c->cmd('EHLO real-client.test'), qr/^250[ -]/, 'EHLO again');
my $t = $c->transaction('s@src.test', ['joe@example.test'], "Subject: x\r\n\r\nvia proxy\r\n");
like($t, qr/^250 2\.0\.0 Ok: queued as \S+\z/, 'message queued');
my ($id) = ($t // '') =~ /queued as (\S+)/;
my $s = $id ? $mx->spool($id) : undef;
my ($received) = ($s ? $s->{message} : '') =~ /\A(Received:.*?\r\n)(?![ \t])/s;
$received //= '';
like($received, qr/192\.0\.2\.9/, 'Received: shows the XCLIENT address') or diag($received);
unlike($received, qr/127\.0\.0\.1/, 'Received: does not show the proxy address') or diag($received);
like($received, qr/real-client\.test/, 'Received: shows the client HELO');
$c->cmd('QUIT');

# HELO text is sanitised before it goes into the header
$c = $mx->smtp;
$c->reply;
$r = $c->cmd("EHLO evil.test\x01(x)\xff");
$id = undef;
if (defined $r && $r =~ /^250/) {
	$t = $c->transaction('s@src.test', ['joe@example.test'], "Subject: y\r\n\r\ny\r\n");
	($id) = ($t // '') =~ /queued as (\S+)/;
}
ok($id, 'a message after the odd HELO is queued (helo_check is off here)') or diag($r // 'EOF');
SKIP: {
	skip 'no message to look at (reported above)', 1 unless $id;
	$s = $mx->spool($id);
	($received) = ($s ? $s->{message} : '') =~ /\A(Received:.*?\r\n)(?![ \t])/s;
	ok(defined $received && $received !~ /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\xff]/,
	    'Received: holds no control or 8-bit octets from the HELO') or diag($received);
}
$c->cmd('QUIT');

# SIGTERM: an open session is told 421 and closed
$c = $mx->session;
$c->cmd('MAIL FROM:<s@src.test>');
kill 'TERM', $mx->pid;
$r = $c->reply(10);
like($r, qr/^421 /, 'SIGTERM: an idle session gets 421');
ok($c->closed(5), '... and is closed');
$mx->stop_ok;
done_testing();
