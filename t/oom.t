# oom.t - out of memory in a session (issue 15): with the fault point
# session_alloc (./configure --enable-fault-injection, src/fault.h) one
# allocation of a session fails; that session gets "421 4.3.0 Out of
# memory, closing connection" and is closed, the daemon lives, the next
# client's transaction is queued intact, and nothing half-written is left
# in the spool. The sweep fails each allocation of a whole transaction in
# turn (SKIP = 0, 1, ... until a transaction makes no more), so every
# failure path of the session is taken once; under the sanitizer build a
# freed session that leaked would show at each stop (stop_ok).
use strict;
use warnings;
use Test::More;
use MxTest;

watchdog(600);
$SIG{PIPE} = 'IGNORE';		# the server may close while we send DATA

my $OOM = '421 4.3.0 Out of memory, closing connection';
# over the spool's 64 KiB write buffer: the message's second buffer is an
# allocation too
my $BODY = "Subject: oom\r\n\r\n" .
    join('', map { sprintf("line %05d %s\r\n", $_, 'x' x 60) } 1 .. 1100);

# spool_files - files under incoming/ (queue/ is listed by queue_ids)
sub incoming_files {
	my ($mx) = @_;
	opendir(my $dh, $mx->spool_dir . '/incoming') or return ();
	return grep { !/^\./ } readdir $dh;
}

# last_line - the final line of a (multi-line) reply
sub last_line {
	my ($r) = @_;
	return undef unless defined $r;
	my ($l) = $r =~ /([^\n]*)\z/;
	return $l;
}

# transaction - a whole session, step by step: greeting, EHLO, MAIL, two
# RCPTs (one written in another form than its canonical one: a second
# string), DATA, the message, QUIT. Returns ('ok', queue id) when it ran
# to the 221, ('oom', step) when a step was answered with $OOM and the
# connection closed, ('bad', step, reply) otherwise.
sub transaction {
	my ($mx) = @_;
	my $c = $mx->smtp;
	my @steps = (
		[greeting => undef, qr/^220 /],
		[ehlo => "EHLO client.test\r\n", qr/^250 /],
		[mail => "MAIL FROM:<s\@src.test>\r\n", qr/^250 /],
		[rcpt1 => "RCPT TO:<joe\@example.test>\r\n", qr/^250 /],
		[rcpt2 => "RCPT TO:<Mary\@Example.TEST>\r\n", qr/^250 /],
		[data => "DATA\r\n", qr/^354 /],
		[message => "$BODY.\r\n", qr/^250 2\.0\.0 Ok: queued as (\S+)$/],
		[quit => "QUIT\r\n", qr/^221 /],
	);
	my $id;
	for my $st (@steps) {
		my ($name, $send, $want) = @$st;
		$c->send($send) if defined $send;
		my $r = $c->reply(20);
		my $l = last_line($r);
		if (defined $l && $l eq $OOM) {
			my $closed = $c->closed(5);
			$c->close;
			return $closed ? ('oom', $name) : ('bad', $name, "$l (not closed)");
		}
		if (!defined $l || $l !~ $want) {
			$c->close;
			return ('bad', $name, $r // 'EOF/timeout');
		}
		$id = $1 if $name eq 'message';
	}
	$c->close;
	return ('ok', $id);
}

# intact - the queued message $id holds the body sent, both recipients
sub intact {
	my ($mx, $id) = @_;
	my $m = $mx->spool($id) or return 0;
	return substr($m->{message}, -length($BODY)) eq $BODY &&
	    join(',', sort @{$m->{rcpts}}) eq '<Mary@example.test>,<joe@example.test>';
}

my $mx = MxTest::Daemon->new;
$mx->start;
$mx->setup(domains => ['example.test'],
    addresses => ['joe@example.test', 'mary@example.test']);
$mx->stop_ok('without faults: stops cleanly');

my ($skip, $failed_at, %steps) = (0, 0);
for (;; $skip++) {
	local $ENV{MXRELAY_FAULTS} = "session_alloc=ENOMEM*1+$skip";
	my %before = map { $_ => 1 } $mx->queue_ids;
	my $startpos = length $mx->log;
	$mx->start;
	# MxTest's start probes the SMTP port: wait until that session ended.
	# The count of allocations is the daemon's: a fault that hit the
	# probe's session is only checked for the daemon living on.
	MxTest::wait_until(sub {
	    substr($mx->log, $startpos) =~ /smtp (disconnect|out of memory)/ }, 5);
	my $logpos = length $mx->log;
	if (substr($mx->log, $startpos) =~ /fault injected point=session_alloc/) {
		ok($mx->alive, "allocation " . ($skip + 1) . ": the probe's session failed, the daemon lives");
		my ($how2, $id2) = transaction($mx);
		is($how2, 'ok', "allocation " . ($skip + 1) . ": the next client's transaction is queued");
		$mx->stop_ok;
		next;
	}
	my ($how, $what, $reply) = transaction($mx);
	my $log = substr($mx->log, $logpos);
	# the variable is read at the first check, a session's first allocation
	BAIL_OUT('mxrelayd was built without --enable-fault-injection')
	    unless $mx->log =~ /fault injection armed: session_alloc/;
	my $injected = $log =~ /fault injected point=session_alloc/;
	my @new = grep { !$before{$_} } $mx->queue_ids;
	my $tag = "allocation " . ($skip + 1);

	if (!$injected) {
		# past the last allocation of the transaction: the sweep is done
		is($how, 'ok', "$tag: no allocation left to fail, the transaction is queued")
		    or diag("$what: $reply");
		ok(@new == 1 && intact($mx, $new[0]), "$tag: the message is queued intact");
		$mx->stop_ok("$tag: stops cleanly");
		last;
	}
	$failed_at++;
	$steps{$what // '?'}++;
	is($how, 'oom', "$tag: the session gets \"$OOM\" (at $what) and is closed")
	    or diag("reply: " . ($reply // '') . "\n" . substr($log, -2000));
	like($log, qr/smtp out of memory at \w+/, "$tag: the log says out of memory");
	ok($mx->alive, "$tag: the daemon lives");
	ok(MxTest::wait_until(sub { incoming_files($mx) == 0 }, 5),
	    "$tag: nothing half-written in incoming/");
	# an allocation after the commit (the 250 itself) can fail: the
	# message is then queued, though not acknowledged (at least once)
	ok(@new == 0 || (@new == 1 && intact($mx, $new[0])),
	    "$tag: no message, or the whole message, in the queue")
	    or diag("new queue files: @new");

	# the next client is served normally
	my ($how2, $id2) = transaction($mx);
	is($how2, 'ok', "$tag: the next client's transaction is queued");
	ok(defined $id2 && intact($mx, $id2), "$tag: intact in the queue");
	$mx->stop_ok("$tag: stops cleanly (no leak of the freed session)");
	BAIL_OUT('no end to the sweep') if $skip > 500;
}
# every step of a transaction allocates: all of them took the OOM path
cmp_ok($failed_at, '>=', 8, "the sweep failed $failed_at allocations");
for my $st (qw(greeting ehlo mail rcpt1 rcpt2 data message quit)) {
	ok($steps{$st}, "an allocation failed at step $st");
}
diag(join(' ', map { "$_=$steps{$_}" } sort keys %steps));
done_testing();
