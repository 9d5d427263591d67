#!/usr/bin/perl
# bench/phases.pl - where a one-client SMTP session's time goes, on the
# wire. Reads `tcpdump -tt -n -l -A -s 160 -i lo tcp port PORT` text on stdin
# and prints, per phase, the median, mean and 90th percentile in
# microseconds over the sessions seen whole.
#
#   perl bench/phases.pl PORT < tcpdump.txt
#
# A phase is the time between two packets of the session: a server phase
# from a client command to the server's reply (banner: from the SYN), a
# client phase ("cl:") from a reply to the client's next command. "dot"
# runs from the last packet of the message data to the reply to it (the
# server reads the data and commits the message); "next" from the reply
# to QUIT to the client's next SYN. The mean shows what the median hides:
# the times a process waited for a CPU.
use strict;
use warnings;

my $port = shift // die "usage: $0 PORT < tcpdump.txt\n";
my @lines = <STDIN>;
my %s;				# client port -> packet times by event

for my $i (0 .. $#lines) {
	next unless $lines[$i] =~ /^(\d+\.\d+) IP [\d.]+\.(\d+) > [\d.]+\.(\d+): Flags \[([^\]]*)\].*length (\d+)/;
	my ($t, $src, $dst, $flags, $len) = ($1, $2, $3, $4, $5);
	my $from_client = $dst == $port;
	my $k = $s{$from_client ? $src : $dst} //= {};
	if ($flags eq 'S' && $from_client) {
		$k->{syn} = $t;
		next;
	}
	next if $len == 0;
	# -A: the payload follows the headers' octets on the next lines
	my $p = join('', grep { defined } @lines[$i + 1 .. $i + 2]);
	$p =~ s/\n//g;
	$p =~ s/^.*?(HELO|EHLO|MAIL|RCPT|DATA|QUIT|\d\d\d[ -])/$1/;
	if ($from_client) {
		if ($p =~ /^(HELO|EHLO|MAIL|RCPT|DATA|QUIT)/) {
			my $c = $1 eq 'HELO' ? 'EHLO' : $1;
			$k->{"c_$c"} //= $t;
			$k->{last} = $c;
		} else {
			$k->{data0} //= $t;
			$k->{dataN} = $t;
		}
		next;
	}
	my $st = $k->{last} // 'banner';
	$st = 'dot' if $st eq 'DATA' && $k->{dataN};
	$k->{"r_$st"} //= $t;
}

my @syns = sort { $a->{syn} <=> $b->{syn} } grep { $_->{syn} } values %s;
$syns[$_]{nextsyn} = $syns[$_ + 1]{syn} for 0 .. $#syns - 1;

my @phases = (
	[ banner => 'syn', 'r_banner' ], [ 'cl:helo' => 'r_banner', 'c_EHLO' ],
	[ helo => 'c_EHLO', 'r_EHLO' ], [ 'cl:mail' => 'r_EHLO', 'c_MAIL' ],
	[ mail => 'c_MAIL', 'r_MAIL' ], [ 'cl:rcpt' => 'r_MAIL', 'c_RCPT' ],
	[ rcpt => 'c_RCPT', 'r_RCPT' ], [ 'cl:data' => 'r_RCPT', 'c_DATA' ],
	[ data => 'c_DATA', 'r_DATA' ], [ 'cl:message' => 'r_DATA', 'data0' ],
	[ message => 'data0', 'dataN' ], [ dot => 'dataN', 'r_dot' ],
	[ 'cl:quit' => 'r_dot', 'c_QUIT' ], [ quit => 'c_QUIT', 'r_QUIT' ],
	[ 'cl:next' => 'r_QUIT', 'nextsyn' ], [ 'session' => 'syn', 'r_QUIT' ],
);
my %v;
for my $k (grep { $_->{r_QUIT} && $_->{r_dot} } @syns) {
	for (@phases) {
		my ($name, $a, $b) = @$_;
		push @{ $v{$name} }, ($k->{$b} - $k->{$a}) * 1e6 if $k->{$a} && $k->{$b};
	}
}
printf "%-11s %8s %8s %8s %6s\n", 'phase (us)', 'median', 'mean', 'p90', 'n';
for (@phases) {
	my @x = sort { $a <=> $b } @{ $v{ $_->[0] } || [] } or next;
	my $sum = 0;
	$sum += $_ for @x;
	printf "%-11s %8.0f %8.0f %8.0f %6d\n", $_->[0], $x[@x / 2], $sum / @x, $x[int(@x * 0.9)], scalar @x;
}
printf "%-11s %8.0f   (first SYN to last SYN, per session)\n", 'per message',
    ($syns[-1]{syn} - $syns[0]{syn}) / (@syns - 1) * 1e6 if @syns > 1;
