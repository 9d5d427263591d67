#!/usr/bin/perl
# bench/genspool.pl - write COUNT committed spool files (doc/spool.md) for
# RCPT into SPOOLDIR/queue, each already deferred once with its next
# attempt an hour away, as mail waiting for an unreachable old server.
# Usage: genspool.pl SPOOLDIR COUNT RCPT
use strict;
use warnings;
use Compress::Zlib qw(crc32);
use Time::HiRes qw(time);

my ($spool, $count, $rcpt) = @ARGV;
die "usage: $0 SPOOLDIR COUNT RCPT\n" unless defined $rcpt && $count =~ /^\d+$/;
mkdir "$spool/queue";
my $now = int(time);
my $us = int(time * 1e6) - $count;	# IDs: arrival in microseconds, unique
for my $i (1 .. $count) {
	my $id = sprintf('%016X', $us + $i);
	my $body = "Received: from bench.test ([127.0.0.1]) by mx.bench.test "
	    . "(mxrelayd) with ESMTP id $id; Thu, 1 Jan 2026 00:00:00 +0000\r\n"
	    . "From: a\@src.test\r\nTo: $rcpt\r\nSubject: queued $i\r\n"
	    . "Message-ID: <$id\@src.test>\r\n\r\nqueued message $i\r\n";
	my $hdr = "MXRELAY-SPOOL 1\nid $id\narrival $now\nclient 127.0.0.1 1025\n"
	    . "helo bench.test\nsender <a\@src.test>\nbody 7bit\nsmtputf8 0\n"
	    . "rcpts 1\nrcpt 0 <$rcpt>\n" . sprintf("size %020d\n\n", length $body);
	my $tail = sprintf("MXRELAY-END crc32=%08x\n", crc32($body))
	    . "state 0 deferred $now 1 " . ($now + 3600)
	    . " 451 4.4.1 connection refused (bench)\n";
	open(my $fh, '>', "$spool/queue/$id") or die "$spool/queue/$id: $!\n";
	print $fh $hdr, $body, $tail;
	close $fh or die "$id: $!\n";
}
