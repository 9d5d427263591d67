# MxPeers.pm - real peers for mxrelayd's delivery tests
#
# The downstreams and helpers a delivery test talks to, each a real program
# started in the foreground on free loopback ports, with a PID that is
# killed when the test ends (or by ->stop):
#
#   MxPeers::Sink     Postfix's smtp-sink: accepts (or defers, or refuses)
#                     SMTP or LMTP and dumps every message to a file
#   MxPeers::Dovecot  Dovecot LMTP with maildirs: the hosting
#   MxPeers::DNS      dnsmasq answering MX, A and TXT records
#   MxPeers::Postfix  a private Postfix instance (own config and queue)
#                     relaying to a given [127.0.0.1]:PORT
#
# plus helpers to read mxrelayd's per-attempt log lines (SPEC 6) and the
# delivery status notifications (RFC 3464) that reach a sink.
#
# Recipes: /work/shared/TESTING.md. Nothing here kills by name: every
# process is stopped through the PID this module forked.
package MxPeers;

use strict;
use warnings;
use Exporter 'import';
use Carp qw(croak);
use IO::Socket::INET;
use IO::Select;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use MxTest ();

our @EXPORT = qw(
	free_port_tcp_udp wait_log attempt_lines attempt_fields parse_dsn
	sink_message_text crlf_to_lf need_programs delivery_daemon dot_stuff
	submit wait_queue_empty our_headers_then stream_start stream_acked
	copies_by_message_id attempts_after
);

my $OWNER_PID = $$;
my @PEERS;

sub _register { push @PEERS, $_[0]; }

# a test killed by SIGTERM/SIGINT/SIGHUP (make's timeout, ^C) still runs
# the END blocks, so that no peer or daemon is left behind
for my $sig (qw(TERM INT HUP)) {
	$SIG{$sig} = sub { Test::More::diag("caught SIG$sig, cleaning up"); exit 1; }
	    unless $SIG{$sig};
}

END {
	my $st = $?;
	if ($$ == $OWNER_PID) {
		$_->stop for reverse @PEERS;
	}
	$? = $st;
}

# need_programs - skip the whole test unless every program is installed
sub need_programs {
	my @missing;
	for my $p (@_) {
		my $found = grep { -x "$_/$p" } split(/:/, $ENV{PATH} . ':/usr/sbin:/sbin');
		push @missing, $p unless $found;
	}
	# a missing peer is a failure: contrib/install-deps.sh installs them all
	Test::More::BAIL_OUT("not installed: @missing (run contrib/install-deps.sh)") if @missing;
}

# free_port_tcp_udp - a port free for both TCP and UDP on 127.0.0.1 (DNS)
sub free_port_tcp_udp {
	for (1 .. 50) {
		my $port = MxTest::free_port();
		my $u = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
		    LocalPort => $port, Proto => 'udp');
		if ($u) { close $u; return $port; }
	}
	croak "free_port_tcp_udp: none found";
}

# _spawn - fork and exec ARGV with stdout+stderr appended to LOG; returns pid
sub _spawn {
	my ($log, @argv) = @_;
	my $pid = fork;
	croak "fork: $!" unless defined $pid;
	if ($pid == 0) {
		POSIX::setpgid(0, 0);
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>>', $log) or POSIX::_exit(126);
		open(STDERR, '>>', $log) or POSIX::_exit(126);
		{ exec { $argv[0] } @argv; }
		print STDERR "exec $argv[0]: $!\n";
		POSIX::_exit(127);
	}
	return $pid;
}

# _wait_banner - wait until PORT answers with a 220 (or a LMTP/SMTP 220)
sub _wait_banner {
	my ($port, $pid, $timeout) = @_;
	my $deadline = time + ($timeout // 10);
	while (time < $deadline) {
		return 0 if $pid && waitpid($pid, WNOHANG) == $pid;
		my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
		    Proto => 'tcp', Timeout => 1);
		if ($s) {
			# read the banner without alarm (MxTest's watchdog owns it)
			my $l;
			$l = <$s> if IO::Select->new($s)->can_read(2);
			print $s "QUIT\r\n";
			close $s;
			return 1 if defined $l && $l =~ /^220/;
		}
		sleep 0.05;
	}
	return 0;
}

