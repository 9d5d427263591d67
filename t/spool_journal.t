# spool_journal.t - the commit journal (doc/spool.md "Commit journal"): a
# group commit syncs SPOOL/journal, not the message files, so after a
# power cut the files may be missing, stale or short. We cannot cut the
# power of this machine; we cut what the disk would have lost instead:
# after kill -9, queue files are removed, overwritten with another file's
# octets or cut before their state records, and a removed file is put
# back. At restart the journal's replay must rebuild every acknowledged
# message byte for byte, its state records, and keep removed ones removed
# (issue 12).
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;

need_programs('smtp-sink');
watchdog(120);

my $sink = MxPeers::Sink->new;
my $mx = MxPeers::delivery_daemon();
my $closed = MxTest::closed_port();
$mx->ctl_ok('domain', 'add', 'held.test', '--legacy', '[127.0.0.1]:' . $sink->port);
$mx->ctl_ok('domain', 'set', 'held.test', '--hold', 'on');
$mx->ctl_ok('domain', 'add', 'down.test', '--legacy', "[127.0.0.1]:$closed");
$mx->ctl_ok('address', 'add', $_) for qw(joe@held.test ann@down.test);
my $q = $mx->queue_dir;

sub body {
	my ($tag, $lines) = @_;
	return "Subject: $tag\r\nMessage-ID: <$tag\@src.test>\r\n\r\n" .
	    join('', map { "$tag line $_ " . ('x' x 60) . "\r\n" } 1 .. $lines);
}

# A: small (written whole from its buffer); B: 100 KB (through the writer
# thread, read back into the journal); C: 2 MB (over the journal's 1 MiB:
# synced on its own, so its file is never lost); E: deleted by the
# operator; F: its server down, so it gets state records.
my %msg = (A => body('A', 40), B => body('B', 1400), C => body('C', 28000),
    E => body('E', 10), F => body('F', 10));
my %id;
for my $t (qw(A B C E)) {
	$id{$t} = submit($mx, 's@src.test', ['joe@held.test'], $msg{$t});
	ok($id{$t}, "message $t acknowledged") or BAIL_OUT('cannot queue');
}
$id{F} = submit($mx, 's@src.test', ['ann@down.test'], $msg{F});
ok($id{F}, 'message F acknowledged');
ok(MxTest::wait_until(sub { (MxTest::slurp("$q/$id{F}") // '') =~ /\nstate 0 deferred /s }, 15),
    'F got a deferred state record (its server is down)');
my $e_file = MxTest::slurp("$q/$id{E}");
$mx->ctl_ok('queue', 'delete', $id{E});
ok(!-e "$q/$id{E}", 'E deleted by the operator');
my $f_file = MxTest::slurp("$q/$id{F}");
my ($f_image) = $f_file =~ /\A(.*?MXRELAY-END crc32=[0-9a-f]{8}\n)/s;
ok($f_image, 'F\'s committed image ends at its trailer');

# the power cut, as the disk would have it
$mx->kill9;
unlink("$q/$id{A}") or die "unlink A: $!";
my $stale = MxTest::slurp("$q/$id{C}");
MxTest::spew("$q/$id{B}", substr($stale, 0, 5000));	# a recycled inode's old octets
MxTest::spew("$q/$id{E}", $e_file);			# the unlink never reached the disk
MxTest::spew("$q/$id{F}", $f_image);			# the state record never did
$mx->start;
my ($replay) = ($mx->log =~ /(spool journal replayed [^\n]*)/g)[-1];
ok($replay, 'the journal was replayed') or diag($mx->log_tail(20));
like($replay // '', qr/ messages=3 /,
    'three message images written: A, B, F (not C: too big; not E: removed later)');
like($replay // '', qr/ removals=1 /, 'one removal: E');
like($replay // '', qr/ appends=[1-9]/, 'F\'s state records');
like($mx->log, qr/spool recovered messages=4 recipients=4 incomplete=0/,
    'A, B, C and F recovered whole, E not');
is_deeply([sort $mx->queue_ids], [sort @id{qw(A B C F)}], 'the queue holds A, B, C and F');
like(MxTest::slurp("$q/$id{F}") // '', qr/\Q$f_image\Estate 0 deferred /,
    'F\'s file has its image and its state record again');
like($mx->ctl_ok('queue', 'show', $id{F}), qr/deferred/, 'relayctl sees F deferred');

# delivered byte for byte
$mx->ctl_ok('domain', 'set', 'down.test', '--legacy', '[127.0.0.1]:' . $sink->port);
$mx->ctl_ok('domain', 'set', 'held.test', '--hold', 'off');
$mx->ctl_ok('queue', 'flush');
ok(wait_queue_empty($mx, 30), 'every message delivered');
for my $t (qw(A B C F)) {
	my ($got) = grep { $_->{text} =~ /^Message-ID: <$t\@src\.test>$/m } $sink->messages;
	my $want = MxPeers::crlf_to_lf($msg{$t});
	ok($got && substr($got->{text}, -length $want) eq $want,
	    "$t arrived byte for byte") or diag(substr($got->{text} // 'missing', 0, 300));
}
ok(!grep({ $_->{text} =~ /^Message-ID: <E\@src\.test>$/m } $sink->messages),
    'E, deleted, was never delivered');

# a clean stop checkpoints: nothing to replay next time
$mx->stop;
$mx->start;
my @replays = $mx->log =~ /(spool journal replayed [^\n]*)/g;
like($replays[-1] // '', qr/ records=0 /, 'after a clean stop the journal holds nothing');

# a torn journal: the record cut in the middle is not applied, the daemon
# starts, and the messages before it are whole
$mx->ctl_ok('domain', 'set', 'held.test', '--hold', 'on');
my $g = submit($mx, 's@src.test', ['joe@held.test'], body('G', 5));
my $h = submit($mx, 's@src.test', ['joe@held.test'], body('H', 5));
ok($g && $h, 'G and H acknowledged');
$mx->kill9;
my $j = $mx->spool_dir . '/journal';
my $jraw = MxTest::slurp($j);
my $hpos = index($jraw, "Message-ID: <H\@src.test>");
ok($hpos > 0, 'H is in the journal');
open(my $fh, '+<', $j) or die "$j: $!";
binmode $fh;
seek($fh, $hpos, 0);
print $fh "TORN";
close $fh;
unlink("$q/$g", "$q/$h");
$mx->start;
like(($mx->log =~ /(spool journal replayed [^\n]*)/g)[-1] // '', qr/ records=1 messages=1 /,
    'G replayed, the torn H not');
is_deeply([$mx->queue_ids], [$g], 'G is back; H is not (as if its commit never returned)');
$mx->stop_ok;
done_testing();
