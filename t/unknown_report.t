# unknown_report.t - unknown recipients (SPEC 10): relayctl domain set
# DOMAIN --unknown reject|tempfail answers 550 5.1.1 or 450 4.1.1, and the
# unknown-recipient report (relayctl address list DOMAIN --refused, the top
# ten in check) puts repeated typos on top of 1,000 random unknown
# addresses; 100,000 random unknown addresses leave the daemon's RSS within
# the bound documented in refused.h (a fixed table per domain).
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;

# the RSS figure is about our table, not about ASan's quarantine of freed
# session memory
$ENV{ASAN_OPTIONS} = join(':', grep { length } $ENV{ASAN_OPTIONS} // '',
    'quarantine_size_mb=1');

need_programs('smtp-sink');
watchdog(120);

my $sink = MxPeers::Sink->new;
my $mx = delivery_daemon();
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '127.0.0.1:' . $sink->port);
$mx->ctl_ok('domain', 'add', 'other.test', '--legacy', '127.0.0.1:' . $sink->port);
$mx->ctl_ok('address', 'add', 'joe@example.test');
$mx->ctl_ok('address', 'add', 'mary@example.test');

# rcpts - one session: MAIL, then the RCPTs pipelined (fewer than
# SMTP_MAX_ERRORS, 50, so the session is not closed), the replies
sub rcpts {
	my (@to) = @_;
	my $c = $mx->session;
	$c->cmd('MAIL FROM:<a@src.test>');
	$c->send(join('', map { "RCPT TO:<$_>\r\n" } @to));
	my @r = map { $c->reply } @to;
	$c->send("QUIT\r\n");
	$c->close;
	return @r;
}

# --unknown: reject (the default), tempfail, back
my ($r) = rcpts('nobody@example.test');
like($r, qr/^550 5\.1\.1 <nobody\@example\.test>: Recipient address rejected: User unknown\z/,
    'default (reject): 550 5.1.1');
like($mx->ctl_ok('domain', 'show', 'example.test'), qr/^unknown:\s+reject \(550 5\.1\.1\)$/m,
    'domain show: unknown reject');
my $out = $mx->ctl_ok('domain', 'set', 'example.test', '--unknown', 'tempfail');
like($out, qr/unknown recipients 450 4\.1\.1/, 'domain set --unknown tempfail');
my @r = rcpts('nobody@example.test', 'joe@example.test', 'Nobody2@Example.TEST');
like($r[0], qr/^450 4\.1\.1 <nobody\@example\.test>: Recipient address rejected: User unknown\z/,
    'tempfail: 450 4.1.1');
like($r[1], qr/^250 /, 'a table address is still accepted');
like($r[2], qr/^450 4\.1\.1 <Nobody2\@Example\.TEST>: /, '450 names the address as written');
($r) = rcpts('nobody@other.test');
like($r, qr/^550 5\.1\.1 /, 'another domain keeps reject');
my ($rc, $o, $e) = $mx->ctl('domain', 'set', 'example.test', '--unknown', 'maybe');
is($rc, 2, '--unknown maybe: usage error');
like($e . $o, qr/expected reject or tempfail/, '... saying what is expected');
my (undef, $j) = $mx->ctl_json('domain', 'show', 'example.test');
is($j->{unknown}, 'tempfail', 'domain show --json: unknown tempfail');

# durable: a restart keeps it
$mx->restart;
($r) = rcpts('nobody@example.test');
like($r, qr/^450 4\.1\.1 /, 'after a restart: still 450');
$mx->ctl_ok('domain', 'set', 'example.test', '--unknown', 'reject');
($r) = rcpts('nobody@example.test');
like($r, qr/^550 5\.1\.1 /, '--unknown reject: 550 again');
my $h = $mx->ctl_ok('history', 'example.test');
like($h, qr/^\S+\s+reject\s+tempfail\s+\d+\s+domain set --unknown(?: \(on \S+\))?$/m, 'history: reject -> tempfail');
like($h, qr/^\S+\s+tempfail\s+reject\s+\d+\s+domain set --unknown(?: \(on \S+\))?$/m, 'history: tempfail -> reject');

