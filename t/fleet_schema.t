# fleet_schema.t - the state keys and the schema version (issue 10):
# `mxrelayd -t` checks state.backend, state.dsn, state.password_file and
# the lease keys; the first host migrates an empty PostgreSQL database; a
# host older than the database's schema refuses to start and says why.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPg;

watchdog(90);

my $dir = tmpdir();
sub check {
	my ($state) = @_;
	spew("$dir/t.conf", "state = { $state };\n");
	my ($rc, $out, $err) = run_cmd(mxrelayd_bin(), '-t', '-c', "$dir/t.conf");
	return ($rc, $out . $err);
}
my @ok = (
	'backend = "sqlite";',
	'backend = "postgresql"; dsn = "host=db1 dbname=mxrelay user=mxrelay sslmode=verify-full"; password_file = "/etc/mxrelay/pg.pass";',
	'backend = "postgresql"; dsn = "postgresql://db1/mxrelay"; lease_time = 10; lease_renew = 2;',
);
for my $s (@ok) {
	my ($rc, $msg) = check($s);
	is($rc, 0, "-t accepts: $s") or diag($msg);
}
my @bad = (
	['backend = "mysql";', qr/:1: state\.backend: "mysql" must be sqlite or postgresql/],
	['backend = "postgresql";', qr/:1: state\.dsn: required when state\.backend is postgresql/],
	['dsn = "host=db1";', qr/:1: state\.dsn: only with state\.backend "postgresql"/],
	['backend = "postgresql"; dsn = "host=db1 password=secret";', qr/state\.dsn: holds a password: put it in state\.password_file/],
	['backend = "postgresql"; dsn = "host=db1 bogus";', qr/state\.dsn: not a libpq connection string: missing "=" after "bogus"/],
	['backend = "postgresql"; dsn = "host=db1"; password_file = "pg.pass";', qr/state\.password_file: "pg\.pass" must be an absolute path/],
	['backend = "postgresql"; dsn = "host=db1"; lease_time = 3; lease_renew = 2;', qr/state\.lease_time: the lease must last at least two renewals/],
	['backend = "postgresql"; dsn = "host=db1"; lease_time = 1;', qr/state\.lease_time: must be an integer between 2 and 3600/],
);
for my $b (@bad) {
	my ($rc, $msg) = check($b->[0]);
	is($rc, 1, "-t refuses: $b->[0]");
	like($msg, $b->[1], '... with the reason');
}

# an empty database is migrated by the first host
my $pg = MxPg->shared;
my $db = $pg->new_database;
my $mx = MxTest::Daemon->new(config => { state => $pg->state_config($db) })->start;
like($mx->log, qr/store schema migrated version=5/, 'the first host migrated the empty database');
is($pg->psql($db, 'SELECT version FROM mxrelay_schema'), "5\n", 'schema version 5');
$mx->stop_ok;
my $migrated = () = $mx->log =~ /schema migrated/g;
$mx->start;
# counted, not looked for after a "startup" (a nofile warning before the
# store opens starts with that word too)
is(scalar(() = $mx->log =~ /schema migrated/g), $migrated,
    'the second start migrates nothing');
$mx->stop_ok;

# a schema newer than this build: refused, with the reason
$pg->psql($db, 'UPDATE mxrelay_schema SET version = 99');
my $ok = eval { $mx->start; 1 };
ok(!$ok, 'a host older than the schema refuses to start');
like($mx->log, qr/store: database schema version 99 is newer than this mxrelayd \(5\): upgrade mxrelayd/,
    '... and says why');

# the password comes from state.password_file
$pg->psql($db, 'UPDATE mxrelay_schema SET version = 5');
spew("$dir/pg.pass", "not-needed-with-trust\n");
my $mx2 = MxTest::Daemon->new(config => { state => { %{$pg->state_config($db)},
    password_file => "$dir/pg.pass" } })->start;
like($mx2->log, qr/startup .*backend=postgresql database="$db on 127\.0\.0\.1:\d+"/,
    'starts with a password file');
$mx2->stop_ok;
done_testing;
