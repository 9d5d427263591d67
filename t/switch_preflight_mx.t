# switch_preflight_mx.t - the preflight takes the delivery's path to the
# hosting (SPEC 7, SPEC 3 destinations): hosting.destination =
# "smtp:hosting.test" is found by MX (dnsmasq), the first MX is dead and the
# second, a real Postfix that demands STARTTLS and knows only some
# mailboxes, answers the probe over TLS (tls.outbound = required). No
# message reaches Postfix.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;

need_programs('smtp-sink', 'postfix', 'dnsmasq', 'dig');
watchdog(120);

my $pfdir = MxTest::tmpdir();
my ($cert, $key) = MxTest::gen_cert($pfdir, 'mx2.hosting.test');
chmod 0644, $key;	# Postfix's smtpd runs as postfix
MxTest::spew("$pfdir/recipients", "joe\@example.test OK\nmary\@example.test OK\n");
my $pf = MxPeers::Postfix->new(dir => $pfdir, extra => {
	smtpd_tls_security_level => 'encrypt',
	smtpd_tls_cert_file => $cert,
	smtpd_tls_key_file => $key,
	smtpd_tls_loglevel => 1,
	relay_recipient_maps => "texthash:$pfdir/recipients",
});
# mx1 (preference 10) has nothing listening; mx2 (20) is Postfix
my $dns = MxPeers::DNS->new(
    mx => [['hosting.test', 'mx1.hosting.test', 10], ['hosting.test', 'mx2.hosting.test', 20]],
    a => [['mx1.hosting.test', '127.0.0.2'], ['mx2.hosting.test', '127.0.0.1']]);
my $old = MxPeers::Sink->new;
# switch.require_propagation off: this test is about the switch itself, not
# the MX propagation gate (t/check_mx.t tests that)
my $mx = delivery_daemon(dns => $dns, hosting => 'smtp:hosting.test',
    delivery => { smtp_port => $pf->port },
    config => { switch => { require_propagation => JSON::PP::false },
	tls => { outbound => 'required' } });
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '[127.0.0.1]:' . $old->port);
$mx->ctl_ok('address', 'add', "$_\@example.test") for qw(joe mary bob);

my ($rc, $out, $err) = $mx->ctl('switch', 'example.test', 'hosted');
is($rc, 1, 'switch refused: Postfix does not know bob') or diag($out, $err, $mx->log_tail(2000));
like($err, qr/1 mailbox not accepted by the hosting/, 'one mailbox missing');
like($err, qr/^  bob\@example\.test: 550 /m, 'bob is named with Postfix\'s 550');
unlike($err, qr/(joe|mary)\@example\.test:/, 'joe and mary were accepted');
like($mx->log, qr/probe done server=mx2\.hosting\.test\[127\.0\.0\.1\]:\Q${\ $pf->port}\E ok=1 accepted=2 refused=1/,
    'the probe fell over from the dead first MX to the second');
ok(wait_until(sub { $pf->log =~ /TLS connection established from/ }, 10),
    'the probe spoke TLS to Postfix (it demands STARTTLS)') or diag($pf->log);

$mx->ctl_ok('address', 'remove', 'bob@example.test');
($rc, $out, $err) = $mx->ctl('switch', 'example.test', 'hosted');
is($rc, 0, 'without bob: the switch goes through') or diag($err);
my ($jrc, $j) = $mx->ctl_json('domain', 'show', 'example.test');
is($j->{mode}, 'hosted', 'the domain is hosted');
unlike($pf->log, qr/qmgr\[\d+\]: \w+: from=<>,/, 'no message reached Postfix: the probe sends no DATA');

$mx->stop_ok;
done_testing();
