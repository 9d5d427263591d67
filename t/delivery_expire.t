# delivery_expire.t - a recipient still deferred after delivery.max_lifetime
# bounces, with a DSN to the sender (SPEC 6: Retry)
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use Time::HiRes qw(time sleep);

need_programs('smtp-sink', 'dnsmasq', 'dig');
watchdog(60);

my $soft = MxPeers::Sink->new(soft => 'RCPT',
    soft_reply => '451 4.3.2 System not accepting network messages');
my $bsink = MxPeers::Sink->new;
my $dns = MxPeers::DNS->new(
	mx => [['sender.test', 'mx.sender.test', 10]],
	a => [['mx.sender.test', '127.0.0.1']]);
my $mx = delivery_daemon(dns => $dns, bounce_sink => $bsink,
    delivery => { retry_schedule => [1], max_lifetime => 3 });

$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '[127.0.0.1]:' . $soft->port);
$mx->ctl_ok('address', 'add', 'joe@example.test');

my $t0 = time;
my $id = submit($mx, 'a@sender.test', ['joe@example.test'],
    "Subject: expires\r\nMessage-ID: <expire.$$\@sender.test>\r\n\r\nx\r\n");
ok($id, 'message queued') or BAIL_OUT('cannot queue');

ok(wait_log($mx, qr/\b\Q$id\E\b.*status=bounced/, 20), 'bounced once max_lifetime (3 s) had passed')
    or diag($mx->log_tail(3000));
my $elapsed = time - $t0;
# never early, though the arrival is kept in whole seconds (CI once saw
# 2.0 s, when the lifetime was counted from the arrival second itself)
cmp_ok($elapsed, '>=', 3, sprintf('not before max_lifetime (%.1f s)', $elapsed));
cmp_ok($elapsed, '<=', 15, 'nor long after it');
my @deferred = attempt_lines($mx, $id, 'joe@example.test', 'deferred');
cmp_ok(scalar @deferred, '>=', 2, 'retried on the 1 s schedule before (' . scalar(@deferred) . ' deferred lines)');
like($deferred[0] // '', qr/451 4\.3\.2 System not accepting/, "deferred lines carry the downstream's reply");
my ($l) = attempt_lines($mx, $id, 'joe@example.test', 'bounced');
my $f = attempt_fields($l // '');
like($f->{dsn} // '', qr/^[45]\.\d+\.\d+\z/, 'log: dsn=X.Y.Z on the bounced line');

is($bsink->wait_count(1, 15), 1, 'DSN delivered to the sender');
my ($b) = $bsink->messages;
$b //= { rcpts => [], text => '' };
is($b->{mail}, '<>', 'from <>');
is_deeply($b->{rcpts}, ['<a@sender.test>'], 'to the sender');
my $dsn = parse_dsn($b->{text}) // { rcpts => [], message => {} };
my $r = $dsn->{rcpts}[0] // {};
like($r->{'final-recipient'} // '', qr/^rfc822;\s*joe\@example\.test\z/i, 'Final-Recipient: rfc822; joe@example.test');
is(lc($r->{action} // ''), 'failed', 'Action: failed');
like($r->{status} // '', qr/^[45]\.\d+\.\d+\z/, 'Status: X.Y.Z (' . ($r->{status} // 'none') . ')');
like($r->{'diagnostic-code'} // '', qr/451 4\.3\.2 System not accepting/,
    "Diagnostic-Code: the last reply of the downstream");
ok(wait_queue_empty($mx, 10), 'queue empty');
is($soft->count, 0, 'nothing was ever stored downstream');

$mx->stop_ok;
done_testing();
