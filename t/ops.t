# ops.t - running mxrelayd as an operator would: the systemd unit passes
# systemd-analyze verify, sd_notify READY/STOPPING reach $NOTIFY_SOCKET,
# started as root it drops to server.user, SIGTERM stops it gracefully.
use strict;
use warnings;
use Test::More;
use IO::Socket::UNIX;
use Socket qw(SOCK_DGRAM);
use MxTest;

watchdog(90);
my $src = $ENV{MX_SRCDIR} // '.';

# --- the unit file ---------------------------------------------------------
my $dir = tmpdir();
my $unit = MxTest::slurp("$src/contrib/mxrelay.service.in");
$unit =~ s/\@sbindir\@/\/usr\/local\/sbin/g;
$unit =~ s/\@sysconfdir\@/\/usr\/local\/etc/g;
# verify wants the binaries to exist: point it at the ones under test
(my $bindir = MxTest::mxrelayd_bin()) =~ s{/[^/]+\z}{};
$unit =~ s{/usr/local/sbin}{$bindir}g;
MxTest::spew("$dir/mxrelay.service", $unit);
my ($rc, $out, $err) = run_cmd('systemd-analyze', 'verify', '--man=no', "$dir/mxrelay.service");
is($rc, 0, 'systemd-analyze verify contrib/mxrelay.service') or diag("$out$err");
like($unit, qr/^Type=notify$/m, 'Type=notify');
like($unit, qr/^ExecReload=.*-HUP/m, 'ExecReload sends SIGHUP');
like($unit, qr/^CapabilityBoundingSet=CAP_NET_BIND_SERVICE$/m, 'CAP_NET_BIND_SERVICE only');
like($unit, qr/^NoNewPrivileges=yes$/m, 'NoNewPrivileges');
like($unit, qr/^ProtectSystem=strict$/m, 'ProtectSystem=strict');
like($unit, qr{^ReadWritePaths=.*/var/spool/mxrelay.*/var/lib/mxrelay}m, 'ReadWritePaths for spool and state');
like($unit, qr/^User=mxrelay$/m, 'a dedicated user');
like($unit, qr/^WatchdogSec=/m, 'watchdog');

# --- sd_notify and privilege drop ---------------------------------------------
SKIP: {
	skip 'privilege drop needs root', 8 if $> != 0;
	my $user = 'nobody';
	my (undef, undef, $uid) = getpwnam($user);
	# the daemon's directories: root's temp dir must be traversable by nobody
	my $mx = MxTest::Daemon->new(config => { server => { user => $user } });
	chmod 0755, $mx->dir;
	my $nsock = $mx->dir . '/notify.sock';
	my $n = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $nsock) or die "notify socket: $!";
	chmod 0777, $nsock;
	local $ENV{NOTIFY_SOCKET} = $nsock;
	$mx->start;
	my $msg = '';
	my $rin = '';
	vec($rin, fileno($n), 1) = 1;
	while (select(my $r = $rin, undef, undef, 3) > 0) {
		$n->recv(my $buf, 4096);
		$msg .= "$buf\n";
		last if $msg =~ /READY=1/;
	}
	like($msg, qr/READY=1/, 'sd_notify READY=1 once it accepts mail');
	my $status = MxTest::slurp('/proc/' . $mx->pid . '/status') // '';
	my ($ruid, $euid) = $status =~ /^Uid:\s+(\d+)\s+(\d+)/m;
	is($ruid, $uid, "started as root, runs as $user (real uid)");
	is($euid, $uid, "effective uid $user");
	my @st = stat($mx->spool_dir . '/queue');
	is($st[4], $uid, "spool queue/ belongs to $user");
	@st = stat($mx->dir . '/state/mxrelay.db');
	is($st[4], $uid, "state database belongs to $user");
	# the dropped daemon still does its job
	$mx->setup(domains => ['example.test'], addresses => ['joe@example.test']);
	my ($src_rc, undef, $id) = $mx->swaks('--from', 's@src.test', '--to', 'joe@example.test');
	ok($id, 'a message is queued after the drop');
	# graceful stop: an open session gets 421, STOPPING=1 is sent
	my $c = $mx->session;
	kill 'TERM', $mx->pid;
	like($c->reply(5) // '', qr/^421 4\.3\.2 /, 'SIGTERM: an open session gets 421');
	$msg = '';
	while (select(my $r = $rin, undef, undef, 3) > 0) {
		$n->recv(my $buf, 4096);
		$msg .= "$buf\n";
		last if $msg =~ /STOPPING=1/;
	}
	like($msg, qr/STOPPING=1/, 'sd_notify STOPPING=1 on SIGTERM');
}

done_testing();
