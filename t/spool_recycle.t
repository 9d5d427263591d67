# spool_recycle.t - a delivered message file is kept in SPOOL/free/ and the
# next message is written into it (the same inode: no inode allocation, see
# doc/spool.md "Recycling"); the new message is whole, with nothing of the
# old one left after its trailer; free/ is emptied at start-up; a file
# over the recycling size (1 MiB) is removed instead, and free/ holds at
# most 32 MiB (issue 12)
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;

need_programs('smtp-sink');
watchdog(60);

my $sink = MxPeers::Sink->new;
my $mx = MxTest::Daemon->new;
$mx->start;
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '[127.0.0.1]:' . $sink->port);
$mx->ctl_ok('address', 'add', 'joe@example.test');
my $free = $mx->spool_dir . '/free';

sub free_files {
	opendir(my $dh, $free) or return ();
	return grep { !/^\./ } readdir $dh;
}

# A: 30 KB with a marker, delivered
my $old = "Subject: A\r\n\r\n" . ("OLD-MESSAGE-BYTES " x 1700) . "\r\n";
my $a = submit($mx, 's@src.test', ['joe@example.test'], $old);
ok($a, 'message A queued') or BAIL_OUT('cannot queue');
ok(wait_queue_empty($mx, 15, $a), 'A delivered and removed from queue/');
ok(MxTest::wait_until(sub { scalar(my @f = free_files()) == 1 }, 5), 'A\'s file waits in free/');
my ($kept) = free_files();
is($kept, $a, 'under its queue ID');
my $ino = (stat("$free/$kept"))[1];

# B: short, held so that its file can be read
$mx->ctl_ok('domain', 'set', 'example.test', '--hold', 'on');
my $new = "Subject: B\r\n\r\nthe new message\r\n";
my $b = submit($mx, 's@src.test', ['joe@example.test'], $new);
ok($b, 'message B queued');
is(scalar(my @f = free_files()), 0, 'B took the file out of free/');
my $path = $mx->queue_dir . "/$b";
is((stat $path)[1], $ino, 'queue/B is A\'s old inode');
my $raw = MxTest::slurp($path);
unlike($raw, qr/OLD-MESSAGE-BYTES/, 'nothing of A is left in B\'s file');
like($raw, qr/\nid \Q$b\E\n/, 'B\'s file has B\'s envelope');
like($raw, qr/the new message\r\nMXRELAY-END crc32=[0-9a-f]{8}\n(?:state .*\n)*\z/,
    'and ends with B\'s trailer and its state records');
is(-s $path, length $raw, 'the file is cut to B\'s length');

# restart: free/ emptied, B recovered
MxTest::spew("$free/STALE", "x");
$mx->restart;
is(scalar(my @g = free_files()), 0, 'start-up empties free/');
is_deeply([$mx->queue_ids], [$b], 'B is recovered from the recycled file');
like($mx->log, qr/spool recovered messages=1 recipients=1 incomplete=0/, 'whole, not incomplete');

# delivered intact
$mx->ctl_ok('domain', 'set', 'example.test', '--hold', 'off');
$mx->ctl_ok('queue', 'flush');
ok(wait_queue_empty($mx, 15, $b), 'B delivered');
my ($got) = grep { $_->{text} =~ /Subject: B/ } $sink->messages;
ok($got, 'the sink has B');
like($got->{text} // '', qr/\nSubject: B\n\nthe new message\n\z/, 'B arrived byte for byte (LF as dumped)');
unlike($got->{text} // '', qr/OLD-MESSAGE-BYTES/, 'with nothing of A');

# an 80 KB message's file is kept too (the limit was 64 KiB: every 100 KB
# message allocated an inode)
my $mid = submit($mx, 's@src.test', ['joe@example.test'], "Subject: C\r\n\r\n" . ("y" x 998 . "\r\n") x 80);
ok($mid && wait_queue_empty($mx, 15, $mid), 'an 80 KB message delivered');
ok(MxTest::wait_until(sub { grep { $_ eq $mid } free_files() }, 5), 'its file waits in free/');

# over SPOOL_RECYCLE_SIZE (1 MiB): removed, not kept
my $big = submit($mx, 's@src.test', ['joe@example.test'], "Subject: D\r\n\r\n" . ("z" x 998 . "\r\n") x 1100);
ok($big && wait_queue_empty($mx, 15, $big), 'a 1.1 MB message delivered');
ok(MxTest::wait_until(sub { !-e $mx->queue_dir . "/$big" }, 5), 'and gone from queue/');
ok(!grep({ $_ eq $big } free_files()), 'its file was removed, not kept in free/');

# free/ holds at most SPOOL_FREE_BYTES (32 MiB): 40 files of 900 KB
# delivered at once, about 35 of them fit
$mx->ctl_ok('domain', 'set', 'example.test', '--hold', 'on');
my $body = "Subject: E\r\n\r\n" . ("w" x 998 . "\r\n") x 900;
my @many = grep { defined } map { submit($mx, 's@src.test', ['joe@example.test'], $body) } 1 .. 40;
is(scalar @many, 40, '40 messages of 900 KB queued');
$mx->ctl_ok('domain', 'set', 'example.test', '--hold', 'off');
$mx->ctl_ok('queue', 'flush');
ok(wait_queue_empty($mx, 60, @many), 'all delivered');
my ($n, $bytes, $one);
ok(MxTest::wait_until(sub {
	($n, $bytes) = (0, 0);
	for (free_files()) { $n++; $bytes += -s "$free/$_" // 0; $one = -s "$free/$_" }
	$n >= 30
}, 10), "free/ filled: $n files");
cmp_ok($bytes, '<=', 32 * 1024 * 1024, "free/ holds $bytes octets, at most 32 MiB");
cmp_ok($bytes + $one, '>', 32 * 1024 * 1024, 'one file more would not fit: the octets stopped it');
cmp_ok($n, '<', 40, 'the others were removed');
$mx->stop_ok;
done_testing();
