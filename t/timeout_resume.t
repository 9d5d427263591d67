# timeout_resume.t - a session waiting on us (a slow SPF verdict) gives its
# client the whole command_timeout after our reply, not what is left of it
# since the client's last command (SPEC 3: the timeout is the client's
# silence, not ours)
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use MxTest;
use MxDNS;

watchdog(60);

my $slow = MxDNS::Slow->start(delay => 3);
my $mx = MxTest::Daemon->new(config => {
	server => { xclient_hosts => ['127.0.0.0/8'] },
	limits => { command_timeout => 4 },
	dns => { nameservers => [$slow->nameserver] },
	filters => {
		spf => { enabled => JSON::PP::true, reject_fail => JSON::PP::true },
		dnsbl => { zones => ['bl.test'] },
	},
});
$mx->start;
$mx->setup(domains => ['example.test'], addresses => ['joe@example.test']);

my $c = $mx->smtp;
like($c->reply, qr/^220 /, 'banner');
$c->cmd('EHLO proxy.test');
like($c->cmd('XCLIENT ADDR=192.0.2.10'), qr/^220 /, 'XCLIENT');
$c->cmd('EHLO c.test');
like($c->cmd('MAIL FROM:<a@slow.test>'), qr/^250 /, 'MAIL (SPF starts)');
my $t0 = time;
$c->send("RCPT TO:<joe\@example.test>\r\n");
my $r = $c->reply(30);
my $waited = time - $t0;
like($r // '', qr/^(250 2\.1\.5 |451 4\.3\.0 )/, "RCPT answered after the DNS delay (${\ ($r // 'none')})");
ok($waited >= 2.5, sprintf('the verdict took %.1f s of the 4 s command_timeout', $waited));

# 2.5 s after the reply: past 4 s from the RCPT, within 4 s of the reply
sleep(2.5);
like($c->cmd('RSET') // '', qr/^250 /,
    sprintf('RSET %.1f s after the RCPT (%.1f s after the reply) is answered', time - $t0, time - $t0 - $waited));
# and the timeout still holds: silence for longer than command_timeout
sleep(5);
ok($c->closed(3), 'then 5 s of silence: the session is closed');
$mx->stop_ok;
$slow->stop;
done_testing();
