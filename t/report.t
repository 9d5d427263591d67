# report.t - the log tells each message's story (grep QUEUEID), relayctl
# queue show tells it from memory, and contrib/mxrelay-report's summary of
# a test run's log counts exactly what the test did (issue 14)
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;

need_programs('smtp-sink', 'postfix');
watchdog(60);
my $src = $ENV{MX_SRCDIR} // '.';
my $report = "$src/contrib/mxrelay-report";

my $sink = MxPeers::Sink->new;
my $dead = closed_port();
my $mx = delivery_daemon(delivery => { retry_schedule => [300] });
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '[127.0.0.1]:' . $sink->port);
$mx->ctl_ok('domain', 'add', 'dead.test', '--legacy', "[127.0.0.1]:$dead");
$mx->ctl_ok('address', 'add', $_) for qw(joe@example.test mary@example.test ann@dead.test);

# what this test does, and so what the report must say:
#   4 connections (one is the harness's readiness probe); 2 messages in;
#   recipients:
#   5 accepted, 2 unknown, 1 relay denied; 1 message refused (bare LF);
#   3 deliveries by the legacy route, 1 deferral to 127.0.0.1; 1 switch;
#   1 reload
my $c = $mx->session;
like($c->cmd('MAIL FROM:<a@src.test>'), qr/^250 /, 'MAIL a@');
like($c->cmd('RCPT TO:<joe@example.test>'), qr/^250 /, 'joe');
like($c->cmd('RCPT TO:<nobody@example.test>'), qr/^550 /, 'nobody: unknown');
like($c->cmd('RCPT TO:<x@elsewhere.test>'), qr/^554 /, 'elsewhere: relay denied');
like($c->cmd('RCPT TO:<mary@example.test>'), qr/^250 /, 'mary');
like($c->cmd('DATA'), qr/^354 /, 'DATA');
$c->send("Subject: one\r\n\r\nbody\r\n.\r\n");
my ($id1) = ($c->reply // '') =~ /queued as (\S+)/;
ok($id1, 'first message queued');
# a bare LF in the data: refused, nothing queued
like($c->cmd('MAIL FROM:<a@src.test>'), qr/^250 /, 'MAIL again');
like($c->cmd('RCPT TO:<joe@example.test>'), qr/^250 /, 'joe again');
like($c->cmd('DATA'), qr/^354 /, 'DATA again');
$c->send("Subject: bare\nlf\r\n.\r\n");
like($c->reply // '', qr/^550 5\.6\.11 /, 'bare LF refused');
$c->cmd('QUIT');
$c->close;

$c = $mx->session;
my $id2 = $c->transaction('b@src.test', ['joe@example.test', 'ann@dead.test'],
    "Subject: two\r\n\r\nbody\r\n");
($id2) = ($id2 // '') =~ /queued as (\S+)/;
ok($id2, 'second message queued');
like($c->cmd('MAIL FROM:<b@src.test>'), qr/^250 /, 'MAIL b@');
like($c->cmd('RCPT TO:<ghost@dead.test>'), qr/^550 /, 'ghost: unknown');
$c->cmd('QUIT');
$c->close;
$c = $mx->session;	# a third connection that sends nothing
$c->cmd('QUIT');
$c->close;

is($sink->wait_count(2, 15), 2, 'both messages reached the legacy sink');
ok(wait_until(sub { scalar(attempt_lines($mx, $id2, 'ann@dead.test', 'deferred')) }, 15, 0.1),
    'ann deferred');
$mx->ctl_ok('switch', 'example.test', 'hosted', '--force');
$mx->ctl_ok('reload');
ok(wait_until(sub { $mx->log =~ /reload done/ }, 10, 0.1), 'reload logged');

# --- grep QUEUEID tells the story ---------------------------------------
my @story = grep { /\b\Q$id1\E\b/ } split /\n/, $mx->log;
my $s = join("\n", @story);
like($s, qr/smtp mail id=\Q$id1\E from=<a\@src\.test> client=127\.0\.0\.1 helo=<client\.test>/,
    'grep ID: MAIL with client and HELO');
like($s, qr/smtp rcpt accepted id=\Q$id1\E to=<joe\@example\.test>/, 'grep ID: joe accepted');
like($s, qr/smtp rcpt refused id=\Q$id1\E to=<nobody\@example\.test> reason=unknown/,
    'grep ID: nobody refused, unknown');
like($s, qr/smtp rcpt refused id=\Q$id1\E to=<x\@elsewhere\.test> reason=relay/,
    'grep ID: relay refused');
like($s, qr/smtp queued id=\Q$id1\E from=<a\@src\.test> nrcpt=2/, 'grep ID: queued');
like($s, qr/^mxrelayd: \Q$id1\E to=<joe\@example\.test> relay=\S+ route=legacy delay=\S+ dsn=2\.\d\.\d status=sent/m,
    'grep ID: delivery to joe, route legacy');
like($s, qr/\Q$id1\E removed/, 'grep ID: removed from the queue');

# --- relayctl queue show: the story from memory ------------------------------
my ($rc, $show) = $mx->ctl('queue', 'show', $id2);
is($rc, 0, 'queue show the deferred message');
like($show, qr/^story:\n\s+\S+ \S+ queued from=<b\@src\.test> size=\d+ nrcpt=2\n/m, 'story: queued');
like($show, qr/^\s+\S+ \S+ to=<joe\@example\.test> relay=\S+ route=legacy .*status=sent/m, 'story: joe sent');
like($show, qr/^\s+\S+ \S+ to=<ann\@dead\.test> relay=\S+ route=legacy .*status=deferred/m, 'story: ann deferred');
my (undef, $j) = $mx->ctl_json('queue', 'show', $id2);
is(scalar @{$j->{story} // []}, 3, 'queue show --json: three story lines');

# --- the report -----------------------------------------------------------------
sub report_of {
	my ($file) = @_;
	my ($rc, $out, $err) = run_cmd($^X, $report, $file);
	is($rc, 0, "mxrelay-report exits 0") or diag($err);
	return $out;
}
# line - the count on a summary line, or in a section's table
sub count_of {
	my ($out, $label) = @_;
	return $out =~ /^\Q$label\E\s+(\d+)$/m ? $1 : undef;
}
sub section_count {
	my ($out, $section, $key) = @_;
	my ($body) = $out =~ /^\Q$section\E\n((?:  .*\n)*)/m;
	return undef unless defined $body;
	return $body =~ /^\s+(\d+)  \Q$key\E$/m ? $1 : undef;
}

my $log = $mx->dir . '/mxrelayd.log';
my %want = (
	'connections' => 4, 'messages in' => 2, 'recipients accepted' => 5,
	'recipients refused' => 3, 'messages refused' => 1,
	'connections refused' => 0, 'delivered' => 3,
	'deferred (attempts)' => 1, 'bounced' => 0, 'switches' => 1,
	'reloads' => 1,
);
for my $variant ('stderr', 'journal') {
	my $file = $log;
	if ($variant eq 'journal') {
		# as journalctl (or syslog) shows the same lines
		$file = tmpdir() . '/journal.txt';
		my $t = join('', map { (my $l = $_) =~ s/^mxrelayd: /Dec 06 04:00:00 mx1 mxrelayd[4242]: /;
		    "$l\n" } split /\n/, $mx->log);
		spew($file, "Dec 06 04:00:00 mx1 systemd[1]: Started mxrelay.service\n$t");
	}
	my $out = report_of($file);
	for my $k (sort keys %want) {
		is(count_of($out, $k), $want{$k}, "$variant: $k = $want{$k}");
	}
	is(section_count($out, 'recipients refused by reason', 'unknown'), 2, "$variant: 2 refused unknown");
	is(section_count($out, 'recipients refused by reason', 'relay'), 1, "$variant: 1 refused relay");
	is(section_count($out, 'messages refused by reason', 'bare_lf'), 1, "$variant: 1 bare LF");
	is(section_count($out, 'delivered by route', 'legacy'), 3, "$variant: 3 delivered by legacy");
	is(section_count($out, 'deferred by destination', '127.0.0.1'), 1, "$variant: 1 deferral to 127.0.0.1");
	is(section_count($out, 'top senders', 'a@src.test'), 1, "$variant: a\@src.test sent 1");
	is(section_count($out, 'top senders', 'b@src.test'), 1, "$variant: b\@src.test sent 1");
	is(section_count($out, 'top recipients', 'joe@example.test'), 3, "$variant: joe accepted 3 times");
	is(section_count($out, 'switches by new mode', 'hosted'), 1, "$variant: 1 switch to hosted");
}

$mx->stop_ok;
done_testing;
