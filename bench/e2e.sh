#!/bin/bash
# bench/e2e.sh - end-to-end throughput, client -> relay -> downstream, mxrelayd
# beside a private Postfix instance relaying the same load in the same run.
#
# For each message size and each number of concurrent clients, both relays
# are started fresh (empty queue) with a fresh smtp-sink as their downstream,
# runs interleaved (postfix, then mxrelayd) so that machine drift hits both:
#
#   smtp-source -s CLIENTS -m N -l SIZE -f sender@src.test -t joe@example.test
#       -> relay on 127.0.0.1:PORT (acknowledges only what is on disk)
#       -> smtp-sink -c on 127.0.0.1:SINKPORT (counts messages received)
#
# In the same run, the ceiling: smtp-source straight to a fresh smtp-sink
# (no relay), the most this machine moves with these two programs; the
# table shows mxrelayd's fraction of it.
#
# The time measured runs from the first connection of smtp-source until the
# sink has received every message (not merely until the relay acknowledged
# them); the time to acknowledge all of them is shown too. smtp-source aborts
# on any reply that is not 2xx, so a completed run had every message
# acknowledged.
#
# mxrelayd: example.test in legacy mode, its one legacy server the sink
# ([127.0.0.1]:SINKPORT), default delivery settings (20 connections per
# destination). Postfix: bench/lib.sh's private instance (own
# config_directory, queue_directory, inet_interfaces = 127.0.0.1,
# relay_domains = example.test), relay_transport pointed at the same kind of
# sink, default concurrency (also 20 per destination).
#
# Environment (defaults):
#   MXRELAYD=./mxrelayd RELAYCTL=./relayctl
#   SIZES="4096 102400"          message sizes (smtp-source -l)
#   CLIENTS_LIST="1 10 50"       concurrent clients (smtp-source -s)
#   N_SMALL=2000 N_LARGE=500     messages per run for sizes <= 16384 / above
#   RUNS=1                       runs per cell (median reported)
#   SERVERS="ceiling postfix mxrelayd"
#   MILTER=rspamd                also run "mxrelayd+rspamd": the same relay
#                                with a private rspamd (proxy worker, milter
#                                mode, self-scan, DNS from a private dnsmasq)
#                                as filters.milters, in the same run
#   RSPAMD_WORKERS=1             its proxy workers
#   RUN_TIMEOUT=300              seconds allowed per run (then the run fails)
#   SMTP_SINK=smtp-sink          the downstream, for every server and the
#                                ceiling (a wrapper that runs
#                                `nice -n 19 smtp-sink "$@"` keeps it off
#                                the relay's CPUs, as a remote server is)
#   TMPDIR                       where the queues live (a real disk for fsync)
#   BENCH_KEEP=1                 keep the temp dir

BENCH_SRC=$(cd "$(dirname "$0")" && pwd) || exit 1
# shellcheck source=bench/lib.sh
. "$BENCH_SRC/lib.sh"

SIZES=${SIZES:-4096 102400}
CLIENTS_LIST=${CLIENTS_LIST:-1 10 50}
N_SMALL=${N_SMALL:-2000}
N_LARGE=${N_LARGE:-500}
RUNS=${RUNS:-1}
MILTER=${MILTER:-}
if [ "$MILTER" = rspamd ]; then
	SERVERS=${SERVERS:-ceiling postfix mxrelayd mxrelayd+rspamd}
else
	SERVERS=${SERVERS:-ceiling postfix mxrelayd}
fi
RUN_TIMEOUT=${RUN_TIMEOUT:-300}
SMTP_SINK=${SMTP_SINK:-smtp-sink}

SINK_PORT=""
SINK_PID=""

# sink_start - a fresh counting smtp-sink on a free port
sink_start() {
	SINK_PORT=$(free_port) || die "no free port"
	: >"$BENCH_DIR/sink.out"
	"$SMTP_SINK" -u root -c -m 1024 127.0.0.1:"$SINK_PORT" 1024 >"$BENCH_DIR/sink.out" 2>&1 &
	SINK_PID=$!
	bench_track "$SINK_PID"
	wait_port "$SINK_PORT" || die "smtp-sink did not come up"
}

