# MxTest.pm - helpers for mxrelayd's black-box integration tests
#
# Everything here talks to a real mxrelayd over real sockets on 127.0.0.1:
# it starts daemons on free ports in temporary directories, speaks raw SMTP
# (exact bytes), runs relayctl and swaks, and reads the spool files that
# SPEC/queue format describes. No mocks.
#
# Environment (set by `make check`, see Makefile.am):
#   MXRELAYD, RELAYCTL  absolute paths of the built binaries
#   MX_SRCDIR           the source tree
#   MX_KEEP=1           keep the temporary directories (debugging)
#   MX_START_TIMEOUT    seconds to wait for readiness (default 30)
#   MX_TEST_BACKEND     "postgresql": every daemon keeps its state in its
#                       own database of one private cluster (t/lib/MxPg.pm)
#                       instead of SQLite; `make check` runs the state tests
#                       both ways (t/pg/*.pg)
package MxTest;

use strict;
use warnings;
use Exporter 'import';
use Carp qw(croak);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Select;
use POSIX qw(WNOHANG);
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(time sleep);
use JSON::PP ();
use Test::More ();
use MxPg;

our @EXPORT = qw(
	free_port closed_port tmpdir watchdog run_cmd gen_cert json_decode deep_find
	deep_has_value slurp spew mxrelayd_bin relayctl_bin queue_ids_in
	parse_spool_file wait_until
);

our $MXRELAYD = $ENV{MXRELAYD} || 'mxrelayd';
our $RELAYCTL = $ENV{RELAYCTL} || 'relayctl';
our $DEFAULT_WATCHDOG = 120;

my $OWNER_PID = $$;
my @DAEMONS;			# every MxTest::Daemon this process started

sub mxrelayd_bin { $MXRELAYD }
sub relayctl_bin { $RELAYCTL }

# free_port - a TCP port that was free a moment ago on 127.0.0.1
sub free_port {
	my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
	    Proto => 'tcp', Listen => 1, ReuseAddr => 1)
	    or croak "free_port: $!";
	my $port = $s->sockport;
	close $s;
	return $port;
}

# closed_port - a port on 127.0.0.1 where nothing listens, and nothing can
# listen for as long as this process runs. A port from free_port is only
# free "a moment ago": the tests run in parallel, and another test's
# smtp-sink or mxrelayd may take it a second later (then mail meant for a
# dead server is accepted, refused or deferred by a stranger). Here the
# port stays bound by a socket that never listens: a connect is refused,
# no other bind (even with SO_REUSEADDR) and no outgoing connection gets it.
my @HELD_PORTS;
sub closed_port {
	my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
	    Proto => 'tcp') or croak "closed_port: $!";
	push @HELD_PORTS, $s;
	return $s->sockport;
}

