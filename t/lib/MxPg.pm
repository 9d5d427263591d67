# MxPg.pm - a private PostgreSQL 15 cluster for the tests
#
# Never the system cluster: initdb and pg_ctl on a temporary directory,
# listening on 127.0.0.1 at a free port and on a unix socket in that
# directory, trust authentication for the superuser "postgres". When the
# test runs as root, the server runs as the unprivileged user postgres
# (runuser). The cluster is stopped (immediate) and removed at exit.
#
#   my $pg = MxPg->start;            # or MxPg->shared: one per test process
#   my $dsn = $pg->new_database;     # a fresh, empty database: its DSN
#   $pg->psql($db, 'SELECT 1');      # run SQL, returns the output
#   $pg->stop('immediate'); $pg->restart;
#   my %st = $pg->state_config($db, port => $proxy->port);  # a state group
#   my @mx = $pg->fleet($db, 2, hosting => ...);  # mx1.test, mx2.test
#   my $proxy = MxPg::Proxy->new($pg->port);   # a TCP proxy the test cuts
#   $proxy->cut; $proxy->restore;
#
# A missing PostgreSQL bails out (TESTING.md: prerequisites fail, never skip).
package MxPg;

use strict;
use warnings;
use Carp qw(croak);
use POSIX ();
use File::Temp qw(tempdir);
use File::Path qw(remove_tree);
use Time::HiRes qw(time sleep);
use JSON::PP ();
use Test::More ();

our $BINDIR = $ENV{MX_PG_BINDIR} || '/usr/lib/postgresql/15/bin';
my $OWNER_PID = $$;
my @CLUSTERS;
our @PROXIES;
my $SHARED;
my $DBSEQ = 0;

sub _as_owner {
	my (@cmd) = @_;
	return $< == 0 ? ('runuser', '-u', 'postgres', '--', @cmd) : @cmd;
}

# _run - run a command (as the cluster's owner); dies with its output
sub _run {
	my ($self, @cmd) = @_;
	my $out = '';
	my $pid = open(my $fh, '-|') // croak "fork: $!";
	if ($pid == 0) {
		open(STDERR, '>&', \*STDOUT);
		chdir $self->{dir};
		exec(_as_owner(@cmd)) or POSIX::_exit(127);
	}
	local $/;
	$out = <$fh> // '';
	close $fh;
	croak "@cmd: exit " . ($? >> 8) . ":\n$out" if $?;
	return $out;
}

# start - initdb and start a new cluster
sub start {
	my ($class) = @_;
	-x "$BINDIR/initdb" && -x "$BINDIR/pg_ctl"
	    or Test::More::BAIL_OUT("PostgreSQL 15 server not found in $BINDIR "
	    . "(apt-get install postgresql)");
	my $self = bless {}, $class;
	$self->{dir} = tempdir('mxpg-XXXXXX', TMPDIR => 1, CLEANUP => 0);
	chmod 0755, $self->{dir};
	if ($< == 0) {
		my ($uid, $gid) = (getpwnam('postgres'))[2, 3];
		defined $uid or Test::More::BAIL_OUT("no user postgres to run "
		    . "the test cluster (apt-get install postgresql)");
		chown $uid, $gid, $self->{dir};
	}
	$self->{data} = "$self->{dir}/data";
	push @CLUSTERS, $self;
	$self->_run("$BINDIR/initdb", '-D', $self->{data}, '-U', 'postgres',
	    '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C');
	$self->{port} = MxTest::free_port();
	$self->_start;
	return $self;
}

# shared - the test process's one cluster, started on first use
sub shared {
	my ($class) = @_;
	$SHARED //= $class->start;
	return $SHARED;
}

sub _start {
	my ($self) = @_;
	# fsync off: the tests crash processes, not the machine
	my $opts = "-p $self->{port} -k $self->{dir} -c listen_addresses=127.0.0.1 "
	    . "-c fsync=off -c max_connections=200 -c shared_buffers=16MB";
	$self->_run("$BINDIR/pg_ctl", '-D', $self->{data}, '-l',
	    "$self->{dir}/server.log", '-o', $opts, '-w', '-t', '30', 'start');
	$self->{running} = 1;
}

sub port { $_[0]{port} }
sub dir { $_[0]{dir} }

# stop - pg_ctl stop; mode fast (default) or immediate (a crash)
sub stop {
	my ($self, $mode) = @_;
	return unless $self->{running};
	$self->_run("$BINDIR/pg_ctl", '-D', $self->{data}, '-m', $mode // 'fast',
	    '-w', 'stop');
	$self->{running} = 0;
}

sub restart {
	my ($self) = @_;
	$self->_start;
}

# dsn - the libpq connection string of database db
sub dsn {
	my ($self, $db) = @_;
	return "host=127.0.0.1 port=$self->{port} dbname=$db user=postgres";
}

# psql - run sql in db; returns the unaligned, tuples-only output
sub psql {
	my ($self, $db, $sql) = @_;
	return $self->_run("$BINDIR/psql", '-X', '-q', '-A', '-t', '-v',
	    'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', $self->{port}, '-U',
	    'postgres', '-d', $db, '-c', $sql);
}