sink_stop() {
	[ -n "$SINK_PID" ] || return 0
	kill -TERM "$SINK_PID" 2>/dev/null || true
	bench_wait_gone "$SINK_PID" 5 || kill -KILL "$SINK_PID" 2>/dev/null || true
	wait "$SINK_PID" 2>/dev/null || true
	bench_untrack "$SINK_PID"
	SINK_PID=""
}

RSPAMD_PORT=""

# rspamd_start - one private rspamd for the whole run: only the proxy
# worker, in milter mode, scanning itself; its DNS is a private dnsmasq
# that answers for .test at once and refuses the rest (no upstream)
rspamd_start() {
	local d=$BENCH_DIR/rspamd dns i=0
	mkdir -p "$d/db" "$d/run" "$d/local.d"
	dns=$(free_port) || die "no free port"
	dnsmasq --keep-in-foreground --port="$dns" --listen-address=127.0.0.1 \
	    --bind-interfaces --no-resolv --no-hosts --user=root \
	    --pid-file="$d/dnsmasq.pid" --auth-zone=test --auth-server=ns.test \
	    2>"$d/dnsmasq.log" &
	bench_track $!
	RSPAMD_PORT=$(free_port) || die "no free port"
	printf 'use = ["x-spamd-result"];\nskip_local = false;\n' \
	    >"$d/local.d/milter_headers.conf"
	cat >"$d/rspamd.conf" <<CONF
.include "\$CONFDIR/common.conf"
options {
    pidfile = "$d/run/rspamd.pid";
    .include "\$CONFDIR/options.inc"
    dns { nameserver = ["127.0.0.1:$dns"]; timeout = 1s; retransmits = 1; }
    local_addrs = [];
}
logging { type = "file"; filename = "$d/rspamd.log"; level = "warning"; }
worker "rspamd_proxy" {
    bind_socket = "127.0.0.1:$RSPAMD_PORT";
    milter = yes;
    timeout = 120s;
    upstream "local" { default = yes; self_scan = yes; }
    count = ${RSPAMD_WORKERS:-1};
}
CONF
	rspamd -f -i -u root -g root -c "$d/rspamd.conf" --var "LOCAL_CONFDIR=$d" \
	    --var "DBDIR=$d/db" --var "RUNDIR=$d/run" --var "LOGDIR=$d" >"$d/stdout" 2>&1 &
	bench_track $!
	# a milter sends no banner: ready once it accepts a connection
	while ! perl -MIO::Socket::INET -e 'exit !IO::Socket::INET->new(
	    PeerAddr => "127.0.0.1", PeerPort => $ARGV[0], Timeout => 1)' "$RSPAMD_PORT"; do
		i=$((i + 1))
		[ "$i" -ge 60 ] && { tail -n 20 "$d/rspamd.log" >&2; die "rspamd did not come up"; }
		sleep 1
	done
	note "rspamd ${RSPAMD_WORKERS:-1} proxy worker(s) on 127.0.0.1:$RSPAMD_PORT"
}

# relay_up - start a fresh relay $1 for $2 clients, delivering to the sink; set PORT
relay_up() {
	case $1 in
	ceiling)
		PORT=$SINK_PORT ;;
	postfix)
		pf_start "$(($2 + 50))"
		# reuse lib.sh's instance; deliver to the sink instead of a dead port
		postconf -c "$PF_DIR/etc" -e "relay_transport = relay:[127.0.0.1]:$SINK_PORT" ||
			die "postconf failed"
		"$POSTFIX" -c "$PF_DIR/etc" reload >/dev/null 2>&1 || die "postfix reload failed"
		sleep 1	# the reload restarts qmgr asynchronously
		PORT=$PF_PORT ;;
	mxrelayd|mxrelayd+rspamd)
		MX_FILTERS_EXTRA=""
		[ "$1" = mxrelayd+rspamd ] &&
			MX_FILTERS_EXTRA="milters = ( { name = \"rspamd\"; socket = \"inet:127.0.0.1:$RSPAMD_PORT\"; timeout = 30; } );"
		mx_start
		mx_ctl domain add example.test --legacy "[127.0.0.1]:$SINK_PORT" >/dev/null ||
			die "relayctl domain add failed"
		mx_ctl address add joe@example.test >/dev/null ||
			die "relayctl address add failed"
		PORT=$MX_PORT ;;
	esac
}

relay_down() {
	case $1 in
	ceiling) ;;
	postfix) pf_stop; rm -rf "$BENCH_DIR/pf" ;;
	mxrelayd|mxrelayd+rspamd) mx_stop; rm -rf "$BENCH_DIR/mx" ;;
	esac
}

