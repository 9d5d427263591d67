# verify_legacy.t - recipient verification at the old server (SPEC 10,
# relayctl domain set DOMAIN --verify-legacy on): the old server is a real
# Postfix that knows joe and mary (relay_recipient_maps) and logs every
# RCPT to joe (a WARN access action), so that probes can be counted there.
# An address not in our table that Postfix accepts gets 250 and its mail
# is delivered through Postfix; one it rejects gets 550 5.1.1; an old
# server that never answers gets 450 4.1.1 within verify.timeout while
# other sessions are served at once; the second RCPT is answered from the
# cache, without a probe; address list --verified and address learn.
use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use MxTest;
use MxPeers;
use Time::HiRes qw(time sleep);

need_programs('postfix', 'smtp-sink');
watchdog(90);

my $TIMEOUT = 2;
my $behind = MxPeers::Sink->new;
my $pf = MxPeers::Postfix->new(relay_domains => 'example.test',
    relayhost => '[127.0.0.1]:' . $behind->port,
    extra => {
	relay_recipient_maps => 'inline:{ joe@example.test=ok, mary@example.test=ok }',
	smtpd_recipient_restrictions => 'check_recipient_access inline:{ '
	    . '{ joe@example.test = WARN rcpt-for-joe } }, permit_mynetworks, reject_unauth_destination',
    });
# an old server that accepts connections and never says a word
my $hang = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
    Listen => 16, Proto => 'tcp') or BAIL_OUT("listen: $!");
my $RATE = 4;		# probes per domain and minute
my $mx = delivery_daemon(config => { verify => { timeout => $TIMEOUT,
    max_probes_per_minute => $RATE } });
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '127.0.0.1:' . $pf->port);
$mx->ctl_ok('domain', 'add', 'hang.test', '--legacy', '127.0.0.1:' . $hang->sockport);
$mx->ctl_ok('address', 'add', 'mary@example.test');

# the WARN action's log line: "warn: RCPT from ...: rcpt-for-joe"
sub rcpt_for_joe { my @l = $pf->log =~ /warn: RCPT from .*rcpt-for-joe/g; return scalar @l; }

# off (the default): an unknown address is refused as before, nothing asked
my $c = $mx->session;
$c->ehlo('client.test');
$c->cmd('MAIL FROM:<a@src.test>');
like($c->cmd('RCPT TO:<joe@example.test>'), qr/^550 5\.1\.1 /, 'verification off: 550 5.1.1');
$c->close;
is(rcpt_for_joe(), 0, '... and the old server was not asked');

my $out = $mx->ctl_ok('domain', 'set', 'example.test', '--verify-legacy', 'on');
like($out, qr/unknown recipients verified at the legacy servers/, 'domain set --verify-legacy on');
my ($rc, $err);
($rc, $out, $err) = $mx->ctl('domain', 'set', 'example.test', '--verify-legacy', 'maybe');
is($rc, 2, '--verify-legacy maybe: usage error');
$mx->ctl_ok('domain', 'set', 'hang.test', '--verify-legacy', 'on');
like($mx->ctl_ok('domain', 'show', 'example.test'), qr/^verify legacy:\s+on$/m, 'domain show says so');

# accepted by the old server: 250, then the cache
$c = $mx->session;
$c->ehlo('client.test');
$c->cmd('MAIL FROM:<a@src.test>');
my $t0 = time;
my $r = $c->cmd('RCPT TO:<Joe@example.test>');
my $t_probe = time - $t0;
like($r, qr/^250 /, 'joe, unknown here, accepted by the old server: 250');
is(rcpt_for_joe(), 1, 'one RCPT at the old server (the probe)');
like($c->cmd('RCPT TO:<nobody@example.test>'), qr/^550 5\.1\.1 <nobody\@example\.test>: Recipient address rejected: User unknown/,
    'nobody, rejected by the old server: 550 5.1.1');
