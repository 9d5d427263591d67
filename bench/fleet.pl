#!/usr/bin/perl
# bench/fleet.pl - two mxrelayd hosts on one PostgreSQL database (issue 10)
#
# Run from the top of the build tree after `make`, as root (the private
# PostgreSQL cluster runs as the user postgres; t/lib/MxPg.pm), on Debian 12
# with postgresql, postfix (smtp-source, smtp-sink) installed. Prints:
#
#  1. switch: SWITCHES (100) `relayctl switch example.test MODE --force` on
#     mx1, alternating modes: the command's time (start to exit), the time
#     mx2 took to apply it (mx1's answer line "mx2 applied N ms", from the
#     commit to the acknowledgement), and how often mx2 still showed the old
#     mode right after the command returned (must be 0: the time from the
#     return to mx2's first routing decision under the new mode is <= 0).
#  2. rcpt: RCPT latency on mx2 (bench/rcptprobe.pl, one session) while mx1
#     imports IMPORT (100,000) addresses (bench/genimport.pl), until mx2 has
#     them all.
#  3. e2e: messages/s from smtp-source (CLIENTS 20 sessions, E2E_N 2000
#     messages of 4 KB) into one host until its queue is empty at an
#     smtp-sink hosting, the same host on SQLite and on PostgreSQL, RUNS (3)
#     alternating runs each, median.
#
# Environment: MXRELAYD, RELAYCTL (default ./mxrelayd, ./relayctl),
# SWITCHES, IMPORT, E2E_N, CLIENTS, RUNS; PARTS (switch,rcpt,e2e) picks.
use strict;
use warnings;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

my $SRC;
BEGIN { $SRC = dirname(abs_path($0)); }
use lib "$SRC/../t/lib";
$ENV{MXRELAYD} //= abs_path('./mxrelayd');
$ENV{RELAYCTL} //= abs_path('./relayctl');
require MxTest;
require MxPeers;
require MxPg;
MxTest::watchdog(3600);

