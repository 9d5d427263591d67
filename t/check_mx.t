# check_mx.t - the MX watch, relayctl check and the propagation gate
# (SPEC 10): dnsmasq is both the resolver and the domain's authoritative
# server (NS ns.example.test = 127.0.0.1, asked on dns.authoritative_port),
# with TTLs of 5 s. Stage 1: the MX points elsewhere; stage 2 (dnsmasq
# restarted): at us. check reports each stage; the propagation time is
# first-seen + the old TTL; switch hosted is refused before it (with the
# time it passes; a scheduled switch firing before it too), accepted with
# --force before and without after.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use Time::HiRes qw(time sleep);
use POSIX ();

need_programs('smtp-sink', 'dovecot', 'dnsmasq', 'dig');
watchdog(90);

# long enough for the steps below to run before it ends under the
# sanitizers: the scheduled switch must fire before the propagation time
my $TTL = 8;
my $dns = MxPeers::DNS->new(zone => 'example.test', ns => '127.0.0.1', ttl => $TTL,
    mx => [['example.test', 'mx.elsewhere.test', 10]]);
my $dove = MxPeers::Dovecot->new(users => ['joe@example.test']);
my $old = MxPeers::Sink->new;
my $mx = delivery_daemon(dns => $dns, hosting => $dove->destination,
    config => { dns => { authoritative_port => $dns->port },
	switch => { mx_watch_interval => 1 } });
my $us = $mx->hostname;
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '127.0.0.1:' . $old->port);
$mx->ctl_ok('address', 'add', 'joe@example.test');

# stage 1: the MX points at the old provider
# a report that is not "ready" is written to stderr (status 1)
my ($rc, $out, $err) = $mx->ctl('check', 'example.test');
is($rc, 1, 'stage 1: check exits 1 (not ready)');
$out = $err;
note($out);
like($out, qr/^MX \(resolver\):\s+10 mx\.elsewhere\.test \(ttl $TTL, not ours\)$/m,
    'the resolver\'s MX record, with its TTL, not ours');
like($out, qr/^MX \(ns\.example\.test \[127\.0\.0\.1\]\):\s+10 mx\.elsewhere\.test \(ttl $TTL, not ours\)$/m,
    'the authoritative server\'s answer');
like($out, qr/^MX picture:\s+no record points at us$/m, 'the picture');
like($out, qr/^propagation:\s+not started$/m, 'no propagation yet');
like($out, qr/^hosting lmtp:\S+:\s+reachable .*1 mailboxes accepted, 0 missing$/m, 'the hosting has every mailbox');
like($out, qr/^not ready: the MX records of example\.test do not all point at us/m, 'the verdict says why');
my ($jrc, $j) = $mx->ctl_json('check', 'example.test');
is($jrc, 1, 'check --json exits 1 too');
is($j->{mx}{picture}, 'other', 'JSON: picture other');
is($j->{mx}{authoritative}[0]{records}[0]{host}, 'mx.elsewhere.test', 'JSON: authoritative records');
is($j->{ready}, JSON::PP::false, 'JSON: not ready');
($rc, $out, $err) = $mx->ctl('switch', 'example.test', 'hosted');
is($rc, 1, 'switch hosted refused while the MX points elsewhere');
like($err, qr/do not all point at us/, '... with the reason');

# stage 2: the MX now points at us
$dns->restart(mx => [['example.test', $us, 10]]);
my $t_change = time;
($jrc, $j) = $mx->ctl_json('check', 'example.test');
is($jrc, 1, 'stage 2, at once: still not ready');
is($j->{mx}{picture}, 'ours', 'JSON: picture ours');
my $seen = $j->{mx}{first_seen_ours};
cmp_ok(abs($seen - $t_change), '<=', 2, 'first seen pointing at us: now');
is($j->{mx}{previous_ttl}, $TTL, 'the TTL published before: the old record\'s');
is($j->{mx}{propagation_time}, $seen + $TTL, 'propagation time = first seen + old TTL');
is($j->{mx}{propagated}, JSON::PP::false, 'not passed yet');
like($j->{reasons}[0] // '', qr/has not propagated yet/, 'the reason');
($rc, $out, $err) = $mx->ctl('check', 'example.test');
$out = $err;
note($out);
like($out, qr/^propagation:\s+\S+ \(first seen \S+ \+ previous TTL $TTL s\): in \d s$/m,
    'check (human) gives the propagation time and how long to go');
($rc, $out, $err) = $mx->ctl('switch', 'example.test', 'hosted');
is($rc, 1, 'switch hosted refused before the propagation time');
like($err, qr/has not propagated yet: caches may hold the old records \(TTL $TTL s\) until \S+ \(in \d s\)/,
    '... saying until when');
ok(time < $seen + $TTL, 'that refusal came before the propagation time');

# a scheduled switch checks it when it fires; at least a second ahead
# (int(time) + 1 could be a few milliseconds ahead, and "not in the
# future" by the time relayctl's request arrived: seen in CI)
my $at = POSIX::strftime('%Y-%m-%dT%H:%M:%S', localtime(int(time) + 2));
$mx->ctl_ok('switch', 'example.test', 'hosted', '--at', $at);
ok(wait_until(sub {
	my (undef, $h) = $mx->ctl_json('history', 'example.test');
	return grep { !$_->{applied} } @{$h->{history} || []};
}, 5, 0.1), 'the scheduled switch fired');
($jrc, $j) = $mx->ctl_json('history', 'example.test');
my ($refused) = grep { !$_->{applied} } @{$j->{history}};
like($refused->{note} // '', qr/scheduled switch refused: the MX change of example\.test has not propagated yet/,
    '... and was refused: not propagated (in the history)');
ok(time < $seen + $TTL, 'that too before the propagation time');
($rc, $out, $err) = $mx->ctl('switch', 'example.test', 'hosted', '--force');
is($rc, 0, '--force switches before it') or diag($err);
$mx->ctl_ok('switch', 'example.test', 'legacy');

# after the propagation time
sleep(0.2) while time < $seen + $TTL + 1;
($rc, $out, $err) = $mx->ctl('switch', 'example.test', 'hosted');
is($rc, 0, 'switch hosted accepted after the propagation time') or diag($err);
($rc, $out, $err) = $mx->ctl('check', 'example.test');
note($out);
is($rc, 0, 'check exits 0');
like($out, qr/^propagation:\s+.*: passed$/m, 'propagation passed');
like($out, qr/\nready to switch\n\z/, 'last line: ready to switch');

# the history keeps each change of the picture
($jrc, $j) = $mx->ctl_json('history', 'example.test');
my @mxrows = map { "$_->{from}->$_->{to}" } grep { $_->{event} eq 'mx' } @{$j->{history}};
is_deeply(\@mxrows, ['other->ours'], 'history: the MX picture\'s change to ours')
    or diag(explain $j);

# kept across a restart
$mx->restart;
($jrc, $j) = $mx->ctl_json('check', 'example.test');
is($j->{mx}{first_seen_ours}, $seen, 'the first-seen time survives a restart');

$mx->stop_ok;
done_testing;
