# address_forms.t - one canonical recipient from RCPT to delivery (issue 17)
#
# Every form a client may write an address in (plain, quoted without need,
# quoted with needless escapes, quoted with need, upper case, +tag) is sent
# to every kind of destination: a hosted mailbox, a hosted alias, a mailbox
# with auto-CC, an external forward (SRS), a nofilter address, a legacy
# domain behind a real Postfix old server that has the same aliases, and a
# legacy domain behind smtp-sink (which shows the exact RCPT TO bytes). The
# test asserts, at each downstream, which mailboxes got the message, under
# which envelope; then a kill -9 after the 250 to a quoted alias, an idle
# TLS session's 421, and the 555 reply text.
use strict;
use warnings;
use Test::More;
use IO::Select;
use Time::HiRes qw(time sleep);
use MxTest;
use MxPeers;

need_programs('smtp-sink', 'postfix', 'dnsmasq', 'dig');
watchdog(170);

my $H = 'hosted.test';		# hosted mode, hosting = LMTP sink
my $L = 'legacy.test';		# legacy mode, old server = Postfix
my $S = 'legacy2.test';		# legacy mode, old server = smtp-sink
my $SRSDOM = 'fwd.example.net';

# the peers
my $hosting = MxPeers::Sink->new(lmtp => 1);
my $mxsink = MxPeers::Sink->new;		# MX of yahoo.test (forwards)
my $pfsink = MxPeers::Sink->new;		# behind the Postfix old server
my $oldsink = MxPeers::Sink->new;		# the legacy2.test old server
my $dns = MxPeers::DNS->new(
	mx => [['yahoo.test', 'mx.yahoo.test', 10], ['sender.test', 'mx.sender.test', 10]],
	a => [['mx.yahoo.test', '127.0.0.1'], ['mx.sender.test', '127.0.0.1'],
	    ['66.2.0.192.bl.test', '127.0.0.2']]);
my $pfdir = MxTest::tmpdir();
mkdir "$pfdir/etc";
# the old server's own aliases: the same as the table's
MxTest::spew("$pfdir/etc/virtual", <<"EOF");
team\@$L alice\@$L, bob\@$L, carol\@$L
sales\@$L alice\@$L
EOF
my $postfix = MxPeers::Postfix->new(dir => $pfdir, relay_domains => $L,
    relayhost => "[127.0.0.1]:" . $pfsink->port,
    extra => { virtual_alias_maps => "texthash:$pfdir/etc/virtual",
	recipient_delimiter => '+' });

my $mx = delivery_daemon(hosting => 'lmtp:[127.0.0.1]:' . $hosting->port,
    dns => $dns, bounce_sink => $mxsink,
    config => { srs => { domain => $SRSDOM, secret => 'forms-secret-0123456789' },
	server => { xclient_hosts => ['127.0.0.0/8'] },
	filters => { dnsbl => { zones => ['bl.test'] } } });

$mx->ctl_ok('domain', 'add', $H, '--mode', 'hosted');
$mx->ctl_ok('domain', 'add', $L, '--legacy', '127.0.0.1:' . $postfix->port);
$mx->ctl_ok('domain', 'add', $S, '--legacy', '127.0.0.1:' . $oldsink->port);

# The hosted table, imported with one quoted line: "alice"@d is alice@d.
my $table = MxTest::spew(MxTest::tmpdir() . '/hosted', <<"EOF");
alice
bob
archive
carol\@$H mailbox filter cc=archive\@$H
team: alice, bob, carol
sales: alice
fwd: dan\@yahoo.test
"alice"\@$H
EOF
my ($rc, $imp) = $mx->ctl_json('import', $H, $table);
is($rc, 0, 'hosted table imported');
is(scalar @{$imp->{added} || []}, 7, 'seven entries added');
is_deeply([map { [$_->{line}, $_->{address}, $_->{written}] } @{$imp->{unchanged} || []}],
    [[8, "alice\@$H", "\"alice\"\@$H"]],
    'the quoted line is the same entry as alice (unchanged, written form reported)')
    or diag(explain($imp));
my ($rc2, $text) = $mx->ctl('import', '--dry-run', $H, $table);
like($text, qr/^  alice\@hosted\.test \(line 8, written "alice"\@hosted\.test: the same address\)$/m,
    'the human report says so too');
