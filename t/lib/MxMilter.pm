# MxMilter.pm - a small milter of our own for the tests (Sendmail's milter
# protocol, version 6), in a child process on a free loopback port.
#
#   my $m = MxMilter->new(mode => 'reject');   # ->port, ->socket, ->log
#
# Every connection is served by its own child. Modes (what it does at the
# end of the message, after answering every earlier step with continue):
#   accept          accept
#   reject          reply 550 5.7.1 ... (SMFIR_REPLYCODE)
#   tempfail        reply 451 4.7.1 ...
#   discard         discard
#   quarantine      quarantine "test quarantine", then accept
#   addrcpt:ADDR    add recipient ADDR, then accept
#   delrcpt:ADDR    remove recipient ADDR, then accept
#   edit            add X-Test-Milter, insert X-Test-Top at 0, change the
#                   Subject, delete the 1st X-Drop, replace the body
#   hang            never answer the end of the message
#   truncated       answer the end of the message with half a packet, close
#   garbage         answer the end of the message with an unknown reply
# The log file gets one line per command received: "CMD data" (strings
# with NULs shown as |).
package MxMilter;

use strict;
use warnings;
use IO::Socket::INET;
use POSIX ();

sub new {
	my ($class, %o) = @_;
	my $self = bless { mode => $o{mode} // 'accept' }, $class;
	$self->{dir} = MxTest::tmpdir();
	$self->{log} = "$self->{dir}/milter.log";
	my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
	    Listen => 64, ReuseAddr => 1, Proto => 'tcp') or die "milter listen: $!";
	$self->{port} = $l->sockport;
	my $pid = fork() // die "fork: $!";
	if ($pid == 0) {
		# a group of its own: stop ends the connection children too
		POSIX::setpgid(0, 0);
		$SIG{$_} = 'DEFAULT' for qw(TERM INT HUP);
		$SIG{CHLD} = 'IGNORE';
		while (1) {
			my $c = $l->accept or next;
			my $k = fork();
			if (defined $k && $k == 0) {
				alarm 120;	# a hung connection ends anyway
				_serve($self, $c);
				POSIX::_exit(0);
			}
			close $c;
		}
	}
	close $l;
	$self->{pid} = $pid;
	MxPeers::_register($self);
	return $self;
}

sub port { $_[0]{port} }
sub socket { "inet:127.0.0.1:$_[0]{port}" }
sub log { MxTest::slurp($_[0]{log}) // '' }

# negotiates - does a milter on PORT answer SMFIC_OPTNEG with its own?
sub negotiates {
	my ($port) = @_;
	my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
	    Proto => 'tcp', Timeout => 1) or return 0;
	syswrite($c, _pkt('O', pack('NNN', 6, 0x1ff, 0x1fffff)));
	my $rin = '';
	vec($rin, fileno($c), 1) = 1;
	return 0 unless select(my $rout = $rin, undef, undef, 2);
	my $h = _read_n($c, 5);
	close $c;
	return defined $h && substr($h, 4, 1) eq 'O';
}

sub stop {
	my ($self) = @_;
	return unless $self->{pid};
	kill 'TERM', -$self->{pid};	# the connection children
	MxPeers::stop_pid(delete $self->{pid}, 5);
}

sub _pkt {
	my ($cmd, $data) = @_;
	$data //= '';
	return pack('N', length($data) + 1) . $cmd . $data;
}

sub _read_n {
	my ($c, $n) = @_;
	my $buf = '';
	while (length $buf < $n) {
		my $r = sysread($c, $buf, $n - length $buf, length $buf);
		return undef unless $r;
	}
	return $buf;
}