# stop_pid - TERM the process (group), KILL after GRACE seconds; reaps it
sub stop_pid {
	my ($pid, $grace) = @_;
	return unless $pid;
	kill 'TERM', $pid;
	my $deadline = time + ($grace // 5);
	while (time < $deadline) {
		my $r = waitpid($pid, WNOHANG);
		return if $r == $pid || $r < 0;
		sleep 0.02;
	}
	kill 'KILL', $pid;
	waitpid($pid, 0);
}

# wait_log - wait until mxrelayd's log matches RE; returns the first match
# ($& of the first matching line) or undef after TIMEOUT seconds
sub wait_log {
	my ($mx, $re, $timeout) = @_;
	my $found;
	MxTest::wait_until(sub {
		for my $l (split /\n/, $mx->log) {
			if ($l =~ $re) { $found = $l; return 1; }
		}
		return 0;
	}, $timeout // 10, 0.1);
	return $found;
}

# attempt_lines - mxrelayd's per-attempt log lines (SPEC 6) for queue ID
# QID (undef: any), recipient RCPT (undef: any) and STATUS (undef: any)
sub attempt_lines {
	my ($mx, $qid, $rcpt, $status) = @_;
	my @r;
	for my $l (split /\n/, $mx->log) {
		next unless $l =~ /\bstatus=(sent|deferred|bounced)\b/;
		next if defined $status && $1 ne $status;
		next if defined $qid && $l !~ /\b\Q$qid\E\b/;
		next if defined $rcpt && $l !~ /\bto=<\Q$rcpt\E>/i;
		push @r, $l;
	}
	return @r;
}

# attempt_fields - the SPEC 6 fields of one attempt line: { to, relay,
# relay_host, relay_ip, relay_port, delay, dsn, status, line }; missing ones undef
sub attempt_fields {
	my ($l) = @_;
	my %f = (line => $l);
	($f{to}) = $l =~ /\bto=<([^>]*)>/;
	if ($l =~ /\brelay=(\S*?)\[([^\]]+)\]:(\d+)/) {
		@f{qw(relay_host relay_ip relay_port)} = ($1, $2, $3);
		$f{relay} = "$1\[$2\]:$3";
	} elsif ($l =~ /\brelay=(\S+)/) {
		$f{relay} = $1;
	}
	($f{delay}) = $l =~ /\bdelay=([0-9.]+)/;
	($f{dsn}) = $l =~ /\bdsn=(\d\.\d{1,3}\.\d{1,3})\b/;
	($f{status}) = $l =~ /\bstatus=(sent|deferred|bounced)\b/;
	return \%f;
}

# crlf_to_lf - CRLF line ends as LF (what smtp-sink's dump files hold)
sub crlf_to_lf {
	my ($s) = @_;
	$s =~ s/\r\n/\n/g;
	return $s;
}

# sink_message_text - the message as it reached the sink: the dump without
# smtp-sink's own X-* lines and its three-line Received header, and without
# the empty line smtp-sink appends
sub sink_message_text {
	my ($dump) = @_;
	my $t = $dump;
	$t =~ s/\A(?:X-[A-Za-z-]+: [^\n]*\n)*//;
	$t =~ s/\AReceived: [^\n]*\n(?:[ \t][^\n]*\n)*//;
	$t =~ s/\n\z//;
	return $t;
}

# parse_dsn - a delivery status notification (RFC 3464, LF or CRLF line
# ends) as { content_type, report_type, message => {field => value},
# rcpts => [{field => value}...], text, returned } (field names
# lower-cased); undef when it is not a multipart/report
sub parse_dsn {
	my ($text) = @_;
	(my $t = $text) =~ s/\r\n/\n/g;
	my ($hdr, $body) = split /\n\n/, $t, 2;
	return undef unless defined $body;
	(my $uh = $hdr) =~ s/\n[ \t]+/ /g;
	my ($ct) = $uh =~ /^Content-Type:\s*(.*)$/mi;
	return undef unless $ct && $ct =~ m{multipart/report}i;
	my ($rt) = $ct =~ /report-type="?([\w-]+)"?/i;
	my ($bd) = $ct =~ /boundary="([^"]+)"/i;
	($bd) = $ct =~ /boundary=([^;\s]+)/i unless $bd;
	return undef unless $bd;
	my @parts = split /^--\Q$bd\E(?:--)?[ \t]*$/m, $body;
	shift @parts;		# preamble
	my %r = (content_type => $ct, report_type => $rt, rcpts => [], parts => []);
	for my $p (@parts) {
		$p =~ s/\A\n//;
		my ($ph, $pb) = split /\n\n/, $p, 2;
		next unless defined $ph;
		(my $uph = $ph) =~ s/\n[ \t]+/ /g;
		my ($pct) = $uph =~ /^Content-Type:\s*([^;\s]+)/mi;
		$pct = lc($pct // 'text/plain');
		push @{$r{parts}}, $pct;
		if ($pct eq 'message/delivery-status') {
			my @groups = grep { /\S/ } split /\n\s*\n/, $pb // '';
			my $first = 1;
			for my $g (@groups) {
				$g =~ s/\n[ \t]+/ /g;
				my %f;
				for my $line (split /\n/, $g) {
					$f{lc $1} = $2 if $line =~ /^([A-Za-z-]+):\s*(.*?)\s*$/;
				}
				if ($first) { $r{message} = \%f; $first = 0; }
				else { push @{$r{rcpts}}, \%f; }
			}
		} elsif ($pct eq 'text/plain' && !defined $r{text}) {
			$r{text} = $pb;
		} elsif ($pct =~ m{^(message/rfc822|text/rfc822-headers|message/global)$}) {
			$r{returned} = $pb;
		}
	}
	return \%r;
}

