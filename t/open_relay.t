# open_relay.t - no address trick gets mail relayed to a domain that is not hosted (SPEC 5, 9)
use strict;
use warnings;
use Test::More;
use MxTest;

watchdog(60);
my $mx = MxTest::Daemon->new;
$mx->start;
$mx->setup(domains => ['example.test'], addresses => ['joe@example.test']);

sub relay { my $a = shift; return qr/^554 5\.7\.1 <\Q$a\E>: Relay access denied\z/ }
sub unknown { my $a = shift; return qr/^550 5\.1\.1 <\Q$a\E>: Recipient address rejected: User unknown\z/ }
# an address as a regex in which non-ASCII octets may come back as '?'
# (replies may be sanitised)
sub addr_re { return join('', map { ord($_) > 127 ? "(?:\Q$_\E|\\?)" : quotemeta($_) } split //, shift) }
sub relay_u { my $a = addr_re(shift); return qr/^554 5\.7\.1 <$a>: Relay access denied\z/ }
sub unknown_u { my $a = addr_re(shift); return qr/^550 5\.1\.1 <$a>: Recipient address rejected: User unknown\z/ }
my $syntax = qr/^501 5\.1\.3 /;		# bad address syntax (SPEC 5)
my $syntax_any = qr/^501 5\.(1\.3|5\.4) /;	# bad address or bad path syntax
my $utf8 = qr/^553 5\.6\.7 /;		# RFC 6531 3.7.4.1

# [ the bytes after "RCPT ", acceptable refusals, name ]
my @cases = (
	['TO:<user%other.test@example.test>', [relay('user%other.test@example.test')], 'percent hack in a hosted domain'],
	['TO:<user%other.test>', [relay('user%other.test'), $syntax], 'percent hack, no @'],
	['TO:<other.test!user@example.test>', [relay('other.test!user@example.test')], 'bang path in a hosted domain'],
	['TO:<other.test!user>', [relay('other.test!user'), $syntax], 'bang path, no @'],
	['TO:<@example.test:user@other.test>', [relay('user@other.test'), relay('@example.test:user@other.test')], 'source route via a hosted domain to a foreign one'],
	['TO:<@example.test,@mx.test.example:user@other.test>', [relay('user@other.test'), relay('@example.test,@mx.test.example:user@other.test')], 'two-hop source route'],
	['TO:<"user@other.test"@example.test>', [relay('"user@other.test"@example.test'), unknown('"user@other.test"@example.test')], 'quoted local part holding an address'],
	['TO:<"user%other.test"@example.test>', [relay('"user%other.test"@example.test'), unknown('"user%other.test"@example.test')], 'quoted percent hack'],
	['TO:<user@other.test@example.test>', [$syntax, relay('user@other.test@example.test')], 'double @'],
	['TO:<user\\@other.test@example.test>', [$syntax, relay('user\\@other.test@example.test'), unknown('user\\@other.test@example.test')], 'backslash-escaped @ unquoted'],
	['TO:<joe@example.test.>', [$syntax, relay('joe@example.test.')], 'trailing dot on a hosted domain'],
	['TO:<joe@other.test.>', [$syntax, relay('joe@other.test.')], 'trailing dot on a foreign domain'],
	['TO:<joe@[127.0.0.1]>', [relay('joe@[127.0.0.1]')], 'IPv4 address literal (our own address)'],
	['TO:<joe@[IPv6:::1]>', [relay('joe@[IPv6:::1]')], 'IPv6 address literal'],
	['TO:<joe@127.0.0.1>', [relay('joe@127.0.0.1'), $syntax], 'bare IP as domain'],
	['TO:<JOE@OTHER.TEST>', [relay('JOE@OTHER.TEST')], 'upper case foreign domain'],
	['TO:<joe@sub.example.test>', [relay('joe@sub.example.test')], 'subdomain of a hosted domain'],
	['TO:<joe@example.test.other.test>', [relay('joe@example.test.other.test')], 'hosted domain as a prefix'],
	['TO:<joe@xexample.test>', [relay('joe@xexample.test')], 'hosted domain as a suffix'],
	['TO:<joe@localhost>', [relay('joe@localhost')], 'localhost'],
	['TO:<joe@mx.test.example>', [relay('joe@mx.test.example')], 'our own hostname is not a hosted domain'],
	['TO:<joe>', [$syntax, relay('joe')], 'unqualified'],
	['TO:<>', [$syntax_any], 'empty path'],
	['TO: <user@other.test>', [relay('user@other.test'), $syntax_any], 'space after TO:'],
	["TO:\t<user\@other.test>", [relay('user@other.test'), $syntax_any], 'tab after TO:'],
	['TO:<user@other.test >', [$syntax_any, relay('user@other.test')], 'space inside brackets'],
	['TO:< user@other.test>', [$syntax_any, relay('user@other.test')], 'leading space inside brackets'],
	['TO:<joe@example.test user@other.test>', [$syntax_any], 'two addresses in one path'],
	['TO:<user@other.test>joe@example.test', [$syntax_any, qr/^555 5\.5\.4 /, relay('user@other.test')], 'trailing text after the path'],
	["TO:<user\@other.test\x00\@example.test>", [$syntax_any, qr/^500 5\.5\.2 /, relay("user\@other.test\x00\@example.test")], 'NUL inside the path'],
	['TO:<joe@example%2etest>', [$syntax, relay('joe@example%2etest')], 'URL-encoded dot in the domain'],
	['TO:<joe%40other.test@example.test>', [relay('joe%40other.test@example.test'), unknown('joe%40other.test@example.test')], 'URL-encoded @ in the local part'],
	["TO:<j\xc3\xb6e\@example.test>", [$utf8, $syntax], 'UTF-8 local part without SMTPUTF8'],
	["TO:<joe\@ex\xc3\xa4mple.test>", [$utf8, $syntax], 'UTF-8 domain without SMTPUTF8'],
	['TO:<user@other.test', [$syntax_any], 'missing closing bracket'],
);
cmp_ok(scalar @cases, '>=', 20, 'at least 20 address tricks');

# one session per trick: every trick collects 5xx replies, and a session
# is closed after SMTP_MAX_ERRORS of them
my $c;
my $n = 0;
for my $case (@cases) {
	my ($arg, $accept, $name) = @$case;
	$c->close if $c;
	$c = $mx->session;
	my $m = $c->cmd('MAIL FROM:<attacker@src.test>');
	my $r = $c->cmd("RCPT $arg");
	my $ok = defined $r && grep { $r =~ $_ } @$accept;
	ok($ok, "refused: $name") or diag("RCPT $arg\n  got: " . ($r // 'EOF/timeout'));
	if (!defined $r) {	# the session died: start a new one for the rest
		$c = $mx->session;
		next;
	}
	# the message is attempted anyway: DATA must not be accepted
	my $d = $c->cmd('DATA');
	like($d, qr/^(503|554) 5\.5\.1 /, "DATA refused after the refused recipient ($name)");
	if (defined $d && $d =~ /^354/) {
		$c->send("Subject: relay test\r\n\r\nrelayed?\r\n.\r\n");
		diag('message after ' . $name . ': ' . ($c->reply // 'EOF'));
	}
}
# with SMTPUTF8: UTF-8 addresses are parsed, and lookalike domains are still foreign
for my $t (["joe\@ex\xc3\xa4mple.test", 'UTF-8 domain'],
    ["joe\@\xd0\xb5xample.test", 'Cyrillic lookalike of the hosted domain'],
    ["j\xc3\xb6e\@other.test", 'UTF-8 local part, foreign domain']) {
	my ($addr, $name) = @$t;
	$c->close;
	$c = $mx->session;
	like($c->cmd('MAIL FROM:<attacker@src.test> SMTPUTF8'), qr/^250 /, "MAIL with SMTPUTF8 ($name)");
	like($c->cmd("RCPT TO:<$addr>"), relay_u($addr), "SMTPUTF8: $name relay-denied");
	like($c->cmd('DATA'), qr/^(503|554) 5\.5\.1 /, "DATA refused ($name)");
}
$c->close;
$c = $mx->session;
$c->cmd('MAIL FROM:<s@src.test> SMTPUTF8');
like($c->cmd("RCPT TO:<j\xc3\xb6e\@example.test>"), unknown_u("j\xc3\xb6e\@example.test"),
    'SMTPUTF8: UTF-8 local part in the hosted domain is an unknown user');
is_deeply([$mx->queue_ids], [], 'nothing queued by any trick');

# a source route to a hosted mailbox is fine, but only as the mailbox itself
$c->cmd('RSET');
like($c->cmd('MAIL FROM:<s@src.test>'), qr/^250 /, 'MAIL');
like($c->cmd('RCPT TO:<@other.test:joe@example.test>'), qr/^250 2\.1\.5 /,
    'source route <@other.test:joe@example.test> accepted (route ignored)');
like($c->cmd('DATA'), qr/^354 /, 'DATA');
$c->send("Subject: routed\r\n\r\nbody\r\n.\r\n");
my $r = $c->reply;
like($r, qr/^250 2\.0\.0 Ok: queued as \S+\z/, 'queued');
my ($id) = ($r // '') =~ /queued as (\S+)/;
my $s = $id ? $mx->spool($id) : undef;
is_deeply($s ? $s->{rcpts} : undef, ['<joe@example.test>'], 'queued for joe@example.test only, route dropped');
is(scalar(my @q = $mx->queue_ids), 1, 'exactly one message in the queue');
$c->cmd('QUIT');

$mx->stop_ok;
done_testing();
