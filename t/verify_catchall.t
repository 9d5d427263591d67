# verify_catchall.t - recipient verification that a catch-all cannot fool
# (SPEC 10): the old server of catchall.test is smtp-sink, which accepts
# any RCPT; before its answers are trusted it is asked about a random
# local part in the same transaction, which it accepts: an address not in
# the table then gets the table's answer (550 5.1.1, or 450 4.1.1 with
# --unknown tempfail), later RCPTs are answered without a probe, check says
# so and stats counts it. A real Postfix that knows joe (normal.test) still
# verifies: joe 250, nobody 550.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;

need_programs('postfix', 'smtp-sink');
watchdog(90);

my $catchall = MxPeers::Sink->new;
my $behind = MxPeers::Sink->new;
my $pf = MxPeers::Postfix->new(relay_domains => 'normal.test',
    relayhost => '[127.0.0.1]:' . $behind->port,
    extra => { relay_recipient_maps => 'inline:{ joe@normal.test=ok }' });
my $mx = delivery_daemon();
$mx->ctl_ok('domain', 'add', 'catchall.test', '--legacy', '127.0.0.1:' . $catchall->port);
$mx->ctl_ok('domain', 'add', 'normal.test', '--legacy', '127.0.0.1:' . $pf->port);
$mx->ctl_ok('address', 'add', 'mary@catchall.test');
$mx->ctl_ok('domain', 'set', $_, '--verify-legacy', 'on') for qw(catchall.test normal.test);

sub rcpt {
	my ($to) = @_;
	my $c = $mx->session;
	$c->cmd('MAIL FROM:<a@src.test>');
	my $r = $c->cmd("RCPT TO:<$to>", 15);
	$c->close;
	return $r // 'EOF';
}

# the catch-all
like(rcpt('jeo@catchall.test'), qr/^550 5\.1\.1 <jeo\@catchall\.test>: Recipient address rejected: User unknown\z/,
    'an address unknown to the table, accepted by a catch-all: 550 5.1.1, not 250');
like($mx->log, qr/verify domain=catchall\.test server=\S+ catchall=yes \(accepts any address: verification cannot help\)/,
    'the log says the old server accepts any address');
like(rcpt('other@catchall.test'), qr/^550 5\.1\.1 /, 'a second unknown address: 550');
like($mx->log, qr/verify address=other\@catchall\.test result=table reason=catchall/,
    '... answered by the table without a probe');
like(rcpt('mary@catchall.test'), qr/^250 /, 'a table address is accepted');
# counted by recipient: under make -j, another test's daemon may still
# retry a delivery to a port this sink has taken since (seen in CI)
is(scalar(grep { grep { /\@catchall\.test>?$/i } @{ $_->{rcpts} } } $catchall->messages), 0,
    'no message was sent to the old server');
is(scalar(my @v = grep { /\S/ } split /\n/, $mx->ctl_ok('address', 'list', 'catchall.test', '--verified')), 1,
    'nothing was learnt as verified');
$mx->ctl_ok('domain', 'set', 'catchall.test', '--unknown', 'tempfail');
like(rcpt('third@catchall.test'), qr/^450 4\.1\.1 <third\@catchall\.test>: /, '--unknown tempfail: 450 4.1.1');
my (undef, $st) = $mx->ctl_json('stats');
is($st->{verify_catchall}, 3, 'stats: verify_catchall counts the three');
like($mx->ctl_ok('address', 'list', 'catchall.test', '--refused'), qr/^\s+1\s+jeo\@catchall\.test\s/m,
    'the refused addresses are in the unknown-recipient report');

my ($rc, $out, $err) = $mx->ctl('check', 'catchall.test');
$out .= $err;
like($out, qr/^  legacy server 127\.0\.0\.1:\d+ accepts any address: verification cannot help$/m,
    'check: "legacy server HOST accepts any address: verification cannot help"');
like($out, qr/^legacy 127\.0\.0\.1:\d+:\s+reachable .* 1 addresses accepted, 0 rejected$/m,
    'check: the random address is not counted as a table address');
my (undef, $j) = $mx->ctl_json('check', 'catchall.test');
ok($j->{legacy_servers}[0]{accepts_any}, 'check --json: accepts_any');

# a normal old server still verifies
like(rcpt('joe@normal.test'), qr/^250 /, 'normal.test: joe, known to Postfix, 250');
like(rcpt('nobody@normal.test'), qr/^550 5\.1\.1 /, 'normal.test: nobody, unknown to Postfix, 550');
like($mx->log, qr/verify domain=normal\.test server=\S+ catchall=no/, 'Postfix rejected the random address: no catch-all');
($rc, $out, $err) = $mx->ctl('check', 'normal.test');
unlike($out . $err, qr/accepts any address/, 'check does not call Postfix a catch-all');
(undef, $st) = $mx->ctl_json('stats');
is($st->{verify_catchall}, 3, 'stats: no more catch-all answers');

$mx->stop_ok;
done_testing();
