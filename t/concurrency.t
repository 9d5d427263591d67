# concurrency.t - 1,000 concurrent sessions each complete a transaction (SPEC 9)
use strict;
use warnings;

use constant { NCONN => 1000, NPROC => 4, FD_NEEDED => 4096 };

# The daemon inherits our fd limit: raise it (re-exec under sh's ulimit).
BEGIN {
	my $soft = `sh -c 'ulimit -n'`;
	chomp $soft;
	if ($soft ne 'unlimited' && $soft < FD_NEEDED && !$ENV{MX_ULIMIT_RAISED}) {
		$ENV{MX_ULIMIT_RAISED} = 1;
		$ENV{PERL5LIB} = join(':', grep { !ref } @INC);
		exec 'sh', '-c', 'ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"',
		    'sh', $^X, $0, @ARGV;
	}
}

use Test::More;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time sleep);
use MxTest;

my $limit = `sh -c 'ulimit -n'`;
chomp $limit;
BAIL_OUT("fd limit $limit too low for " . NCONN . " connections")
    if $limit ne 'unlimited' && $limit < NCONN + 200;

watchdog(120);
my $mx = MxTest::Daemon->new(config => { limits => {
	max_connections => 5000,
	max_connections_per_client => 5000,
	command_timeout => 60,
	data_timeout => 60,
} });
$mx->start;
$mx->setup(domains => ['example.test'], addresses => ['joe@example.test']);

my $per = NCONN / NPROC;
my (@kids, @ready_r, @go_w, @res_files);
my $t0 = time;
for my $k (0 .. NPROC - 1) {
	pipe(my $rr, my $rw) or die "pipe: $!";
	pipe(my $gr, my $gw) or die "pipe: $!";
	my $res = $mx->dir . "/client$k.txt";
	my $pid = fork;
	die "fork: $!" unless defined $pid;
	if ($pid == 0) {
		close $rr;
		close $gw;
		client($k, $per, $rw, $gr, $res);
		POSIX::_exit(0);
	}
	close $rw;
	close $gr;
	push @kids, $pid;
	push @ready_r, $rr;
	push @go_w, $gw;
	push @res_files, $res;
}

# barrier: every client has its sessions open and greeted
my $greeted = 0;
for my $rr (@ready_r) {
	my $line = <$rr>;
	$greeted += $1 if defined $line && $line =~ /^greeted (\d+)/;
}
is($greeted, NCONN, NCONN . ' sessions open at the same time, all greeted with 220');
diag(sprintf('%d sessions open after %.1f s', $greeted, time - $t0));
my $st = $mx->status_json;
diag('status: ' . JSON::PP->new->canonical->encode($st)) if $st;
is(ref $st eq 'HASH' && ref $st->{connections} eq 'HASH' ? $st->{connections}{current} : undef, NCONN,
    'relayctl status --json: connections.current = ' . NCONN);
print {$_} "go\n" for @go_w;
close $_ for @go_w;
waitpid($_, 0) for @kids;
diag(sprintf('all transactions done after %.1f s', time - $t0));

my (%ids, @errors);
for my $f (@res_files) {
	for my $l (split /\n/, MxTest::slurp($f) // '') {
		if ($l =~ /^ok (\S+)/) { $ids{$1}++ }
		else { push @errors, $l }
	}
}
is(scalar(keys %ids), NCONN, 'every session got 250 2.0.0 Ok: queued as ID, all IDs distinct')
    or diag(join("\n", @errors[0 .. ($#errors < 9 ? $#errors : 9)]));
ok(!grep({ $ids{$_} > 1 } keys %ids), 'no queue ID given twice');
my @q = $mx->queue_ids;
is(scalar @q, NCONN, 'spool holds ' . NCONN . ' files');
my $bad = grep { !exists $ids{$_} } @q;
is($bad, 0, 'every spool file is an acknowledged message');
my $complete = grep { my $s = $mx->spool($_); $s && $s->{message} =~ /\r\nclient \d+ session \d+\r\n\z/ } @q;
is($complete, NCONN, 'every spool file holds its full message');
ok($mx->alive, 'daemon still running');
$mx->stop_ok;
done_testing();

# client - one process driving N sessions with non-blocking sockets
sub client {
	my ($k, $n, $ready, $go, $resfile) = @_;
	$SIG{ALRM} = sub { POSIX::_exit(1) };
	alarm 100;
	open(my $out, '>', $resfile) or POSIX::_exit(1);
	my @c;
	for my $i (0 .. $n - 1) {
		my $s;
		for (1 .. 50) {	# the listen queue may overflow for a moment
			$s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mx->port,
			    Proto => 'tcp', Timeout => 10);
			last if $s;
			sleep 0.1;
		}
		if (!$s) { print $out "connect failed: $!\n"; next; }
		$s->blocking(0);
		push @c, { s => $s, i => $i, buf => '', step => 0, done => 0 };
	}
	# step: [ expected reply, what to send next ]
	my $body = "Subject: concurrency\r\n\r\nclient $k session %d\r\n.\r\n";
	my @script = (
		[qr/^220 /, sub { "EHLO c$k-$_[0].test\r\n" }],
		[qr/^250 /, sub { "MAIL FROM:<s$k-$_[0]\@src.test>\r\n" }],
		[qr/^250 /, sub { "RCPT TO:<joe\@example.test>\r\n" }],
		[qr/^250 /, sub { "DATA\r\n" }],
		[qr/^354 /, sub { sprintf($body, $_[0]) }],
		[qr/^250 2\.0\.0 Ok: queued as (\S+)/, sub { "QUIT\r\n" }],
		[qr/^221 /, undef],
	);
	my $sel = IO::Select->new(map { $_->{s} } @c);
	my %by = map { fileno($_->{s}) => $_ } @c;
	my $phase = 'greet';
	my $left = scalar @c;
	my $greeted = 0;
	while ($left > 0) {
		my @r = $sel->can_read(30);
		last unless @r;
		for my $fh (@r) {
			my $c = $by{fileno $fh};
			my $nr = sysread($fh, my $chunk, 8192);
			next if !defined $nr && $!{EAGAIN};
			if (!$nr) {
				print $out "session $c->{i}: closed at step $c->{step}\n";
				$sel->remove($fh);
				$left--;
				next;
			}
			$c->{buf} .= $chunk;
			while ($c->{buf} =~ s/\A([^\n]*)\n//) {
				my $line = $1;
				$line =~ s/\r\z//;
				next if $line =~ /^\d{3}-/;
				my ($want, $next) = @{$script[$c->{step}]};
				if ($line !~ $want) {
					print $out "session $c->{i}: step $c->{step}: $line\n";
					$sel->remove($fh);
					$left--;
					last;
				}
				print $out "ok $1\n" if $c->{step} == 5;
				$c->{step}++;
				if ($c->{step} == 1) {
					# hold every session at the barrier after its greeting
					$greeted++;
					$c->{held} = 1;
				} elsif ($next) {
					syswrite($fh, $next->($c->{i}));
				} else {
					$sel->remove($fh);
					close $fh;
					$left--;
					last;
				}
			}
		}
		if ($phase eq 'greet' && $greeted == @c) {
			print $ready "greeted $greeted\n";
			close $ready;
			my $g = <$go>;
			$phase = 'run';
			for my $c (@c) {
				syswrite($c->{s}, $script[0][1]->($c->{i})) if $c->{held};
			}
		}
	}
	if ($phase eq 'greet') {
		print $ready "greeted $greeted\n";
		close $ready;
		my $g = <$go>;
	}
	close $out;
}
