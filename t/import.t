# import.t - relayctl import/export of the address table (SPEC 4)
use strict;
use warnings;
use Test::More;
use MxTest;

watchdog(60);
my $mx = MxTest::Daemon->new;
$mx->start;
$mx->setup(domains => ['example.test', 'nf.test']);
my $dir = $mx->dir;

my @lines = (
	'# customer export from the old panel',	# 1
	'joe',						# 2
	'mary@example.test',				# 3
	'bob bobs-password',				# 4
	'info: mary',					# 5
	'sales: mary, jane',				# 6
	'dan: dan@yahoo.com',				# 7
	'',						# 8
	'sam@example.test|secret',			# 9
	'fwd@example.test|mary@example.test,dan@yahoo.com|relay',	# 10
	'pat@example.test|pat@gmail.com',		# 11 password that looks like an address
	'jane',						# 12
	'evil@other.test',				# 13 outside the domain
	'foo@bar@example.test',				# 14 bad syntax
	'x@other.test|pw',				# 15 outside the domain
	'@example.test',				# 16 bad syntax
);
my @valid = qw(joe mary bob info sales dan sam fwd pat jane);
my @invalid_lines = (13, 14, 15, 16);
my $file = MxTest::spew("$dir/import.txt", join("\n", @lines) . "\n");

sub export {
	my ($domain) = @_;
	my ($rc, $out, $err) = $mx->ctl('export', $domain);
	return $rc == 0 ? $out : "export failed ($rc): $err";
}

# count - a report's count for KEY: a number, a list (its length) or {count}
sub count {
	my ($j, $key) = @_;
	my ($v) = ref $j eq 'HASH' && exists $j->{$key} ? ($j->{$key}) : deep_find($j, $key);
	return undef unless defined $v;
	return scalar @$v if ref $v eq 'ARRAY';
	return $v->{count} if ref $v eq 'HASH' && defined $v->{count};
	return scalar keys %$v if ref $v eq 'HASH';
	return $v;
}

