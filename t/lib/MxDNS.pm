# MxDNS.pm - DNS servers for the filter tests (SPF, DNSBL)
#
#   my $dns = MxDNS->start(
#       zone => 'test',                              # authoritative: unknown names NXDOMAIN
#       txt  => { 'sender.test' => 'v=spf1 ip4:192.0.2.10 -all' },
#       a    => { 'mx.sender.test' => ['192.0.2.20'] },
#       aaaa => { 'v6.sender.test' => ['2001:db8::10'] },
#       mx   => { 'sender.test' => [[10, 'mx.sender.test']] },
#       ptr  => { '10.2.0.192.in-addr.arpa' => 'host.sender.test' },
#   );
#   $dns->nameserver      # "127.0.0.1:PORT" for dns.nameservers
#   $dns->stop
#
# A real dnsmasq (TESTING.md) on a free loopback port, in the foreground,
# stopped by its PID when the object goes or the test ends. Names outside
# `zone` are answered REFUSED (no upstream servers): a DNS error, which SPF
# turns into temperror.
#
#   my $slow = MxDNS::Slow->start(delay => 5, answer => sub { $packet });
#
# A UDP "server" that holds every query for `delay` seconds and then
# answers NXDOMAIN (or what `answer` builds from the query packet): for
# tests of a slow or silent DNS.
package MxDNS;

use strict;
use warnings;
use Carp qw(croak);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use MxTest ();

my @SERVERS;

# free_udp_tcp_port - a port free for both UDP and TCP on 127.0.0.1
sub free_udp_tcp_port {
	for (1 .. 50) {
		my $p = MxTest::free_port();
		my $u = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $p,
		    Proto => 'udp') or next;
		close $u;
		return $p;
	}
	croak "no free UDP+TCP port";
}

sub start {
	my ($class, %o) = @_;
	my $self = bless { dir => $o{dir} // MxTest::tmpdir() }, $class;
	$self->{port} = free_udp_tcp_port();
	my $zone = $o{zone} // 'test';
	my @args = ('dnsmasq', '--keep-in-foreground', "--port=$self->{port}",
	    '--listen-address=127.0.0.1', '--bind-interfaces', '--no-resolv',
	    '--no-hosts', '--pid-file=', "--log-facility=-", '--no-negcache',
	    "--auth-zone=$zone", "--auth-server=ns.$zone", '--auth-ttl=0',
	    '--local-ttl=0');
	push @args, '--log-queries' if $o{log_queries};
	for my $n (sort keys %{$o{txt} || {}}) {
		my $v = $o{txt}{$n};
		for my $t (ref $v ? @$v : ($v)) {
			croak "txt record with a comma: $t" if $t =~ /,/;
			push @args, "--txt-record=$n,$t";
		}
	}
	for my $n (sort keys %{$o{a} || {}}) {
		push @args, "--host-record=$n,$_" for @{$o{a}{$n}};
	}
	for my $n (sort keys %{$o{aaaa} || {}}) {
		push @args, "--host-record=$n,$_" for @{$o{aaaa}{$n}};
	}
	for my $n (sort keys %{$o{mx} || {}}) {
		push @args, "--mx-host=$n,$_->[1],$_->[0]" for @{$o{mx}{$n}};
	}
	for my $n (sort keys %{$o{ptr} || {}}) {
		push @args, "--ptr-record=$n,$o{ptr}{$n}";
	}
	$self->{log} = "$self->{dir}/dnsmasq-$self->{port}.log";
	my $pid = fork;
	croak "fork: $!" unless defined $pid;
	if ($pid == 0) {
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>>', $self->{log}) or POSIX::_exit(126);
		open(STDERR, '>>', $self->{log}) or POSIX::_exit(126);
		{ exec { $args[0] } @args; }
		POSIX::_exit(127);
	}
	$self->{pid} = $pid;
	push @SERVERS, $self;
	# ready when it answers (anything) over UDP
	my $ok = MxTest::wait_until(sub { $self->_answers }, 10, 0.05);
	croak "dnsmasq did not come up:\n" . (MxTest::slurp($self->{log}) // '') unless $ok;
	return $self;
}

# _answers - does the server answer a query for the zone's SOA?
sub _answers {
	my ($self) = @_;
	return 0 if waitpid($self->{pid}, WNOHANG) == $self->{pid};
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
	    Proto => 'udp') or return 0;
	# a minimal query: id 0x1234, RD, one question "ns.test"? any name will do
	my $q = pack('n6', 0x1234, 0x0100, 1, 0, 0, 0) . "\x02ns\x04test\x00" . pack('n2', 1, 1);
	$s->send($q);
	my $r = '';
	my $rin = '';
	vec($rin, fileno($s), 1) = 1;
	return 0 unless select(my $rout = $rin, undef, undef, 0.2);
	$s->recv($r, 512);
	return length($r) >= 12;
}

sub nameserver { "127.0.0.1:$_[0]{port}" }
sub port { $_[0]{port} }
sub log { MxTest::slurp($_[0]{log}) // '' }

sub stop {
	my ($self) = @_;
	my $pid = delete $self->{pid} or return;
	kill 'TERM', $pid;
	my $deadline = time + 5;
	while (waitpid($pid, WNOHANG) != $pid) {
		if (time > $deadline) { kill 'KILL', $pid; waitpid($pid, 0); last; }
		sleep 0.02;
	}
}

END {
	my $st = $?;
	$_->stop for @SERVERS;
	$? = $st;
}

########################################################################
package MxDNS::Slow;

use strict;
use warnings;
use Carp qw(croak);
use IO::Socket::INET;
use IO::Select;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);

my @SLOW;

# start - fork a UDP responder that answers every query after delay
# seconds (never when delay is undef): NXDOMAIN, or answer->($query)
sub start {
	my ($class, %o) = @_;
	require Net::DNS;
	my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
	    Proto => 'udp') or croak "udp socket: $!";
	my $self = bless { port => $sock->sockport }, $class;
	my $pid = fork;
	croak "fork: $!" unless defined $pid;
	if ($pid == 0) {
		$SIG{ALRM} = 'DEFAULT';
		alarm(0);
		_serve($sock, $o{delay}, $o{answer});
		POSIX::_exit(0);
	}
	close $sock;
	$self->{pid} = $pid;
	push @SLOW, $self;
	return $self;
}

sub _serve {
	my ($sock, $delay, $answer) = @_;
	my $sel = IO::Select->new($sock);
	my @held;			# [due time, peer, reply bytes]
	while (1) {
		my $wait = @held ? $held[0][0] - time : 1;
		$wait = 0 if $wait < 0;
		if ($sel->can_read($wait)) {
			my $peer = $sock->recv(my $data, 4096);
			my $q = eval { Net::DNS::Packet->new(\$data) };
			if ($q && defined $delay) {
				my $r = $answer ? $answer->($q) : undef;
				if (!$r) {
					$r = $q->reply;
					$r->header->rcode('NXDOMAIN');
				}
				push @held, [time + $delay, $peer, $r->data];
			}
		}
		while (@held && $held[0][0] <= time) {
			my $h = shift @held;
			$sock->send($h->[2], 0, $h->[1]);
		}
	}
}

sub nameserver { "127.0.0.1:$_[0]{port}" }

sub stop {
	my ($self) = @_;
	my $pid = delete $self->{pid} or return;
	kill 'KILL', $pid;
	waitpid($pid, 0);
}

END {
	my $st = $?;
	$_->stop for @SLOW;
	$? = $st;
}

1;