# one_run SERVER SIZE CLIENTS N - time N messages end to end; sets
# RUN_SECS (until the sink has all), ACK_SECS (until smtp-source finished);
# returns 1 on failure or timeout
one_run() {
	local s=$1 size=$2 clients=$3 n=$4 t0 t1 tack src rc got
	sink_start
	relay_up "$s" "$clients"
	t0=$(now_ns)
	"$SMTP_SOURCE" -s "$clients" -m "$n" -l "$size" -f sender@src.test \
	    -t joe@example.test "127.0.0.1:$PORT" >"$BENCH_DIR/source.out" 2>&1 &
	src=$!
	bench_track "$src"
	if ! watch_run "$src" "$n" "$RUN_TIMEOUT"; then
		note "$s: timeout after $RUN_TIMEOUT s: sink has $WATCH_GOT of $n"
		[ "$WATCH_TACK" = 0 ] && kill "$src" 2>/dev/null
		wait "$src" 2>/dev/null
		bench_untrack "$src"
		[ "$s" != postfix ] && tail -n 5 "$MX_DIR/log" >&2
		relay_down "$s"; sink_stop
		return 1
	fi
	wait "$src"
	rc=$?
	bench_untrack "$src"
	if [ "$rc" -ne 0 ]; then
		note "$s: smtp-source failed (exit $rc):"
		tail -n 5 "$BENCH_DIR/source.out" >&2
		relay_down "$s"; sink_stop
		return 1
	fi
	tack=$WATCH_TACK
	t1=$WATCH_T1
	RUN_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
	ACK_SECS=$(awk -v a="$t0" -v b="$tack" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
	# the sink may count a few more (at least once), never fewer
	got=$(sink_count)
	[ "$got" -eq "$n" ] || note "$s: sink received $got messages for $n sent"
	relay_down "$s"
	sink_stop
	return 0
}

bench_init
case " $SERVERS " in *" mxrelayd"*)
	mx_check_binaries
	# run private copies: a rebuild of the tree during the run does not
	# replace the binary under the benchmark
	cp "$MXRELAYD" "$BENCH_DIR/mxrelayd.bin" || die "cannot copy $MXRELAYD"
	cp "$RELAYCTL" "$BENCH_DIR/relayctl.bin" || die "cannot copy $RELAYCTL"
	MXRELAYD=$BENCH_DIR/mxrelayd.bin
	RELAYCTL=$BENCH_DIR/relayctl.bin ;;
esac
command -v "$SMTP_SOURCE" >/dev/null || die "smtp-source not found (apt-get install postfix)"
case " $SERVERS " in *" mxrelayd+rspamd "*)
	command -v rspamd >/dev/null || die "rspamd not found (apt-get install rspamd)"
	rspamd_start ;;
esac
command -v "$SMTP_SINK" >/dev/null || die "smtp-sink not found (apt-get install postfix)"

note "$(nproc) CPUs, load $(cut -d" " -f1-3 /proc/loadavg), kernel $(uname -r), postfix $(postconf -dh mail_version)," \
    "queues on $(stat -f -c %T "$BENCH_DIR") ($BENCH_DIR)"
note "sizes: $SIZES; clients: $CLIENTS_LIST; messages per run: $N_SMALL (<= 16 KB), $N_LARGE (larger); $RUNS run(s) per cell"

declare -A E2E ACK
for size in $SIZES; do
	n=$N_SMALL
	[ "$size" -gt 16384 ] && n=$N_LARGE
	for clients in $CLIENTS_LIST; do
		for ((r = 1; r <= RUNS; r++)); do
			for s in $SERVERS; do
				key="$size/$clients/$s"
				if one_run "$s" "$size" "$clients" "$n"; then
					note "size $size clients $clients run $r $s: all at the sink in $RUN_SECS s (acknowledged in $ACK_SECS s)"
					E2E[$key]="${E2E[$key]:-} $RUN_SECS"
					ACK[$key]="${ACK[$key]:-} $ACK_SECS"
				else
					E2E[$key]="${E2E[$key]:-} fail"
				fi
			done
		done
	done
done

