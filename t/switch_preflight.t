# switch_preflight.t - the preflight before "hosted" (SPEC 7): the hosting
# (Dovecot LMTP) must accept an RCPT probe for every mailbox of the domain
# (in batches, pipelined, no message sent); a mailbox it does not know
# refuses the switch and is named; an unreachable hosting refuses it too;
# --force skips the preflight. And --wait: returns only once the delivery
# in flight to the old route (a slow downstream) has finished.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use Time::HiRes qw(time sleep);

need_programs('smtp-sink', 'dovecot');
watchdog(90);

my $NBOX = 250;		# more than one probe batch (100)
my @boxes = map { "user$_\@example.test" } 1 .. $NBOX;
# Dovecot knows every mailbox but user137
my $dove = MxPeers::Dovecot->new(users => [grep { $_ ne 'user137@example.test' } @boxes]);
my $slow = MxPeers::Sink->new(extra => ['-w', 3]);	# 3 s before the DATA reply
# switch.require_propagation off: this test is about the switch itself, not
# the MX propagation gate (t/check_mx.t tests that)
my $mx = delivery_daemon(hosting => $dove->destination,
    delivery => { retry_schedule => [600] },
    config => { switch => { require_propagation => JSON::PP::false } });
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '127.0.0.1:' . $slow->port);
my $file = $mx->dir . '/import.txt';
spew($file, join("\n", @boxes, 'info: user1, someone@elsewhere.test') . "\n");
$mx->ctl_ok('import', 'example.test', $file);

# refused, with the missing mailbox named
my ($rc, $out, $err) = $mx->ctl('switch', 'example.test', 'hosted');
is($rc, 1, 'switch refused: the hosting does not know one mailbox');
like($err, qr/1 mailbox not accepted by the hosting/, 'the reason');
like($err, qr/^  user137\@example\.test: 550 /m, 'the missing mailbox is named with the reply');
unlike($err, qr/user1\@example\.test:|info\@/, 'accepted mailboxes and aliases are not listed');
my ($jrc, $j) = $mx->ctl_json('domain', 'show', 'example.test');
is($j->{mode}, 'legacy', 'nothing changed: still legacy');
($jrc, $j) = $mx->ctl_json('history', 'example.test');
is(scalar @{$j->{history} || []}, 0, 'a refused switch is not in the history');
is($dove->maildir_files('user1@example.test'), 0, 'the probe delivered nothing');

($jrc, $j) = $mx->ctl_json('switch', 'example.test', 'hosted');
is($jrc, 1, 'switch --json refused');
is_deeply([map { $_->{address} } @{$j->{missing} || []}], ['user137@example.test'],
    'JSON: missing lists the address') or diag(explain $j);
is($j->{accepted}, $NBOX - 1, 'JSON: the ' . ($NBOX - 1) . ' others were accepted (probed in batches)');

# the hosting is down: refused as well
$dove->stop;
($rc, $out, $err) = $mx->ctl('switch', 'example.test', 'hosted');
is($rc, 1, 'switch refused: the hosting is unreachable');
like($err, qr/hosting cannot be used: cannot connect/, '... and says so');

# --force skips the preflight
($rc, $out, $err) = $mx->ctl('switch', 'example.test', 'hosted', '--force');
is($rc, 0, '--force switches anyway') or diag($err);
$mx->ctl_ok('switch', 'example.test', 'legacy');

# --wait: a delivery in flight to the slow old server
my $id = submit($mx, 'a@src.test', ['user1@example.test'], "Subject: slow\r\n\r\nslow\r\n");
ok($id, 'a message for the slow old server');
ok(wait_until(sub { $slow->count >= 1 }, 10, 0.02), 'its attempt has started (MAIL FROM at the old server)');
my $t0 = time;
($rc, $out, $err) = $mx->ctl('switch', 'example.test', 'hosted', '--force', '--wait');
my $dt = time - $t0;
is($rc, 0, 'switch --wait') or diag($err);
like($out, qr/legacy -> hosted \(1 delivery in flight to the old route/, 'the in-flight delivery is counted first');
like($out, qr/none left in flight to the old route/, 'then: none left');
cmp_ok($dt, '>', 1.5, sprintf('--wait held the answer until the delivery finished (%.1f s)', $dt));
my @sent = attempt_lines($mx, $id, undef, 'sent');
is(scalar @sent, 1, 'when --wait returned, the in-flight delivery had finished');
like($sent[0] // '', qr/relay=\S*:\Q${\ $slow->port}\E\b/, '... at the old server, where it had started');

$mx->stop_ok;
done_testing;
