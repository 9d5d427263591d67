# delivery_bytes.t - what reaches the downstream is the client's message plus
# our header fields, octet for octet: 8-bit, 5000-octet lines (folded with
# CRLF SP after 998 octets: server.long_lines = "fold"), lines that start
# with a dot; and the SMTP smuggling payloads of t/smuggling.t never
# produce a message downstream (SPEC 5: Message integrity, SPEC 6)
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use Time::HiRes qw(time sleep);

need_programs('smtp-sink');
watchdog(60);

# smtp-sink -d writes each message as received, dot-unstuffed, CRLF -> LF
my $sink = MxPeers::Sink->new;
my $sink2 = MxPeers::Sink->new;		# for the smuggling part
my $mx = delivery_daemon();
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '[127.0.0.1]:' . $sink->port);
$mx->ctl_ok('domain', 'add', 'b.test', '--legacy', '[127.0.0.1]:' . $sink2->port);
$mx->ctl_ok('address', 'add', $_) for qw(joe@example.test joe@b.test mary@b.test);

my $all8 = join('', map { chr } 0x80 .. 0xff);
my %cases = (
	'8bit' => ["Subject: 8bit \xc3\xa9\r\nMessage-ID: <c8bit\@src.test>\r\n\r\n"
	    . "caf\xc3\xa9 na\xc3\xafve \xe2\x82\xac\r\n$all8\r\n\x01\x02\x7f tab\there\r\n",
	    'BODY=8BITMIME'],
	'longlines' => ["Subject: long lines\r\nMessage-ID: <clonglines\@src.test>\r\n"
	    . 'X-Long: ' . ('h' x 4990) . "\r\n\r\n"
	    . ('a' x 5000) . "\r\n" . ('b' x 998) . "\r\n" . ('c' x 999) . "\r\n"
	    . ('.' . ('d' x 4999)) . "\r\n" . join('', map { chr(65 + $_ % 26) } 0 .. 20000) . "\r\nend\r\n",
	    ''],
	'dots' => ["Subject: dots\r\nMessage-ID: <cdots\@src.test>\r\n\r\n"
	    . ".\r\n..\r\n...\r\n.leading\r\n. space\r\n..double\r\nmiddle . dot\r\n.\r\n"
	    . "\r\n.\r\n\r\n.end\r\n",
	    ''],
	'nobody' => ["Subject: no body\r\nMessage-ID: <cnobody\@src.test>\r\n", ''],
	'bigbody' => ["Subject: big\r\nMessage-ID: <cbigbody\@src.test>\r\n\r\n"
	    . join('', map { ($_ % 7 ? '' : '.') . sprintf("%06d %s\r\n", $_, 'x' x 70) } 1 .. 20000),
	    ''],
);

# fold998 - CONTENT as server.long_lines = "fold" passes it on: CRLF SP
# inserted so that no line exceeds 998 octets on the wire (a line that
# starts with "." is stuffed there, so its dot counts twice)
sub fold998 {
	my ($content) = @_;
	my $out = '';
	for my $line (split /(?<=\r\n)/, $content) {
		my $eol = $line =~ s/\r\n\z// ? "\r\n" : '';
		my $n = 0;
		for my $ch (split //, $line) {
			if ($n >= 998) { $out .= "\r\n "; $n = 1; }
			$out .= $ch;
			$n += ($n == 0 && $ch eq '.') ? 2 : 1;
		}
		$out .= $eol;
	}
	return $out;
}

my %ids;
for my $name (sort keys %cases) {
	my ($content, $params) = @{$cases{$name}};
	$ids{$name} = submit($mx, 'a@src.test', ['joe@example.test'], $content, mail_params => $params);
	ok($ids{$name}, "$name: queued");
}
my $n = scalar keys %cases;
is($sink->wait_count($n, 20), $n, "all $n messages reached the downstream") or diag($mx->log_tail(3000));
ok(wait_queue_empty($mx, 10), 'queue empty');

