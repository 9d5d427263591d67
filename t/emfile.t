# emfile.t - out of file descriptors (issue 15): mxrelayd started with
# `ulimit -n 64` gets more connections than it can accept. It pauses
# accepting (EMFILE is logged once per pause, the loop does not spin),
# serves the sessions it has, and accepts again once descriptors are free.
# The control socket and the metrics listener pause the same way: a
# relayctl command or a scrape waiting in their queue while descriptors
# are short spun the loop before (issue 12).
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use MxTest;

watchdog(60);
my $dir = MxTest::tmpdir();
my $real = MxTest::mxrelayd_bin();
MxTest::spew("$dir/mxrelayd-64", "#!/bin/sh\nulimit -n 64 || exit 1\nexec '$real' \"\$@\"\n");
chmod 0755, "$dir/mxrelayd-64";
$MxTest::MXRELAYD = "$dir/mxrelayd-64";
my $mport = MxTest::free_port();
my $mx = MxTest::Daemon->new(config => { metrics => { listen => "127.0.0.1:$mport" } });
$mx->start;
$mx->setup(domains => ['example.test'], addresses => ['joe@example.test']);
my $pid = $mx->pid;

# cpu - user + system seconds the daemon used so far
sub cpu {
	my @f = split ' ', (MxTest::slurp("/proc/$pid/stat") // '') =~ s/^.*\) //sr;
	return (($f[11] // 0) + ($f[12] // 0)) / 100;
}

my $first = $mx->session;
my @conns;
for (1 .. 80) {
	my $c = eval { MxTest::SMTP->new(port => $mx->port, timeout => 2) } or last;
	push @conns, $c;
}
is(scalar @conns, 80, '80 connections opened (the kernel queues what is not accepted)');
# read without MxTest's log sync: that asks the control socket, which
# cannot be served until descriptors are free
sub log_now { MxTest::slurp($mx->{logfile}) // '' }
ok(wait_until(sub { log_now() =~ /smtp accept: Too many open files; pausing for \d+ ms/ }, 10, 0.1),
    'EMFILE logged with a pause');
# a relayctl command now waits in the control socket's queue
my $ctl = fork // die "fork: $!";
if ($ctl == 0) {
	open(STDOUT, '>', "$dir/ctl.out") or POSIX::_exit(126);
	open(STDERR, '>&', \*STDOUT) or POSIX::_exit(126);
	exec(MxTest::relayctl_bin(), '-s', $mx->socket_path, 'status') or POSIX::_exit(127);
}
ok(wait_until(sub { log_now() =~ /control accept: Too many open files; pausing for \d+ ms/ }, 10, 0.1),
    'the control socket pauses too');
# and a scrape of /metrics in the metrics listener's queue
my $scrape = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mport, Timeout => 2);
ok($scrape, 'a connection to the metrics listener waits in its queue');
print $scrape "GET /metrics HTTP/1.0\r\n\r\n" if $scrape;
ok(wait_until(sub { log_now() =~ /metrics accept: Too many open files; pausing for \d+ ms/ }, 10, 0.1),
    'the metrics listener pauses too');
my $cpu0 = cpu();
sleep 3;
my $used = cpu() - $cpu0;
ok($used < 1, sprintf('no busy loop while out of descriptors: %.2f s CPU in 3 s', $used));
my $pauses = () = log_now() =~ /smtp accept: .*pausing for/g;
ok($pauses < 40, "the SMTP pauses back off ($pauses in all)");
my $cpauses = () = log_now() =~ /control accept: .*pausing for/g;
ok($cpauses < 40, "the control pauses back off ($cpauses in all)");
like($first->cmd('NOOP'), qr/^250 /, 'a session accepted before is still served');
# (no message is queued here: a delivery attempt in flight at the stop
# would be the mta's business, not this test's)
like($first->cmd('MAIL FROM:<s@src.test>'), qr/^250 /, 'and takes MAIL');
like($first->cmd('RCPT TO:<joe@example.test>'), qr/^250 /, 'and RCPT');
like($first->cmd('RSET'), qr/^250 /, 'and RSET');

$_->close for @conns;
$first->cmd('QUIT');
my $late;
ok(wait_until(sub {
	$late = eval { $mx->session };
	return defined $late;
}, 15, 0.2), 'descriptors free again: a new session gets its 220 and EHLO')
    or BAIL_OUT('no session after the descriptors were freed');
like($mx->log, qr/smtp accept resumed/, 'the log says accepting resumed');
is(waitpid($ctl, 0), $ctl, 'the waiting relayctl command ended');
is($? >> 8, 0, '... served once descriptors were free') or diag(MxTest::slurp("$dir/ctl.out"));
like(MxTest::slurp("$dir/ctl.out") // '', qr/queue/i, '... with the status');
my $answer = '';
if ($scrape) {
	$scrape->timeout(10);
	local $/;
	$answer = <$scrape> // '';
}
like($answer, qr{^HTTP/1\.[01] 200 .*mxrelay_}s, 'the waiting scrape was answered once descriptors were free');
like($late->cmd('MAIL FROM:<s@src.test>'), qr/^250 /, 'and takes MAIL again');
ok($mx->alive, 'the daemon lives');
$late->cmd('QUIT');
$mx->stop_ok;
done_testing();
