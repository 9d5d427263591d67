# emfile.t - out of file descriptors (issue 15): mxrelayd started with
# `ulimit -n 64` gets more connections than it can accept. It pauses
# accepting (EMFILE is logged once per pause, the loop does not spin),
# serves the sessions it has, and accepts again once descriptors are free.
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
my $mx = MxTest::Daemon->new;
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
ok(wait_until(sub { $mx->log =~ /smtp accept: Too many open files; pausing for \d+ ms/ }, 10, 0.1),
    'EMFILE logged with a pause');
my $cpu0 = cpu();
sleep 3;
my $used = cpu() - $cpu0;
ok($used < 1, sprintf('no busy loop while out of descriptors: %.2f s CPU in 3 s', $used));
my $pauses = () = $mx->log =~ /pausing for/g;
ok($pauses < 40, "the pauses back off ($pauses in all)");
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
like($late->cmd('MAIL FROM:<s@src.test>'), qr/^250 /, 'and takes MAIL again');
ok($mx->alive, 'the daemon lives');
$late->cmd('QUIT');
$mx->stop_ok;
done_testing();