my %got;
for my $m ($sink->messages) {
	my ($mid) = $m->{text} =~ /^Message-ID: <c(\w+)\@src\.test>/m;
	push @{$got{$mid // 'unknown'}}, $m;
}
for my $name (sort keys %cases) {
	my ($content, $params) = @{$cases{$name}};
	my $copies = $got{$name} || [];
	is(scalar @$copies, 1, "$name: exactly one copy downstream");
	my $m = $copies->[0] or next;
	$content = fold998($content) if $name eq 'longlines';
	my ($ok, $prefix) = our_headers_then($m->{text}, crlf_to_lf($content));
	ok($ok, "$name: the client's octets, after our header fields only");
	if (!$ok) {
		my $e = crlf_to_lf($content);
		my $t = $m->{text};
		my $i = 0;
		$i++ while $i < length($e) && $i < length($t)
		    && substr($t, length($t) - 1 - $i, 1) eq substr($e, length($e) - 1 - $i, 1);
		diag("$name: got " . length($t) . " octets, expected a suffix of " . length($e)
		    . "; they agree on the last $i octets");
	}
	like($prefix // '', qr/\(mxrelayd\) with E?SMTP id \Q$ids{$name}\E;/, "$name: our Received: names the queue ID");
	like($m->{mail_args} // '', qr/BODY=8BITMIME/i, "$name: 8BITMIME message sent with BODY=8BITMIME")
	    if $params =~ /8BITMIME/;
}

# --- smuggling payloads: refused inbound, nothing downstream -------------
my $smuggled = "MAIL FROM:<admin\@src.test>\r\nRCPT TO:<mary\@b.test>\r\nDATA\r\n"
    . "Subject: smuggled\r\n\r\nsmuggled body\r\n";
my @payloads = (
	["\n.\n", 'LF.LF'], ["\n.\r\n", 'LF.CRLF'], ["\r\n.\n", 'CRLF.LF'],
	["\r.\r\n", 'CR.CRLF'], ["\r\n.\r", 'CRLF.CR'], ["\r.\r", 'CR.CR'],
	["\n", 'a lone bare LF'], ["\r", 'a lone bare CR'],
	["\n.\n$smuggled", 'LF.LF + smuggled MAIL FROM'],
	["\r\n.\n$smuggled", 'CRLF.LF + smuggled MAIL FROM'],
	["\n.\r\n$smuggled", 'LF.CRLF + smuggled MAIL FROM'],
	["\r.\r\n$smuggled", 'CR.CRLF + smuggled MAIL FROM'],
);
my $c = $mx->session;
for my $p (@payloads) {
	my ($bytes, $name) = @$p;
	$c->cmd('MAIL FROM:<s@src.test>');
	$c->cmd('RCPT TO:<joe@b.test>');
	$c->cmd('DATA');
	$c->send("Subject: $name\r\n\r\nbefore$bytes" . "after\r\n.\r\n");
	my $r = $c->reply;
	like($r // 'EOF', qr/^550 5\.6\.11 /, "$name: refused");
	$c->pending(0.2);
	if (!defined $r) { $c = $mx->session; next; }
	$c->cmd('RSET');
}
my $clean = "Subject: clean after payloads\r\nMessage-ID: <clean.$$\@src.test>\r\n\r\n"
    . "line\r\n.dot line\r\n";
my $r = $c->transaction('s@src.test', ['joe@b.test'], dot_stuff($clean));
like($r // '', qr/^250 2\.0\.0 Ok: queued as (\S+)/, 'clean message after them queued');
$c->cmd('QUIT');
is($sink2->wait_count(1, 15), 1, 'the clean message reached the downstream');
ok(wait_queue_empty($mx, 10), 'queue empty');
sleep 1;
my @m = $sink2->messages;
is(scalar @m, 1, 'exactly one message downstream: nothing from the payloads');
is_deeply($m[0] ? $m[0]{rcpts} : [], ['<joe@b.test>'], 'for joe only, never mary');
ok(!(grep { $_->{text} =~ /smuggled/ } @m), 'no smuggled content downstream');
my ($ok) = our_headers_then($m[0] ? $m[0]{text} : '', crlf_to_lf($clean));
ok($ok, 'the clean message intact');

$mx->stop_ok;
done_testing();
