# delivery_damaged.t - a spool file changed on disk after it was accepted
# is never sent as if it were whole: the body is read ahead on the reader
# thread and checked against the CRC-32 of the trailer; a wrong checksum or
# a file cut short drops the connection before the final dot, so the
# downstream discards the message, and the recipient stays deferred.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;

need_programs('smtp-sink');
watchdog(90);

my $sink = MxPeers::Sink->new;
my $mx = delivery_daemon(delivery => { retry_schedule => [600] });
my $dead = closed_port();		# nobody listens here, for the whole test
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', "[127.0.0.1]:$dead");
$mx->ctl_ok('address', 'add', 'joe@example.test');

# a body of several read-ahead chunks (64 KiB each)
my $body = "Subject: damaged\r\nMessage-ID: <damaged.$$\@src.test>\r\n\r\n"
    . join('', map { sprintf("%06d %s\r\n", $_, 'y' x 70) } 1 .. 4000);
my $id = submit($mx, 'a@src.test', ['joe@example.test'], $body);
ok($id, 'message queued') or BAIL_OUT('cannot queue');
ok(wait_log($mx, qr/\b\Q$id\E\b.*status=deferred/, 15), 'deferred: the old server is down');

my $file = $mx->queue_dir . "/$id";
my $data = MxTest::slurp($file);
my $at = index($data, '002000 yyyy');
ok($at > 0, 'the spool file holds the body') or BAIL_OUT('body not found');

# 1. one octet changed in the middle of the body, same length
open(my $fh, '+<', $file) or BAIL_OUT("$file: $!");
binmode $fh;
seek($fh, $at + 1, 0);
print $fh 'X';
close $fh;
$mx->ctl_ok('domain', 'set', 'example.test', '--legacy', '[127.0.0.1]:' . $sink->port);
$mx->ctl_ok('queue', 'flush');
ok(wait_log($mx, qr/\Q$id\E smtp client relay=\S+ spool file damaged: crc32/, 15),
    'a changed octet: "spool file damaged: crc32" logged');
ok(wait_log($mx, qr/\b\Q$id\E\b.*to=<joe\@example\.test>.*dsn=4\.3\.0.*status=deferred/, 15),
    'the recipient is deferred with 4.3.0');
sleep 1;
is($sink->count, 0, 'the downstream has no message: the connection dropped before the dot');

# 2. the file cut short in the middle of the body
truncate($file, $at + 100) or BAIL_OUT("truncate: $!");
$mx->ctl_ok('queue', 'flush');
ok(wait_log($mx, qr/\Q$id\E smtp client relay=\S+ spool file damaged: unexpected end of file/, 15),
    'a short file: "unexpected end of file" logged');
sleep 1;
is($sink->count, 0, 'still nothing at the downstream');
is_deeply([$mx->queue_ids], [$id], 'the message stays queued for the operator');
ok($mx->alive, 'mxrelayd is still running');

$mx->stop_ok;
done_testing();
