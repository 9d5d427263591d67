# fleet_copy.t - moving a host to PostgreSQL (issue 10): `mxrelayd -M DIR`
# copies a SQLite state (domains, legacy servers, 10,000 addresses, modes,
# history, schedule, a pilot override, the verify-legacy flag) into an empty PostgreSQL database; the export, the
# domain, the history and the schedule read the same before and after,
# and a second copy into the now full database is refused.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPg;
use POSIX qw(strftime);

watchdog(120);

my $N = 10000;
my $sq = MxTest::Daemon->new->start;
$sq->ctl_ok('domain', 'add', 'example.test', '--legacy', 'mail.example.test:2525/5',
    '--legacy', '192.0.2.1');
$sq->ctl_ok('domain', 'add', 'other.test', '--mode', 'hosted');
my $file = $sq->dir . '/import.txt';
spew($file, join('', map { "user$_\n" } 1 .. $N - 3)
    . "info: user1, user2\nfwd: someone\@elsewhere.test\n");
$sq->ctl_ok('import', 'example.test', $file);
$sq->ctl_ok('address', 'add', 'boss@example.test', '--cc', 'audit@example.test', '--nofilter');
$sq->ctl_ok('address', 'add', 'joe@other.test');
$sq->ctl_ok('switch', 'example.test', 'hosted', '--force');
$sq->ctl_ok('switch', 'example.test', 'legacy', '--force');
$sq->ctl_ok('address', 'set', 'boss@example.test', '--route', 'hosted', '--force');
$sq->ctl_ok('domain', 'set', 'example.test', '--verify-legacy', 'on');
$sq->ctl_ok('switch', 'other.test', 'legacy', '--force', '--at',
    strftime('%Y-%m-%dT%H:%M:%SZ', gmtime(time + 3600)));

sub snapshot {
	my ($mx) = @_;
	my %s;
	for my $d ('example.test', 'other.test') {
		my ($rc, $out) = $mx->ctl('export', $d);
		$s{"export $d"} = $rc == 0 ? $out : "export failed ($rc)";
		my (undef, $j) = $mx->ctl_json('domain', 'show', $d);
		$s{"show $d"} = $j;
		(undef, $j) = $mx->ctl_json('history', $d);
		$s{"history $d"} = $j;
	}
	return \%s;
}
my $before = snapshot($sq);
is_deeply($before->{'show example.test'}{overrides},
    [{ address => 'boss@example.test', route => 'hosted' }], 'a pilot before');
ok($before->{'show example.test'}{verify_legacy}, 'verify-legacy on before');
is(scalar(() = $before->{'export example.test'} =~ /\n/g), $N, "$N addresses exported before");
$sq->stop_ok;

my $pg = MxPg->shared;
my $db = $pg->new_database;
my $mx = MxTest::Daemon->new(dir => $sq->dir, port => $sq->port,
    config => { state => $pg->state_config($db) });
$mx->write_config;
my ($rc, $out, $err) = run_cmd(mxrelayd_bin(), '-c', $mx->conf_path, '-M', $sq->dir . '/state');
is($rc, 0, 'mxrelayd -M copies the SQLite state') or diag($err);
like($out, qr/^copied \S+mxrelay\.db to $db on 127\.0\.0\.1:\d+: domains=2 legacy_servers=2 addresses=@{[$N + 1]} address_routes=1 mx_watch=\d+ verified_addresses=0 switch_schedule=1 switch_history=3$/m,
    'it says what it copied') or diag($out);

$mx->start;
my $after = snapshot($mx);
for my $k (sort keys %$before) {
	is_deeply($after->{$k}, $before->{$k}, "$k: identical after the copy");
}
like($mx->log, qr/store opened backend=postgresql .*addresses=@{[$N + 1]}/, 'the daemon loads them from PostgreSQL');
$mx->stop_ok;

($rc, $out, $err) = run_cmd(mxrelayd_bin(), '-c', $mx->conf_path, '-M', $sq->dir . '/state');
is($rc, 1, 'a second copy is refused');
like($err, qr/not empty .*nothing copied/, '... the database is not empty') or diag($err);
($rc, undef, $err) = run_cmd(mxrelayd_bin(), '-c', $mx->conf_path, '-M', '/nonexistent');
is($rc, 1, 'a missing SQLite state is refused');
like($err, qr{/nonexistent/mxrelay\.db: No such file}, '... named') or diag($err);
done_testing;
