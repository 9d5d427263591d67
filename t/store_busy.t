# store_busy.t - the state store busy (issue 15, fault injection with a real
# fault): another process holds SQLite's write lock. A relayctl change waits
# out the busy timeout (5 s) and is refused with the reason, changing
# nothing; SMTP goes on meanwhile (recipient checks use the in-memory
# index, the loop never waits for the store); once the lock is gone the
# same change succeeds.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use IPC::Open2;
use MxTest;

watchdog(60);
my $mx = MxTest::Daemon->new;
$mx->start;
$mx->setup(domains => ['example.test'], addresses => ['joe@example.test']);
my ($db) = glob($mx->dir . '/state/*.db');
ok(defined $db && -f $db, 'the state database exists') or BAIL_OUT('no state database');

# another writer: sqlite3 holding BEGIN IMMEDIATE until we say ROLLBACK
my $pid = open2(my $out, my $in, 'sqlite3', $db) or BAIL_OUT("sqlite3: $!");
$in->autoflush(1);
print $in "BEGIN IMMEDIATE;\nSELECT 'locked';\n";
my $l = <$out>;
is($l, "locked\n", 'sqlite3 holds the write lock');

# the change, in the background: it waits for the lock
my $t0 = time;
my $kid = fork // die "fork: $!";
if ($kid == 0) {
	my ($rc, $o, $e) = $mx->ctl('address', 'add', 'mary@example.test');
	MxTest::spew($mx->dir . '/busy.out', "$rc\n$o$e");
	POSIX::_exit(0);
}
sleep 0.5;
my $c = $mx->session;
my $t1 = time;
like($c->transaction('s@src.test', ['joe@example.test'], "Subject: busy\r\n\r\nbody\r\n"),
    qr/^250 2\.0\.0 /, 'a message to a known address is queued while the store is locked');
ok(time - $t1 < 2, sprintf('at once (%.2f s): the loop does not wait for the store', time - $t1));
$c->cmd('QUIT');

waitpid($kid, 0);
my ($rc, $text) = split /\n/, MxTest::slurp($mx->dir . '/busy.out') // "x\n", 2;
is($rc, 1, sprintf('relayctl address add refused after %.1f s', time - $t0));
like($text // '', qr/database is locked/, 'the reason names the lock') or diag($text);
ok(time - $t0 >= 4.5, 'it waited for the busy timeout first');
$c = $mx->session;
$c->cmd('MAIL FROM:<s@src.test>');
like($c->cmd('RCPT TO:<mary@example.test>'), qr/^550 5\.1\.1 /, 'nothing changed: mary is unknown');
$c->cmd('QUIT');

print $in "ROLLBACK;\n.quit\n";
close $in;
waitpid($pid, 0);
$mx->ctl_ok('address', 'add', 'mary@example.test');
$c = $mx->session;
$c->cmd('MAIL FROM:<s@src.test>');
like($c->cmd('RCPT TO:<mary@example.test>'), qr/^250 /, 'once the lock is gone the change is made');
$c->cmd('QUIT');
ok($mx->alive, 'the daemon lives');
$mx->stop_ok;
done_testing();