$c->cmd('RSET');
$c->cmd('MAIL FROM:<a@src.test>');
$t0 = time;
$r = $c->cmd('RCPT TO:<joe@example.test>');
my $t_cache = time - $t0;
like($r, qr/^250 /, 'joe again: 250');
is(rcpt_for_joe(), 1, '... from the cache: no second probe at the old server');
like($c->cmd('RCPT TO:<nobody@example.test>'), qr/^550 5\.1\.1 /, 'nobody again: 550 from the cache');
like($c->cmd('DATA'), qr/^354 /, 'DATA');
$c->send("Subject: verified\r\n\r\nfor joe\r\n.\r\n");
like($c->reply(30), qr/^250 2\.0\.0 Ok: queued as /, 'the message for joe is queued');
$c->cmd('QUIT');
$c->close;
note(sprintf('RCPT latency: probed %.1f ms, cached %.1f ms', $t_probe * 1000, $t_cache * 1000));
is($behind->wait_count(1, 30), 1, 'the message went through the old server');
my ($m) = $behind->messages;
is_deeply($m->{rcpts}, ['<joe@example.test>'], '... for joe');

# an old server that hangs: 450 in time, and the loop serves others meanwhile
my $h = $mx->session;
$h->ehlo('client.test');
$h->cmd('MAIL FROM:<a@src.test>');
$h->send("RCPT TO:<someone\@hang.test>\r\n");
$t0 = time;
my $other = $mx->session;
my ($er) = $other->ehlo('other.test');
like($er // '', qr/^250/, 'another session is served at once meanwhile');
cmp_ok(time - $t0, '<', 1, sprintf('... in %.2f s', time - $t0));
$other->close;
$r = $h->reply($TIMEOUT + 5);
my $dt = time - $t0;
like($r // '', qr/^450 4\.1\.1 <someone\@hang\.test>: Recipient address rejected: unverified address/,
    'the hanging old server: 450 4.1.1');
cmp_ok($dt, '<', $TIMEOUT + 1.5, sprintf('... after %.1f s (verify.timeout %d s)', $dt, $TIMEOUT));
cmp_ok($dt, '>=', $TIMEOUT - 0.5, '... not before the timeout');
$h->close;

# a flood of unknown recipients is not a flood of probes: example.test
# has used 2 of its $RATE probes this minute
sub rejected_at_pf { my @l = $pf->log =~ /NOQUEUE: reject: RCPT .*to=<flood/g; return scalar @l; }
$c = $mx->session;
$c->ehlo('client.test');
$c->cmd('MAIL FROM:<a@src.test>');
my @flood = map { $c->cmd("RCPT TO:<flood$_\@example.test>") } 1 .. 6;
$c->close;
is(scalar(grep { /^550 5\.1\.1 / } @flood), $RATE - 2, 'the flood: as many 550s as probes were left this minute');
is(scalar(grep { /^450 4\.1\.1 .*too many verifications/ } @flood), 8 - $RATE,
    '... the rest 450 4.1.1, not probed');
ok(wait_until(sub { rejected_at_pf() == $RATE - 2 }, 5, 0.1), '... and the old server saw only those probes');

# stats, list, learn
my ($jrc, $j) = $mx->ctl_json('stats');
is($j->{verify_probes}, 3 + $RATE - 2, 'stats: probes (joe, nobody, the hanging one, the flood\'s first two)');
is($j->{verify_cache_positive}, 1, 'stats: 1 positive answer from the cache');
is($j->{verify_cache_negative}, 1, 'stats: 1 negative answer from the cache');
is($j->{verify_rate_limited}, 8 - $RATE, 'stats: rate-limited answers');
is($j->{verify_tempfail}, 1 + 8 - $RATE, 'stats: tempfails (the hanging server, the rate)');
($jrc, $j) = $mx->ctl_json('address', 'list', 'example.test', '--verified');
is_deeply([map { $_->{address} } @{$j->{verified}}], ['joe@example.test'],
    'address list --verified: joe (not nobody)');
$out = $mx->ctl_ok('address', 'learn', 'example.test');
like($out, qr/^added \(1\):\n  joe\@example\.test/m, 'address learn adds joe');
like($out, qr/import example\.test: 1 added, 0 updated, 0 unchanged, 0 invalid/, '... with the import report');
like($mx->ctl_ok('address', 'show', 'joe@example.test'), qr/mailbox/, 'joe is in the table as a mailbox');
$out = $mx->ctl_ok('address', 'learn', 'example.test');
like($out, qr/0 added/, 'learning again adds nothing');

# a restart keeps the learnt-by-verification list
$mx->restart;
($jrc, $j) = $mx->ctl_json('address', 'list', 'example.test', '--verified');
is(scalar @{$j->{verified}}, 1, 'the verified address survives a restart');

$mx->stop_ok;
done_testing;
