# reload.t - relayctl reload and SIGHUP (SPEC 2, 8): a new certificate and
# new limits apply to new sessions and commands, established sessions go
# on, and a bad configuration is refused with the old one kept in force.
use strict;
use warnings;
use Test::More;
use IO::Socket::SSL;
use MxTest;

watchdog(90);
my ($cert_a, $key_a) = gen_cert(tmpdir(), 'a.mx.test');
my ($cert_b, $key_b) = gen_cert(tmpdir(), 'b.mx.test');
my $mx = MxTest::Daemon->new(config => {
	tls => { certificate => $cert_a, key => $key_a },
	limits => { max_recipients => 1000 },
});
$mx->start;
$mx->setup(domains => ['example.test'],
    addresses => [map { "u$_\@example.test" } 1 .. 5]);

# tls_session - a client through STARTTLS; returns (client, peer CN)
sub tls_session {
	my $c = $mx->smtp;
	$c->reply;
	$c->ehlo('client.test');
	$c->cmd('STARTTLS');
	return ($c, undef) unless $c->starttls;
	my $cn = $c->sock->peer_certificate('cn');
	$c->ehlo('client.test');
	return ($c, $cn);
}

my ($old, $cn) = tls_session();
is($cn, 'a.mx.test', 'before reload: certificate A');

# reload with certificate B and a lower recipient limit
$mx->{config}{tls} = { certificate => $cert_b, key => $key_b };
$mx->{config}{limits}{max_recipients} = 2;
$mx->write_config;
my ($rc, $out, $err) = $mx->ctl('reload');
is($rc, 0, 'relayctl reload: exit 0') or diag("$out$err");
like($out, qr/reloaded/, 'relayctl reload says so');

my ($new, $cn2) = tls_session();
is($cn2, 'b.mx.test', 'a new STARTTLS session sees certificate B');
ok($new->transaction('s@src.test', ['u1@example.test'], "Subject: new\r\n\r\nx\r\n")
    =~ /^250 2\.0\.0 Ok: queued as/, 'the new session delivers');
$new->close;

# the established session continues, on its old TLS session
like($old->cmd('NOOP'), qr/^250 /, 'the established TLS session continues after the reload');
like($old->transaction('s@src.test', ['u2@example.test'], "Subject: old\r\n\r\nx\r\n"),
    qr/^250 2\.0\.0 Ok: queued as/, 'and completes a transaction');
$old->close;

# the new limit applies
my $c = $mx->session;
like($c->cmd('MAIL FROM:<s@src.test>'), qr/^250 /, 'MAIL');
like($c->cmd("RCPT TO:<u$_\@example.test>"), qr/^250 /, "RCPT $_ within the new limit") for 1 .. 2;
like($c->cmd('RCPT TO:<u3@example.test>'), qr/^452 4\.5\.3 Too many recipients/,
    'the third recipient: 452 4.5.3 (max_recipients 2 after reload)');
$c->close;

# a bad configuration: refused, with the reason; the old one stays in force
$mx->{config}{limits}{max_recipients} = 0;
$mx->write_config;
($rc, $out, $err) = $mx->ctl('reload');
is($rc, 1, 'reload of an invalid file: exit 1');
like($err, qr/limits\.max_recipients/, 'the reason names the key') or diag($err);
like($err, qr/stays in force/, 'and says the running configuration stays');
$c = $mx->session;
$c->cmd('MAIL FROM:<s@src.test>');
$c->cmd("RCPT TO:<u$_\@example.test>") for 1 .. 2;
like($c->cmd('RCPT TO:<u3@example.test>'), qr/^452 4\.5\.3 /, 'the old limit (2) is still in force');
$c->close;

# a certificate that cannot be read: refused as well
$mx->{config}{limits}{max_recipients} = 3;
$mx->{config}{tls} = { certificate => "$cert_b.missing", key => $key_b };
$mx->write_config;
($rc, $out, $err) = $mx->ctl('reload');
is($rc, 1, 'reload with a missing certificate file: exit 1');
like($err, qr/\Q$cert_b.missing\E/, 'the reason names the file') or diag($err);
(undef, $cn) = tls_session();
is($cn, 'b.mx.test', 'STARTTLS still uses certificate B');

# SIGHUP does the same as relayctl reload
$mx->{config}{tls} = { certificate => $cert_a, key => $key_a };
$mx->write_config;
# earlier reloads logged "reload done" too: wait for one more of them
my $done_before = () = $mx->log =~ /reload done/g;
kill 'HUP', $mx->pid;
ok(wait_until(sub { my $n = () = $mx->log =~ /reload done/g; $n > $done_before }, 5),
    'SIGHUP: reload done');
$c = $mx->session;
$c->cmd('MAIL FROM:<s@src.test>');
like($c->cmd("RCPT TO:<u$_\@example.test>"), qr/^250 /, "after SIGHUP: RCPT $_ accepted") for 1 .. 3;
like($c->cmd('RCPT TO:<u4@example.test>'), qr/^452 4\.5\.3 /, 'the fourth: 452 (max_recipients 3)');
$c->close;
(undef, $cn) = tls_session();
is($cn, 'a.mx.test', 'after SIGHUP: certificate A again');

# a restart-only key is kept until the restart, with a warning
$mx->{config}{paths}{spool} = $mx->dir . '/elsewhere';
$mx->write_config;
is(($mx->ctl('reload'))[0], 0, 'reload with a changed paths.spool: accepted');
like($mx->log, qr/paths\.spool need a restart/, 'logged: paths.spool needs a restart');
ok(!-d $mx->dir . '/elsewhere', 'the spool did not move');

$mx->stop_ok;
done_testing();
