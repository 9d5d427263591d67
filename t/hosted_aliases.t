# hosted_aliases.t - hosted mode in full (SPEC 4, 6): a customer's alias
# file imported, each alias expanded at delivery to the right mailboxes at
# the hosting (Dovecot LMTP) and the right external MX (dnsmasq MX for
# yahoo.com -> smtp-sink) with an SRS sender; an auto-CC mailbox; an alias
# cycle; the SRS round trip (the forward's bounce reaches the original
# sender; SRS1 for forwarded forwards; forged and expired SRS refused with
# 550); relayctl address show with the expansion.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use Digest::SHA qw(hmac_sha1_base64);
use Time::HiRes qw(time sleep);

need_programs('smtp-sink', 'dovecot', 'dnsmasq', 'dig');
watchdog(120);

my $SRSDOM = 'fwd.example.net';
my $SECRET = 'hosted-test-secret-0123456789';
my $D = 'example.test';

my $dove = MxPeers::Dovecot->new(users => [map { "$_\@$D" } qw(joe mary jane boss)]);
my $mxsink = MxPeers::Sink->new;	# every MX: yahoo.com, gmail.test, sender.test, fwd1.test
my $dns = MxPeers::DNS->new(
	mx => [['yahoo.com', 'mx.yahoo.com', 10], ['gmail.test', 'mx.gmail.test', 10],
	    ['sender.test', 'mx.sender.test', 10], ['fwd1.test', 'mx.fwd1.test', 10]],
	a => [['mx.yahoo.com', '127.0.0.1'], ['mx.gmail.test', '127.0.0.1'],
	    ['mx.sender.test', '127.0.0.1'], ['mx.fwd1.test', '127.0.0.1']]);
like($dns->query('yahoo.com', 'MX'), qr/mx\.yahoo\.com/, 'dnsmasq: MX of yahoo.com');
my $mx = delivery_daemon(hosting => $dove->destination, dns => $dns,
    bounce_sink => $mxsink, delivery => { retry_schedule => [300] },
    config => { srs => { domain => $SRSDOM, secret => $SECRET } });

# the customer's alias file, and the mailboxes
$mx->ctl_ok('domain', 'add', $D, '--mode', 'hosted');
my $file = MxTest::spew(MxTest::tmpdir() . '/aliases', <<'EOF');
# customer's aliases
joe
mary
jane
info: mary
sales: mary, jane
merry: mary
dan: dan@yahoo.com
janitor: joe
all: mary, jane, dan, joe
EOF
my ($rc, $imp) = $mx->ctl_json('import', $D, $file);
is($rc, 0, 'alias file imported');
my $added = ref $imp->{added} eq 'ARRAY' ? scalar @{$imp->{added}} : $imp->{added};
is($added, 9, '9 addresses added (3 mailboxes, 6 aliases)') or diag(explain($imp));

# what each alias must give: mailboxes at the hosting, external recipients
my %want = (
	info => [['mary'], []],
	sales => [['mary', 'jane'], []],
	merry => [['mary'], []],
	dan => [[], ['dan@yahoo.com']],
	janitor => [['joe'], []],
	all => [['mary', 'jane', 'joe'], ['dan@yahoo.com']],
);
my %ids;
for my $alias (sort keys %want) {
	my $id = submit($mx, 'a@sender.test', ["$alias\@$D"],
	    "From: a\@sender.test\r\nTo: $alias\@$D\r\nSubject: to-$alias\r\n\r\nfor $alias\r\n");
	ok($id, "message to $alias queued");
	$ids{$alias} = $id;
}
ok(wait_queue_empty($mx, 20, values %ids), 'all alias messages left the queue')
    or diag($mx->log_tail(4000));