# invalid_lines - the line numbers of the report's invalid entries
sub invalid_lines {
	my ($j) = @_;
	my ($v) = ref $j eq 'HASH' && exists $j->{invalid} ? ($j->{invalid}) : deep_find($j, 'invalid');
	return [] unless ref $v eq 'ARRAY';
	return [sort { $a <=> $b } map {
		ref $_ eq 'HASH' ? ($_->{line} // $_->{lineno} // $_->{line_number}) : $_
	} @$v];
}

sub report_is {
	my ($j, $want, $name) = @_;
	my %got = map { $_ => count($j, $_) } keys %$want;
	is_deeply(\%got, $want, $name) or diag(explain($j));
}

# dry run first: the human report, nothing changed
my $before = export('example.test');
my ($rc, $out, $err) = $mx->ctl('import', 'example.test', $file, '--dry-run');
is($rc, 0, 'import --dry-run exit 0') or diag("$out$err");
like("$out$err", qr/password/i, 'report says passwords were ignored');
like("$out$err", qr/warn/i, 'report has a warning');
like("$out$err", qr/pat\@example\.test|line 11|\b11\b/i, 'report warns about the password that looks like an address (line 11)');
like("$out$err", qr/added/i, 'report lists added lines');
like("$out$err", qr/invalid/i, 'report lists invalid lines');
is(export('example.test'), $before, '--dry-run changes nothing (export identical)');

# the real import, JSON report
my ($jrc, $j) = $mx->ctl_json('import', 'example.test', $file);
is($jrc, 0, 'import --json exit 0');
report_is($j, { added => 10, updated => 0, unchanged => 0, invalid => 4 }, 'first import: 10 added, 4 invalid');
is_deeply(invalid_lines($j), \@invalid_lines, 'invalid line numbers 13, 14, 15, 16');
my $exp1 = export('example.test');
like($exp1, qr/\b\Q$_\E\@example\.test\b/, "export has $_\@example.test") for @valid;
unlike($exp1, qr/other\.test|bobs-password|secret/, 'export has no invalid address and no password');

# kinds
($rc, $j) = $mx->ctl_json('address', 'show', 'bob@example.test');
ok(deep_has_value($j, 'mailbox'), '"joe joes-password" line: mailbox') or diag(explain($j));
($rc, $j) = $mx->ctl_json('address', 'show', 'pat@example.test');
ok(deep_has_value($j, 'mailbox') && !deep_has_value($j, 'pat@gmail.com'),
    'address|password line without relay: mailbox, "password" not a destination') or diag(explain($j));
($rc, $j) = $mx->ctl_json('address', 'show', 'fwd@example.test');
ok(deep_has_value($j, 'alias') && deep_has_value($j, 'mary@example.test') && deep_has_value($j, 'dan@yahoo.com'),
    'address|dests|relay line: alias with both destinations') or diag(explain($j));
($rc, $j) = $mx->ctl_json('address', 'show', 'sales@example.test');
ok(deep_has_value($j, 'alias') && deep_has_value($j, 'mary@example.test') && deep_has_value($j, 'jane@example.test'),
    '"sales: mary, jane": alias, bare names qualified with the domain') or diag(explain($j));
($rc, $j) = $mx->ctl_json('address', 'show', 'dan@example.test');
ok(deep_has_value($j, 'alias') && deep_has_value($j, 'dan@yahoo.com'), '"dan: dan@yahoo.com": external alias')
    or diag(explain($j));

# re-import: all unchanged
($jrc, $j) = $mx->ctl_json('import', 'example.test', $file);
report_is($j, { added => 0, updated => 0, unchanged => 10, invalid => 4 }, 're-import: 10 unchanged');
is(export('example.test'), $exp1, 're-import changes nothing');

# one modified line: updated
my @mod = @lines;
$mod[4] = 'info: mary, joe';
my $modfile = MxTest::spew("$dir/import2.txt", join("\n", @mod) . "\n");
($jrc, $j) = $mx->ctl_json('import', 'example.test', $modfile, '--dry-run');
report_is($j, { added => 0, updated => 1, unchanged => 9 }, 'dry run of a modified line: 1 updated');
is(export('example.test'), $exp1, '--dry-run --json changes nothing');
($jrc, $j) = $mx->ctl_json('import', 'example.test', $modfile);
report_is($j, { added => 0, updated => 1, unchanged => 9, invalid => 4 }, 'modified line: 1 updated, 9 unchanged');
($rc, $j) = $mx->ctl_json('address', 'show', 'info@example.test');
ok(deep_has_value($j, 'joe@example.test'), 'info now also goes to joe');
my $exp2 = export('example.test');
isnt($exp2, $exp1, 'export reflects the update');

# --strict with an invalid line applies nothing
my $strict = MxTest::spew("$dir/strict.txt", "newbie\nnewalias: joe\nbad\@other.test\n");
($rc, $out, $err) = $mx->ctl('import', 'example.test', $strict, '--strict');
is($rc, 1, '--strict with an invalid line: exit 1');
like("$out$err", qr/\b3\b/, '... naming line 3');
is(export('example.test'), $exp2, '--strict applied nothing');
($rc) = $mx->ctl('address', 'show', 'newbie@example.test');
is($rc, 1, 'newbie not added');
($rc) = $mx->ctl('import', 'example.test', MxTest::spew("$dir/strict_ok.txt", "newbie\n"), '--strict');
is($rc, 0, '--strict with only valid lines: exit 0');
$mx->ctl_ok('address', 'remove', 'newbie@example.test');

# --nofilter
my $nf = MxTest::spew("$dir/nf.txt", "a\nb: a\n");
($jrc, $j) = $mx->ctl_json('import', 'nf.test', $nf, '--nofilter');
report_is($j, { added => 2, invalid => 0 }, '--nofilter import: 2 added');
for my $a ('a@nf.test', 'b@nf.test') {
	($rc, $j) = $mx->ctl_json('address', 'show', $a);
	ok(deep_has_value($j, 'nofilter') || grep({ JSON::PP::is_bool($_) && $_ } deep_find($j, 'nofilter'))
	    || grep({ JSON::PP::is_bool($_) && !$_ } deep_find($j, 'filter')), "$a marked nofilter") or diag(explain($j));
}
my $nfexp = export('nf.test');
is(scalar(() = $nfexp =~ /nofilter/g), 2, 'export of nf.test shows nofilter on both lines') or diag($nfexp);

# export -> remove -> add -> import -> export gives an identical table
$mx->ctl_ok('address', 'add', 'boss@example.test', '--cc', 'audit@example.test,ext@yahoo.com', '--nofilter');
my $e1 = export('example.test');
my $efile = MxTest::spew("$dir/export.txt", $e1);
$mx->ctl_ok('domain', 'remove', 'example.test', '--force');
$mx->ctl_ok('domain', 'add', 'example.test');
is(export('example.test'), '', 'fresh domain exports nothing');
($jrc, $j) = $mx->ctl_json('import', 'example.test', $efile);
is($jrc, 0, 'import of the export exit 0');
report_is($j, { added => 11, invalid => 0 }, 'import of the export: 11 added, none invalid');
is(export('example.test'), $e1, 'export after re-import is identical');
($rc, $j) = $mx->ctl_json('address', 'show', 'boss@example.test');
ok(deep_has_value($j, 'audit@example.test') && deep_has_value($j, 'ext@yahoo.com'), 'cc destinations survive the round trip');

# SMTP: imported addresses are accepted at RCPT
my $c = $mx->session;
$c->cmd('MAIL FROM:<s@src.test>');
like($c->cmd("RCPT TO:<$_\@example.test>"), qr/^250 2\.1\.5 /, "RCPT $_\@example.test accepted") for @valid, 'boss';
like($c->cmd('RCPT TO:<a@nf.test>'), qr/^250 /, 'RCPT a@nf.test accepted');
is($c->cmd('RCPT TO:<evil@other.test>'), '554 5.7.1 <evil@other.test>: Relay access denied', 'invalid line not imported');
is($c->cmd('RCPT TO:<nobody@example.test>'), '550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown',
    'unknown user still refused');
$c->cmd('QUIT');

$mx->stop_ok;
done_testing();