$mx->ctl_ok('address', 'add', "\"joe\"\@$H", '--nofilter');
($rc, my $show) = $mx->ctl('address', 'show', "joe\@$H");
is($rc, 0, 'address add "joe"@d created joe@d');
like($show, qr/nofilter/, 'joe is nofilter');
$mx->ctl_ok('address', 'add', "\"John.Doe.\"\@$H");
($rc, $show) = $mx->ctl('address', 'show', "\"john.doe.\"\@$H");
is($rc, 0, 'a local part that needs its quotes keeps them in the table');
# the legacy domains' tables: which addresses exist (the old server owns
# what they mean)
$mx->ctl_ok('address', 'add', "$_\@$L") for qw(team alice bob carol sales);
$mx->ctl_ok('address', 'add', "team\@$S");

# The forms of a local part LP at domain D, with the canonical form the
# relay must use and the form the client wrote (sent as is to legacy).
sub forms {
	my ($lp, $d) = @_;
	(my $esc = $lp) =~ s/^(.)/\\$1/;	# a needless quoted-pair
	return (
		['plain', "$lp\@$d", "$lp\@$d"],
		['quoted', "\"$lp\"\@$d", "$lp\@$d"],
		['escaped', "\"$esc\"\@$d", "$lp\@$d"],
		['upper', uc($lp) . '@' . uc($d), uc($lp) . "\@$d"],
		['tag', "$lp+tag\@$d", "$lp+tag\@$d"],
	);
}

# What each destination must receive for a form: the hosting's and the
# other sinks' envelope recipients, from the canonical form C.
my @cases;
for my $f (forms('alice', $H)) {
	push @cases, { what => 'hosted mailbox', form => $f, sink => $hosting,
	    want => [$f->[2]] };
}
for my $f (forms('team', $H)) {
	push @cases, { what => 'hosted alias', form => $f, sink => $hosting,
	    want => ["alice\@$H", "archive\@$H", "bob\@$H", "carol\@$H"] };
}
for my $f (forms('sales', $H)) {
	push @cases, { what => 'hosted alias (sales)', form => $f, sink => $hosting,
	    want => ["alice\@$H"] };
}
for my $f (forms('carol', $H)) {
	push @cases, { what => 'auto-CC mailbox', form => $f, sink => $hosting,
	    want => [sort($f->[2], "archive\@$H")] };
}
for my $f (forms('fwd', $H)) {
	push @cases, { what => 'external forward', form => $f, sink => $mxsink,
	    want => ['dan@yahoo.test'], srs => 1 };
}
for my $f (forms('team', $L)) {
	my $tag = $f->[0] eq 'tag' ? '+tag' : '';
	push @cases, { what => 'legacy (Postfix)', form => $f, sink => $pfsink,
	    want => [map { "$_$tag\@$L" } qw(alice bob carol)] };
}
for my $f (forms('team', $S)) {
	push @cases, { what => 'legacy (exact bytes)', form => $f, sink => $oldsink,
	    want => [$f->[1]], exact => 1 };
}
push @cases, { what => 'hosted, quotes needed', sink => $hosting,
    form => ['needed', "\"john.doe.\"\@$H", "\"john.doe.\"\@$H"],
    want => ["\"john.doe.\"\@$H"] };
push @cases, { what => 'hosted, quotes needed, upper case', sink => $hosting,
    form => ['needed-upper', "\"JOHN.DOE.\"\@HOSTED.TEST", "\"JOHN.DOE.\"\@$H"],
    want => ["\"JOHN.DOE.\"\@$H"] };

