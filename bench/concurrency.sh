#!/bin/bash
# bench/concurrency.sh - many concurrent SMTP sessions held open: mxrelayd's
# memory, and how long a new client waits for its banner meanwhile; Postfix's
# smtpd processes for comparison.
#
# For each mode (idle, trickle) and each count in CONNS_LIST, a fresh
# mxrelayd (limits.max_connections = count + 200) is started with a soft
# descriptor limit of 1024, so that it must raise its own limit as far as
# max_connections needs (the hard limit is raised by this script). Then
# bench/holdconns.pl opens the sessions over NSRC source addresses
# (127.0.0.2 ..: one address has only ~28,000 ephemeral ports), reading
# every banner; "trickle" sessions then send one octet of "NOOP\r\n" every
# TRICKLE seconds each. With all of them held, bench/bannerprobe.pl times
# PROBES new clients from connect to 220 (p50, p99), and VmRSS of mxrelayd
# is read. Then, for one more connection than max_connections allows, the
# refusal is checked (421 4.7.0).
#
# Postfix: a private instance with a process limit of PF_CONNS + 50, PF_CONNS
# idle sessions (one smtpd process each), summed RSS and PSS of its smtpd
# processes, and the banner latency of new clients meanwhile.
#
# Environment (defaults):
#   CONNS_LIST="10000 50000" MODES="idle trickle" NSRC=8 TRICKLE=10
#   PROBES=200 PF_CONNS=1000 (0: no Postfix) SETTLE=3 HOLD_SECS=240

BENCH_SRC=$(cd "$(dirname "$0")" && pwd) || exit 1
# shellcheck source=bench/lib.sh
. "$BENCH_SRC/lib.sh"

CONNS_LIST=${CONNS_LIST:-10000 50000}
MODES=${MODES:-idle trickle}
NSRC=${NSRC:-8}
TRICKLE=${TRICKLE:-10}
PROBES=${PROBES:-200}
PF_CONNS=${PF_CONNS:-1000}
SETTLE=${SETTLE:-3}
HOLD_SECS=${HOLD_SECS:-240}

FILL=200	# sessions beyond CONNS up to max_connections, then one more

max=$PF_CONNS
for c in $CONNS_LIST; do [ "$c" -gt "$max" ] && max=$c; done
# The limit is per process: holdconns.pl needs one descriptor per session;
# mxrelayd wants 2 * max_connections + 2048 (a message file per session and
# its reserve, src/nofile.h) and takes sessions up to the limit - 2048.
# Raising the hard limit takes CAP_SYS_RESOURCE (root in a container may
# lack it): then the hard limit it is, if the sessions fit.
NOFILE=$((2 * (max + FILL) + 2048))
[ "$(cat /proc/sys/fs/nr_open)" -ge "$NOFILE" ] || NOFILE=$(cat /proc/sys/fs/nr_open)
ulimit -n "$NOFILE" 2>/dev/null || { NOFILE=$(ulimit -Hn); ulimit -n "$NOFILE"; }
[ $((max + FILL + 2048)) -le "$NOFILE" ] ||
	die "descriptor limit $NOFILE too low for $max sessions (without CAP_SYS_RESOURCE use CONNS_LIST up to $((NOFILE - FILL - 2048)))"

# refused PORT - the reply to one more client (expects a 421)
refused() {
	perl -MIO::Socket::INET -e '
		my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1",
		    PeerPort => $ARGV[0], Proto => "tcp", Timeout => 10) or die "connect: $!\n";
		$s->timeout(10);
		my $l = <$s> // "(closed)";
		$l =~ s/\r?\n$//;
		print substr($l, 0, 9), "\n";' "$1"
}

bench_init
mx_check_binaries
note "$(nproc) CPUs, load $(cut -d" " -f1-3 /proc/loadavg), kernel $(uname -r), descriptor limit $(ulimit -n)," \
    "ephemeral ports $(tr '\t' - </proc/sys/net/ipv4/ip_local_port_range), $NSRC source addresses"

