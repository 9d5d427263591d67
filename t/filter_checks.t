# filter_checks.t - DNSBL, allow-lists, HELO syntax, rate limit, XCLIENT
# identity for every check, nofilter recipients (SPEC 3 filters, 5)
use strict;
use warnings;
use Test::More;
use IO::Socket::IP;
use MxTest;
use MxDNS;

watchdog(90);

my $nib1 = join('.', ('0') x 31);	# ::1 without its last nibble
my $dns = MxDNS->start(
	a => {
		'10.2.0.192.bl.test' => ['127.0.0.2'],	# listed
		'11.2.0.192.bl.test' => ['127.0.0.4'],	# a code we do not count
		'12.2.0.192.bl.test' => ['127.0.0.2'],	# listed but allow-listed
		'12.2.0.192.wl.test' => ['127.0.0.5'],
		"1.$nib1.bl.test" => ['127.0.0.3'],	# ::1
		'0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test' => ['127.0.0.2'],
	},
);
my $port6 = MxTest::free_port();
my $mx = MxTest::Daemon->new(config => {
	server => { xclient_hosts => ['127.0.0.0/8'],
	    listen => [ "127.0.0.1:" . MxTest::free_port(), "[::1]:$port6" ] },
	dns => { nameservers => [$dns->nameserver] },
	filters => {
		dnsbl => { zones => ['bl.test=127.0.0.2,127.0.0.3'], allow_zones => ['wl.test'] },
		helo_check => JSON::PP::true,
	},
});
# the daemon's first listener is the port MxTest talks to
$mx->{port} = ($mx->{config}{server}{listen}[0] =~ /:(\d+)$/)[0];
$mx->start;
$mx->setup(domains => ['example.test'],
    addresses => ['joe@example.test', ['free@example.test', '--nofilter']]);

