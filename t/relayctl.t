# relayctl.t - the control client: domains, addresses, JSON, exit codes, socket (SPEC 2, 4, 8)
use strict;
use warnings;
use Test::More;
use MxTest;

watchdog(60);
my $hostport = closed_port();
my $mx = MxTest::Daemon->new(config => { hosting => { destination => "lmtp:[127.0.0.1]:$hostport" } });
$mx->start;

# the control socket
my @st = stat($mx->socket_path);
ok(-S _, 'control socket exists');
is(sprintf('%04o', $st[2] & 07777), '0660', 'control socket mode is 0660');

# exit codes
my ($rc, $out, $err) = MxTest::run_cmd(MxTest::relayctl_bin(), '-s', $mx->dir . '/no/such.sock', 'status');
is($rc, 3, 'socket path that does not exist: exit 3');
like("$out$err", qr/\S/, '... with a message');
($rc) = $mx->ctl('frobnicate');
is($rc, 2, 'unknown command: exit 2');
($rc) = $mx->ctl('domain', 'add');
is($rc, 2, 'missing argument: exit 2');
($rc) = $mx->ctl('domain', 'add', 'x.test', '--bogus-option');
is($rc, 2, 'unknown option: exit 2');
($rc) = MxTest::run_cmd(MxTest::relayctl_bin());
is($rc, 2, 'no command at all: exit 2');
($rc, $out, $err) = $mx->ctl('domain', 'show', 'missing.test');
is($rc, 1, 'domain show of an unknown domain: exit 1 (refused)');
like("$out$err", qr/\S/, '... and the reason is printed');
($rc) = $mx->ctl('address', 'add', 'joe@missing.test');
is($rc, 1, 'address add in a domain that is not hosted: exit 1');

# status
my ($j_rc, $j) = $mx->ctl_json('status');
is($j_rc, 0, 'status --json exit 0');
is(ref $j, 'HASH', 'status --json is a JSON object');
ok(defined $mx->queue_count, 'status --json reports the queue message count');
is($mx->queue_count, 0, '... which is 0');
my $plain = $mx->ctl_ok('status');
like($plain, qr/^version:\s+mxrelayd \S+/m, 'status: version');
like($plain, qr/^uptime:/m, 'status: uptime');
like($plain, qr/^connections:\s+\d+ current, \d+ total/m, 'status: connections');
like($plain, qr/^queue:\s+0 messages, 0 recipients/m, 'status: queue');
like($plain, qr/^domains:\s+\d+ \(\d+ legacy, \d+ hosted\)/m, 'status: domains by mode');
ok(defined $j->{version} && defined $j->{uptime} && defined $j->{connections}{current}
    && defined $j->{domains}{legacy} && defined $j->{domains}{hosted},
    'status --json: version, uptime, connections, domains by mode') or diag(explain $j);
# -c FILE finds the socket through the configuration; -c and -s exclude each other
my ($crc, $cout) = run_cmd(MxTest::relayctl_bin(), '-c', $mx->conf_path, 'status');
is($crc, 0, 'relayctl -c FILE status: exit 0');
like($cout, qr/^version:/m, '... through the socket named in the configuration');
($crc) = run_cmd(MxTest::relayctl_bin(), '-c', $mx->conf_path, '-s', $mx->socket_path, 'status');
is($crc, 2, 'relayctl -c with -s: usage error, exit 2');

# domains
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', 'mail.example.test:2525/5', '--legacy', '192.0.2.1');
$mx->ctl_ok('domain', 'add', 'hosted.test', '--mode', 'hosted');
$mx->ctl_ok('domain', 'add', 'Upper.TEST');
($rc, $j) = $mx->ctl_json('domain', 'list');
is($rc, 0, 'domain list --json exit 0');
ok(ref $j, 'domain list --json decodes');
ok(deep_has_value($j, 'example.test') && deep_has_value($j, 'hosted.test') && deep_has_value($j, 'upper.test'),
    'domain list has the three domains (names lower-cased)') or diag(explain($j));
($rc, $j) = $mx->ctl_json('domain', 'show', 'example.test');
is($rc, 0, 'domain show --json exit 0');
ok(deep_has_value($j, 'example.test'), 'domain show: name');
ok(deep_has_value($j, 'legacy'), 'domain show: mode legacy (the default)');
my $s1 = hash_with($j, 'mail.example.test');
ok($s1 && deep_has_value($s1, 2525) && deep_has_value($s1, 5), 'legacy server mail.example.test port 2525 pref 5')
    or diag(explain($j));
my $s2 = hash_with($j, '192.0.2.1');
ok($s2 && deep_has_value($s2, 25) && deep_has_value($s2, 20), 'legacy server 192.0.2.1 default port 25, 2nd default pref 20')
    or diag(explain($j));
($rc, $j) = $mx->ctl_json('domain', 'show', 'hosted.test');
ok(deep_has_value($j, 'hosted'), 'domain add --mode hosted');
$mx->ctl_ok('domain', 'set', 'example.test', '--legacy', '[192.0.2.7]:26');
($rc, $j) = $mx->ctl_json('domain', 'show', 'example.test');
ok(hash_with($j, '192.0.2.7') && !hash_with($j, 'mail.example.test'), 'domain set --legacy replaces the servers')
    or diag(explain($j));
