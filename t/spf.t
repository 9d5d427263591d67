# spf.t - SPF over real SMTP against a real DNS server (SPEC 3 filters.spf, 5)
#
# dnsmasq serves the SPF records; mxrelayd asks it through dns.nameservers.
# The client acts as a remote address by XCLIENT (libspf2 passes any
# 127.0.0.0/8 client as "localhost" without looking at DNS).
use strict;
use warnings;
use Test::More;
use MxTest;
use MxDNS;

watchdog(90);

my $dns = MxDNS->start(
	txt => {
		'spf-pass.test'    => 'v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all',
		'spf-fail.test'    => 'v=spf1 ip4:198.51.100.1 -all',
		'spf-soft.test'    => 'v=spf1 ip4:198.51.100.1 ~all',
		'spf-neutral.test' => 'v=spf1 ?all',
		'spf-perm.test'    => 'v=spf1 ip4:192.0.2.10 bogus:x -all',
		'spf-temp.test'    => 'v=spf1 include:spf.broken.example -all',
		'spf-incl.test'    => 'v=spf1 include:spf-pass.test -all',
		'spf-redir.test'   => 'v=spf1 redirect=spf-fail.test',
		'spf-mx.test'      => 'v=spf1 mx -all',
		'spf-exp.test'     => 'v=spf1 -all exp=exp.spf-exp.test',
		'exp.spf-exp.test' => 'Not our mail: %{i} for %{d}',
	},
	a  => { 'spf-none.test' => ['192.0.2.1'], 'mx.spf-mx.test' => ['192.0.2.30'] },
	mx => { 'spf-mx.test' => [[10, 'mx.spf-mx.test']] },
);

my $mx = MxTest::Daemon->new(config => {
	server => { xclient_hosts => ['127.0.0.0/8'] },
	dns => { nameservers => [$dns->nameserver] },
	filters => { spf => { enabled => JSON::PP::true, reject_fail => JSON::PP::true } },
});
$mx->start;
$mx->setup(domains => ['example.test'],
    addresses => ['joe@example.test', ['free@example.test', '--nofilter']]);

