# starttls.t - STARTTLS (RFC 3207) and plaintext command injection (SPEC 5)
use strict;
use warnings;
use Test::More;
use IO::Socket::SSL;
use MxTest;

watchdog(90);
my $certdir = tmpdir();
my ($cert, $key) = gen_cert($certdir);
my $mx = MxTest::Daemon->new(config => { tls => { certificate => $cert, key => $key } });
$mx->start;
$mx->setup(domains => ['example.test'], addresses => ['joe@example.test']);

# advertisement and upgrade
my $c = $mx->smtp;
like($c->reply, qr/^220 /, 'greeting');
my ($r, $kw) = $c->ehlo('client.test');
ok((grep { uc eq 'STARTTLS' } @$kw), 'EHLO advertises STARTTLS when a certificate is set') or diag($r);
like($c->cmd('STARTTLS'), qr/^220 2\.0\.0 /, 'STARTTLS: 220 2.0.0');
my $up = ok($c->starttls, 'TLS handshake succeeds') or diag($c->{tls_error});
SKIP: {
skip 'no TLS session', 13 unless $up;
my $ver = $c->sock->can('get_sslversion') ? $c->sock->get_sslversion : '';
$ver =~ s/_/./;		# IO::Socket::SSL says TLSv1_3 for TLSv1.3
like($ver, qr/^TLSv1\.[23]\z/, "TLS version >= 1.2 ($ver)");
my $cipher = $c->sock->can('get_cipher') ? $c->sock->get_cipher : '';
ok($cipher, "cipher $cipher");
like($c->cmd('MAIL FROM:<s@src.test>'), qr/^503 5\.5\.1 /, 'MAIL before the post-TLS EHLO: 503 5.5.1');
($r, $kw) = $c->ehlo('client.test');
like($r, qr/^250[ -]/, 'EHLO over TLS');
ok(!(grep { uc eq 'STARTTLS' } @$kw), 'STARTTLS no longer offered after TLS is up') or diag($r);
like($c->cmd('STARTTLS'), qr/^(503 5\.5\.1|554 5\.5\.1|502 5\.5\.1) /, 'a second STARTTLS is refused');

# a message over TLS
my $t = $c->transaction('s@src.test', ['joe@example.test'], "Subject: tls\r\n\r\nsecret\r\n");
like($t, qr/^250 2\.0\.0 Ok: queued as \S+\z/, 'message over TLS queued');
my ($id) = ($t // '') =~ /queued as (\S+)/;
my $s = $id ? $mx->spool($id) : undef;
my ($received) = ($s ? $s->{message} : '') =~ /\A(Received:.*?\r\n)(?![ \t])/s;
$received //= '';
like($received, qr/\Q$ver\E/, "Received: mentions the TLS version ($ver)") or diag($received);
like($received, qr/\Q$cipher\E/, "Received: mentions the cipher ($cipher)") or diag($received);
like($c->cmd('QUIT'), qr/^221 /, 'QUIT over TLS');
}
$c->close;

# swaks --tls
SKIP: {
	skip 'no TLS session works', 2 unless $up;
	my ($rc, $out, $sid) = $mx->swaks('--tls', '--from', 's@src.test', '--to', 'joe@example.test');
	is($rc, 0, 'swaks --tls succeeds') or diag($out);
	ok($sid, 'swaks --tls message queued');
}

# injection: commands pipelined behind STARTTLS must be discarded
# (skipped when no handshake works at all: that failure is reported above)
for my $inject (!$up ? () : ("RSET\r\n", "MAIL FROM:<x\@y.test>\r\n",
    "EHLO evil.test\r\nMAIL FROM:<x\@y.test>\r\nRCPT TO:<joe\@example.test>\r\n")) {
	(my $show = $inject) =~ s/\r\n/\\r\\n/g;
	$c = $mx->session;
	$c->send("STARTTLS\r\n$inject");
	like($c->reply, qr/^220 /, "STARTTLS\\r\\n$show in one write: 220");
	is($c->{buf}, '', 'no plaintext reply to the injected command before the handshake');
	ok($c->starttls, 'handshake succeeds despite the injected bytes') or do { diag($c->{tls_error}); $c->close; next };
	my $first = $c->cmd('EHLO client.test');
	like($first, qr/\A250-mx\.test\.example/, "first reply over TLS is the one to our EHLO (injected $show not answered)")
	    or diag($first);
	like($c->cmd('MAIL FROM:<s@src.test>'), qr/^250 2\.1\.0 /,
	    'MAIL accepted: no injected transaction is open');
	like($c->cmd('RCPT TO:<joe@example.test>'), qr/^250 /, 'RCPT');
	like($c->cmd('RSET'), qr/^250 /, 'RSET');
	is($c->pending(0.3), '', 'no stray replies');
	$c->cmd('QUIT');
	$c->close;
}

# legacy TLS versions: refused, if the local OpenSSL lets a client try them
for my $old ('TLSv1', 'TLSv1_1') {
	SKIP: {
		skip 'no TLS session works', 1 unless $up;
		skip "local OpenSSL cannot offer $old", 1 unless client_can_try($old);
		$c = $mx->session;
		$c->cmd('STARTTLS');
		my $ok = $c->starttls(SSL_version => $old, SSL_cipher_list => 'DEFAULT:@SECLEVEL=0');
		ok(!$ok, "$old client refused");
		$c->close;
	}
}

$mx->stop_ok;
done_testing();

# client_can_try - can IO::Socket::SSL here complete VERSION with a server
# that allows it (a local throwaway server, forked)?
sub client_can_try {
	my ($version) = @_;
	my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1, ReuseAddr => 1)
	    or return 0;
	my $port = $l->sockport;
	my $pid = fork;
	return 0 unless defined $pid;
	if ($pid == 0) {
		alarm 10;
		my $a = $l->accept;
		IO::Socket::SSL->start_SSL($a, SSL_server => 1, SSL_cert_file => $cert, SSL_key_file => $key,
		    SSL_version => $version, SSL_cipher_list => 'DEFAULT:@SECLEVEL=0');
		POSIX::_exit(0);
	}
	close $l;
	my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 5);
	my $ok = $sock && IO::Socket::SSL->start_SSL($sock, SSL_version => $version,
	    SSL_cipher_list => 'DEFAULT:@SECLEVEL=0', SSL_verify_mode => SSL_VERIFY_NONE, Timeout => 5);
	close $sock if $sock;
	waitpid($pid, 0);
	return $ok ? 1 : 0;
}
