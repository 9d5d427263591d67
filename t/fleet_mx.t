# fleet_mx.t - the MX watch in a fleet (issues 10 and 11): both hosts watch
# the same domain every second (dnsmasq as resolver and authoritative
# server); when its MX records move to the fleet, the change is recorded
# once (one history row, naming the host that saw it first) and both hosts
# give the same propagation time.
use strict;
use warnings;
use Test::More;
use MxTest;
use MxPeers;
use MxPg;

need_programs('smtp-sink', 'dnsmasq', 'dig');
watchdog(90);

my $TTL = 5;
my $pg = MxPg->shared;
my $db = $pg->new_database;
my $dns = MxPeers::DNS->new(zone => 'example.test', ns => '127.0.0.1', ttl => $TTL,
    mx => [['example.test', 'mx.elsewhere.test', 10]]);
my $old = MxPeers::Sink->new;
my $hosting = MxPeers::Sink->new;
my @mx = map { delivery_daemon(dns => $dns,
    hosting => 'smtp:[127.0.0.1]:' . $hosting->port,
    config => { server => { hostname => "mx$_.test",
	mx_names => ['mx1.test', 'mx2.test'] },
	dns => { authoritative_port => $dns->port },
	switch => { mx_watch_interval => 1 },
	state => $pg->state_config($db) }) } 1, 2;

$mx[0]->ctl_ok('domain', 'add', 'example.test', '--legacy', '127.0.0.1:' . $old->port);
ok(MxPg::wait_addresses($mx[1], 'example.test', 0), 'mx2 has the domain');
sub picture {
	my ($h) = @_;
	my (undef, $j) = $h->ctl_json('check', 'example.test');
	return $j ? $j->{mx} : {};
}
ok(wait_until(sub { (picture($mx[$_ - 1])->{picture} // '') eq 'other' }, 10, 0.2),
    "mx$_ sees the records elsewhere") for 1, 2;

$dns->restart(mx => [['example.test', 'mx1.test', 10], ['example.test', 'mx2.test', 20]]);
ok(wait_until(sub { (picture($mx[$_ - 1])->{picture} // '') eq 'ours' }, 10, 0.2),
    "mx$_ sees the records at the fleet") for 1, 2;
sleep 3;	# several rounds of both watches

my (undef, $h) = $mx[1]->ctl_json('history', 'example.test');
my @rows = grep { $_->{event} eq 'mx' } @{$h ? $h->{history} : []};
is_deeply([map { "$_->{from}->$_->{to}" } @rows], ['other->ours'],
    'the change is recorded once for the fleet');
like($rows[0]{host} // '', qr/^mx[12]\.test$/, '... naming the host that saw it first');
my ($p1, $p2) = map { picture($_) } @mx;
ok($p1->{propagation_time} > 0, 'a propagation time');
is($p2->{propagation_time}, $p1->{propagation_time},
    'both hosts give the same propagation time');
is($p2->{first_seen_ours}, $p1->{first_seen_ours}, '... from the same first sight');

$_->stop_ok for @mx;
done_testing();
