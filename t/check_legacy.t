# check_legacy.t - relayctl check against a real Postfix as the old server
# (SPEC 10): Postfix knows joe, mary and info (relay_recipient_maps); the table
# also holds "jnoe", a typo of the import, which Postfix rejects at RCPT:
# check lists it and exits 1; once the typo is removed check exits 0. The
# probe sends no message. --json gives every field.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use Time::HiRes qw(time sleep);

need_programs('postfix', 'smtp-sink', 'dovecot', 'dnsmasq', 'dig');
watchdog(90);

my $behind = MxPeers::Sink->new;	# where Postfix would relay (nothing must arrive)
my $pf = MxPeers::Postfix->new(relay_domains => 'example.test',
    relayhost => '[127.0.0.1]:' . $behind->port,
    extra => { relay_recipient_maps => 'inline:{ joe@example.test=ok, mary@example.test=ok, info@example.test=ok }' });
my $dove = MxPeers::Dovecot->new(users => ['joe@example.test', 'mary@example.test']);
# the MX already points at us, with a TTL of 1 s
my $dns = MxPeers::DNS->new(zone => 'example.test', ns => '127.0.0.1', ttl => 1,
    mx => [['example.test', 'mx.test.example', 10]]);
my $mx = delivery_daemon(dns => $dns, hosting => $dove->destination,
    config => { dns => { authoritative_port => $dns->port } });
$mx->ctl_ok('domain', 'add', 'example.test', '--legacy', '127.0.0.1:' . $pf->port);
$mx->ctl_ok('address', 'add', "$_\@example.test") for qw(joe mary jnoe);
$mx->ctl_ok('address', 'add', 'info@example.test', '--alias', 'mary@example.test');

# the first look finds the MX pointing at us; its TTL (1 s) is assumed
my ($rc, $out, $err) = $mx->ctl('check', 'example.test');
sleep 1.5;
($rc, $out, $err) = $mx->ctl('check', 'example.test');
is($rc, 1, 'check exits 1: the old server rejects an address of the table');
note($err);
like($err, qr/^legacy 127\.0\.0\.1:\d+:\s+reachable \(127\.0\.0\.1\[127\.0\.0\.1\]:\d+\), no TLS, 3 addresses accepted, 1 rejected$/m,
    'the old server: reachable, 3 accepted, 1 rejected');
like($err, qr/^  jnoe\@example\.test: 5\d\d .*$/m, 'the rejected address is listed with the reply');
like($err, qr/^hosting \S+:\s+reachable .*2 mailboxes accepted, 1 missing$/m,
    'the hosting lacks jnoe too');
like($err, qr/^not ready: .*1 table address rejected by the legacy server 127\.0\.0\.1:\d+ \(typos in the import\?\)/m,
    'the verdict names the rejection');
unlike($err, qr/MX records .* do not all point|not propagated/, 'the MX part is fine');

my ($jrc, $j) = $mx->ctl_json('check', 'example.test');
is($jrc, 1, '--json: exit 1');
is($j->{domain}, 'example.test', 'JSON: domain');
is($j->{ready}, JSON::PP::false, 'JSON: ready false');
is_deeply([map { $_->{address} } @{$j->{legacy_servers}[0]{rejected}}], ['jnoe@example.test'],
    'JSON: legacy_servers[0].rejected');
is($j->{legacy_servers}[0]{accepted}, 3, 'JSON: accepted');
is($j->{legacy_servers}[0]{reachable}, JSON::PP::true, 'JSON: reachable');
is_deeply([map { $_->{address} } @{$j->{hosting}{missing}}], ['jnoe@example.test'],
    'JSON: hosting.missing');
is($j->{mx}{picture}, 'ours', 'JSON: mx.picture');
is($j->{mx}{propagated}, JSON::PP::true, 'JSON: mx.propagated');
ok(exists $j->{queue}{legacy}{deferred} && exists $j->{queue}{hosted}{queued},
    'JSON: the queue by route and state');
is($j->{delivered_legacy_last_hour}, 0, 'JSON: no legacy delivery yet');
is(scalar @{$j->{reasons}}, 2, 'JSON: two reasons (the old server, the hosting)');

# a message delivered to the old server is counted
my $id = submit($mx, 'a@src.test', ['joe@example.test'], "Subject: x\r\n\r\nx\r\n");
ok(wait_queue_empty($mx, 20, $id), 'a message for joe left the queue (to Postfix)');

# the typo removed: ready
$mx->ctl_ok('address', 'remove', 'jnoe@example.test');
($rc, $out, $err) = $mx->ctl('check', 'example.test');
is($rc, 0, 'check exits 0 once the table is right') or diag($err);
note($out);
like($out, qr/3 addresses accepted, 0 rejected/, 'the old server accepts every address');
like($out, qr/^legacy deliveries, 1 h:\s+1$/m, 'the delivery to the old server is counted');
like($out, qr/\nready to switch\n\z/, 'last line: ready to switch');
is($behind->wait_count(1, 20), 1, 'the probes sent no message (only the real one went through Postfix)');

$mx->stop_ok;
done_testing;
