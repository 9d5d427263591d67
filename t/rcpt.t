# rcpt.t - recipient acceptance against the address table (SPEC 4, 5)
use strict;
use warnings;
use Test::More;
use MxTest;

watchdog(60);
my $mx = MxTest::Daemon->new;
$mx->start;
$mx->setup(domains => ['example.test', 'second.test'],
    addresses => ['joe@example.test', 'ann@second.test', ['info@example.test', '--alias', 'joe@example.test']]);

my $c = $mx->session;
like($c->cmd('MAIL FROM:<s@src.test>'), qr/^250 /, 'MAIL');

sub rcpt_is {
	my ($addr, $expect, $name) = @_;
	my $r = $c->cmd("RCPT TO:<$addr>");
	if (ref $expect) { like($r, $expect, $name) }
	else { is($r, $expect, $name) }
}

rcpt_is('joe@example.test', qr/^250 2\.1\.5 /, 'hosted mailbox: 250 2.1.5');
rcpt_is('ann@second.test', qr/^250 2\.1\.5 /, 'mailbox of a second hosted domain: 250');
rcpt_is('info@example.test', qr/^250 2\.1\.5 /, 'alias: 250');
rcpt_is('nobody@example.test',
    '550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown',
    'hosted domain, unknown user: exact 550 5.1.1 text');
rcpt_is('joe@other.test', '554 5.7.1 <joe@other.test>: Relay access denied',
    'foreign domain: exact 554 5.7.1 text');
rcpt_is('joe+tag@example.test', qr/^250 2\.1\.5 /, 'plus-addressing joe+tag@ accepted');
rcpt_is('joe+@example.test', qr/^250 2\.1\.5 /, 'empty extension joe+@ accepted');
rcpt_is('nobody+tag@example.test',
    '550 5.1.1 <nobody+tag@example.test>: Recipient address rejected: User unknown',
    'plus-addressing of an unknown user nobody+tag@ refused');
rcpt_is('JOE@EXAMPLE.TEST', qr/^250 2\.1\.5 /, 'case-insensitive JOE@EXAMPLE.TEST accepted');
rcpt_is('Joe+Tag@Example.Test', qr/^250 2\.1\.5 /, 'mixed case with extension accepted');
rcpt_is('ann@example.test',
    '550 5.1.1 <ann@example.test>: Recipient address rejected: User unknown',
    'a local part of another domain does not match');
rcpt_is('a b@example.test', qr/^501 5\.1\.3 /, 'bad syntax (space in local part): 501 5.1.3');
rcpt_is('joe@@example.test', qr/^501 5\.1\.3 /, 'bad syntax (@@): 501 5.1.3');
rcpt_is('joe@example..test', qr/^501 5\.1\.3 /, 'bad syntax (empty label): 501 5.1.3');
rcpt_is('@example.test', qr/^501 5\.1\.3 /, 'bad syntax (empty local part): 501 5.1.3');
like($c->cmd('RCPT TO:joe@example.test'), qr/^501 5\.5\.4 /, 'RCPT without <>: 501 5.5.4');
like($c->cmd('RCPT TO:<joe@example.test> FOO=BAR'), qr/^555 5\.5\.4 /, 'unknown RCPT parameter: 555 5.5.4');

# runtime changes take effect for the next RCPT
$c->cmd('RSET');
$c->cmd('MAIL FROM:<s@src.test>');
rcpt_is('mary@example.test',
    '550 5.1.1 <mary@example.test>: Recipient address rejected: User unknown', 'mary unknown before address add');
$mx->ctl_ok('address', 'add', 'mary@example.test');
rcpt_is('mary@example.test', qr/^250 2\.1\.5 /, 'address add after startup takes effect immediately (same session)');
$mx->ctl_ok('address', 'remove', 'mary@example.test');
rcpt_is('mary@example.test',
    '550 5.1.1 <mary@example.test>: Recipient address rejected: User unknown', 'address remove takes effect immediately');
$mx->ctl_ok('domain', 'add', 'third.test');
rcpt_is('x@third.test', '550 5.1.1 <x@third.test>: Recipient address rejected: User unknown',
    'domain add: its unknown users are 550, no longer relay-denied');
$mx->ctl_ok('domain', 'remove', 'third.test');
rcpt_is('x@third.test', '554 5.7.1 <x@third.test>: Relay access denied', 'domain remove: relay denied again');
like($c->cmd('QUIT'), qr/^221 /, 'QUIT');

# a message to several recipients: only the accepted ones are queued
$c = $mx->session;
$c->cmd('MAIL FROM:<s@src.test>');
like($c->cmd('RCPT TO:<joe+news@example.test>'), qr/^250 /, 'RCPT joe+news');
like($c->cmd('RCPT TO:<x@other.test>'), qr/^554 /, 'RCPT foreign refused');
like($c->cmd('RCPT TO:<ann@second.test>'), qr/^250 /, 'RCPT ann');
like($c->cmd('DATA'), qr/^354 /, 'DATA');
$c->send("Subject: two\r\n\r\nhello\r\n.\r\n");
my $r = $c->reply;
like($r, qr/^250 2\.0\.0 Ok: queued as \S+\z/, 'queued');
my ($id) = ($r // '') =~ /queued as (\S+)/;
my $s = $id ? $mx->spool($id) : undef;
# the extension may be kept or resolved to the base address
is_deeply($s ? [sort map { (my $a = lc $_) =~ s/\+[^@]*\@/\@/; $a } @{$s->{rcpts}}] : [],
    ['<ann@second.test>', '<joe@example.test>'],
    'spool holds exactly the two accepted recipients');
$c->cmd('QUIT');

$mx->stop_ok;
done_testing();