# state_config - the state group of a fleet host on database db (through
# another port, a proxy's, when given); short leases keep the tests short
sub state_config {
	my ($self, $db, %o) = @_;
	my $port = $o{port} // $self->{port};
	return { backend => 'postgresql',
	    dsn => "host=127.0.0.1 port=$port dbname=$db user=postgres",
	    lease_time => $o{lease_time} // 3, lease_renew => 1 };
}

# fleet - N hosts mx1.test .. mxN.test on database db: delivery daemons
# (MxPeers::delivery_daemon, options %o) with the state group of
# state_config
sub fleet {
	my ($self, $db, $n, %o) = @_;
	# the MX propagation gate is not what the fleet tests are about
	return map { MxPeers::delivery_daemon(%o, config => {
	    server => { hostname => "mx$_.test" },
	    switch => { require_propagation => JSON::PP::false },
	    state => $self->state_config($db) }) } 1 .. $n;
}

# rcpt_code - the reply code of daemon mx to RCPT TO:<addr> on a new session
sub rcpt_code {
	my ($mx, $addr) = @_;
	my $c = $mx->session;
	$c->cmd('MAIL FROM:<a@src.test>');
	my $r = $c->cmd("RCPT TO:<$addr>") // '';
	$c->close;
	return substr($r, 0, 3);
}

# domain_field - KEY of relayctl --json domain show DOMAIN on daemon mx
# (undef when the command fails)
sub domain_field {
	my ($mx, $d, $key) = @_;
	my (undef, $j) = $mx->ctl_json('domain', 'show', $d);
	return $j ? $j->{$key} : undef;
}

# wait_addresses - until daemon mx shows n addresses in domain d (a change
# made on another host has arrived); true on success
sub wait_addresses {
	my ($mx, $d, $n) = @_;
	return MxTest::wait_until(sub { my (undef, $j) = $mx->ctl_json('domain',
	    'show', $d); $j && ($j->{addresses} // -1) == $n }, 10, 0.05);
}

# new_database - a fresh empty database; returns its name
sub new_database {
	my ($self) = @_;
	my $db = sprintf('mx%d_%d', $$, ++$DBSEQ);
	$self->psql('postgres', "CREATE DATABASE $db");
	return $db;
}

########################################################################
# MxPg::Proxy - a TCP proxy on 127.0.0.1 between some hosts and the
# cluster, in a child process: cut closes every connection and refuses
# new ones (the host is cut off from the database), restore lets them in
# again.
package MxPg::Proxy;

use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;
use POSIX ();


sub new {
	my ($class, $to_port) = @_;
	my $self = bless { to => $to_port, port => MxTest::free_port() }, $class;
	my $pid = fork // die "fork: $!";
	if ($pid == 0) {
		_serve($self->{port}, $to_port);
		POSIX::_exit(0);
	}
	$self->{pid} = $pid;
	push @MxPg::PROXIES, $self;
	MxTest::wait_until(sub { IO::Socket::INET->new(PeerAddr => '127.0.0.1',
	    PeerPort => $self->{port}) }, 5, 0.05) or die "proxy did not start";
	return $self;
}

sub port { $_[0]{port} }
sub cut { kill 'USR1', $_[0]{pid}; Time::HiRes::sleep(0.1); }
sub restore { kill 'USR2', $_[0]{pid}; Time::HiRes::sleep(0.1); }

sub _listen {
	my ($port) = @_;
	my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port,
	    Listen => 64, ReuseAddr => 1);
	die "proxy listen $port: $!" unless $s;
	return $s;
}

# _serve - the child: relay bytes both ways until killed
sub _serve {
	my ($port, $to) = @_;
	my ($cut, $cut_now, $restore_now) = (0, 0, 0);
	local $SIG{USR1} = sub { $cut_now = 1 };
	local $SIG{USR2} = sub { $restore_now = 1 };
	local $SIG{TERM} = sub { POSIX::_exit(0) };
	my $ls = _listen($port);
	my $sel = IO::Select->new($ls);
	my %peer;
	for (;;) {
		if ($cut_now) {
			$cut_now = 0;
			$cut = 1;
			for my $h ($sel->handles) { $sel->remove($h); close $h; }
			%peer = ();
			$ls = undef;
		}
		if ($restore_now) {
			$restore_now = 0;
			$cut = 0;
			$ls = _listen($port);
			$sel->add($ls);
		}
		my @ready = $sel->can_read(0.05);
		for my $h (@ready) {
			if ($ls && $h == $ls) {
				my $c = $ls->accept or next;
				my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
				    PeerPort => $to) or do { close $c; next };
				$peer{$c} = $u;
				$peer{$u} = $c;
				$sel->add($c, $u);
				next;
			}
			my $o = $peer{$h} or next;
			my $n = sysread($h, my $buf, 65536);
			if (!$n) {
				$sel->remove($h, $o);
				delete @peer{$h, $o};
				close $h;
				close $o;
				next;
			}
			my $off = 0;
			while ($off < $n) {
				my $w = syswrite($o, $buf, $n - $off, $off);
				last unless defined $w;
				$off += $w;
			}
		}
	}
}

package MxPg;

sub _cleanup {
	return unless $$ == $OWNER_PID;
	for my $p (@PROXIES) {
		kill 'TERM', $p->{pid};
		waitpid($p->{pid}, 0);
	}
	for my $c (@CLUSTERS) {
		eval { $c->stop('immediate') };
		remove_tree($c->{dir}) unless $ENV{MX_KEEP};
	}
}

END {
	my $st = $?;
	_cleanup();
	$? = $st;
}

1;