# subjects_of - the Subject tags stored in a mailbox
sub subjects_of {
	my ($addr) = @_;
	return map { /^Subject: (\S+)/m ? $1 : '?' } $dove->messages($addr);
}
# sink_for - the sink's messages for a recipient with a subject tag
sub sink_for {
	my ($rcpt, $tag) = @_;
	return grep { (grep { lc $_ eq lc "<$rcpt>" } @{$_->{rcpts}}) &&
	    $_->{text} =~ /^Subject: \Q$tag\E$/m } $mxsink->messages;
}

$mxsink->wait_count(2, 10);
for my $alias (sort keys %want) {
	my ($boxes, $ext) = @{$want{$alias}};
	for my $u (qw(joe mary jane)) {
		my $n = grep { $_ eq "to-$alias" } subjects_of("$u\@$D");
		my $exp = (grep { $_ eq $u } @$boxes) ? 1 : 0;
		is($n, $exp, "$alias: $u\@$D has $exp cop" . ($exp == 1 ? 'y' : 'ies'));
	}
	my @got = sink_for('dan@yahoo.com', "to-$alias");
	is(scalar @got, scalar @$ext, "$alias: " . scalar(@$ext) . " cop" .
	    (@$ext == 1 ? 'y' : 'ies') . " at yahoo.com's MX");
	for my $m (@got) {
		like($m->{mail}, qr/^<SRS0=[^=]{6}=[A-Z2-7]{2}=sender\.test=a\@\Q$SRSDOM\E>\z/i,
		    "$alias: forwarded with an SRS0 sender under $SRSDOM");
		is_deeply($m->{rcpts}, ['<dan@yahoo.com>'], "$alias: RCPT dan\@yahoo.com only");
	}
}
my ($exp_line) = grep { /\Q$ids{all}\E expand to=<all\@example\.test> children=4 forwards=1 loops=0/ }
    split /\n/, $mx->log;
ok($exp_line, 'log: all@ expanded into 4 children, 1 forward') or diag($mx->log_tail(3000));
my ($fw) = attempt_lines($mx, $ids{dan}, 'dan@yahoo.com', 'sent');
ok($fw, 'log: status=sent for the forward to dan@yahoo.com');

