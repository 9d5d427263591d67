# hosted_switch.t - expansions and the switch, expansions and restarts
# (SPEC 6, 7): a message queued in legacy mode for an alias is sent
# unchanged (legacy never expands); after `switch DOMAIN hosted --force`
# it is delivered as expanded, once; a switch back to legacy repeats
# nothing. An expansion is recorded in the message file: after kill -9 and
# a restart, the delivered child is not delivered again and the waiting
# child still waits.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use Time::HiRes qw(time sleep);

need_programs('smtp-sink', 'dovecot', 'dnsmasq', 'dig');
watchdog(120);

my $D = 'old.test';
my $SRSDOM = 'fwd.example.net';
my $old = MxPeers::Sink->new(soft => 'RCPT');		# the old server defers
my $dove = MxPeers::Dovecot->new(users => [map { "$_\@$D" } qw(mary jane joe)]);
my $mxsink = MxPeers::Sink->new;				# yahoo.com's MX
my $dns = MxPeers::DNS->new(
	mx => [['yahoo.com', 'mx.yahoo.com', 10], ['down.test', 'mx.down.test', 10]],
	# nothing listens on 127.0.0.9: forwards to down.test are deferred
	a => [['mx.yahoo.com', '127.0.0.1'], ['mx.down.test', '127.0.0.9']]);
# switch.require_propagation off: this test is about the switch itself, not
# the MX propagation gate (t/check_mx.t tests that)
my $mx = delivery_daemon(hosting => $dove->destination, dns => $dns,
    bounce_sink => $mxsink, delivery => { retry_schedule => [600] },
    config => { switch => { require_propagation => JSON::PP::false },
	srs => { domain => $SRSDOM, secret => 'switch-test-secret-0123456789' } });

$mx->ctl_ok('domain', 'add', $D, '--legacy', '127.0.0.1:' . $old->port);
$mx->ctl_ok('address', 'add', "$_\@$D") for qw(mary jane joe);
$mx->ctl_ok('address', 'add', "team\@$D", '--alias', "mary\@$D,jane\@$D,pal\@yahoo.com");

# queued in legacy mode: the alias goes unchanged to the old server
my $id = submit($mx, 'a@src.test', ["team\@$D"],
    "From: a\@src.test\r\nSubject: to-team\r\n\r\nteam\r\n");
ok($id, 'message for the alias team@ queued (legacy mode)');
ok(wait_until(sub { attempt_lines($mx, $id, "team\@$D", 'deferred') >= 1 }, 15, 0.05),
    'legacy: team@ itself tried at the old server, deferred') or diag($mx->log_tail(3000));
unlike(MxTest::slurp($mx->queue_dir . "/$id") // '', qr/^expand /m,
    'legacy: no expansion recorded');
like($mx->ctl_ok('address', 'show', "team\@$D"), qr/applies in hosted mode only/,
    'address show: the expansion does not apply in legacy mode');

# the switch: delivered as expanded, once
my ($rc, $out, $err) = $mx->ctl('switch', $D, 'hosted', '--force');
is($rc, 0, "switch $D hosted --force") or diag("$out$err");
ok(wait_queue_empty($mx, 15, $id), 'the message left the queue') or diag($mx->log_tail(3000));
$mxsink->wait_count(1, 10);
sleep 1;	# anything repeated would arrive now
is(scalar($dove->maildir_files("mary\@$D")), 1, 'mary: one copy at the hosting');
is(scalar($dove->maildir_files("jane\@$D")), 1, 'jane: one copy at the hosting');
is(scalar($dove->maildir_files("joe\@$D")), 0, 'joe: none');
my @ext = $mxsink->messages;
is(scalar @ext, 1, 'one copy at yahoo.com MX');
is_deeply($ext[0]{rcpts} // [], ['<pal@yahoo.com>'], 'for pal@yahoo.com');
like($ext[0]{mail} // '', qr/^<SRS0=[^=]+=[A-Z2-7]{2}=src\.test=a\@\Q$SRSDOM\E>\z/i,
    'with an SRS sender');
is($old->count, 0, 'nothing reached the old server');
is(scalar(attempt_lines($mx, $id, "team\@$D", 'sent')), 0, 'team@ itself was never sent');

# and back to legacy: nothing is repeated
$mx->ctl_ok('switch', $D, 'legacy');
sleep 1.5;
is(scalar($dove->maildir_files("mary\@$D")) + scalar($dove->maildir_files("jane\@$D")), 2,
    'after the switch back: still one copy each');
is($mxsink->count, 1, 'after the switch back: still one external copy');
is(scalar(attempt_lines($mx, $id, undef, undef)),
    scalar(grep { /\Q$id\E/ && /status=/ } split /\n/, $mx->log),
    'no attempt after the switch back');
$mx->ctl_ok('switch', $D, 'hosted', '--force');

# an expansion survives kill -9: mary delivered, x@down.test waiting
$mx->ctl_ok('address', 'add', "mixed\@$D", '--alias', "mary\@$D,x\@down.test");
my $id2 = submit($mx, 'b@src.test', ["mixed\@$D"], "Subject: to-mixed\r\n\r\nmixed\r\n");
ok($id2, 'message for mixed@ queued (hosted)');
ok(wait_until(sub { attempt_lines($mx, $id2, 'x@down.test', 'deferred') >= 1 }, 15, 0.05),
    'x@down.test deferred') or diag($mx->log_tail(3000));
ok(wait_until(sub { attempt_lines($mx, $id2, "mary\@$D", 'sent') >= 1 }, 15, 0.05),
    'mary delivered');
# the spool worker appends the state records after the attempt's log
# lines: wait for them (which also makes them durable before the kill -9)
my $file = '';
wait_until(sub {
	$file = MxTest::slurp($mx->queue_dir . "/$id2") // '';
	return $file =~ /^expand /m && $file =~ /^state 1 delivered /m
	    && $file =~ /^state 2 deferred /m;
}, 10, 0.05);
like($file, qr/^expand 0 1 \d+ 2 local mary\@old\.test fwd x\@down\.test$/m,
    'the expansion is recorded in the message file') or diag($file);
like($file, qr/^state 1 delivered /m, 'so is the delivery of mary (child 1)');
like($file, qr/^state 2 deferred /m, 'and the deferral of x@down.test (child 2)');
my $nmary = scalar $dove->maildir_files("mary\@$D");

$mx->kill9;
$mx->start;
my ($jrc, $q) = $mx->ctl_json('queue', 'show', $id2);
is($jrc, 0, 'after kill -9 and restart: the message is still queued');
my %st = map { $_->{address} => $_->{state} } @{(MxTest::deep_find($q, 'recipients'))[0] // []};
is($st{"mixed\@$D"}, 'expanded', 'mixed@ is expanded') or diag(explain($q));
is($st{"mary\@$D"}, 'delivered', 'mary is delivered');
is($st{'x@down.test'}, 'deferred', 'x@down.test is deferred');
$mx->ctl_ok('queue', 'flush');
ok(wait_until(sub { attempt_lines($mx, $id2, 'x@down.test', 'deferred') >= 2 }, 15, 0.05),
    'after the restart and a flush: x@down.test tried again');
sleep 1;
is(scalar $dove->maildir_files("mary\@$D"), $nmary, 'mary not delivered again');
is(scalar(grep { /expand to=<mixed\@old\.test>/ } split /\n/, $mx->log), 1,
    'mixed@ was expanded once, not again after the restart');
$mx->ctl_ok('queue', 'delete', $id2);

$mx->stop_ok;
done_testing();