# the report: typos among 1,000 random unknown addresses
srand(18);
sub rnd { join '', map { ('a'..'z', '0'..'9')[int rand 36] } 1 .. 12 }
my @stream = map { rnd() . '@example.test' } 1 .. 1000;
# the typos of an import: jeo 40 times, mray 25 times, sales-team 10 times
for my $t (['jeo@example.test', 40], ['mray@example.test', 25], ['Sales-Team@example.test', 10]) {
	splice(@stream, int(rand(@stream + 1)), 0, $t->[0]) for 1 .. $t->[1];
}
my ($n250, $n550) = (0, 0);
while (my @batch = splice(@stream, 0, 45)) {
	for (rcpts(@batch)) {
		$n550++ if /^550 5\.1\.1 /;
		$n250++ if /^250 /;
	}
}
is($n550, 1075, 'every unknown address refused with 550 5.1.1');
is($n250, 0, 'none accepted');
my $list = $mx->ctl_ok('address', 'list', 'example.test', '--refused');
my @lines = grep { /^\s+\d+\s+\S+\@/ } split /\n/, $list;
like($lines[0] // '', qr/^\s+40\s+jeo\@example\.test\s+first /, 'the most frequent typo first, counted 40 times');
like($lines[1] // '', qr/^\s+25\s+mray\@example\.test\s/, 'then mray (25)');
like($lines[2] // '', qr/^\s+10\s+sales-team\@example\.test\s/, 'then sales-team (10), by its canonical form');
like($list, qr/^example\.test: \d+ unknown recipients refused since start, 256 addresses kept \(at most 256\)$/m,
    'the table is full at its bound');
(undef, $j) = $mx->ctl_json('address', 'list', 'example.test', '--refused');
is($j->{refused}[0]{address}, 'jeo@example.test', '--json: first address');
is($j->{refused}[0]{count}, 40, '--json: its count');
is($j->{entries_max}, 256, '--json: the bound');
is(scalar @{$j->{refused}}, 256, '--json: 256 entries');
($rc, $o, $e) = $mx->ctl('check', 'example.test');
$o .= $e;
note("check:\n$o");
like($o, qr/^unknown recipients refused \(top 10\):\n.*\n\s+40\s+jeo\@example\.test .*\n\s+25\s+mray\@example\.test/m,
    'check shows the top of the report');
my @top = $o =~ /^\s+\d+\s+\S+\@example\.test\s+first/mg;
is(scalar @top, 10, 'check: ten addresses');
rcpts('nobody@other.test');
like($mx->ctl_ok('address', 'list', 'other.test', '--refused'), qr/^other\.test: 1 unknown recipient refused since start/m,
    'each domain has its own table');

# 100,000 random unknown addresses: RSS stays within the bound
sub rss_kib {
	my $s = MxTest::slurp('/proc/' . $mx->pid . '/status') // '';
	return $s =~ /^VmRSS:\s+(\d+) kB/m ? $1 : undef;
}
my $rss0 = rss_kib();
ok(defined $rss0, "RSS before: $rss0 KiB");
my $sent = 0;
while ($sent < 100_000) {
	my @b = map { rnd() . '@example.test' } 1 .. 49;
	$sent += @b;
	my @rr = rcpts(@b);
	die "unexpected reply: $rr[-1]\n" unless ($rr[-1] // '') =~ /^550 /;
}
my $rss1 = rss_kib();
my $grown = $rss1 - $rss0;
diag("RSS after 100,000 unknown recipients: $rss1 KiB (+$grown KiB)");
# 100,000 addresses kept would take at least 100,000 * 30 bytes = 3 MB
cmp_ok($grown, '<', 2048, 'RSS grew by less than 2 MiB (the table is fixed: 256 entries, ~72 KiB)');
(undef, $j) = $mx->ctl_json('address', 'list', 'example.test', '--refused');
is(scalar @{$j->{refused}}, 256, 'still 256 entries');
is($j->{refused}[0]{address}, 'jeo@example.test', 'the typo is still on top');
cmp_ok($j->{refused_total}, '>=', 101_075, 'every refusal counted');
my (undef, $st) = $mx->ctl_json('stats');
cmp_ok($st->{recipients_refused_unknown} // 0, '>=', 101_075, 'stats: recipients_refused_unknown');

$mx->ctl_ok('domain', 'remove', 'other.test');
$mx->ctl_ok('domain', 'add', 'other.test');
like($mx->ctl_ok('address', 'list', 'other.test', '--refused'), qr/no unknown recipient refused since start/,
    'a removed domain takes its table along');
$mx->stop_ok;
done_testing();
