# metrics.t - GET /metrics (SPEC 10, metrics.listen): scraped around a real
# transaction and deliveries, the counters move by exactly what happened,
# the gauges show the queue, the domains and the schedule, and the output
# passes Prometheus's own checker (promtool check metrics)
use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use IO::Socket::INET;
use MxTest;
use MxPeers;

need_programs('smtp-sink', 'promtool');
watchdog(60);

my $sink = MxPeers::Sink->new;
my $dead = closed_port();
my $mport = free_port();
# a retry schedule far longer than the test: the dead route's recipient
# stays deferred while we look
my $mx = delivery_daemon(delivery => { retry_schedule => [300] },
    config => { metrics => { listen => "127.0.0.1:$mport" } });
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '[127.0.0.1]:' . $sink->port);
$mx->ctl_ok('domain', 'add', 'dead.test', '--legacy', "[127.0.0.1]:$dead");
$mx->ctl_ok('address', 'add', $_) for qw(joe@example.test mary@dead.test);

my $http = HTTP::Tiny->new(timeout => 10);
my $url = "http://127.0.0.1:$mport/metrics";

# scrape - the exposition as { 'name{labels}' => value }, and its text
sub scrape {
	my $r = $http->get($url);
	die "GET /metrics: $r->{status} $r->{reason}\n" unless $r->{success};
	my %m;
	for (split /\n/, $r->{content}) {
		next if /^#/;
		my ($k, $v) = /^(\S+) (\S+)$/ or die "bad line: $_\n";
		$m{$k} = $v;
	}
	return (\%m, $r);
}

# promtool_ok - promtool check metrics accepts the text (no lint problem)
sub promtool_ok {
	my ($text, $what) = @_;
	my $f = tmpdir() . '/scrape.txt';
	spew($f, $text);
	my ($rc, $out, $err) = run_cmd({ stdin => $f, timeout => 20 },
	    'promtool', 'check', 'metrics');
	is($rc, 0, "promtool check metrics: $what") or diag("$out$err");
	is("$out$err", '', "promtool: no lint problem ($what)");
}

my ($before, $r0) = scrape();
is($r0->{status}, 200, 'GET /metrics: 200');
like($r0->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4}, 'text format 0.0.4');
promtool_ok($r0->{content}, 'idle daemon');
is($before->{'mxrelay_domain_mode{domain="example.test",mode="legacy"}'}, 1, 'example.test: mode legacy 1');
is($before->{'mxrelay_domain_mode{domain="example.test",mode="hosted"}'}, 0, 'example.test: mode hosted 0');