# relayctl address show: the expansion now
my $show = $mx->ctl_ok('address', 'show', "all\@$D");
like($show, qr/expands to:\s+\(hosted mode/, 'address show: expansion applies (hosted)');
like($show, qr/^\s+dan\@yahoo\.com\s+\[external\]/m, 'address show: dan@yahoo.com marked external');
like($show, qr/^\s+mary\@example\.test\s+\[local\]/m, 'address show: mary marked local');
like($show, qr/^copies:\s+4$/m, 'address show: 4 copies');
my ($jrc, $j) = $mx->ctl_json('address', 'show', "all\@$D");
is($jrc, 0, 'address show --json');
is_deeply([sort @{$j->{expansion}{delivers_to} // []}],
    [sort('mary@example.test', 'jane@example.test', 'dan@yahoo.com', 'joe@example.test')],
    'address show --json: delivers_to');
is(scalar(grep { $_->{kind} eq 'alias' } @{$j->{expansion}{nodes} // []}), 2,
    'address show --json: two alias nodes (all, dan)');

# auto-CC: a mailbox with a cc destination
$mx->ctl_ok('address', 'add', "boss\@$D", '--cc', 'boss@gmail.test');
my $cc = submit($mx, 'b@sender.test', ["boss\@$D"],
    "From: b\@sender.test\r\nSubject: to-boss\r\n\r\nauto-cc\r\n");
ok($cc, 'message to the auto-CC mailbox queued');
ok(wait_queue_empty($mx, 15, $cc), 'it left the queue') or diag($mx->log_tail(3000));
is(scalar(grep { $_ eq 'to-boss' } subjects_of("boss\@$D")), 1, 'auto-CC: one copy at the hosting');
my @bc = sink_for('boss@gmail.test', 'to-boss');
is(scalar @bc, 1, 'auto-CC: one copy at the cc destination');
like($bc[0]{mail} // '', qr/^<SRS0=[^=]+=[A-Z2-7]{2}=sender\.test=b\@\Q$SRSDOM\E>\z/i,
    'auto-CC: the external copy has the SRS sender');
like($mx->ctl_ok('address', 'show', "boss\@$D"),
    qr/boss\@example\.test\s+\[local\] mailbox.*\n\s+boss\@gmail\.test\s+\[external\]/,
    'address show: the mailbox itself and its cc');

# an alias cycle: loopa -> loopb -> loopa; the rest is delivered
$mx->ctl_ok('address', 'add', "loopa\@$D", '--alias', "loopb\@$D,mary\@$D");
$mx->ctl_ok('address', 'add', "loopb\@$D", '--alias', "loopa\@$D,jane\@$D");
like($mx->ctl_ok('address', 'show', "loopa\@$D"), qr/loopa\@example\.test\s+\[loop\]/,
    'address show marks the loop');
my $nsink = $mxsink->count;
my $lp = submit($mx, 'c@sender.test', ["loopa\@$D"],
    "From: c\@sender.test\r\nSubject: to-loop\r\n\r\nloop\r\n");
ok($lp, 'message to the alias cycle queued');
ok(wait_queue_empty($mx, 15, $lp), 'it left the queue') or diag($mx->log_tail(3000));
is(scalar(grep { $_ eq 'to-loop' } subjects_of("mary\@$D")), 1, 'cycle: mary got her copy');
is(scalar(grep { $_ eq 'to-loop' } subjects_of("jane\@$D")), 1, 'cycle: jane got her copy');
$mxsink->wait_count($nsink + 1, 10);
my @dsn = grep { (grep { $_ eq '<c@sender.test>' } @{$_->{rcpts}}) } $mxsink->messages;
is(scalar @dsn, 1, 'cycle: one DSN to the sender');
my $d = parse_dsn($dsn[0]{text} // '') // { rcpts => [] };
is(scalar @{$d->{rcpts}}, 1, 'cycle: one failed recipient in it');
like($d->{rcpts}[0]{'final-recipient'} // '', qr/loopa\@example\.test/i,
    'cycle: the looping recipient is loopa@');
is($d->{rcpts}[0]{status} // '', '5.4.6', 'cycle: Status 5.4.6');
my ($lb) = attempt_lines($mx, $lp, "loopa\@$D", 'bounced');
like($lb // '', qr/dsn=5\.4\.6/, 'log: loop bounced with dsn=5.4.6');

# SRS round trip: the forward's bounce, sent by yahoo.com's MX to the SRS
# address, is accepted and reaches the original sender (a@sender.test)
my ($fwdmsg) = sink_for('dan@yahoo.com', 'to-dan');
my ($srs) = ($fwdmsg->{mail} // '') =~ /^<(.*)>\z/;
ok($srs, "the SRS sender of the forward: $srs");
$nsink = $mxsink->count;
my $bounce_text = "From: MAILER-DAEMON\@yahoo.com\r\nTo: $srs\r\n"
    . "Subject: Undelivered Mail Returned to Sender srs-rt\r\n\r\nUser unknown: dan\@yahoo.com\r\n";
my $bid = submit($mx, '', [$srs], $bounce_text);
ok($bid, 'bounce to the SRS address accepted (from <>)');
ok(wait_queue_empty($mx, 15, $bid), 'the bounce left the queue') or diag($mx->log_tail(3000));
$mxsink->wait_count($nsink + 1, 10);
my @back = grep { $_->{text} =~ /srs-rt/ } $mxsink->messages;
is(scalar @back, 1, 'the bounce was delivered once');
is_deeply($back[0]{rcpts} // [], ['<a@sender.test>'], 'to the original sender a@sender.test');
is($back[0]{mail} // '', '<>', 'still from <>');
like($mx->log, qr/smtp rcpt srs id=\S+ to=<\Q$srs\E> orig=<a\@sender\.test>/i, 'log: SRS reversed at RCPT');

# case-folded SRS addresses still verify (some MTAs lower-case local parts)
my $c = $mx->session;
$c->cmd('MAIL FROM:<>');
like($c->cmd('RCPT TO:<' . lc($srs) . '>'), qr/^250 /, 'lower-cased SRS address accepted');

# forged: another hash; tampered: another original address
(my $forged = $srs) =~ s/^(SRS0=)([^=]+)/$1 . ($2 eq 'AAAAAA' ? 'BBBBBB' : 'AAAAAA')/e;
like($c->cmd("RCPT TO:<$forged>"),
    qr/^550 5\.7\.1 <\Q$forged\E>: Recipient address rejected: invalid SRS address/,
    'forged SRS address refused with 550');
(my $tampered = $srs) =~ s/=a\@/=eve\@/;
like($c->cmd("RCPT TO:<$tampered>"), qr/^550 5\.7\.1 .*invalid SRS address/,
    'SRS address with another local part refused with 550');
# expired: a valid hash for a timestamp 30 days old
my @b32 = ('A' .. 'Z', '2' .. '7');
my $day = (int(time / 86400) - 30) % 1024;
my $tt = $b32[($day >> 5) & 31] . $b32[$day & 31];
my $h = substr(hmac_sha1_base64(join("\0", lc $tt, 'sender.test', 'a'), $SECRET), 0, 6);
my $old = "SRS0=$h=$tt=sender.test=a\@$SRSDOM";
like($c->cmd("RCPT TO:<$old>"), qr/^550 5\.7\.1 .*expired SRS address/,
    'SRS address of 30 days ago refused with 550 (expired)');
$day = (int(time / 86400) - 3) % 1024;
$tt = $b32[($day >> 5) & 31] . $b32[$day & 31];
$h = substr(hmac_sha1_base64(join("\0", lc $tt, 'sender.test', 'a'), $SECRET), 0, 6);
like($c->cmd("RCPT TO:<SRS0=$h=$tt=sender.test=a\@$SRSDOM>"), qr/^250 /,
    'SRS address of 3 days ago accepted (the test computes the hash independently)');
like($c->cmd("RCPT TO:<postmaster\@$SRSDOM>"), qr/^550 5\.1\.1 /,
    'a non-SRS address at srs.domain is unknown (550)');
$c->cmd('QUIT');
$c->close;

# SRS1: forwarding a message whose sender is an SRS0 address of another
# forwarder keeps that forwarder as the first host; its bounce goes there
$nsink = $mxsink->count;
my $s1 = submit($mx, 'SRS0=abcd=AB=orig.test=x@fwd1.test', ["dan\@$D"],
    "Subject: to-dan-srs1\r\n\r\nsrs1\r\n");
ok($s1, 'message from an SRS0 sender to dan@ queued');
ok(wait_queue_empty($mx, 15, $s1), 'forwarded') or diag($mx->log_tail(3000));
my ($f1) = sink_for('dan@yahoo.com', 'to-dan-srs1');
like($f1->{mail} // '', qr/^<SRS1=[^=]{6}=fwd1\.test==abcd=AB=orig\.test=x\@\Q$SRSDOM\E>\z/i,
    'forwarded with an SRS1 sender naming fwd1.test');
my ($srs1) = ($f1->{mail} // '') =~ /^<(.*)>\z/;
my $b1 = submit($mx, '', [$srs1], "Subject: srs1-bounce\r\n\r\nbounce\r\n");
ok($b1, 'bounce to the SRS1 address accepted');
ok(wait_queue_empty($mx, 15, $b1), 'delivered') or diag($mx->log_tail(3000));
$mxsink->wait_count($nsink + 2, 10);
my @b1m = grep { $_->{text} =~ /srs1-bounce/ } $mxsink->messages;
is_deeply($b1m[0]{rcpts} // [], ['<SRS0=abcd=AB=orig.test=x@fwd1.test>'],
    'the SRS1 bounce goes to the SRS0 address at the first forwarder');

$mx->stop_ok;
done_testing();