# tmpdir - a temporary directory, removed at exit unless MX_KEEP is set
sub tmpdir {
	my $d = tempdir('mxtest-XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{MX_KEEP});
	Test::More::diag("keeping $d") if $ENV{MX_KEEP};
	return $d;
}

# watchdog - no test may hang: bail out after SECS seconds
sub watchdog {
	my ($secs) = @_;
	$SIG{ALRM} = sub {
		Test::More::diag("watchdog: test still running after $secs s");
		for my $d (@DAEMONS) {
			Test::More::diag("mxrelayd log ($d->{dir}):\n" . $d->log_tail(4000))
			    if $d->{pid};
		}
		_cleanup();
		Test::More::BAIL_OUT("watchdog timeout ($secs s)");
	};
	alarm($secs);
}

# wait_until - poll CODE every STEP seconds until true or TIMEOUT; returns the last value
sub wait_until {
	my ($code, $timeout, $step) = @_;
	$timeout //= 10;
	$step //= 0.05;
	my $deadline = time + $timeout;
	while (1) {
		my $v = $code->();
		return $v if $v || time > $deadline;
		sleep $step;
	}
}

sub slurp {
	my ($path) = @_;
	open(my $fh, '<:raw', $path) or return undef;
	local $/;
	my $d = <$fh>;
	close $fh;
	return $d // '';
}

sub spew {
	my ($path, $data) = @_;
	open(my $fh, '>:raw', $path) or croak "write $path: $!";
	print $fh $data;
	close $fh or croak "close $path: $!";
	return $path;
}

# run_cmd - run a program (no shell); returns (exit code, stdout, stderr).
# Options as a leading hash ref: { stdin => FILE, timeout => SECS, env => {} }.
# A program killed by a signal gives 128+signal; a timeout gives 124.
sub run_cmd {
	my $opt = ref $_[0] eq 'HASH' ? shift : {};
	my @argv = @_;
	my $d = File::Temp->newdir('mxcmd-XXXXXX', TMPDIR => 1);
	my ($outf, $errf) = ("$d/out", "$d/err");
	my $pid = fork;
	croak "fork: $!" unless defined $pid;
	if ($pid == 0) {
		open(STDIN, '<', $opt->{stdin} // '/dev/null') or POSIX::_exit(126);
		open(STDOUT, '>', $outf) or POSIX::_exit(126);
		open(STDERR, '>', $errf) or POSIX::_exit(126);
		%ENV = (%ENV, %{$opt->{env} || {}});
		{ exec { $argv[0] } @argv; }
		print STDERR "exec $argv[0]: $!\n";
		POSIX::_exit(127);
	}
	my $deadline = time + ($opt->{timeout} // 30);
	my $status;
	while (1) {
		my $r = waitpid($pid, WNOHANG);
		if ($r == $pid) { $status = $?; last; }
		if (time > $deadline) {
			kill 'KILL', $pid;
			waitpid($pid, 0);
			$status = 124 << 8;
			last;
		}
		sleep 0.01;
	}
	my $rc = ($status & 127) ? 128 + ($status & 127) : $status >> 8;
	return ($rc, slurp($outf) // '', slurp($errf) // '');
}

# json_decode - decode JSON text; undef (and a diag) when it is not JSON
sub json_decode {
	my ($text) = @_;
	my $v = eval { JSON::PP->new->utf8->allow_nonref->decode($text) };
	Test::More::diag("not JSON ($@): $text") unless defined $v;
	return $v;
}

# deep_find - every value stored under KEY anywhere in a decoded JSON tree
sub deep_find {
	my ($data, $key) = @_;
	my @found;
	my @todo = ($data);
	while (@todo) {
		my $n = shift @todo;
		if (ref $n eq 'HASH') {
			push @found, $n->{$key} if exists $n->{$key};
			push @todo, values %$n;
		} elsif (ref $n eq 'ARRAY') {
			push @todo, @$n;
		}
	}
	return @found;
}

# deep_has_value - does any scalar in the tree equal VALUE (case-insensitively)?
sub deep_has_value {
	my ($data, $value) = @_;
	my @todo = ($data);
	while (@todo) {
		my $n = shift @todo;
		if (ref $n eq 'HASH') { push @todo, values %$n; }
		elsif (ref $n eq 'ARRAY') { push @todo, @$n; }
		elsif (defined $n && !ref $n && lc $n eq lc $value) { return 1; }
	}
	return 0;
}

# gen_cert - a self-signed certificate and key for HOSTNAME in DIR
sub gen_cert {
	my ($dir, $host) = @_;
	$host //= 'mx.test.example';
	my ($cert, $key) = ("$dir/cert.pem", "$dir/key.pem");
	my ($rc, $out, $err) = run_cmd('openssl', 'req', '-x509', '-newkey', 'rsa:2048',
	    '-nodes', '-keyout', $key, '-out', $cert, '-days', '2',
	    '-subj', "/CN=$host", '-addext', "subjectAltName=DNS:$host");
	croak "openssl req failed: $err" if $rc != 0;
	chmod 0600, $key;
	return ($cert, $key);
}

# queue_ids_in - the queue IDs (file names) in a spool queue directory
sub queue_ids_in {
	my ($qdir) = @_;
	opendir(my $dh, $qdir) or return ();
	my @ids = sort grep { !/^\./ && -f "$qdir/$_" } readdir $dh;
	closedir $dh;
	return @ids;
}

# parse_spool_file - a spool file as { header => [[K,V]...], id, sender,
# rcpts => [addr...], size, message, raw }; undef if unreadable/malformed.
# Header lines "KEY VALUE" up to an empty line, then exactly size octets.
sub parse_spool_file {
	my ($path) = @_;
	my $raw = slurp($path);
	return undef unless defined $raw;
	my %s = (raw => $raw, header => [], rcpts => []);
	my $pos = 0;
	while (1) {
		my $nl = index($raw, "\n", $pos);
		return undef if $nl < 0;
		my $line = substr($raw, $pos, $nl - $pos);
		$pos = $nl + 1;
		$line =~ s/\r\z//;
		last if $line eq '';
		my ($k, $v) = split / /, $line, 2;
		push @{$s{header}}, [$k, $v];
		if ($k eq 'MXRELAY-SPOOL') { $s{version} = $v; }
		elsif ($k eq 'id') { $s{id} = $v; }
		elsif ($k eq 'sender') { $s{sender} = $v; }
		elsif ($k eq 'size') { $s{size} = $v; }
		elsif ($k eq 'rcpt') {
			my ($n, $addr) = split / /, $v // '', 2;
			push @{$s{rcpts}}, $addr;
		}
	}
	return undef unless defined $s{size} && $s{size} =~ /^\d+\z/;
	return undef if length($raw) - $pos < $s{size};
	$s{message} = substr($raw, $pos, $s{size});
	return \%s;
}

sub _register { push @DAEMONS, $_[0]; }

sub _cleanup {
	return unless $$ == $OWNER_PID;
	for my $d (@DAEMONS) {
		$d->stop if $d->{pid};
	}
}

END {
	my $st = $?;
	_cleanup();
	$? = $st;
}

watchdog($DEFAULT_WATCHDOG);

########################################################################
package MxTest::Daemon;

use strict;
use warnings;
use Carp qw(croak);
use IO::Socket::INET;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

# new - a daemon description (not started). Options:
#   config => { section => { key => value } }  merged over the defaults
#   dir, port                                    reuse (default: fresh)
#   config_text => '...'                         write this file verbatim
# Values: array refs become libconfig lists, hash refs groups, numbers
# and JSON::PP::true/false are written bare, scalar refs verbatim, the
# rest as quoted strings.
sub new {
	my ($class, %o) = @_;
	my $self = bless {}, $class;
	$self->{dir} = $o{dir} // MxTest::tmpdir();
	$self->{port} = $o{port} // MxTest::free_port();
	$self->{sock} = "$self->{dir}/control.sock";
	$self->{spool} = "$self->{dir}/spool";
	$self->{state} = "$self->{dir}/state";
	$self->{conf} = "$self->{dir}/mxrelay.conf";
	$self->{logfile} = "$self->{dir}/mxrelayd.log";
	$self->{hostname} = 'mx.test.example';
	mkdir $self->{spool};
	mkdir $self->{state};
	my $user = getpwuid($<) // 'root';
	my $defaults = {
		server => {
			hostname => $self->{hostname},
			listen => ["127.0.0.1:$self->{port}"],
			user => $user,
		},
		paths => {
			spool => $self->{spool},
			state => $self->{state},
			control_socket => $self->{sock},
		},
		# no DNS in tests unless a test asks for it
		filters => {
			spf => { enabled => JSON::PP::false },
			dnsbl => { zones => [] },
		},
	};
	$defaults->{state} = _pg_state($self->{dir})
	    if ($ENV{MX_TEST_BACKEND} // '') eq 'postgresql';
	$self->{config} = _merge($defaults, $o{config} || {});
	$self->{config_text} = $o{config_text};
	MxTest::_register($self);
	return $self;
}

# _pg_state - the state group of a daemon in DIR on the shared test cluster:
# one database per directory, so that a daemon restarted on the same
# directory finds its state again
my %PG_DB;
sub _pg_state {
	my ($dir) = @_;
	my $pg = MxPg->shared;
	$PG_DB{$dir} //= $pg->new_database;
	return { backend => 'postgresql', dsn => $pg->dsn($PG_DB{$dir}) };
}

sub _merge {
	my ($a, $b) = @_;
	my %r = %$a;
	for my $k (keys %$b) {
		if (ref $r{$k} eq 'HASH' && ref $b->{$k} eq 'HASH') {
			$r{$k} = _merge($r{$k}, $b->{$k});
		} elsif (!defined $b->{$k}) {
			delete $r{$k};
		} else {
			$r{$k} = $b->{$k};
		}
	}
	return \%r;
}

sub _conf_value {
	my ($v, $ind) = @_;
	if (ref $v eq 'HASH') {
		my $s = "{\n";
		for my $k (sort keys %$v) {
			$s .= "$ind  $k = " . _conf_value($v->{$k}, "$ind  ") . ";\n";
		}
		return $s . "$ind}";
	}
	if (ref $v eq 'ARRAY') {
		return '[ ' . join(', ', map { _conf_value($_, $ind) } @$v) . ' ]';
	}
	return $$v if ref $v eq 'SCALAR';
	return $v ? 'true' : 'false' if JSON::PP::is_bool($v);
	return $v if $v =~ /^-?[0-9]+\z/;
	(my $q = $v) =~ s/(["\\])/\\$1/g;
	return "\"$q\"";
}

# config_string - the libconfig text of the configuration
sub config_string {
	my ($self) = @_;
	return $self->{config_text} if defined $self->{config_text};
	my $c = $self->{config};
	my $s = "# written by t/lib/MxTest.pm\n";
	for my $k (sort keys %$c) {
		$s .= "$k = " . _conf_value($c->{$k}, '') . ";\n";
	}
	return $s;
}

sub write_config {
	my ($self) = @_;
	MxTest::spew($self->{conf}, $self->config_string);
	return $self->{conf};
}

sub dir { $_[0]{dir} }
sub port { $_[0]{port} }
sub pid { $_[0]{pid} }
sub socket_path { $_[0]{sock} }
sub spool_dir { $_[0]{spool} }
sub queue_dir { "$_[0]{spool}/queue" }
sub conf_path { $_[0]{conf} }
sub hostname { $_[0]{hostname} }

# log - the daemon's stderr since the first start; log_tail - its end.
# The daemon writes the log lines of one event-loop turn at its end
# (mxrelayd(8), LOGGING): a reply can reach the client before the lines of
# the turn that sent it. So a running daemon is first asked, over its
# control socket, for a command it does not know: that logs nothing, and is
# answered in a later turn, after those lines are written.
sub log {
	my ($self) = @_;
	$self->log_sync if $self->{pid};
	return MxTest::slurp($self->{logfile}) // '';
}

sub log_sync {
	my ($self) = @_;
	my $body = "8:log-sync,0:,";
	my $u = -S $self->{sock} && IO::Socket::UNIX->new(
	    Type => SOCK_STREAM, Peer => $self->{sock}) or return;
	print $u "MXRELAY-CONTROL 1 0 1 " . length($body) . "\n$body";
	my $sel = IO::Select->new($u);
	my $deadline = time + 2;	# a stopped (SIGSTOP) daemon: give up
	while ((my $left = $deadline - time) > 0) {
		last unless $sel->can_read($left);
		last unless sysread($u, my $buf, 4096);
	}
	close $u;
}
sub log_tail {
	my ($self, $n) = @_;
	my $l = $self->log;
	return length $l > $n ? '...' . substr($l, -$n) : $l;
}

# start - run mxrelayd -c CONF in the foreground, stderr to DIR/mxrelayd.log;
# returns once the SMTP port accepts and the control socket exists, dies
# (with the log) if the daemon exits or is not ready in time.
sub start {
	my ($self, @extra) = @_;
	for (my $try = 1; ; $try++) {
		my $logpos = length $self->log;
		my $ok = eval { $self->_start(@extra); 1 };
		if ($ok) {
			$self->{started_once} = 1;
			return $self;
		}
		my $err = $@;
		# free_port's port was taken by a parallel test before mxrelayd
		# bound it: on the first start (nobody knows the port yet) and
		# with the default listener only, take another port
		my $l = $self->{config}{server}{listen};
		die $err if $try >= 5 || $self->{started_once} || defined $self->{config_text}
		    || !(ref $l eq 'ARRAY' && @$l == 1 && $l->[0] eq "127.0.0.1:$self->{port}")
		    || substr($self->log, $logpos) !~
		    /cannot bind 127\.0\.0\.1:\Q$self->{port}\E: Address already in use/;
		Test::More::diag("port $self->{port} was taken meanwhile: another one");
		$self->{port} = MxTest::free_port();
		$self->{config}{server}{listen} = ["127.0.0.1:$self->{port}"];
	}
}

sub _start {
	my ($self, @extra) = @_;
	croak "already running" if $self->{pid};
	$self->write_config;
	my $pid = fork;
	croak "fork: $!" unless defined $pid;
	if ($pid == 0) {
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>>', $self->{logfile}) or POSIX::_exit(126);
		open(STDERR, '>>', $self->{logfile}) or POSIX::_exit(126);
		{ exec { $MxTest::MXRELAYD } $MxTest::MXRELAYD, '-c', $self->{conf}, @extra; }
		print STDERR "exec $MxTest::MXRELAYD: $!\n";
		POSIX::_exit(127);
	}
	$self->{pid} = $pid;
	$self->{started_at} = time;
	my $deadline = time + ($ENV{MX_START_TIMEOUT} || 30);
	while (1) {
		my $r = waitpid($pid, WNOHANG);
		if ($r == $pid) {
			my $st = $?;
			delete $self->{pid};
			die "mxrelayd exited during startup (status $st):\n" . $self->log_tail(4000) . "\n";
		}
		# a stale socket file from a killed daemon does not count:
		# the control socket must accept
		my $u = -S $self->{sock} && IO::Socket::UNIX->new(
		    Type => SOCK_STREAM, Peer => $self->{sock});
		if ($u) {
			close $u;
			my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
			    PeerPort => $self->{port}, Proto => 'tcp', Timeout => 1);
			if ($s) { close $s; last; }
		}
		if (time > $deadline) {
			kill 'KILL', $pid;
			waitpid($pid, 0);
			delete $self->{pid};
			die "mxrelayd not ready after deadline:\n" . $self->log_tail(4000) . "\n";
		}
		sleep 0.05;
	}
	return $self;
}

# stop - SIGTERM, then SIGKILL after 10 s; returns the wait status
sub stop {
	my ($self, $grace) = @_;
	my $pid = $self->{pid} or return undef;
	kill 'TERM', $pid;
	my $deadline = time + ($grace // 10);
	my $st;
	while (1) {
		my $r = waitpid($pid, WNOHANG);
		if ($r == $pid || $r < 0) { $st = $?; last; }
		if (time > $deadline) {
			kill 'KILL', $pid;
			waitpid($pid, 0);
			$st = $?;
			last;
		}
		sleep 0.02;
	}
	delete $self->{pid};
	return $st;
}

# stop_ok - a test: graceful stop exits 0 and the log holds no sanitizer report
sub stop_ok {
	my ($self, $name) = @_;
	my $st = $self->stop;
	my $log = $self->log;
	my $ok = Test::More::ok(defined $st && $st == 0
	    && $log !~ /AddressSanitizer|LeakSanitizer|runtime error:/,
	    $name // 'mxrelayd stops cleanly on SIGTERM (exit 0, no sanitizer report)');
	Test::More::diag("exit status " . ($st // 'none') . "\n" . substr($log, -3000))
	    unless $ok;
	return $ok;
}

# kill9 - SIGKILL, no grace
sub kill9 {
	my ($self) = @_;
	my $pid = $self->{pid} or return;
	kill 'KILL', $pid;
	waitpid($pid, 0);
	delete $self->{pid};
}

# restart - start again on the same directories and port
sub restart {
	my ($self) = @_;
	$self->stop if $self->{pid};
	return $self->start;
}

sub alive {
	my ($self) = @_;
	return 0 unless $self->{pid};
	return waitpid($self->{pid}, WNOHANG) == 0;
}

# ctl - run relayctl -s SOCKET ARGS; returns (exit code, stdout, stderr)
sub ctl {
	my ($self, @args) = @_;
	return MxTest::run_cmd($MxTest::RELAYCTL, '-s', $self->{sock}, @args);
}

# ctl_ok - relayctl ARGS must exit 0 (a test); returns stdout
sub ctl_ok {
	my ($self, @args) = @_;
	my ($rc, $out, $err) = $self->ctl(@args);
	Test::More::is($rc, 0, "relayctl @args") or Test::More::diag("stdout: $out\nstderr: $err");
	return $out;
}

# ctl_json - relayctl --json ARGS; returns (exit code, decoded, stdout, stderr)
sub ctl_json {
	my ($self, @args) = @_;
	my ($rc, $out, $err) = $self->ctl('--json', @args);
	my $j = $out =~ /\S/ ? MxTest::json_decode($out) : undef;
	return ($rc, $j, $out, $err);
}

# setup - domains and addresses, dying on failure (test preconditions).
# Every domain gets a legacy server on a closed port (MxTest::closed_port,
# held for the whole test), so that queued mail is deferred (stays in the
# queue) rather than bounced or delivered.
sub setup {
	my ($self, %o) = @_;
	my $closed = MxTest::closed_port();
	for my $d (@{$o{domains} || []}) {
		my ($rc, $out, $err) = $self->ctl('domain', 'add', $d,
		    '--legacy', "127.0.0.1:$closed");
		die "relayctl domain add $d: rc=$rc $out $err\n" if $rc != 0;
	}
	for my $a (@{$o{addresses} || []}) {
		my ($rc, $out, $err) = $self->ctl('address', 'add', ref $a ? @$a : $a);
		die "relayctl address add $a: rc=$rc $out $err\n" if $rc != 0;
	}
	return $self;
}

# queue_ids - IDs in SPOOL/queue; spool - one parsed spool file
sub queue_ids { return MxTest::queue_ids_in($_[0]->queue_dir); }
sub spool {
	my ($self, $id) = @_;
	return MxTest::parse_spool_file($self->queue_dir . "/$id");
}

# status_json - relayctl --json status, decoded (undef on failure)
sub status_json {
	my ($self) = @_;
	my ($rc, $j) = $self->ctl_json('status');
	return $rc == 0 ? $j : undef;
}

# queue_count - the queued message count from relayctl --json status.
# Key names per relayctl(8): queue.messages (also accepts a flat
# queue_messages).
sub queue_count {
	my ($self) = @_;
	my $j = $self->status_json or return undef;
	return undef unless ref $j eq 'HASH';
	if (ref $j->{queue} eq 'HASH') {
		for my $k (qw(messages queue_messages count)) {
			return $j->{queue}{$k} if defined $j->{queue}{$k};
		}
	}
	return $j->{queue_messages} if defined $j->{queue_messages};
	my @v = MxTest::deep_find($j, 'queue_messages');
	return $v[0];
}

# smtp - a new raw client connected to this daemon (see MxTest::SMTP::new)
sub smtp {
	my ($self, %o) = @_;
	return MxTest::SMTP->new(port => $self->{port}, %o);
}

# session - smtp + greeting + EHLO, dying if any of them fails
sub session {
	my ($self, %o) = @_;
	my $c = $self->smtp(%o);
	my $g = $c->reply;
	die "no greeting: " . ($g // 'EOF/timeout') . "\n" unless defined $g && $g =~ /^220 /;
	my $e = $c->cmd('EHLO ' . ($o{helo} // 'client.test'));
	die "EHLO refused: " . ($e // 'EOF/timeout') . "\n" unless defined $e && $e =~ /^250[ -]/;
	return $c;
}

# swaks - run swaks against this daemon; returns (exit code, output, queue id)
sub swaks {
	my ($self, @args) = @_;
	my ($rc, $out, $err) = MxTest::run_cmd({ timeout => 30 }, 'swaks',
	    '--server', "127.0.0.1:$self->{port}", '--timeout', '20', @args);
	$out .= $err;
	my ($id) = $out =~ /<[~-]\s+250 2\.0\.0 Ok: queued as (\S+)/;
	return ($rc, $out, $id);
}

########################################################################
package MxTest::SMTP;

# A raw SMTP client: exact bytes out, one (multi-line) reply in.
# Replies are returned as text: the reply's lines without CRLF, joined by
# "\n" (so /^250 / matches a single-line reply and /^250 ...\z/m the last
# line); undef on EOF or timeout ($c->{eof} / $c->{timedout} say which).

use strict;
use warnings;
use Carp qw(croak);
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);

sub new {
	my ($class, %o) = @_;
	my %args = (PeerAddr => $o{host} // '127.0.0.1', PeerPort => $o{port},
	    Proto => 'tcp', Timeout => $o{timeout} // 10);
	$args{LocalAddr} = $o{local_addr} if $o{local_addr};
	my $s = IO::Socket::INET->new(%args) or croak "connect to port $o{port}: $!";
	binmode $s;
	$s->autoflush(1);
	return bless { sock => $s, buf => '', timeout => $o{timeout} // 10,
	    eof => 0, timedout => 0 }, $class;
}

sub sock { $_[0]{sock} }

# send - write exactly these bytes (one write as far as the kernel allows)
sub send {
	my ($self, $bytes) = @_;
	my $off = 0;
	while ($off < length $bytes) {
		my $n = syswrite($self->{sock}, $bytes, length($bytes) - $off, $off);
		return 0 unless defined $n;
		$off += $n;
	}
	return 1;
}

sub _fill {
	my ($self, $deadline) = @_;
	my $s = $self->{sock};
	if (!($s->can('pending') && $s->pending)) {
		my $left = $deadline - time;
		if ($left <= 0) { $self->{timedout} = 1; return 0; }
		my @r = IO::Select->new($s)->can_read($left);
		if (!@r) { $self->{timedout} = 1; return 0; }
	}
	my $n = sysread($s, my $chunk, 65536);
	if (!defined $n) {
		return 1 if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
		$self->{eof} = 1;
		return 0;
	}
	if ($n == 0) { $self->{eof} = 1; return 0; }
	$self->{buf} .= $chunk;
	return 1;
}

# line - one line (without CRLF), or undef on EOF/timeout
sub line {
	my ($self, $timeout) = @_;
	my $deadline = time + ($timeout // $self->{timeout});
	while (1) {
		my $i = index($self->{buf}, "\n");
		if ($i >= 0) {
			my $l = substr($self->{buf}, 0, $i + 1, '');
			$l =~ s/\r?\n\z//;
			return $l;
		}
		return undef unless $self->_fill($deadline);
	}
}

# reply - one complete reply (all lines of a multi-line reply)
sub reply {
	my ($self, $timeout) = @_;
	my $deadline = time + ($timeout // $self->{timeout});
	my @lines;
	while (1) {
		my $l = $self->line($deadline - time);
		if (!defined $l) {
			$self->{partial} = join("\n", @lines);
			return undef;
		}
		push @lines, $l;
		last unless $l =~ /^\d{3}-/;
	}
	return join("\n", @lines);
}

# cmd - send LINE + CRLF and read its reply
sub cmd {
	my ($self, $line, $timeout) = @_;
	$self->send("$line\r\n");
	return $self->reply($timeout);
}

# ehlo - EHLO NAME; returns (reply, [keywords upper-cased with arguments])
sub ehlo {
	my ($self, $name) = @_;
	my $r = $self->cmd('EHLO ' . ($name // 'client.test'));
	return ($r, []) unless defined $r;
	my @l = split /\n/, $r;
	shift @l;
	my @kw = map { (my $k = $_) =~ s/^250[ -]//; $k } @l;
	return ($r, \@kw);
}

# pending - bytes that arrive within WAIT seconds (plus any buffered), '' if none
sub pending {
	my ($self, $wait) = @_;
	my $deadline = time + ($wait // 0.5);
	while ($self->_fill($deadline)) { }
	$self->{timedout} = 0;
	my $b = $self->{buf};
	$self->{buf} = '';
	return $b;
}

# closed - does the server close the connection within WAIT seconds?
# (any bytes still arriving are skipped)
sub closed {
	my ($self, $wait) = @_;
	my $deadline = time + ($wait // 5);
	$self->{buf} = '';
	while ($self->_fill($deadline)) { $self->{buf} = ''; }
	return $self->{eof};
}

# starttls - upgrade the socket (after the 220 to STARTTLS); true on success.
# Extra IO::Socket::SSL options may be given.
sub starttls {
	my ($self, %ssl) = @_;
	require IO::Socket::SSL;
	croak "plaintext bytes pending before TLS: $self->{buf}" if length $self->{buf};
	my $ok = IO::Socket::SSL->start_SSL($self->{sock},
	    SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE(),
	    SSL_hostname => 'mx.test.example',
	    Timeout => 5, %ssl);
	$self->{tls_error} = IO::Socket::SSL::errstr() unless $ok;
	return $ok ? 1 : 0;
}

sub close {
	my ($self) = @_;
	CORE::close($self->{sock}) if $self->{sock};
}

# transaction - MAIL, RCPTs, DATA, body (CRLF.CRLF appended), each reply
# must be 2xx/3xx; returns the reply to the final dot (undef on failure)
sub transaction {
	my ($self, $from, $rcpts, $body) = @_;
	my $r = $self->cmd("MAIL FROM:<$from>");
	return undef unless defined $r && $r =~ /^250 /;
	for my $t (@$rcpts) {
		$r = $self->cmd("RCPT TO:<$t>");
		return undef unless defined $r && $r =~ /^250 /;
	}
	$r = $self->cmd('DATA');
	return undef unless defined $r && $r =~ /^354 /;
	$self->send($body . ".\r\n");
	return $self->reply;
}

1;
