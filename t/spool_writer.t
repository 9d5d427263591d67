# spool_writer.t - message files are written behind by the spool writer
# thread (SPEC 9: no disk call on the event loop): a large message arrives
# whole with bounded memory, a session that goes away leaves nothing in
# incoming/, and a file that cannot be written gives a 4xx and queues nothing.
use strict;
use warnings;
use Test::More;
use MxTest;

watchdog(120);
# Under AddressSanitizer freed memory waits in a quarantine and would count
# in the peak below: measure our buffers, not the sanitizer's.
$ENV{ASAN_OPTIONS} = join(':', grep { length } $ENV{ASAN_OPTIONS} // '',
    'quarantine_size_mb=0');
my $mx = MxTest::Daemon->new;
$mx->start;
$mx->setup(domains => ['example.test'], addresses => ['joe@example.test']);
my $incoming = $mx->spool_dir . '/incoming';

sub vm_kb {
	my ($key) = @_;
	my $st = MxTest::slurp('/proc/' . $mx->pid . '/status') // '';
	return $st =~ /^$key:\s+(\d+) kB/m ? $1 : undef;
}

sub start_data {
	my $c = $mx->session;
	$c->cmd('MAIL FROM:<s@src.test>');
	$c->cmd('RCPT TO:<joe@example.test>');
	like($c->cmd('DATA'), qr/^354 /, 'DATA: 354');
	return $c;
}

# 1. a 30 MB message as fast as the client can send it
my $line = ('0123456789' x 9) . "\r\n";			# 92 octets
my $body = "Subject: big\r\n\r\n" . ($line x int(30_000_000 / length $line));
my $hwm0 = vm_kb('VmHWM');
ok(defined $hwm0, 'VmHWM of mxrelayd readable') or BAIL_OUT('no /proc status');
my $c = start_data();
$c->send($body . ".\r\n");
my $r = $c->reply(60);
like($r, qr/^250 2\.0\.0 Ok: queued as (\S+)/, '30 MB message: 250');
my ($id) = ($r // '') =~ /queued as (\S+)/;
my $s = $mx->spool($id // 'none');
my $m = $s ? $s->{message} : '';
$m =~ s/\A(Received:.*?\r\n)(?![ \t])//s;
ok($m eq $body, 'the spool file holds the client\'s 30 MB byte for byte')
    or diag('got ' . length($m) . ' octets, sent ' . length($body));
my $grew = vm_kb('VmHWM') - $hwm0;
cmp_ok($grew, '<', 12 * 1024, 'peak memory grew by less than 12 MB while receiving 30 MB')
    or diag("VmHWM grew by $grew kB");
note("VmHWM grew by $grew kB");
$c->close;

# 2. the client goes away in the middle of DATA: the file is removed
$c = start_data();
$c->send("Subject: gone\r\n\r\n" . ($line x 20000));
ok(wait_until(sub { my @f = glob("$incoming/*"); scalar @f }, 5),
    'the unfinished message is being written to incoming/');
$c->close;
ok(wait_until(sub { my @f = glob("$incoming/*"); !@f }, 5),
    'the client went away: incoming/ is empty again');
is_deeply([$mx->queue_ids], [$id], 'and nothing was queued for it');

# 3. the file cannot be written (incoming/ removed under the daemon)
rmdir $incoming or BAIL_OUT("rmdir $incoming: $!");
$c = start_data();
$c->send("Subject: lost?\r\n\r\nnot writable\r\n.\r\n");
like($c->reply, qr/^451 4\.3\.0 /, 'a write failure: 451 4.3.0 at the end of data');
like($c->cmd('NOOP'), qr/^250 /, 'the session goes on');
is_deeply([$mx->queue_ids], [$id], 'nothing was queued');
like($mx->log, qr/spool commit failed/, 'the failure is logged');
ok($mx->alive, 'mxrelayd is still running');
$c->close;
mkdir $incoming;

$mx->stop_ok;
done_testing();
