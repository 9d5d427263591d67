# milter_peers.t - real milters from Debian in the chain: rspamd (proxy
# worker in milter mode, self-scan, DNS from the test's dnsmasq) then
# OpenDKIM signing for sender.test. GTUBE is refused for a filtered
# recipient and delivered to a nofilter one of the same transaction; a
# clean message arrives with rspamd's headers and a DKIM signature that a
# verifying OpenDKIM (behind a second mxrelayd) finds valid.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use MxMilter;
use Time::HiRes qw(time sleep);
use POSIX ();

need_programs('smtp-sink', 'dnsmasq', 'dig', 'rspamd', 'opendkim', 'opendkim-genkey');
watchdog(120);

my $dns = MxPeers::DNS->new(a => [['mx.sender.test', '127.0.0.1']],
    txt => [['sender.test', 'v=spf1 ip4:127.0.0.1 -all']]);
my $rspamd = MxMilter::Rspamd->new(dns => $dns);
my $signer = MxMilter::OpenDKIM->new(mode => 's', domain => 'sender.test');
my $sink = MxPeers::Sink->new;

my $chain = sprintf('( { name = "rspamd"; socket = "%s"; timeout = 30; }, '
    . '{ name = "opendkim"; socket = "%s"; timeout = 10; } )', $rspamd->socket, $signer->socket);
my $mx = delivery_daemon(delivery => { retry_schedule => [300] },
    config => { filters => { milters => \$chain } });
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '[127.0.0.1]:' . $sink->port);
$mx->ctl_ok('address', 'add', 'joe@example.test');
$mx->ctl_ok('address', 'add', 'nofilter@example.test', '--nofilter');

sub message {
	my ($subject, $body) = @_;
	return "From: Alice <a\@sender.test>\r\nTo: joe\@example.test\r\n"
	    . "Subject: $subject\r\nDate: " . POSIX::strftime('%a, %d %b %Y %H:%M:%S +0000', gmtime)
	    . "\r\nMessage-ID: <$subject.$$\@sender.test>\r\nMIME-Version: 1.0\r\n"
	    . "Content-Type: text/plain; charset=us-ascii\r\n\r\n$body";
}

sub send_msg {
	my ($m, $rcpts, $text) = @_;
	my $c = $m->session(helo => 'mx.sender.test');
	my $r = $c->transaction('a@sender.test', $rcpts, $text);
	$c->cmd('QUIT');
	$c->close;
	return $r // 'EOF';
}

sub sink_with {
	my ($s, $re) = @_;
	return grep { $_->{text} =~ $re } $s->messages;
}

my $gtube = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';

# --- GTUBE: refused for the filtered recipient -----------------------------
my $r = send_msg($mx, ['joe@example.test'], message('gtube1', "$gtube\r\n"));
like($r, qr/^5\d\d 5\.7\.1 \S/, "GTUBE to a filtered recipient: rspamd's 5xx");

# --- GTUBE in a mixed transaction: delivered to the nofilter one ------------
$r = send_msg($mx, ['joe@example.test', 'nofilter@example.test'], message('gtube2', "$gtube\r\n"));
like($r, qr/^250 /, 'GTUBE to joe and nofilter: 250');
my ($qid) = $r =~ /queued as (\S+)/;
ok(wait_until(sub { sink_with($sink, qr/Subject: gtube2/) == 1 }, 20, 0.1), 'one copy delivered')
    or diag($mx->log_tail(3000));
my ($m) = sink_with($sink, qr/Subject: gtube2/);
is_deeply($m ? $m->{rcpts} : [], ['<nofilter@example.test>'], 'to the nofilter recipient only');
like($mx->log, qr/milter rcpt refused id=\Q$qid\E to=<joe\@example\.test> milter=rspamd reply="5\d\d 5\.7\.1 [^"]+"/,
    'the refused copy is logged with the reason');
is(scalar(sink_with($sink, qr/Subject: gtube1/)), 0, 'the first GTUBE message went nowhere');

# --- a clean message: rspamd's headers and OpenDKIM's signature -------------
my $t0 = time;
$r = send_msg($mx, ['joe@example.test'], message('clean',
    "Hello Joe,\r\n\r\nthe minutes of yesterday's meeting follow next week.\r\n\r\nAlice\r\n"));
like($r, qr/^250 /, 'clean message: 250') or diag($rspamd->log);
diag(sprintf('end of data to 250 with rspamd and opendkim: %.0f ms', (time - $t0) * 1000));
ok(wait_until(sub { sink_with($sink, qr/Subject: clean/) == 1 }, 20, 0.1), 'delivered');
($m) = sink_with($sink, qr/Subject: clean/);
my $text = $m ? $m->{text} : '';
like($text, qr/^X-Spamd-Result: default: False \[/m, "rspamd's X-Spamd-Result header");
like($text, qr/^X-Rspamd-Queue-Id: \Q$1\E/m, "rspamd's queue id header is ours") if $r =~ /queued as (\S+)/;
like($text, qr/^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=sender\.test;\s+s=test;/m,
    "OpenDKIM's signature for sender.test");
like($mx->log, qr/smtp queued id=\S+ .*milters="rspamd=accept\/\d+ms opendkim=accept\/\d+ms"/,
    'both verdicts in the log line');

# --- the signature verifies: OpenDKIM in verify mode behind a 2nd relay ------
my $verifier = MxMilter::OpenDKIM->new(mode => 'v', keys => [$signer->key_record]);
my $sink2 = MxPeers::Sink->new;
my $mx2 = delivery_daemon(delivery => { retry_schedule => [300] }, config => { filters => {
    milters => \sprintf('( { name = "verify"; socket = "%s"; timeout = 10; } )', $verifier->socket) } });
$mx2->ctl_ok('domain', 'add', 'example.test', '--legacy', '[127.0.0.1]:' . $sink2->port);
$mx2->ctl_ok('address', 'add', 'joe@example.test');
(my $crlf = $text) =~ s/\n/\r\n/g;
$r = send_msg($mx2, ['joe@example.test'], dot_stuff($crlf));
like($r, qr/^250 /, 'the signed message relayed again');
is($sink2->wait_count(1, 20), 1, 'and delivered');
my ($v) = $sink2->messages;
like($v ? $v->{text} : '', qr/^Authentication-Results: verifier\.test;\s+dkim=pass /m,
    'the verifying OpenDKIM says dkim=pass') or diag($v ? $v->{text} : $verifier->log);

my (undef, $st) = $mx->ctl_json('stats');
is($st->{milter_rspamd_reject}, 2, 'relayctl stats: rspamd rejected two messages');
is($st->{milter_opendkim_accept}, 3, 'relayctl stats: opendkim accepted three');

done_testing;