my $SWITCHES = $ENV{SWITCHES} // 100;
my $IMPORT = $ENV{IMPORT} // 100000;
my $E2E_N = $ENV{E2E_N} // 2000;
my $CLIENTS = $ENV{CLIENTS} // 20;
my $RUNS = $ENV{RUNS} // 3;
my %PART = map { $_ => 1 } split /,/, ($ENV{PARTS} // 'switch,rcpt,e2e');

sub note { print STDERR "# @_\n"; }
sub ctl {
	my ($mx, @args) = @_;
	my ($rc, $out, $err) = $mx->ctl(@args);
	die "relayctl @args: $err" if $rc;
	return $out;
}
sub pct {
	my ($p, @v) = @_;
	@v = sort { $a <=> $b } @v;
	return @v ? $v[int($p / 100 * $#v + 0.5)] : 'nan';
}

note(sprintf "load %s, %d CPUs", (split ' ', MxTest::slurp('/proc/loadavg'))[0 .. 2] ,
    scalar(() = MxTest::slurp('/proc/cpuinfo') =~ /^processor/mg));
my $pg = MxPg->shared;
my $db = $pg->new_database;
my $hosting = MxPeers::Sink->new;
sub host {
	my ($name, $state) = @_;
	return MxPeers::delivery_daemon(hosting => 'smtp:[127.0.0.1]:' . $hosting->port,
	    config => { server => { hostname => $name }, state => $state,
	    limits => { max_connections_per_client => 1000 } });
}
my $A = host('mx1.bench', $pg->state_config($db));
my $B = host('mx2.bench', $pg->state_config($db));
my $dead = MxTest::closed_port();
ctl($A, 'domain', 'add', 'example.test', '--legacy', "127.0.0.1:$dead");
ctl($A, 'address', 'add', 'joe@example.test');

# 1. switch
if ($PART{switch}) {
my (@cmd_ms, @ack_ms, $stale) = ((), (), 0);
for my $i (1 .. $SWITCHES) {
	my $to = $i % 2 ? 'hosted' : 'legacy';
	my $t0 = time;
	my ($rc, $out, $err) = $A->ctl('switch', 'example.test', $to, '--force');
	push @cmd_ms, (time - $t0) * 1000;
	die "switch failed: $err" if $rc;
	my ($ms) = $out =~ /^  mx2\.bench applied (\d+) ms$/m;
	die "no answer from mx2: $out" unless defined $ms;
	push @ack_ms, $ms;
	my (undef, $j) = $B->ctl_json('domain', 'show', 'example.test');
	$stale++ if ($j->{mode} // '') ne $to;
}
printf "switch: %d switches; command p50 %.1f ms p99 %.1f ms; mx2 applied "
    . "p50 %d ms p99 %d ms (commit to acknowledgement); mx2 in the old mode "
    . "after the return: %d\n", $SWITCHES, pct(50, @cmd_ms), pct(99, @cmd_ms),
    pct(50, @ack_ms), pct(99, @ack_ms), $stale;
}

# 2. RCPT on mx2 during an import of IMPORT addresses on mx1
if ($PART{rcpt}) {
my $file = $A->dir . '/import.txt';
system("perl '$SRC/genimport.pl' example.test $IMPORT > '$file'") == 0
    or die "genimport failed";
my $stop = $B->dir . '/stop';
my $probe_out = $B->dir . '/probe';
my $probe = fork // die "fork: $!";
if ($probe == 0) {
	exec('perl', "$SRC/rcptprobe.pl", $B->port, $B->dir . '/started', $stop,
	    $probe_out) or POSIX::_exit(127);
}
MxTest::wait_until(sub { -e $B->dir . '/started' }, 10, 0.05) or die "probe did not start";
my $t0 = time;
my ($rc, $out, $err) = $A->ctl('import', 'example.test', $file);
my $t_imp = time - $t0;
die "import failed: $err" if $rc;
MxTest::wait_until(sub { my (undef, $j) = $B->ctl_json('domain', 'show',
    'example.test'); ($j->{addresses} // 0) >= $IMPORT }, 600, 0.2)
    or die "mx2 did not get the import";
my $t_b = time - $t0;
MxTest::spew($stop, '');
waitpid($probe, 0);
my $p = MxTest::slurp($probe_out) // '';
chomp $p;
printf "rcpt: import of %d addresses on mx1 %.1f s, on mx2 after %.1f s; "
    . "RCPT on mx2 meanwhile: %s\n", $IMPORT, $t_imp, $t_b, $p;
}
$_->stop for $A, $B;

# 3. e2e, SQLite beside PostgreSQL
exit 0 unless $PART{e2e};
MxPeers::need_programs('smtp-source');
my %rate;
for my $run (1 .. $RUNS) {
	for my $backend ('sqlite', 'postgresql') {
		my $state = $backend eq 'sqlite' ? undef :
		    $pg->state_config($pg->new_database);
		my $mx = host('mx1.bench', $state);
		ctl($mx, 'domain', 'add', 'example.test', '--mode', 'hosted');
		ctl($mx, 'address', 'add', 'joe@example.test');
		my $t0 = time;
		system('smtp-source', '-s', $CLIENTS, '-l', 4096, '-m', $E2E_N,
		    '-f', 'sender@src.test', '-t', 'joe@example.test',
		    '127.0.0.1:' . $mx->port) == 0 or die "smtp-source failed";
		MxTest::wait_until(sub { ($mx->queue_count // 1) == 0 }, 600, 0.05)
		    or die "queue did not drain";
		my $secs = time - $t0;
		push @{$rate{$backend}}, $E2E_N / $secs;
		note(sprintf "e2e run %d %s: %.1f msg/s", $run, $backend, $E2E_N / $secs);
		$mx->stop;
	}
}
my ($s, $q) = (pct(50, @{$rate{sqlite}}), pct(50, @{$rate{postgresql}}));
printf "e2e: %d messages of 4 KB, %d sessions, into one host until its queue "
    . "is empty: SQLite %.1f msg/s, PostgreSQL %.1f msg/s (median of %d; "
    . "PostgreSQL/SQLite %.2f)\n", $E2E_N, $CLIENTS, $s, $q, $RUNS, $q / $s;