# one session: a relay attempt, an unknown user, two good recipients
my $c = $mx->session;
like($c->cmd('MAIL FROM:<a@src.test>'), qr/^250 /, 'MAIL');
like($c->cmd('RCPT TO:<x@elsewhere.test>'), qr/^554 5\.7\.1 /, 'relay denied');
like($c->cmd('RCPT TO:<nobody@example.test>'), qr/^550 5\.1\.1 /, 'unknown user');
like($c->cmd('RCPT TO:<joe@example.test>'), qr/^250 /, 'joe accepted');
like($c->cmd('RCPT TO:<mary@dead.test>'), qr/^250 /, 'mary accepted');
like($c->cmd('DATA'), qr/^354 /, 'DATA');
$c->send("Subject: metrics\r\n\r\nbody\r\n.\r\n");
my ($id) = ($c->reply // '') =~ /^250 2\.0\.0 Ok: queued as (\S+)/;
ok($id, 'queued') or BAIL_OUT('cannot queue');
$c->cmd('QUIT');
$c->close;

is($sink->wait_count(1, 15), 1, 'joe delivered to the legacy sink');
ok(wait_until(sub { scalar(attempt_lines($mx, $id, 'mary@dead.test', 'deferred')) }, 15, 0.1),
    'mary deferred (dead legacy server)');

my ($after, $r1) = scrape();
promtool_ok($r1->{content}, 'after the transaction');
my %delta = (
	'mxrelay_connections_total' => 1,
	'mxrelay_messages_accepted_total' => 1,
	'mxrelay_recipients_accepted_total' => 2,
	'mxrelay_recipients_refused_total{reason="relay_denied"}' => 1,
	'mxrelay_recipients_refused_total{reason="unknown"}' => 1,
	'mxrelay_messages_refused_total{reason="bare_lf"}' => 0,
	'mxrelay_deliveries_total{status="sent"}' => 1,
	'mxrelay_deliveries_total{status="deferred"}' => 1,
	'mxrelay_deliveries_total{status="bounced"}' => 0,
	'mxrelay_delivery_attempts_total{route="legacy",status="sent"}' => 1,
	'mxrelay_delivery_attempts_total{route="legacy",status="deferred"}' => 1,
	'mxrelay_delivery_attempts_total{route="hosted",status="sent"}' => 0,
	'mxrelay_delivery_latency_seconds_count' => 1,
	'mxrelay_delivery_latency_seconds_bucket{le="+Inf"}' => 1,
	'mxrelay_smtp_transaction_seconds_count' => 1,
	'mxrelay_switches_total' => 0,
);
for my $k (sort keys %delta) {
	ok(defined $after->{$k}, "$k is exported") or next;
	is($after->{$k} - ($before->{$k} // 0), $delta{$k}, "$k moved by $delta{$k}");
}
ok($after->{'mxrelay_smtp_transaction_seconds_sum'} > 0, 'transaction time summed');
ok($after->{'mxrelay_delivery_latency_seconds_bucket{le="60"}'} >= 1,
    'the delivery took under a minute');

# gauges: the deferred recipient, its message, the oldest message
is($after->{'mxrelay_queue_recipients{domain="dead.test",route="legacy",state="deferred"}'}, 1,
    'queue: one deferred recipient of dead.test on the legacy route');
ok(!grep({ /^mxrelay_queue_recipients\{domain="example\.test"/ } keys %$after),
    'queue: nothing left for example.test');
is($after->{mxrelay_queue_messages}, 1, 'one message queued');
ok($after->{mxrelay_spool_bytes} > 0, 'spool bytes counted');
ok($after->{mxrelay_queue_oldest_message_age_seconds} >= 0
    && $after->{mxrelay_queue_oldest_message_age_seconds} < 30, 'oldest message age');
ok($after->{mxrelay_spool_filesystem_avail_bytes} > 0, 'spool file system measured');
is($after->{mxrelay_sessions}, 0, 'no session open');

# relayctl stats and /metrics read the same table
my (undef, $st) = $mx->ctl_json('stats');
is($st->{recipients_refused_unknown},
    $after->{'mxrelay_recipients_refused_total{reason="unknown"}'},
    'relayctl stats recipients_refused_unknown = the metric');
is($st->{attempts_deferred_legacy},
    $after->{'mxrelay_delivery_attempts_total{route="legacy",status="deferred"}'},
    'relayctl stats attempts_deferred_legacy = the metric');

# a switch and a scheduled one
$mx->ctl_ok('switch', 'example.test', 'hosted', '--force');
$mx->ctl_ok('switch', 'dead.test', 'hosted', '--force', '--at', '2099-01-01T00:00:00+00:00');
my ($sw, $r2) = scrape();
promtool_ok($r2->{content}, 'after the switches');
is($sw->{'mxrelay_domain_mode{domain="example.test",mode="hosted"}'}, 1, 'example.test: mode hosted 1');
is($sw->{'mxrelay_domain_mode{domain="example.test",mode="legacy"}'}, 0, 'example.test: mode legacy 0');
is($sw->{mxrelay_switches_total} - $after->{mxrelay_switches_total}, 1, 'one switch counted');
is($sw->{mxrelay_switches_scheduled}, 1, 'one switch scheduled');
is($sw->{'mxrelay_switch_scheduled_timestamp_seconds{domain="dead.test",mode="hosted"}'},
    4070908800, 'its time');

# --- contrib: the alert rules and the dashboard --------------------------------
my $src = $ENV{MX_SRCDIR} // '.';
my ($prc, $pout, $perr) = run_cmd('promtool', 'check', 'rules', "$src/contrib/prometheus-alerts.yml");
is($prc, 0, 'promtool check rules contrib/prometheus-alerts.yml') or diag("$pout$perr");
($prc, $pout, $perr) = run_cmd('promtool', 'test', 'rules', "$src/t/data/prometheus-alerts-test.yml");
is($prc, 0, 'promtool test rules: each alert fires when it should, and only then') or diag("$pout$perr");
my $dash = json_decode(slurp("$src/contrib/grafana-mxrelay.json") // '');
ok($dash && @{$dash->{panels} // []} >= 10, 'contrib/grafana-mxrelay.json: a dashboard with its panels');
# every mxrelay_* name the dashboard and the rules use is one we export
my %exported;
for my $text ($r0->{content}, $r1->{content}, $r2->{content}) {
	$exported{$1} = 1 while $text =~ /^# TYPE (\S+) /mg;
}
my %used;
my $uses = join("\n", map { $_->{expr} } map { @{$_->{targets} // []} } @{$dash->{panels} // []})
    . "\n" . (slurp("$src/contrib/prometheus-alerts.yml") // '');
$used{$1} = 1 while $uses =~ /\b(mxrelay_[a-z_]+?)(?:_bucket|_sum|_count)?\b(?![a-z_])/g;
my @unknown = grep { !$exported{$_} } sort keys %used;
ok(keys %used >= 15, 'the dashboard and the rules use ' . scalar(keys %used) . ' metrics');
is("@unknown", '', 'the dashboard and the rules use only metrics mxrelayd exports');

# only GET /metrics
is($http->get("http://127.0.0.1:$mport/")->{status}, 404, 'other paths: 404');
is($http->post_form($url, {})->{status}, 501, 'POST: 501 (evhttp: method not implemented)');
# evhttp takes HTTP/0.x and 1.2 and would answer in them (fuzz_metrics_http)
for my $v ('0.1', '1.2') {
	my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mport,
	    Timeout => 5) or die "connect: $!";
	print $c "GET /metrics HTTP/$v\r\nHost: x\r\n\r\n";
	my $status = <$c>;
	like($status // '', qr{^HTTP/1\.1 505 }, "HTTP/$v: 505 in HTTP/1.1");
	close $c;
}

# a bad metrics.listen is named by -t
my $bad = MxTest::Daemon->new(config => { metrics => { listen => 'localhost:9425' } });
$bad->write_config;
my ($rc, $out, $err) = run_cmd(mxrelayd_bin(), '-t', '-c', $bad->conf_path);
is($rc, 1, 'mxrelayd -t: bad metrics.listen refused');
like("$out$err", qr/:\d+: metrics\.listen: /, 'the error names file, line and key');

$mx->stop_ok;
done_testing;
