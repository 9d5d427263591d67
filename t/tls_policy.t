# tls_policy.t - tls.ciphers, tls.ciphersuites, tls.min_protocol (issue 15:
# the probe saw CBC suites offered). Default: AEAD chosen whenever the client
# has one, CBC still served to a client that has nothing else; the keys
# narrow it (mxrelay.conf(5)).
use strict;
use warnings;
use Test::More;
use IO::Socket::SSL;
use MxTest;

watchdog(60);
my ($cert, $key) = gen_cert(MxTest::tmpdir());

# handshake - STARTTLS with these IO::Socket::SSL options; returns
# (version, cipher) or () when the handshake fails
sub handshake {
	my ($mx, %ssl) = @_;
	my $c = $mx->session;
	my $r = $c->cmd('STARTTLS');
	die "STARTTLS: " . ($r // 'EOF') . "\n" unless defined $r && $r =~ /^220 /;
	my @got;
	@got = ($c->sock->get_sslversion, $c->sock->get_cipher) if $c->starttls(%ssl);
	$c->close;
	return @got;
}

my $mx = MxTest::Daemon->new(config => { tls => { certificate => $cert, key => $key } });
$mx->start;
my @h = handshake($mx, SSL_version => 'TLSv1_2',
    SSL_cipher_list => 'ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-GCM-SHA384');
is_deeply(\@h, ['TLSv1_2', 'ECDHE-RSA-AES256-GCM-SHA384'],
    'default: a client listing CBC first still gets AES-GCM (server preference)');
@h = handshake($mx, SSL_version => 'TLSv1_2', SSL_cipher_list => 'ECDHE-RSA-AES128-SHA');
is_deeply(\@h, ['TLSv1_2', 'ECDHE-RSA-AES128-SHA'],
    'default: a CBC-only client is still served (opportunistic TLS beats plaintext)');
@h = handshake($mx);
is($h[0], 'TLSv1_3', 'default: TLS 1.3 when the client has it');
like($h[1] // '', qr/^TLS_(AES_256_GCM_SHA384|CHACHA20_POLY1305_SHA256|AES_128_GCM_SHA256)\z/,
    'TLS 1.3 suite from the default ciphersuites');
$mx->stop_ok;

my $strict = MxTest::Daemon->new(config => { tls => { certificate => $cert, key => $key,
	ciphers => 'ECDHE+AESGCM:ECDHE+CHACHA20',
	ciphersuites => 'TLS_CHACHA20_POLY1305_SHA256' } });
$strict->start;
@h = handshake($strict, SSL_version => 'TLSv1_2', SSL_cipher_list => 'ECDHE-RSA-AES128-SHA');
is_deeply(\@h, [], 'tls.ciphers without CBC: a CBC-only client fails the handshake');
@h = handshake($strict, SSL_version => 'TLSv1_2');
like($h[1] // '', qr/^ECDHE-RSA-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)\z/, 'a TLS 1.2 AEAD client is served');
@h = handshake($strict);
is_deeply(\@h, ['TLSv1_3', 'TLS_CHACHA20_POLY1305_SHA256'], 'tls.ciphersuites picks the TLS 1.3 suite');
$strict->stop_ok;

my $tls13 = MxTest::Daemon->new(config => { tls => { certificate => $cert, key => $key,
	min_protocol => 'TLSv1.3' } });
$tls13->start;
@h = handshake($tls13, SSL_version => 'TLSv1_2');
is_deeply(\@h, [], 'min_protocol TLSv1.3: a TLS 1.2 client fails the handshake');
@h = handshake($tls13);
is($h[0], 'TLSv1_3', 'a TLS 1.3 client is served');
like($tls13->log, qr/reason=.*unsupported protocol/, 'the refused handshake is logged with its reason');
$tls13->stop_ok;

# a bad list stops the daemon at start with the key named (mxrelayd -t too)
my $bad = MxTest::Daemon->new(config => { tls => { certificate => $cert, key => $key,
	ciphers => 'NOSUCH' } });
my ($rc, $out, $err) = MxTest::run_cmd(MxTest::mxrelayd_bin(), '-t', '-c', $bad->write_config);
isnt($rc, 0, 'mxrelayd -t refuses an unknown cipher list');
like($out . $err, qr/tls\.ciphers: "NOSUCH" selects no cipher/, 'and names the key');
done_testing();
