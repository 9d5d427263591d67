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