printf '%-9s %-8s %8s %10s %10s %10s %9s %9s %9s %s\n' server mode sessions "RSS0 kB" "RSS kB" \
    "B/session" "p50 ms" "p99 ms" "max ms" "one more"
for mode in $MODES; do
	opts="-s $NSRC"
	[ "$mode" = trickle ] && opts="$opts -t $TRICKLE"
	for conns in $CONNS_LIST; do
		MX_MAX_CONNECTIONS=$((conns + FILL))
		# the daemon raises its own soft limit (nofile_raise)
		ulimit -Sn 1024
		mx_start
		ulimit -Sn "$NOFILE"
		grep 'nofile=' "$MX_DIR/log" | sed 's/^/# /' >&2
		sleep "$SETTLE"
		rss0=$(rss_kb "$MX_PID")
		t0=$(now_ns)
		# shellcheck disable=SC2086
		hold "$MX_PORT" "$conns" $opts
		note "mxrelayd $mode: $conns sessions open in $(awk -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }') s"
		sleep "$SETTLE"
		read -r np p50 p99 pmax failed <<<"$(perl "$BENCH_SRC"/bannerprobe.pl "$MX_PORT" "$PROBES")"
		rss1=$(rss_kb "$MX_PID") || die "mxrelayd died with $conns sessions"
		[ "$failed" = 0 ] || note "mxrelayd $mode: $failed of $PROBES probes got no banner"
		# fill up to max_connections, then one more must get 421 4.7.0
		extra=""
		if [ "$mode" = idle ]; then
			perl "$BENCH_SRC"/holdconns.pl -s "$NSRC" "$MX_PORT" "$FILL" "$BENCH_DIR/ready.fill" 60 \
			    2>/dev/null &
			fill=$!
			bench_track "$fill"
			for ((i = 0; i < 600; i++)); do [ -s "$BENCH_DIR/ready.fill" ] && break; sleep 0.1; done
			extra=$(refused "$MX_PORT")
			kill "$fill" 2>/dev/null; wait "$fill" 2>/dev/null; bench_untrack "$fill"
			rm -f "$BENCH_DIR/ready.fill"
		fi
		printf '%-9s %-8s %8d %10d %10d %10d %9s %9s %9s %s\n' mxrelayd "$mode" "$conns" "$rss0" "$rss1" \
		    $(( (rss1 - rss0) * 1024 / conns )) "$p50" "$p99" "$pmax" "${extra:--}"
		unhold
		mx_stop
		rm -rf "$MX_DIR"
	done
done

if [ "$PF_CONNS" -gt 0 ]; then
	pf_start $((PF_CONNS + 50))
	master=$(tr -d ' ' <"$PF_DIR/spool/pid/master.pid")
	hold "$PF_PORT" "$PF_CONNS" -s "$NSRC"
	sleep "$SETTLE"
	read -r np p50 p99 pmax failed <<<"$(perl "$BENCH_SRC"/bannerprobe.pl "$PF_PORT" "$PROBES")"
	read -r n rss pss <<<"$(smtpd_mem "$master")"
	unhold
	pf_stop
	echo
	echo "Postfix (one smtpd process per session; RSS counts shared pages in every process, PSS shares them out):"
	printf '%-9s %-8s %8s %10s %12s %12s %9s %9s %9s\n' server mode sessions processes "RSS sum kB" "PSS sum kB" \
	    "p50 ms" "p99 ms" "max ms"
	printf '%-9s %-8s %8d %10d %12d %12d %9s %9s %9s\n' postfix idle "$PF_CONNS" "$n" "$rss" "$pss" \
	    "$p50" "$p99" "$pmax"
fi
echo "RSS0: mxrelayd before; RSS: with the sessions held; p50/p99/max: connect to 220 of $PROBES new clients meanwhile;"
echo "one more: the reply to a client beyond limits.max_connections (idle runs)"
