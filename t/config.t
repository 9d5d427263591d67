# config.t - mxrelayd -t and -V (SPEC 2, 3)
use strict;
use warnings;
use Test::More;
use MxTest;

watchdog(60);
my $dir = tmpdir();
my $bin = MxTest::mxrelayd_bin();
my ($cert, $key) = gen_cert($dir);
my $user = getpwuid($<) // 'root';

sub check {
	my ($text) = @_;
	my $f = MxTest::spew("$dir/t" . int(rand(1e9)) . '.conf', $text);
	my ($rc, $out, $err) = MxTest::run_cmd($bin, '-t', '-c', $f);
	return ($rc, "$out$err", $f);
}

my $minimal = <<"EOF";
server = {
  hostname = "mx.test.example";
  listen = [ "127.0.0.1:2525" ];
  user = "$user";
};
paths = {
  spool = "$dir/spool";
  state = "$dir/state";
  control_socket = "$dir/control.sock";
};
limits = {
  max_connections = 100;
};
EOF
my ($rc, $out) = check($minimal);
is($rc, 0, 'minimal valid configuration: exit 0') or diag($out);

# every key of SPEC 3
my $full = <<"EOF";
server = {
  hostname = "mx1.example.net";
  listen = [ "127.0.0.1:2525", "[::1]:2525" ];
  user = "$user";
  xclient_hosts = [ "127.0.0.0/8", "::1/128" ];
};
paths = {
  spool = "$dir/spool";
  state = "$dir/state";
  control_socket = "$dir/control.sock";
};
limits = {
  max_connections = 10000;
  max_connections_per_client = 50;
  max_message_size = 52428800;
  max_recipients = 1000;
  command_timeout = 300;
  data_timeout = 600;
};
tls = {
  certificate = "$cert";
  key = "$key";
  outbound = "opportunistic";
};
hosting = {
  destination = "lmtp:[127.0.0.1]:24";
};
delivery = {
  retry_schedule = [ 60, 300, 900, 1800, 3600 ];
  max_lifetime = 432000;
  connect_timeout = 30;
  max_connections_per_destination = 20;
  smtp_port = 25;
};
dns = {
  nameservers = [ "127.0.0.1:53" ];
};
filters = {
  spf = { enabled = true; reject_fail = true; };
  dnsbl = { zones = [ "zen.spamhaus.org" ]; };
  pregreet_wait = 0;
};
srs = { domain = "fwd.example.net"; secret = "0123456789abcdef0123456789abcdef"; };
recipient_delimiter = "+";
EOF
($rc, $out) = check($full);
is($rc, 0, 'configuration with every SPEC 3 key: exit 0') or diag($out);

for my $dest ('smtp:mail.example.net', 'smtp:mail.example.net:2525', 'smtp:[192.0.2.1]:25',
    'smtp:[2001:db8::1]:25', 'lmtp:[127.0.0.1]:24', 'lmtp:unix:/run/dovecot/lmtp') {
	($rc, $out) = check($minimal . "hosting = { destination = \"$dest\"; };\n");
	is($rc, 0, "destination $dest valid") or diag($out);
}

# errors: [ text, line, key, name ]
my $base_lines = () = $minimal =~ /\n/g;	# 13
my @bad = (
	[$minimal =~ s/  hostname = /  hostnam = /r, 2, 'hostnam', 'unknown key'],
	[$minimal . "bogus = { a = 1; };\n", $base_lines + 1, 'bogus', 'unknown section'],
	[$minimal =~ s/max_connections = 100;/max_connections = "many";/r, 12, 'max_connections', 'wrong type (string for integer)'],
	[$minimal =~ s/max_connections = 100;/max_connections = -5;/r, 12, 'max_connections', 'bad value (negative)'],
	[$minimal =~ s/"127\.0\.0\.1:2525"/"127.0.0.1:99999"/r, 3, 'listen', 'bad value (port out of range)'],
	[$minimal =~ s/"127\.0\.0\.1:2525"/"not an address"/r, 3, 'listen', 'bad value (listen syntax)'],
	[$minimal =~ s/hostname = "mx\.test\.example";/hostname = 42;/r, 2, 'hostname', 'wrong type (integer for string)'],
	[$minimal . "tls = {\n  certificate = \"$cert\";\n  key = \"$key\";\n  outbound = \"sometimes\";\n};\n",
	    $base_lines + 4, 'outbound', 'bad value (outbound enum)'],
	[$minimal . "hosting = {\n  destination = \"ftp:example.net\";\n};\n", $base_lines + 2, 'destination',
	    'bad value (destination scheme)'],
	[$minimal . "filters = {\n  spf = { enabled = \"yes\"; };\n};\n", $base_lines + 2, 'enabled', 'wrong type (string for boolean)'],
	[$minimal . "delivery = {\n  retry_schedule = [ \"later\" ];\n};\n", $base_lines + 2, 'retry_schedule',
	    'wrong type in a list'],
	[$minimal . "filters = {\n  pregreet_wait = -1;\n};\n", $base_lines + 2, 'pregreet_wait', 'bad value (negative wait)'],
	# libconfig 1.5 wraps an integer without the L suffix to 32 bits:
	# 4294967396 would read as 100, 2^50 as 0 (in range!)
	[$minimal =~ s/max_connections = 100;/max_connections = 100;\n  max_message_size = 4294967396;/r, 13,
	    'max_message_size', 'over 32 bits without L (would wrap to 100)'],
	[$minimal =~ s/max_connections = 100;/max_connections = 100;\n  queue_minfree = 1125899906842624;/r, 13,
	    'queue_minfree', 'over 32 bits without L (would wrap to 0, in range)'],
);
for my $b (@bad) {
	my ($text, $line, $k, $name) = @$b;
	my $f;
	($rc, $out, $f) = check($text);
	is($rc, 1, "$name: exit 1");
	# (a program-name prefix such as "mxrelayd: " may come first)
	like($out, qr/(?:^|\s)\Q$f\E:$line: (?:[\w.]+\.)?\Q$k\E: \S/m, "$name: message \"FILE:$line: $k: reason\"")
	    or diag($out);
}

# libconfig syntax error: file and line
($rc, $out, my $f) = check($minimal =~ s/max_connections = 100;/max_connections = = 100;/r);
is($rc, 1, 'syntax error: exit 1');
like($out, qr/(?:^|\s)\Q$f\E:12: /m, 'syntax error: FILE:LINE:') or diag($out);

($rc, $out) = check($minimal =~ s/max_connections = 100;/max_connections = 100;\n  max_message_size = 4294967396;/r);
like($out, qr/max_message_size: 4294967396 needs the L suffix \(4294967396L\)/, 'the message says how to write it');
($rc, $out) = check($minimal =~ s/max_connections = 100;/max_connections = 100;\n  max_message_size = 4294967396L;\n  queue_minfree = 0x10;/r);
is($rc, 0, 'with the L suffix, and a small hexadecimal value: valid') or diag($out);

($rc, my $mout, my $merr) = MxTest::run_cmd($bin, '-t', '-c', "$dir/does-not-exist.conf");
$out = "$mout$merr";
is($rc, 1, 'missing file: exit 1');
like($out, qr/does-not-exist\.conf/, 'missing file named');

# -V
($rc, my $vout, my $verr) = MxTest::run_cmd($bin, '-V');
is($rc, 0, '-V exit 0');
like("$vout$verr", qr/\d+\.\d+/, '-V prints a version');

done_testing();
