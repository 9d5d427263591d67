# filter_slowdns.t - a DNS server that withholds its answers for 5 s does
# not hold up other sessions (SPEC 9: no blocking DNS on the loop)
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time);
use MxTest;
use MxDNS;

watchdog(60);

my $slow = MxDNS::Slow->start(delay => 5);
my $mx = MxTest::Daemon->new(config => {
	server => { xclient_hosts => ['127.0.0.0/8'] },
	dns => { nameservers => [$slow->nameserver] },
	filters => {
		spf => { enabled => JSON::PP::true, reject_fail => JSON::PP::true },
		dnsbl => { zones => ['bl.test'] },
	},
});
$mx->start;
$mx->setup(domains => ['example.test'],
    addresses => ['joe@example.test', ['free@example.test', '--nofilter']]);

# client 1: a filtered recipient, whose verdict needs the slow answers
my $c1 = $mx->smtp;
like($c1->reply, qr/^220 /, 'client 1: banner');
$c1->cmd('EHLO proxy.test');
like($c1->cmd('XCLIENT ADDR=192.0.2.10'), qr/^220 /, 'client 1: XCLIENT');
$c1->cmd('EHLO c1.test');
like($c1->cmd('MAIL FROM:<a@slow.test>'), qr/^250 /, 'client 1: MAIL (SPF starts)');
my $t1 = time;
$c1->send("RCPT TO:<joe\@example.test>\r\n");
ok(!defined $c1->reply(1), 'client 1: RCPT waits for the DNS answers');

# client 2, meanwhile: banner and a whole transaction to a nofilter address
my $t0 = time;
my $c2 = $mx->smtp;
like($c2->reply(3) // '', qr/^220 /, 'client 2: banner at once');
$c2->cmd('EHLO proxy.test');
$c2->cmd('XCLIENT ADDR=192.0.2.11');
$c2->cmd('EHLO c2.test');
my $q = $c2->transaction('b@slow.test', ['free@example.test'], "Subject: nofilter\r\n\r\nx\r\n");
like($q // '', qr/^250 2\.0\.0 Ok: queued as /, 'client 2: message to a nofilter recipient queued');
my $dt = time - $t0;
ok($dt < 2.5, sprintf('client 2: done in %.2f s while DNS is silent', $dt));
$c2->cmd('QUIT');

# client 1 gets its verdict once the answers come (NXDOMAIN: clean, 250),
# or, when our 5 s tries ran out first, SPEC 5's reply for a DNS timeout
my $r1 = $c1->reply(30);
my $w = time - $t1;
like($r1 // '', qr/^(250 2\.1\.5 |451 4\.3\.0 )/,
    "client 1: RCPT answered: 250, or 451 4.3.0 for the DNS timeout (${\ ($r1 // 'none')})");
ok($w >= 3, sprintf('client 1: waited %.1f s', $w));
$c1->cmd('QUIT');
$mx->stop_ok;
$slow->stop;
done_testing();