# try - as client IP with HELO and sender, one filtered recipient; returns
# (RCPT reply, message text if queued)
sub try {
	my (%o) = @_;
	my $c = $mx->smtp;
	$c->reply;
	$c->cmd('EHLO proxy.test');
	my $x = $c->cmd("XCLIENT ADDR=$o{ip}");
	die "XCLIENT: $x" unless $x =~ /^220 /;
	$c->cmd('EHLO ' . ($o{helo} // 'client.test'));
	my $m = $c->cmd("MAIL FROM:<$o{from}>");
	die "MAIL: $m" unless $m =~ /^250 /;
	my $r = $c->cmd('RCPT TO:<' . ($o{to} // 'joe@example.test') . '>', 30);
	my $msg;
	if ($r =~ /^250 /) {
		$c->cmd('DATA');
		$c->send("Subject: spf\r\n\r\nbody\r\n.\r\n");
		my $q = $c->reply(15) // '';
		my ($id) = $q =~ /queued as (\S+)/;
		my $s = $id ? $mx->spool($id) : undef;
		$msg = $s ? $s->{message} : undef;
	}
	$c->cmd('QUIT');
	$c->close;
	return ($r, $msg);
}

# header - the unfolded value of header NAME in a message
sub header {
	my ($msg, $name) = @_;
	return undef unless defined $msg;
	my ($v) = $msg =~ /^\Q$name\E:[ \t]*(.*?\r\n)(?![ \t])/ms;
	return undef unless defined $v;
	$v =~ s/\r\n[ \t]+/ /g;
	$v =~ s/\r\n\z//;
	return $v;
}

my @accepted = (
	# name, ip, from, result
	['pass', '192.0.2.10', 's@spf-pass.test', 'pass'],
	['softfail', '192.0.2.10', 's@spf-soft.test', 'softfail'],
	['neutral', '192.0.2.10', 's@spf-neutral.test', 'neutral'],
	['none (no SPF record)', '192.0.2.10', 's@spf-none.test', 'none'],
	['none (no such domain)', '192.0.2.10', 's@nowhere.test', 'none'],
	['permerror', '192.0.2.10', 's@spf-perm.test', 'permerror'],
	['include: pass', '192.0.2.10', 's@spf-incl.test', 'pass'],
	['mx pass', '192.0.2.30', 's@spf-mx.test', 'pass'],
	['IPv6 by XCLIENT pass', 'IPV6:2001:db8::10', 's@spf-pass.test', 'pass'],
);
for my $t (@accepted) {
	my ($name, $ip, $from, $want) = @$t;
	my ($r, $msg) = try(ip => $ip, from => $from);
	like($r, qr/^250 /, "$name: recipient accepted") or next;
	my $rspf = header($msg, 'Received-SPF') // '';
	like($rspf, qr/^\Q$want\E \(/, "$name: Received-SPF: $want") or diag($msg);
	(my $bare = $ip) =~ s/^IPV6://;
	like($rspf, qr/client-ip=\Q$bare\E;/, "$name: client-ip is the XCLIENT address");
	like($rspf, qr/identity=mailfrom;/, "$name: identity mailfrom");
	my $ar = header($msg, 'Authentication-Results') // '';
	like($ar, qr/^mx\.test\.example; spf=\Q$want\E smtp\.mailfrom=\Q$from\E$/,
	    "$name: Authentication-Results (RFC 8601)") or diag($ar);
	my ($first) = ($msg // '') =~ /\A([^:]+):/;
	is($first, 'Received-SPF', "$name: Received-SPF above Received (RFC 7208 9.1)");
}

# fail: 550 5.7.23 with the reason
my ($r) = try(ip => '192.0.2.10', from => 's@spf-fail.test');
like($r, qr/^550 5\.7\.23 SPF validation failed: \S/, 'fail: 550 5.7.23 SPF validation failed (reason in the text)');
($r) = try(ip => '192.0.2.10', from => 's@spf-redir.test');
like($r, qr/^550 5\.7\.23 SPF validation failed/, 'redirect= to a failing policy: 550 5.7.23');
($r) = try(ip => '192.0.2.10', from => 's@spf-exp.test');
like($r, qr/^550 5\.7\.23 SPF validation failed: mx\.test\.example: domain of spf-exp\.test does not designate 192\.0\.2\.10 as permitted sender/,
    'fail with exp=: the domain\'s explanation, macros expanded');
# the same fail for a nofilter recipient: accepted, and recorded
my $msg;
($r, $msg) = try(ip => '192.0.2.10', from => 's@spf-fail.test', to => 'free@example.test');
like($r, qr/^250 /, 'fail, nofilter recipient: accepted');
# a nofilter-only transaction never waits for SPF: the header is there
# when the evaluation finished before the end of DATA, and then says fail
my $nf_spf = header($msg, 'Received-SPF');
like($nf_spf // 'fail (not evaluated in time)', qr/^fail \(/,
    '... with Received-SPF: fail when present (nofilter does not wait for it)');

# temperror: the include's domain is not answered (REFUSED) -> 451, never 5xx
($r) = try(ip => '192.0.2.10', from => 's@spf-temp.test');
like($r, qr/^451 4\.3\.0 SPF temporary error/, 'temperror (DNS error): 451 4.3.0 (SPEC 5: DNS trouble)');

# HELO identity for the null sender
{
	my ($r2, $m2) = try(ip => '192.0.2.10', from => '', helo => 'spf-pass.test');
	like($r2, qr/^250 /, 'MAIL FROM:<> checks the HELO name: accepted');
	like(header($m2, 'Received-SPF') // '', qr/^pass .*identity=helo;/, 'Received-SPF: pass, identity=helo');
	like(header($m2, 'Authentication-Results') // '', qr/spf=pass smtp\.helo=spf-pass\.test$/,
	    'Authentication-Results: smtp.helo');
	($r2) = try(ip => '192.0.2.10', from => '', helo => 'spf-fail.test');
	like($r2, qr/^550 5\.7\.23 /, 'MAIL FROM:<> with a failing HELO: 550 5.7.23');
}

# one evaluation per transaction: two recipients, one SPF line in the log
{
	my $before = () = $mx->log =~ / filter spf /g;
	my $c = $mx->smtp;
	$c->reply;
	$c->cmd('EHLO proxy.test');
	$c->cmd('XCLIENT ADDR=192.0.2.11');
	$c->cmd('EHLO c.test');
	$c->send("MAIL FROM:<a\@spf-pass.test>\r\nRCPT TO:<joe\@example.test>\r\nRCPT TO:<free\@example.test>\r\nRCPT TO:<joe\@example.test>\r\n");
	my @r = map { $c->reply(15) // '' } 1 .. 4;
	is(scalar(grep { /^250 / } @r), 4, 'pipelined MAIL and three RCPTs answered in order') or diag("@r");
	$c->cmd('QUIT');
	my $after = () = $mx->log =~ / filter spf /g;
	is($after - $before, 1, 'one SPF evaluation for the transaction');
}

# reject_fail = false: fail is only recorded
{
	my $mx2 = MxTest::Daemon->new(config => {
		server => { xclient_hosts => ['127.0.0.0/8'] },
		dns => { nameservers => [$dns->nameserver] },
		filters => { spf => { enabled => JSON::PP::true, reject_fail => JSON::PP::false } },
	});
	$mx2->start;
	$mx2->setup(domains => ['example.test'], addresses => ['joe@example.test']);
	my $keep = $mx;
	$mx = $mx2;
	my ($r3, $m3) = try(ip => '192.0.2.10', from => 's@spf-fail.test');
	like($r3, qr/^250 /, 'reject_fail = false: fail accepted');
	like(header($m3, 'Received-SPF') // '', qr/^fail /, '... and recorded in Received-SPF');
	$mx = $keep;
	$mx2->stop_ok;
}

my ($rc, $stats) = $mx->ctl_json('stats');
is($rc, 0, 'relayctl stats');
ok(($stats->{spf_pass} // 0) >= 5, 'stats: spf_pass counted') or diag(explain($stats));
ok(($stats->{spf_fail} // 0) >= 3, 'stats: spf_fail counted');
ok(($stats->{spf_refused} // 0) >= 3, 'stats: spf_refused counted');
ok(($stats->{spf_temperror} // 0) >= 1 && ($stats->{spf_deferred} // 0) >= 1, 'stats: temperror deferred');
ok(($stats->{spf_permerror} // 0) >= 1 && ($stats->{spf_softfail} // 0) >= 1
    && ($stats->{spf_neutral} // 0) >= 1 && ($stats->{spf_none} // 0) >= 2, 'stats: other results');
like($mx->log, qr/ filter refused to=<joe\@example\.test> client=192\.0\.2\.10 filter=spf reply="550 5\.7\.23 /,
    'refusal logged on one line');
$mx->stop_ok;
$dns->stop;
done_testing();