sub _serve {
	my ($self, $c) = @_;
	my $mode = $self->{mode};
	open(my $log, '>>', $self->{log}) or die;
	$log->autoflush(1);
	while (1) {
		my $h = _read_n($c, 4) // last;
		my $len = unpack('N', $h);
		my $p = _read_n($c, $len) // last;
		my ($cmd, $data) = (substr($p, 0, 1), substr($p, 1));
		(my $shown = $data) =~ s/\0/|/g;
		$shown =~ s/\r/\\r/g;
		$shown =~ s/\n/\\n/g;
		print $log "$cmd $shown\n" unless $cmd eq 'B' && length $shown > 200;
		print $log "B (" . length($data) . " octets)\n" if $cmd eq 'B' && length $shown > 200;
		if ($cmd eq 'O') {
			# every action, every step, answers to all
			syswrite($c, _pkt('O', pack('NNN', 6, 0x1ff & ~0x40 & ~0x100, 0)));
		} elsif ($cmd eq 'D' || $cmd eq 'A') {
			next;
		} elsif ($cmd eq 'Q') {
			last;
		} elsif ($cmd eq 'E') {
			_eom($c, $mode);
			last if $mode eq 'truncated';
		} else {
			syswrite($c, _pkt('c'));
		}
	}
	close $c;
}

sub _eom {
	my ($c, $mode) = @_;
	if ($mode eq 'reject') {
		syswrite($c, _pkt('y', "550 5.7.1 Test milter says no\0"));
	} elsif ($mode eq 'tempfail') {
		syswrite($c, _pkt('y', "451 4.7.1 Test milter says later\0"));
	} elsif ($mode eq 'discard') {
		syswrite($c, _pkt('d'));
	} elsif ($mode eq 'quarantine') {
		syswrite($c, _pkt('q', "test quarantine\0") . _pkt('a'));
	} elsif ($mode =~ /^addrcpt:(.*)/) {
		syswrite($c, _pkt('+', "<$1>\0") . _pkt('a'));
	} elsif ($mode =~ /^delrcpt:(.*)/) {
		syswrite($c, _pkt('-', "<$1>\0") . _pkt('a'));
	} elsif ($mode eq 'edit') {
		syswrite($c, _pkt('h', "X-Test-Milter\0edited\0")
		    . _pkt('i', pack('N', 0) . "X-Test-Top\0first\0")
		    . _pkt('m', pack('N', 1) . "Subject\0changed subject\0")
		    . _pkt('m', pack('N', 1) . "X-Drop\0\0")
		    . _pkt('b', "new body line 1\r\n")
		    . _pkt('b', "new body line 2\n")
		    . _pkt('a'));
	} elsif ($mode eq 'hang') {
		sleep 3600;
	} elsif ($mode eq 'truncated') {
		syswrite($c, pack('N', 100) . 'y550 5.7');
	} elsif ($mode eq 'garbage') {
		syswrite($c, _pkt('Z', "what\0"));
	} else {
		syswrite($c, _pkt('a'));
	}
}

1;

########################################################################
package MxMilter::Rspamd;

# Debian's rspamd with a configuration of its own: only the proxy worker,
# in milter mode, scanning itself (self_scan: no normal worker), DNS from
# the test's dnsmasq, no Redis (the modules that need it stay off), the
# milter_headers module adding X-Spamd-Result and X-Rspamd-Queue-Id.
#   my $r = MxMilter::Rspamd->new(dns => $dns);   # ->socket, ->log

use strict;
use warnings;
use IO::Socket::INET;

sub new {
	my ($class, %o) = @_;
	my $self = bless {}, $class;
	my $d = $self->{dir} = MxTest::tmpdir();
	$self->{port} = MxTest::free_port();
	mkdir "$d/$_" for qw(local.d db run);
	MxTest::spew("$d/local.d/milter_headers.conf", <<'CONF');
use = ["x-spamd-result", "x-rspamd-queue-id"];
skip_local = false;
skip_authenticated = false;
CONF
	my $ns = $o{dns} ? $o{dns}->nameserver : '127.0.0.1:' . MxTest::closed_port();
	MxTest::spew("$d/rspamd.conf", <<CONF);
.include "\$CONFDIR/common.conf"
options {
    pidfile = "$d/run/rspamd.pid";
    .include "\$CONFDIR/options.inc"
    dns { nameserver = ["$ns"]; timeout = 1s; retransmits = 1; }
    local_addrs = [];
}
logging { type = "file"; filename = "$d/rspamd.log"; level = "info"; }
worker "rspamd_proxy" {
    bind_socket = "127.0.0.1:$self->{port}";
    milter = yes;
    timeout = 120s;
    upstream "local" { default = yes; self_scan = yes; }
    count = 1;
    spam_header = "X-Spam";
    reject_message = "Spam message rejected";
}
CONF
	MxPeers::_register($self);
	$self->{pid} = MxPeers::_spawn("$d/stderr", 'rspamd', '-f', '-i', '-u', 'root',
	    '-g', 'root', '-c', "$d/rspamd.conf", '--var', "LOCAL_CONFDIR=$d",
	    '--var', "DBDIR=$d/db", '--var', "RUNDIR=$d/run", '--var', "LOGDIR=$d");
	# ready once its proxy worker answers an option negotiation (the port
	# may be bound before the worker has loaded its rules)
	my $ok = MxTest::wait_until(sub { MxMilter::negotiates($self->{port}) }, 45, 0.2);
	die "rspamd did not answer:\n" . $self->log unless $ok;
	return $self;
}