# as - a session acting as IP (XCLIENT), after EHLO helo
sub as {
	my ($ip, $helo) = @_;
	my $c = $mx->smtp;
	$c->reply;
	$c->cmd('EHLO proxy.test');
	my $x = $c->cmd("XCLIENT ADDR=$ip");
	die "XCLIENT: $x" unless defined $x && $x =~ /^220 /;
	my $e = $c->cmd('EHLO ' . ($helo // 'client.test'));
	die "EHLO: $e" unless $e =~ /^250/;
	return $c;
}

# DNSBL hit: filtered recipient refused, nofilter one accepted, same transaction
my $c = as('192.0.2.10');
like($c->cmd('MAIL FROM:<s@src.test>'), qr/^250 /, 'MAIL');
is($c->cmd('RCPT TO:<joe@example.test>'),
    '554 5.7.1 Service unavailable; client [192.0.2.10] blocked using bl.test',
    'listed client (127.0.0.2): filtered recipient refused with 554 5.7.1');
like($c->cmd('RCPT TO:<free@example.test>'), qr/^250 /, '... nofilter recipient accepted in the same transaction');
like($c->cmd('DATA'), qr/^354 /, 'DATA');
$c->send("Subject: bl\r\n\r\nx\r\n.\r\n");
my $q = $c->reply(15) // '';
like($q, qr/^250 2\.0\.0 Ok: queued as \S+/, 'message queued for the nofilter recipient');
my ($id) = $q =~ /queued as (\S+)/;
my $s = $id ? $mx->spool($id) : undef;
is_deeply($s ? [map { s/^<|>$//gr } @{$s->{rcpts}}] : [], ['free@example.test'], 'only the nofilter recipient in the envelope');
like($s ? $s->{message} : '', qr/\AReceived: from client\.test \(\[192\.0\.2\.10\]\)/,
    'Received: shows the XCLIENT address');
$c->cmd('QUIT');

$c = as('192.0.2.11');
$c->cmd('MAIL FROM:<s@src.test>');
like($c->cmd('RCPT TO:<joe@example.test>'), qr/^250 /, 'answer 127.0.0.4, not in zone=codes: accepted');
$c->cmd('QUIT');

$c = as('192.0.2.12', 'bad..helo');
$c->cmd('MAIL FROM:<s@src.test>');
like($c->cmd('RCPT TO:<joe@example.test>'), qr/^250 /, 'allow-listed client: DNSBL and HELO checks skipped');
$c->cmd('QUIT');

$c = as('IPV6:2001:db8::10');
$c->cmd('MAIL FROM:<s@src.test>');
is($c->cmd('RCPT TO:<joe@example.test>'),
    '554 5.7.1 Service unavailable; client [2001:db8::10] blocked using bl.test',
    'IPv6 address by XCLIENT looked up in nibble form');
$c->cmd('QUIT');

# HELO syntax: a per-recipient verdict
$c = as('192.0.2.20', 'bad..helo');
$c->cmd('MAIL FROM:<s@src.test>');
like($c->cmd('RCPT TO:<joe@example.test>'), qr/^501 5\.5\.2 <bad\.\.helo>: Helo command rejected: Invalid HELO name$/,
    'invalid HELO: filtered recipient refused 501 5.5.2');
like($c->cmd('RCPT TO:<free@example.test>'), qr/^250 /, '... nofilter recipient accepted');
$c->cmd('QUIT');

# a real IPv6 client over [::1]
my $s6 = IO::Socket::IP->new(PeerHost => '::1', PeerPort => $port6, Timeout => 5);
ok($s6, 'connected over [::1]') or diag($@);
if ($s6) {
	my $c6 = bless { sock => $s6, buf => '', timeout => 10, eof => 0, timedout => 0 }, 'MxTest::SMTP';
	like($c6->reply, qr/^220 /, '[::1]: banner');
	$c6->cmd('EHLO v6.test');
	$c6->cmd('MAIL FROM:<s@src.test>');
	is($c6->cmd('RCPT TO:<joe@example.test>'),
	    '554 5.7.1 Service unavailable; client [::1] blocked using bl.test',
	    '[::1] client listed (nibble query) and refused');
	like($c6->cmd('RCPT TO:<free@example.test>'), qr/^250 /, '[::1]: nofilter accepted');
	$c6->cmd('QUIT');
}

my ($rc, $st) = $mx->ctl_json('stats');
ok(($st->{dnsbl_listed} // 0) >= 3 && ($st->{dnsbl_refused} // 0) >= 3, 'stats: dnsbl listed/refused')
    or diag(explain($st));
ok(($st->{dnsbl_allowed} // 0) >= 1 && ($st->{dnsbl_clean} // 0) >= 2, 'stats: dnsbl allowed/clean');
ok(($st->{filter_helo_refused} // 0) >= 1 && ($st->{filter_nofilter_recipients} // 0) >= 3,
    'stats: helo refused, nofilter recipients');
like($mx->log, qr/ filter dnsbl client=192\.0\.2\.10 result=listed zone=bl\.test code=127\.0\.0\.2\n/,
    'DNSBL verdict logged on one line');
$mx->stop_ok;

# XCLIENT outside xclient_hosts; rate limit on the handed-over identity
my $rl = MxTest::Daemon->new(config => {
	server => { xclient_hosts => ['192.0.2.0/24'] },
	filters => { rate_limit => { connections => 3, period => 60 } },
});
$rl->start;
$c = $rl->session;
is($c->cmd('XCLIENT ADDR=192.0.2.9'), '550 5.7.0 Error: insufficient authorization',
    'XCLIENT from outside xclient_hosts: 550 5.7.0');
$c->cmd('QUIT');
# (MxTest's readiness probe and the session above were connections 1, 2)
my @keep;
for my $n (3 .. 3) {
	my $k = $rl->smtp;
	like($k->reply, qr/^220 /, "rate limit 3/60s: connection $n passes");
	push @keep, $k;
}
my $over = $rl->smtp;
like($over->reply // '', qr/^421 4\.7\.0 /, '4th connection within the period: 421 4.7.0');
ok($over->closed(5), '... and closed');
($rc, $st) = $rl->ctl_json('stats');
is($st->{filter_rate_limited}, 1, 'stats: filter_rate_limited');
is($st->{filter_xclient_refused}, 1, 'stats: filter_xclient_refused');
$_->close for @keep;
$rl->stop_ok;

# a proxy in xclient_hosts is not limited itself; its clients are
my $px = MxTest::Daemon->new(config => {
	server => { xclient_hosts => ['127.0.0.0/8'] },
	filters => { rate_limit => { connections => 2, period => 60 } },
});
$px->start;
my @r;
for my $n (1 .. 3) {
	my $k = $px->smtp;
	my $g = $k->reply // '';
	$k->cmd('EHLO proxy.test');
	push @r, [$g, $k->cmd('XCLIENT ADDR=192.0.2.77') // ''];
	$k->close;
}
ok((grep { $_->[0] =~ /^220 / } @r) == 3, 'proxy connections are not rate limited');
like($r[0][1], qr/^220 /, 'XCLIENT client, 1st: 220');
like($r[1][1], qr/^220 /, 'XCLIENT client, 2nd: 220');
like($r[2][1], qr/^421 4\.7\.0 /, 'XCLIENT client, 3rd within the period: 421 4.7.0');
$px->stop_ok;
$dns->stop;
done_testing();