($rc) = $mx->ctl('domain', 'add', 'bad..name');
is($rc, 2, 'domain add with a bad name: usage error, exit 2');

# addresses
$mx->ctl_ok('address', 'add', 'joe@example.test');
$mx->ctl_ok('address', 'add', 'info@example.test', '--alias', 'joe@example.test,dan@yahoo.test');
$mx->ctl_ok('address', 'add', 'boss@example.test', '--cc', 'audit@example.test', '--nofilter');
($rc, $j) = $mx->ctl_json('address', 'show', 'info@example.test');
is($rc, 0, 'address show --json exit 0');
ok(deep_has_value($j, 'info@example.test') && deep_has_value($j, 'alias')
    && deep_has_value($j, 'joe@example.test') && deep_has_value($j, 'dan@yahoo.test'),
    'address show: alias with its two destinations') or diag(explain($j));
($rc, $j) = $mx->ctl_json('address', 'show', 'BOSS@Example.Test');
is($rc, 0, 'address show is case-insensitive');
ok(deep_has_value($j, 'mailbox') && deep_has_value($j, 'audit@example.test'), 'auto-CC mailbox') or diag(explain($j));
ok(deep_has_value($j, 'nofilter') || grep({ JSON::PP::is_bool($_) && $_ } deep_find($j, 'nofilter'))
    || grep({ JSON::PP::is_bool($_) && !$_ } deep_find($j, 'filter')),
    'address marked nofilter') or diag(explain($j));
($rc, $j) = $mx->ctl_json('address', 'list', 'example.test');
is($rc, 0, 'address list --json exit 0');
is_deeply([sort map { lc } deep_find($j, 'address')], [qw(boss@example.test info@example.test joe@example.test)],
    'address list has the three addresses (one "address" each)') or diag(explain($j));
is($mx->ctl_ok('address', 'remove', 'joe@example.test'), "address joe\@example.test: removed\n",
    'address remove says so');
($rc) = $mx->ctl('address', 'show', 'joe@example.test');
is($rc, 1, 'address show after remove: exit 1');
($rc) = $mx->ctl('address', 'remove', 'joe@example.test');
is($rc, 1, 'address remove of a missing address: exit 1');

# changes are durable: kill -9 and restart
$mx->kill9;
$mx->start;
($rc, $j) = $mx->ctl_json('address', 'list', 'example.test');
is_deeply([sort map { lc } deep_find($j, 'address')], ['boss@example.test', 'info@example.test'],
    'addresses survive kill -9') or diag(explain($j));
($rc, $j) = $mx->ctl_json('domain', 'list');
ok(deep_has_value($j, 'hosted.test'), 'domains survive kill -9');

# domain remove refused while mail is queued, unless --force
$mx->ctl_ok('address', 'add', 'joe@example.test');
my $c = $mx->session;
like($c->transaction('s@src.test', ['joe@example.test'], "Subject: q\r\n\r\nq\r\n"), qr/^250 2\.0\.0 /, 'a message queued for example.test');
$c->cmd('QUIT');
($rc, $out, $err) = $mx->ctl('domain', 'remove', 'example.test');
is($rc, 1, 'domain remove while mail is queued: exit 1') or diag("$out$err");
like($mx->ctl_ok('domain', 'remove', 'example.test', '--force'),
    qr/^domain example\.test: removed with 3 addresses$/, 'domain remove --force: removed, with its 3 addresses');
($rc, $j) = $mx->ctl_json('domain', 'remove', 'upper.test');
is($rc, 0, 'domain remove --json: exit 0');
ok(ref $j eq 'HASH' && ($j->{result} // '') eq 'removed' && ($j->{domain} // '') eq 'upper.test'
    && defined $j->{addresses_removed}, 'JSON: result, domain, addresses_removed') or diag(explain($j));
($rc, $j) = $mx->ctl_json('domain', 'list');
ok(!deep_has_value($j, 'example.test') && !deep_has_value($j, 'upper.test') && deep_has_value($j, 'hosted.test'),
    'domain list after remove') or diag(explain($j));
($rc) = $mx->ctl('domain', 'show', 'example.test');
is($rc, 1, 'domain show after remove: exit 1');

# stats
($rc, $j) = $mx->ctl_json('stats');
is($rc, 0, 'stats --json exit 0');
is(ref $j, 'HASH', 'stats --json is an object');

$mx->stop_ok;
done_testing();

# hash_with - the innermost hash that holds VALUE as one of its own values
sub hash_with {
	my ($data, $value) = @_;
	my @todo = ($data);
	while (@todo) {
		my $n = shift @todo;
		if (ref $n eq 'HASH') {
			return $n if grep { defined && !ref && lc eq lc $value } values %$n;
			push @todo, values %$n;
		} elsif (ref $n eq 'ARRAY') {
			push @todo, @$n;
		}
	}
	return undef;
}