# delivery_daemon - a started mxrelayd for delivery tests. Options:
#   dns => MxPeers::DNS      dns.nameservers points at it
#   bounce_sink => Sink      delivery.smtp_port = its port (MX-routed mail)
#   hosting => destination   hosting.destination
#   delivery => {...}        merged over retry_schedule [1, 2], connect_timeout 5
#   config => {...}          merged over all of that
sub delivery_daemon {
	my (%o) = @_;
	my %delivery = (retry_schedule => [1, 2], connect_timeout => 5,
	    %{$o{delivery} || {}});
	$delivery{smtp_port} = $o{bounce_sink}->port if $o{bounce_sink};
	my %cfg = (delivery => \%delivery);
	$cfg{dns} = { nameservers => [$o{dns}->nameserver] } if $o{dns};
	$cfg{hosting} = { destination => $o{hosting} } if $o{hosting};
	my $mx = MxTest::Daemon->new(config => MxTest::Daemon::_merge(\%cfg, $o{config} || {}));
	return $mx->start;
}

# dot_stuff - CONTENT (CRLF lines) as it goes between DATA and the final dot
sub dot_stuff {
	my ($content) = @_;
	(my $s = $content) =~ s/^\./../mg;
	return $s;
}

# submit - one transaction on a new session: MAIL FROM:<FROM> PARAMS, each
# RCPT, DATA, CONTENT (dot-stuffed here); returns the queue ID, or undef
# (with a diag) when any reply is not the expected one
sub submit {
	my ($mx, $from, $rcpts, $content, %o) = @_;
	my $c = $mx->session;
	my @steps = ('MAIL FROM:<' . $from . '>' . ($o{mail_params} ? " $o{mail_params}" : ''),
	    map { "RCPT TO:<$_>" } @$rcpts);
	for my $cmd (@steps) {
		my $r = $c->cmd($cmd);
		if (!defined $r || $r !~ /^250 /) {
			Test::More::diag("submit: $cmd -> " . ($r // 'EOF'));
			return undef;
		}
	}
	my $r = $c->cmd('DATA');
	if (!defined $r || $r !~ /^354 /) {
		Test::More::diag("submit: DATA -> " . ($r // 'EOF'));
		return undef;
	}
	$c->send(dot_stuff($content) . ".\r\n");
	$r = $c->reply(30);
	$c->cmd('QUIT');
	$c->close;
	if (!defined $r || $r !~ /^250 2\.0\.0 Ok: queued as (\S+)/) {
		Test::More::diag("submit: end of data -> " . ($r // 'EOF'));
		return undef;
	}
	return $1;
}

# wait_queue_empty - wait until SPOOL/queue holds none of IDS (all when
# none are given); true on success
sub wait_queue_empty {
	my ($mx, $timeout, @ids) = @_;
	return MxTest::wait_until(sub {
		my %q = map { $_ => 1 } $mx->queue_ids;
		return @ids ? !grep { $q{$_} } @ids : !%q;
	}, $timeout // 10, 0.1);
}

# stream_start - a child that submits RATE messages a second for SECS
# seconds, from T0 (default now), to RCPT through MX, each with its own
# Message-ID <TAG.N.PID@src.test>; every acknowledged one is a line "MID
# QUEUEID" in FILE. Returns the child's pid (waitpid it, then stream_acked).
sub stream_start {
	my (%o) = @_;
	my $t0 = $o{t0} // Time::HiRes::time();
	my $pid = fork // die "fork: $!";
	return $pid if $pid;
	open(my $fh, '>', $o{file}) or POSIX::_exit(1);
	$fh->autoflush(1);
	for my $i (1 .. $o{rate} * $o{secs}) {
		my $due = $t0 + ($i - 1) / $o{rate};
		my $now = Time::HiRes::time();
		Time::HiRes::sleep($due - $now) if $due > $now;
		my $mid = "$o{tag}.$i.$$\@src.test";
		my $id = eval { submit($o{mx}, 'a@src.test', [$o{rcpt}],
		    "From: a\@src.test\r\nTo: $o{rcpt}\r\nMessage-ID: <$mid>\r\n"
		    . "Subject: $i\r\n\r\nmessage $i\r\n") };
		print $fh "$mid $id\n" if $id;
	}
	close $fh;
	POSIX::_exit(0);
}

# stream_acked - the Message-IDs FILE lists as acknowledged
sub stream_acked {
	my ($file) = @_;
	return map { (split ' ')[0] } split /\n/, (MxTest::slurp($file) // '');
}

# copies_by_message_id - NAME => SINK pairs: Message-ID => [the names of
# the sinks that got a copy], and NAME => [the sink's messages]
sub copies_by_message_id {
	my (@pairs) = @_;
	my (%seen, %msgs);
	while (my ($name, $sink) = splice(@pairs, 0, 2)) {
		for my $m ($sink->messages) {
			push @{$msgs{$name}}, $m;
			my ($mid) = $m->{text} =~ /^Message-ID: <([^>]+)>/mi;
			push @{$seen{$mid}}, $name if $mid;
		}
	}
	return (\%seen, \%msgs);
}

# attempts_after - of the smtp-sink messages MSGS, those whose attempt
# reached the sink after time T: smtp-sink creates a dump file when MAIL
# FROM arrives, so its birth time (statx, nanoseconds) is the attempt's
# start. One line per late message.
sub attempts_after {
	my ($msgs, $t) = @_;
	my @late;
	for my $m (@$msgs) {
		my ($mid) = $m->{text} =~ /^Message-ID: <([^>]+)>/mi;
		my (undef, $b) = MxTest::run_cmd('stat', '-c', '%.9W', $m->{file});
		chomp $b;
		push @late, sprintf("%s MAIL FROM %.3f s after", $mid // '?', $b - $t)
		    if $b > $t;
	}
	return @late;
}

# our_headers_then - does TEXT consist of header fields (ours, e.g.
# Received:) followed by exactly EXPECTED? Returns (ok, the prefix).
sub our_headers_then {
	my ($text, $expected) = @_;
	return (0, undef) if length $text < length $expected;
	my $tail = substr($text, length($text) - length($expected));
	my $prefix = substr($text, 0, length($text) - length($expected));
	return (0, $prefix) unless $tail eq $expected;
	my $ok = $prefix =~ /\A(?:[!-9;-~]+:[^\n]*\n(?:[ \t][^\n]*\n)*)+\z/;
	return ($ok ? 1 : 0, $prefix);
}

########################################################################
package MxPeers::Sink;

# Postfix's smtp-sink. new(%o) starts it:
#   port => P          (default: a free one)
#   lmtp => 1          speak LMTP (-L)
#   soft => 'RCPT'     answer 4xx to these commands (-r)
#   hard => 'RCPT'     answer 5xx to these commands (-f)
#   soft_reply / hard_reply   the text of those replies (-b / -B)
#   hostname => NAME   (-h)
#   dump => 0          do not dump messages (default: dump each to a file)
#   extra => [...]     more smtp-sink options
# Methods: port, dir, pid, files, count, messages, wait_count, stop, restart.

use strict;
use warnings;
use Carp qw(croak);
use Time::HiRes qw(time sleep);

my $SINK_SEQ = 0;

sub new {
	my ($class, %o) = @_;
	my $self = bless { %o }, $class;
	my $auto_port = !defined $self->{port};
	$self->{port} //= MxTest::free_port();
	$self->{dir} //= MxTest::tmpdir();
	$self->{dump} //= 1;
	$self->{dumpdir} = "$self->{dir}/dump";
	mkdir $self->{dumpdir};
	$self->{log} = "$self->{dir}/smtp-sink.log";
	MxPeers::_register($self);
	for (my $try = 1; ; $try++) {
		my $ok = eval { $self->start; 1 };
		return $self if $ok;
		my $err = $@;
		# a parallel test took free_port's port before smtp-sink bound
		# it: nobody knows the port yet, take another one
		die $err unless $auto_port && $try < 5
		    && (MxTest::slurp($self->{log}) // '') =~ /Address already in use/;
		MxPeers::stop_pid(delete $self->{pid}, 1);
		unlink $self->{log};
		$self->{port} = MxTest::free_port();
	}
}

# start - run smtp-sink with the options given to new (again after stop)
sub start {
	my ($self) = @_;
	croak "smtp-sink already running" if $self->{pid};
	my @argv = ('smtp-sink', '-u', 'root', '-c', '-m', 512);
	push @argv, '-L' if $self->{lmtp};
	push @argv, '-r', $self->{soft} if $self->{soft};
	push @argv, '-f', $self->{hard} if $self->{hard};
	push @argv, '-b', $self->{soft_reply} if $self->{soft_reply};
	push @argv, '-B', $self->{hard_reply} if $self->{hard_reply};
	push @argv, '-h', $self->{hostname} if $self->{hostname};
	# %s (seconds) plus the per-file random part keeps names unique
	push @argv, '-d', "$self->{dumpdir}/%s." if $self->{dump};
	push @argv, @{$self->{extra} || []};
	push @argv, "127.0.0.1:$self->{port}", 1024;
	$self->{pid} = MxPeers::_spawn($self->{log}, @argv);
	MxPeers::_wait_banner($self->{port}, $self->{pid}, 10)
	    or croak "smtp-sink @argv did not come up:\n" . (MxTest::slurp($self->{log}) // '');
	return $self;
}

# restart - stop, change options (%o as for new), start on the same port
sub restart {
	my ($self, %o) = @_;
	$self->stop;
	delete @{$self}{qw(soft hard soft_reply hard_reply lmtp extra)};
	@{$self}{keys %o} = values %o;
	# the old listener may linger a moment after the process is gone
	my $deadline = time + 5;
	while (1) {
		my $ok = eval { $self->start; 1 };
		return $self if $ok;
		die $@ if time > $deadline;
		delete $self->{pid};
		sleep 0.2;
	}
}

sub port { $_[0]{port} }
sub pid { $_[0]{pid} }
sub dir { $_[0]{dir} }
sub dump_dir { $_[0]{dumpdir} }
sub log { MxTest::slurp($_[0]{log}) // '' }

sub stop {
	my ($self) = @_;
	MxPeers::stop_pid(delete $self->{pid}, 5);
}

# files - the dump files, oldest first
sub files {
	my ($self) = @_;
	opendir(my $dh, $self->{dumpdir}) or return ();
	my @f = map { "$self->{dumpdir}/$_" } grep { !/^\./ } readdir $dh;
	closedir $dh;
	my @s = sort { (stat $a)[9] <=> (stat $b)[9] || $a cmp $b } @f;
	return @s;
}

# count - messages received (dump files)
sub count { return scalar(my @f = $_[0]->files); }

# wait_count - wait until at least N messages arrived; returns the count
sub wait_count {
	my ($self, $n, $timeout) = @_;
	MxTest::wait_until(sub { $self->count >= $n }, $timeout // 10, 0.1);
	# let smtp-sink finish writing the last file
	sleep 0.2;
	return $self->count;
}

# messages - every dump parsed: { file, raw, mail => '<sender>' (the
# address of X-Mail-Args), mail_args => all of X-Mail-Args, rcpts =>
# ['<rcpt>'...], rcpt_args => [X-Rcpt-Args...], helo, proto, text => the
# message (LF line ends, as received, without smtp-sink's own lines) }
sub messages {
	my ($self) = @_;
	my @m;
	for my $f ($self->files) {
		my $raw = MxTest::slurp($f) // next;
		my %m = (file => $f, raw => $raw, rcpts => [], rcpt_args => []);
		for my $l (split /\n/, $raw) {
			last unless $l =~ /^X-/;
			if ($l =~ /^X-Mail-Args: (.*)$/) {
				$m{mail_args} = $1;
				($m{mail}) = $1 =~ /^(<[^>]*>|\S+)/;
			} elsif ($l =~ /^X-Rcpt-Args: (.*)$/) {
				push @{$m{rcpt_args}}, $1;
				push @{$m{rcpts}}, $1 =~ /^(<[^>]*>|\S+)/;
			}
			elsif ($l =~ /^X-Helo-Args: (.*)$/) { $m{helo} = $1; }
			elsif ($l =~ /^X-Client-Proto: (.*)$/) { $m{proto} = $1; }
		}
		$m{text} = MxPeers::sink_message_text($raw);
		push @m, \%m;
	}
	return @m;
}

########################################################################
package MxPeers::Dovecot;

# Dovecot LMTP with maildirs under DIR/mail/DOMAIN/USER (the hosting).
# new(users => ['joe@example.test', ...], port => P) starts `dovecot -F`.
# Users not listed get 550 5.1.1 at RCPT. Mail is stored as the mail user
# (Dovecot refuses uid 0).

use strict;
use warnings;
use Carp qw(croak);
use Time::HiRes qw(time sleep);

sub new {
	my ($class, %o) = @_;
	my $self = bless { %o }, $class;
	$self->{port} //= MxTest::free_port();
	$self->{dir} //= MxTest::tmpdir();
	my $d = $self->{dir};
	# the mail user must reach DIR/mail through the temp directory
	chmod 0755, $d;
	mkdir "$d/$_" for qw(run state mail);
	my (undef, undef, $uid, $gid) = getpwnam('mail');
	croak "no user 'mail'" unless defined $uid;
	chown $uid, $gid, "$d/mail";
	MxTest::spew("$d/users", join('', map { "$_:{PLAIN}x\n" } @{$o{users} || []}));
	MxTest::spew("$d/dovecot.conf", <<"CONF");
protocols = lmtp
listen = 127.0.0.1
base_dir = $d/run
state_dir = $d/state
log_path = $d/dovecot.log
ssl = no
mail_location = maildir:$d/mail/%d/%n
passdb {
  driver = passwd-file
  args = $d/users
}
userdb {
  driver = static
  args = uid=mail gid=mail home=$d/mail/%d/%n allow_all_users=no
}
first_valid_uid = 8
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $self->{port}
  }
  user = root
}
service anvil {
  chroot =
}
service stats {
  chroot =
}
CONF
	$self->{log} = "$d/dovecot.stderr";
	MxPeers::_register($self);
	$self->{pid} = MxPeers::_spawn($self->{log}, 'dovecot', '-c', "$d/dovecot.conf", '-F');
	MxPeers::_wait_banner($self->{port}, $self->{pid}, 15)
	    or croak "dovecot did not come up:\n" . (MxTest::slurp($self->{log}) // '')
	    . (MxTest::slurp("$d/dovecot.log") // '');
	return $self;
}

sub port { $_[0]{port} }
sub pid { $_[0]{pid} }
sub dir { $_[0]{dir} }
sub log { (MxTest::slurp("$_[0]{dir}/dovecot.log") // '') . (MxTest::slurp($_[0]{log}) // '') }
sub destination { "lmtp:[127.0.0.1]:$_[0]{port}" }

sub stop {
	my ($self) = @_;
	MxPeers::stop_pid(delete $self->{pid}, 10);
}

# maildir_files - the message files of ADDRESS (new/ and cur/)
sub maildir_files {
	my ($self, $address) = @_;
	my ($local, $domain) = split /@/, lc $address, 2;
	my @f;
	for my $sub (qw(new cur)) {
		my $dir = "$self->{dir}/mail/$domain/$local/$sub";
		opendir(my $dh, $dir) or next;
		push @f, map { "$dir/$_" } grep { !/^\./ } readdir $dh;
		closedir $dh;
	}
	my @s = sort @f;
	return @s;
}

# messages - the messages of ADDRESS, as stored (LF line ends)
sub messages {
	my ($self, $address) = @_;
	return map { MxTest::slurp($_) } $self->maildir_files($address);
}

########################################################################
package MxPeers::DNS;

# dnsmasq as an authoritative server for the `test` zone (unknown names:
# NXDOMAIN at once). new(mx => [[DOMAIN, HOST, PREF]...], a => [[NAME,
# IP]...], txt => [[NAME, TEXT]...], zone => 'test', port => P).
# ->nameserver gives "127.0.0.1:PORT" for dns.nameservers.

use strict;
use warnings;
use Carp qw(croak);
use Time::HiRes qw(time sleep);

# Also ns => 'IP': the zone's NS record (ns.ZONE at IP, this server
# itself on its port), for the MX watch's authoritative questions; ttl => N:
# the TTL of every answer (default dnsmasq's). restart(mx => ...) starts it
# again on the same port with other records.
sub new {
	my ($class, %o) = @_;
	my $self = bless { %o }, $class;
	$self->{port} //= MxPeers::free_port_tcp_udp();
	$self->{dir} //= MxTest::tmpdir();
	MxPeers::_register($self);
	return $self->_start;
}

sub restart {
	my ($self, %o) = @_;
	$self->stop;
	@{$self}{keys %o} = values %o;
	# the old socket may linger a moment after the process is gone
	my $deadline = time + 5;
	while (1) {
		my $ok = eval { $self->_start; 1 };
		return $self if $ok;
		die $@ if time > $deadline;
		delete $self->{pid};
		sleep 0.2;
	}
}

sub _start {
	my ($self) = @_;
	my %o = %$self;
	my $d = $self->{dir};
	my $zone = $o{zone} // 'test';
	my @argv = ('dnsmasq', '--keep-in-foreground', "--port=$self->{port}",
	    '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv',
	    '--no-hosts', "--pid-file=$d/dnsmasq.pid", "--log-facility=$d/dnsmasq.log",
	    '--log-queries', '--user=root', "--auth-zone=$zone",
	    $o{ns} ? ("--auth-server=ns.$zone,$o{ns}", "--host-record=ns.$zone,$o{ns}") :
	    "--auth-server=ns.$zone");
	push @argv, "--auth-ttl=$o{ttl}", "--local-ttl=$o{ttl}" if defined $o{ttl};
	push @argv, "--mx-host=$_->[0],$_->[1]," . ($_->[2] // 10) for @{$o{mx} || []};
	push @argv, "--host-record=$_->[0],$_->[1]" for @{$o{a} || []};
	push @argv, "--txt-record=$_->[0],\"$_->[1]\"" for @{$o{txt} || []};
	$self->{log} = "$d/dnsmasq.stderr";
	$self->{pid} = MxPeers::_spawn($self->{log}, @argv);
	# ready when it answers a query for the first MX (or any name)
	my $probe = @{$o{mx} || []} ? $o{mx}[0][0] : "ns.$zone";
	my $ok = MxTest::wait_until(sub {
		my ($rc, $out) = MxTest::run_cmd({ timeout => 3 }, 'dig', '+time=1',
		    '+tries=1', '-p', $self->{port}, '@127.0.0.1', $probe, 'MX');
		return $rc == 0 && $out =~ /status: (NOERROR|NXDOMAIN)/;
	}, 10, 0.1);
	croak "dnsmasq did not answer:\n" . (MxTest::slurp($self->{log}) // '') unless $ok;
	return $self;
}

sub port { $_[0]{port} }
sub pid { $_[0]{pid} }
sub nameserver { "127.0.0.1:$_[0]{port}" }
sub log { (MxTest::slurp("$_[0]{dir}/dnsmasq.log") // '') . (MxTest::slurp($_[0]{log}) // '') }

# query - dig +short NAME TYPE at this server
sub query {
	my ($self, $name, $type) = @_;
	my ($rc, $out) = MxTest::run_cmd({ timeout => 5 }, 'dig', '+short', '-p',
	    $self->{port}, '@127.0.0.1', $name, $type // 'A');
	return $out;
}

sub stop {
	my ($self) = @_;
	MxPeers::stop_pid(delete $self->{pid}, 5);
}

########################################################################
package MxPeers::Postfix;

# A private Postfix instance: its own config_directory, queue_directory and
# data_directory in a temp dir, smtpd on a free loopback port, accepting
# mail for relay_domains and relaying all of it to relayhost. Services are
# not chrooted. new(relay_domains => 'example.test', relayhost =>
# '[127.0.0.1]:PORT', port => P, extra => { main.cf key => value }).
# Stopped with `postfix -c DIR abort` (the master's PID is in the queue).

use strict;
use warnings;
use Carp qw(croak);
use Time::HiRes qw(time sleep);

sub new {
	my ($class, %o) = @_;
	my $self = bless { %o }, $class;
	$self->{port} //= MxTest::free_port();
	$self->{dir} //= MxTest::tmpdir();
	my $d = $self->{dir};
	chmod 0755, $d;
	mkdir "$d/$_" for qw(etc spool data);
	my (undef, undef, $uid) = getpwnam('postfix');
	croak "no user 'postfix'" unless defined $uid;
	chown $uid, -1, "$d/data";
	my %main = (
		compatibility_level => '3.6',
		config_directory => "$d/etc",
		queue_directory => "$d/spool",
		data_directory => "$d/data",
		mail_owner => 'postfix',
		setgid_group => 'postdrop',
		syslog_name => 'postfix-mxtest',
		maillog_file => "$d/maillog",
		maillog_file_prefixes => $d,
		inet_interfaces => '127.0.0.1',
		inet_protocols => 'ipv4',
		myhostname => 'pf.test.example',
		mydomain => 'test.example',
		myorigin => '$myhostname',
		mydestination => '',
		local_recipient_maps => '',
		alias_maps => '',
		alias_database => '',
		mynetworks => '127.0.0.0/8',
		relay_domains => $o{relay_domains} // 'example.test',
		relayhost => $o{relayhost} // '',
		smtpd_recipient_restrictions => 'permit_mynetworks, reject_unauth_destination',
		smtpd_banner => '$myhostname ESMTP',
		smtpd_tls_security_level => 'none',
		smtp_tls_security_level => 'none',
		biff => 'no',
		in_flow_delay => 0,
		%{$o{extra} || {}},
	);
	MxTest::spew("$d/etc/main.cf", join('', map { "$_ = $main{$_}\n" } sort keys %main));
	# the services shared with the benchmarks, after our smtpd
	my $services = MxTest::slurp(($ENV{MX_SRCDIR} // '.') . '/t/data/postfix-master.cf')
	    // croak "t/data/postfix-master.cf: $!";
	MxTest::spew("$d/etc/master.cf",
	    "127.0.0.1:$self->{port} inet n - n - 200 smtpd\n" . $services);
	MxPeers::_register($self);
	my ($rc, $out, $err) = MxTest::run_cmd({ timeout => 30 }, 'postfix', '-c', "$d/etc", 'start');
	croak "postfix start failed: $out$err" if $rc != 0;
	$self->{started} = 1;
	MxPeers::_wait_banner($self->{port}, undef, 20)
	    or croak "postfix smtpd did not come up:\n" . (MxTest::slurp("$d/maillog") // '');
	return $self;
}

sub port { $_[0]{port} }
sub dir { $_[0]{dir} }
sub log { MxTest::slurp("$_[0]{dir}/maillog") // '' }

# master_pid - the master's PID (queue_directory/pid/master.pid)
sub master_pid {
	my $p = MxTest::slurp("$_[0]{dir}/spool/pid/master.pid") // '';
	$p =~ s/\s+//g;
	return $p =~ /^\d+\z/ ? $p : undef;
}

sub stop {
	my ($self) = @_;
	return unless delete $self->{started};
	my $pid = $self->master_pid;
	MxTest::run_cmd({ timeout => 20 }, 'postfix', '-c', "$self->{dir}/etc", 'abort');
	if ($pid) {
		MxTest::wait_until(sub { !kill(0, $pid) }, 10, 0.1);
		kill 'KILL', $pid if kill(0, $pid);
	}
}

1;