sub port { $_[0]{port} }
sub socket { "inet:127.0.0.1:$_[0]{port}" }
sub log { (MxTest::slurp("$_[0]{dir}/rspamd.log") // '') . (MxTest::slurp("$_[0]{dir}/stderr") // '') }

sub stop {
	my ($self) = @_;
	MxPeers::stop_pid(delete $self->{pid}, 10) if $self->{pid};
}

########################################################################
package MxMilter::OpenDKIM;

# Debian's opendkim in the foreground with a configuration of its own.
#   MxMilter::OpenDKIM->new(mode => 's', domain => 'sender.test')  signs mail
#       from DOMAIN's addresses with a fresh key (selector "test"); ->public
#       is the key's DNS record text, ->key_record the "NAME TEXT" line
#   MxMilter::OpenDKIM->new(mode => 'v', keys => [LINE...])  verifies, the
#       public keys read from a file (TestPublicKeys: no DNS), and adds
#       Authentication-Results

use strict;
use warnings;
use IO::Socket::INET;

sub new {
	my ($class, %o) = @_;
	my $self = bless { %o }, $class;
	my $d = $self->{dir} = MxTest::tmpdir();
	$self->{port} = MxTest::free_port();
	my @conf = ('Syslog no', "Mode $o{mode}", "Socket inet:$self->{port}\@127.0.0.1",
	    "PidFile $d/opendkim.pid", 'Canonicalization relaxed/relaxed',
	    'AuthservID verifier.test', 'UMask 007', 'RequireSafeKeys no');
	if ($o{mode} eq 's') {
		my ($rc, $out, $err) = MxTest::run_cmd('opendkim-genkey', '-D', $d,
		    '-d', $o{domain}, '-s', 'test', '-b', '1024');
		die "opendkim-genkey: $err" if $rc;
		my $txt = MxTest::slurp("$d/test.txt");
		$self->{public} = join('', $txt =~ /"([^"]*)"/g);
		$self->{key_record} = "test._domainkey.$o{domain} $self->{public}";
		push @conf, "Domain $o{domain}", 'Selector test', "KeyFile $d/test.private",
		    'InternalHosts 127.0.0.1';
	} else {
		MxTest::spew("$d/keys", join('', map { "$_\n" } @{$o{keys} || []}));
		push @conf, "TestPublicKeys $d/keys", 'AlwaysAddARHeader yes';
	}
	MxTest::spew("$d/opendkim.conf", join('', map { "$_\n" } @conf));
	MxPeers::_register($self);
	$self->{pid} = MxPeers::_spawn("$d/stderr", 'opendkim', '-f', '-v', '-x',
	    "$d/opendkim.conf");
	my $ok = MxTest::wait_until(sub { MxMilter::negotiates($self->{port}) }, 15, 0.1);
	die "opendkim did not answer:\n" . $self->log unless $ok;
	return $self;
}

sub port { $_[0]{port} }
sub socket { "inet:127.0.0.1:$_[0]{port}" }
sub key_record { $_[0]{key_record} }
sub log { MxTest::slurp("$_[0]{dir}/stderr") // '' }

sub stop {
	my ($self) = @_;
	MxPeers::stop_pid(delete $self->{pid}, 5) if $self->{pid};
}

1;