# rate - messages per second from N and the median of the runs ("-" if any failed)
rate() {
	local n=$1; shift
	case " $* " in *" fail "*|"  ") echo "-"; return ;; esac
	# shellcheck disable=SC2068
	awk -v n="$n" -v t="$(median $@)" 'BEGIN { printf "%.1f", n / t }'
}

secs() {
	case " $* " in *" fail "*|"  ") echo "-"; return ;; esac
	# shellcheck disable=SC2068
	median $@
}

printf '%8s %7s %6s | %9s | %9s %9s %9s | %9s %9s %9s | %6s %6s\n' \
    size clients msgs "ceil msg/s" "pf s" "pf ack s" "pf msg/s" "mx s" "mx ack s" "mx msg/s" "mx/pf" "mx/ceil"
for size in $SIZES; do
	n=$N_SMALL
	[ "$size" -gt 16384 ] && n=$N_LARGE
	for clients in $CLIENTS_LIST; do
		ck="$size/$clients/ceiling"; pk="$size/$clients/postfix"; mk="$size/$clients/mxrelayd"
		# shellcheck disable=SC2086
		crate=$(rate "$n" ${E2E[$ck]:-fail})
		# shellcheck disable=SC2086
		prate=$(rate "$n" ${E2E[$pk]:-fail})
		# shellcheck disable=SC2086
		mrate=$(rate "$n" ${E2E[$mk]:-fail})
		ratio="-" frac="-"
		if [ "$prate" != "-" ] && [ "$mrate" != "-" ]; then
			ratio=$(awk -v a="$mrate" -v b="$prate" 'BEGIN { printf "%.2f", a / b }')
		fi
		if [ "$crate" != "-" ] && [ "$mrate" != "-" ]; then
			frac=$(awk -v a="$mrate" -v b="$crate" 'BEGIN { printf "%.0f%%", 100 * a / b }')
		fi
		# shellcheck disable=SC2086
		printf '%8s %7s %6s | %9s | %9s %9s %9s | %9s %9s %9s | %6s %6s\n' "$size" "$clients" "$n" \
		    "$crate" \
		    "$(secs ${E2E[$pk]:-fail})" "$(secs ${ACK[$pk]:-fail})" "$prate" \
		    "$(secs ${E2E[$mk]:-fail})" "$(secs ${ACK[$mk]:-fail})" "$mrate" "$ratio" "$frac"
	done
done
echo "ceil: smtp-source straight to smtp-sink; s: first connection until the sink has every message; ack s: until every message was acknowledged (250)"

# with MILTER=rspamd: the same cells through rspamd, and what it adds to
# each message (ack time per message and client)
case " $SERVERS " in *" mxrelayd+rspamd "*)
	printf '\n%8s %7s %6s | %9s %9s %9s | %9s %11s\n' size clients msgs "mx+r s" \
	    "mx+r ack" "mx+r m/s" "mx+r/mx" "ms/msg +r"
	for size in $SIZES; do
		n=$N_SMALL
		[ "$size" -gt 16384 ] && n=$N_LARGE
		for clients in $CLIENTS_LIST; do
			mk="$size/$clients/mxrelayd"; rk="$size/$clients/mxrelayd+rspamd"
			# shellcheck disable=SC2086
			mrate=$(rate "$n" ${E2E[$mk]:-fail})
			# shellcheck disable=SC2086
			rrate=$(rate "$n" ${E2E[$rk]:-fail})
			# shellcheck disable=SC2086
			mack=$(secs ${ACK[$mk]:-fail})
			# shellcheck disable=SC2086
			rack=$(secs ${ACK[$rk]:-fail})
			ratio="-"; added="-"
			if [ "$mrate" != "-" ] && [ "$rrate" != "-" ]; then
				ratio=$(awk -v a="$rrate" -v b="$mrate" 'BEGIN { printf "%.2f", a / b }')
				added=$(awk -v a="$rack" -v b="$mack" -v n="$n" -v c="$clients" \
				    'BEGIN { printf "%.2f", (a - b) * 1000 * c / n }')
			fi
			# shellcheck disable=SC2086
			printf '%8s %7s %6s | %9s %9s %9s | %9s %11s\n' "$size" "$clients" "$n" \
			    "$(secs ${E2E[$rk]:-fail})" "$rack" "$rrate" "$ratio" "$added"
		done
	done
	echo "ms/msg +r: (ack time with rspamd - without) x clients / messages: the latency rspamd adds to a message"
	;;
esac