my $n = 0;
for my $c (@cases) {
	$c->{tag} = 'case' . ++$n;
	my ($form, $written) = @{$c->{form}};
	$c->{id} = submit($mx, 'a@sender.test', [$written],
	    "From: a\@sender.test\r\nSubject: $c->{tag}\r\n\r\n$c->{what} $form\r\n");
	ok($c->{id}, "$c->{tag}: RCPT TO:<$written> ($c->{what}, $form) accepted");
}
ok(wait_queue_empty($mx, 40, map { $_->{id} // () } @cases), 'every message left the queue')
    or diag($mx->log_tail(3000));
# Postfix relays on its own schedule: wait for the last of its copies.
my $pfwant = 0;
$pfwant += @{$_->{want}} for grep { $_->{sink} == $pfsink } @cases;
MxTest::wait_until(sub { my $k = 0; $k += @{$_->{rcpts}} for $pfsink->messages; $k >= $pfwant }, 30, 0.2);

# rcpts_of - the envelope recipients (as sent) a sink got for subject TAG,
# and the MAIL FROM of those messages
sub rcpts_of {
	my ($sink, $tag) = @_;
	my (@r, %from);
	for my $m ($sink->messages) {
		next unless $m->{text} =~ /^Subject: \Q$tag\E\r?$/m;
		push @r, map { s/^<|>$//gr } @{$m->{rcpts}};
		$from{$m->{mail} // ''} = 1;
	}
	return ([sort @r], [sort keys %from]);
}

for my $c (@cases) {
	my ($got, $from) = rcpts_of($c->{sink}, $c->{tag});
	my ($form, $written, $canon) = @{$c->{form}};
	is_deeply($got, [sort @{$c->{want}}],
	    "$c->{tag}: $c->{what}, $form: delivered to " . join(', ', sort @{$c->{want}}))
	    or diag("got: @$got");
	if ($c->{srs}) {
		like($from->[0] // '', qr/^<SRS0=[^@]+\@\Q$SRSDOM\E>$/i,
		    "$c->{tag}: the forward's envelope sender is rewritten by SRS");
	}
	next unless $c->{id};
	# the log names the canonical form, and the written one beside it
	my @lines = grep { /^\S+ .*\b\Q$c->{id}\E to=/ } split /\n/, $mx->log;
	if (@{$c->{want}} == 1 && $c->{want}[0] =~ /^\Q$canon\E\z/i || $c->{exact} ||
	    $c->{sink} == $pfsink) {
		my $orig = $written ne $canon ? " orig_to=<\Q$written\E>" : '';
		ok(grep({ /(?<![\w])to=<\Q$canon\E>$orig relay=/ && /status=sent/ } @lines),
		    "$c->{tag}: log to=<$canon>" . ($orig ? " orig_to=<$written>" : ''))
		    or diag(join("\n", @lines));
	} else {
		ok(!grep({ /(?<![\w])to=<\Q$written\E>/ && $written ne $canon } @lines),
		    "$c->{tag}: no log line names the written form as the recipient");
	}
}

# The spool keeps both forms: rcpt canonical, orcpt as written.
{
	$hosting->stop;
	my $id = submit($mx, 'a@sender.test', ["\"TEAM\"\@HOSTED.TEST", "joe\@$H"],
	    "Subject: spool-forms\r\n\r\nx\r\n");
	ok($id, 'queued while the hosting is down');
	my $sp = $mx->spool($id);
	my $raw = MxTest::slurp($mx->queue_dir . "/$id") // '';
	like($raw, qr/^rcpt 0 <TEAM\@hosted\.test>\norcpt 0 <"TEAM"\@HOSTED\.TEST>\nrcpt 1 <joe\@hosted\.test>\n(?!orcpt)/m,
	    'spool: rcpt line canonical, orcpt line with the written form (only when it differs)');
	# kill -9 after the 250, once the expansion is on disk
	ok(MxPeers::wait_log($mx, qr/\b\Q$id\E expand to=<TEAM\@hosted\.test> children=4\b/, 15),
	    'the quoted alias was expanded (4 children)') or diag($mx->log_tail(2000));
	ok(MxTest::wait_until(sub { (MxTest::slurp($mx->queue_dir . "/$id") // '') =~ /^expand 0 /m }, 10, 0.1),
	    'the expand record is on disk');
	$mx->kill9;
	$hosting->restart(lmtp => 1);
	$mx->restart;
	ok(wait_queue_empty($mx, 30, $id), 'after kill -9 and restart the message is delivered')
	    or diag($mx->log_tail(2000));
	my ($got) = rcpts_of($hosting, 'spool-forms');
	is_deeply($got, [sort "alice\@$H", "archive\@$H", "bob\@$H", "carol\@$H", "joe\@$H"],
	    'every child and the other recipient arrived once, nothing missing');
	my @exp = $mx->log =~ /\b\Q$id\E expand to=/g;
	is(scalar @exp, 1, 'the expansion was recorded once (not again after the restart)');
}

# nofilter through a quoted form: a blocked client still reaches joe
{
	my $c = $mx->session;
	like($c->cmd('XCLIENT ADDR=192.0.2.66'), qr/^220 /, 'XCLIENT as a DNSBL-listed client');
	$c->ehlo('listed.test');
	like($c->cmd('MAIL FROM:<x@sender.test>'), qr/^250 /, 'MAIL');
	like($c->cmd("RCPT TO:<alice\@$H>"), qr/^554 5\.7\.1 .*blocked using bl\.test/,
	    'a filtered recipient is refused (DNSBL)');
	like($c->cmd("RCPT TO:<\"joe\"\@$H>"), qr/^250 /, '"joe"@d is the nofilter joe: accepted');
	like($c->cmd("RCPT TO:<\"J\\oe\"\@HOSTED.TEST>"), qr/^250 /, '"J\\oe"@D too');
	like($c->cmd('DATA'), qr/^354 /, 'DATA');
	$c->send("Subject: nofilter-forms\r\n\r\nx\r\n.\r\n");
	my $r = $c->reply(30);
	like($r, qr/^250 2\.0\.0 Ok: queued as (\S+)/, 'queued');
	my ($id) = ($r // '') =~ /queued as (\S+)/;
	ok(wait_queue_empty($mx, 20, $id // ()), 'delivered');
	my ($got) = rcpts_of($hosting, 'nofilter-forms');
	is_deeply($got, ["joe\@$H"], 'both forms are one recipient: joe once');
	$c->close;
}

# 555: the reply text says "Unsupported option" once
{
	my $c = $mx->session;
	my $r = $c->cmd('MAIL FROM:<a@sender.test> ORCPT=rfc822;a@b');
	is($r, '555 5.5.4 Unsupported option: ORCPT', 'MAIL with ORCPT: 555 5.5.4, the text once');
	like($c->cmd('MAIL FROM:<a@sender.test>'), qr/^250 /, 'MAIL');
	$r = $c->cmd("RCPT TO:<alice\@$H> NOTIFY=NEVER");
	is($r, '555 5.5.4 Unsupported option: NOTIFY', 'RCPT with NOTIFY: 555 5.5.4, the text once');
	$c->close;
}

# An idle TLS session gets 421 4.4.2 at command_timeout, 20 times out of 20.
{
	my $certdir = tmpdir();
	my ($cert, $key) = gen_cert($certdir);
	my $tmx = MxTest::Daemon->new(config => { tls => { certificate => $cert, key => $key },
	    limits => { command_timeout => 2 } });
	$tmx->start;
	my (@c, %t0);
	for my $i (1 .. 20) {
		my $c = $tmx->smtp;
		$c->reply;
		$c->ehlo('idle.test');
		$c->cmd('STARTTLS');
		$c->starttls or do { fail("TLS handshake $i"); next };
		$c->ehlo('idle.test');
		$t0{$c->sock} = time;
		push @c, $c;
	}
	my $sel = IO::Select->new(map { $_->sock } @c);
	my %by = map { $_->sock => $_ } @c;
	my ($good, @bad) = (0);
	my $deadline = time + 8;
	while ($sel->count && time < $deadline) {
		for my $fh ($sel->can_read(0.2)) {
			my $c = $by{$fh};
			my $r = $c->reply(1);
			my $dt = time - $t0{$fh};
			if (defined $r && $r =~ /^421 4\.4\.2 / && $dt <= 3.0) {
				$good++;
			} else {
				push @bad, sprintf('%s after %.2f s', $r // 'EOF', $dt);
			}
			$sel->remove($fh);
		}
	}
	push @bad, ($sel->count . ' sessions got nothing') if $sel->count;
	is($good, 20, 'idle TLS sessions: 421 4.4.2 within command_timeout + 1 s, 20 of 20')
	    or diag(join("\n", @bad));
	$_->close for @c;
	$tmx->stop_ok;
}

$mx->stop_ok;
done_testing();
