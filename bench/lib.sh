# bench/lib.sh - shared helpers for the mxrelay benchmark scripts (bash).
#
# Sourced by accept.sh, idle_mem.sh and import.sh. Everything runs on
# 127.0.0.1 with ports the kernel reports free, inside one temporary
# directory that bench_cleanup removes, together with every process the
# scripts started, on any exit (normal, error, ^C).

set -u

MXRELAYD=${MXRELAYD:-./mxrelayd}
RELAYCTL=${RELAYCTL:-./relayctl}
SMTP_SOURCE=${SMTP_SOURCE:-smtp-source}
POSTFIX=${POSTFIX:-postfix}
# Bound on every wait for a server to come up or go down, in seconds.
BENCH_START_TIMEOUT=${BENCH_START_TIMEOUT:-20}
BENCH_KEEP=${BENCH_KEEP:-0}     # 1 = keep the temp dir for inspection

BENCH_DIR=""
BENCH_PIDS=""
BENCH_PF_DIRS=""

# die - print a message and exit (the trap cleans up)
die() {
	echo "$(basename "$0"): $*" >&2
	exit 1
}

# note - progress message on stderr, so stdout carries only the figures
note() {
	echo "# $*" >&2
}

# bench_cleanup - stop what we started and remove the temp dir (trap)
bench_cleanup() {
	local rc=$? pid d
	trap - EXIT INT TERM HUP
	for d in $BENCH_PF_DIRS; do
		pf_kill "$d"
	done
	for pid in $BENCH_PIDS; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in $BENCH_PIDS; do
		bench_wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
	done
	if [ -n "$BENCH_DIR" ] && [ -d "$BENCH_DIR" ]; then
		if [ "$BENCH_KEEP" = 1 ] ||
		    { [ "$rc" -ne 0 ] && [ "${BENCH_KEEP_ON_FAIL:-0}" = 1 ]; }; then
			echo "# kept $BENCH_DIR" >&2
		else
			rm -rf "$BENCH_DIR"
		fi
	fi
	exit "$rc"
}

# bench_init - create the temp dir and install the cleanup trap
bench_init() {
	[ "$(id -u)" = 0 ] || die "must run as root (Postfix instance, fd limits)"
	BENCH_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mxbench.XXXXXX") || die "mktemp failed"
	chmod 755 "$BENCH_DIR"
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM HUP
}

# bench_track - remember a pid to stop at exit
bench_track() {
	BENCH_PIDS="$BENCH_PIDS $1"
}

# bench_untrack - forget a pid we stopped ourselves
bench_untrack() {
	local p out=""
	for p in $BENCH_PIDS; do
		[ "$p" = "$1" ] || out="$out $p"
	done
	BENCH_PIDS=$out
}

# bench_wait_gone - wait up to SECS for PID to exit; false if still there
bench_wait_gone() {
	local pid=$1 secs=$2 i=0
	while kill -0 "$pid" 2>/dev/null; do
		# A zombie child of ours counts as gone once reaped.
		wait "$pid" 2>/dev/null && return 0
		i=$((i + 1))
		[ "$i" -ge $((secs * 10)) ] && return 1
		sleep 0.1
	done
	return 0
}

# run_bg - run a command in the background and wait for it, so that a
# signal to this script is acted on at once and the exit trap stops it
run_bg() {
	local pid rc
	"$@" &
	pid=$!
	bench_track "$pid"
	wait "$pid"
	rc=$?
	bench_untrack "$pid"
	return "$rc"
}

# free_port - print a TCP port on 127.0.0.1 that is free right now
free_port() {
	perl -MIO::Socket::INET -e '
		my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => "127.0.0.1",
		    LocalPort => 0, Proto => "tcp", ReuseAddr => 1) or die "bind: $!\n";
		print $s->sockport, "\n";'
}

# wait_port - wait until 127.0.0.1:PORT answers with a 220 banner
wait_port() {
	local port=$1 secs=${2:-$BENCH_START_TIMEOUT}
	perl -MIO::Socket::INET -MTime::HiRes=sleep,time -e '
		my ($port, $secs) = @ARGV;
		my $end = time + $secs;
		while (time < $end) {
			my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1",
			    PeerPort => $port, Proto => "tcp", Timeout => 2);
			if ($s) {
				$s->timeout(5);
				my $l = <$s>;
				print $s "QUIT\r\n";
				exit 0 if defined $l && $l =~ /^220/;
			}
			sleep 0.1;
		}
		exit 1;' "$port" "$secs"
}

# now_ns - monotonic-enough wall clock in nanoseconds
now_ns() {
	date +%s%N
}

# median - print the median of the numbers given as arguments
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { if (NR % 2) print v[(NR + 1) / 2];
		      else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# rss_kb - VmRSS of PID in kB
rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# ---------------------------------------------------------------------
# held connections (holdconns.pl) and a counting smtp-sink

HOLD_PID=""

# hold PORT COUNT [holdconns.pl options] - open and hold COUNT sessions
# (each read its banner) for up to HOLD_SECS (600) seconds
hold() {
	local port=$1 count=$2 ready=$BENCH_DIR/ready.$1 i=0
	shift 2
	rm -f "$ready"
	perl "$BENCH_SRC"/holdconns.pl "$@" "$port" "$count" "$ready" "${HOLD_SECS:-600}" \
	    2>"$BENCH_DIR/hold.err" &
	HOLD_PID=$!
	bench_track "$HOLD_PID"
	while ! [ -s "$ready" ]; do
		kill -0 "$HOLD_PID" 2>/dev/null ||
			{ cat "$BENCH_DIR/hold.err" >&2; die "could not hold $count connections to port $port"; }
		i=$((i + 1))
		[ "$i" -ge 3000 ] && die "timed out opening $count connections"
		sleep 0.1
	done
}

# unhold - close the held connections
unhold() {
	kill -TERM "$HOLD_PID" 2>/dev/null
	wait "$HOLD_PID" 2>/dev/null
	bench_untrack "$HOLD_PID"
	HOLD_PID=""
}

# smtpd_mem - sum VmRSS and Pss (kB) of the smtpd children of master PID;
# prints "count rss pss"
smtpd_mem() {
	local master=$1 pid n=0 rss=0 pss=0 v
	for pid in $(ps --ppid "$master" -o pid=,comm= | awk '$2 == "smtpd" { print $1 }'); do
		v=$(rss_kb "$pid") || continue
		rss=$((rss + v))
		v=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null)
		pss=$((pss + ${v:-0}))
		n=$((n + 1))
	done
	echo "$n $rss $pss"
}

# sink_count - messages an "smtp-sink -c" writing to $BENCH_DIR/sink.out
# has received (its last mesg= counter)
sink_count() {
	local n
	n=$(tail -c 400 "$BENCH_DIR/sink.out" 2>/dev/null | tr '\r' '\n' |
	    grep -o 'mesg=[0-9]*' | tail -n 1 | cut -d= -f2)
	echo "${n:-0}"
}

# watch_run SRC_PID N TIMEOUT - wait, without forking a process per look,
# until smtp-source (SRC_PID, a child of this shell) has exited and the
# sink (sink.out) has counted N messages, or TIMEOUT seconds. One Perl
# process looks every 10 ms. The loop it replaces ran tail, tr, grep, cut,
# date and sleep every 50 ms, a fifth of a CPU on a 2-CPU machine, taken
# from the servers being measured. Sets WATCH_TACK (ns, when smtp-source
# was gone), WATCH_T1 (ns, when the sink had N) and WATCH_GOT; returns 1
# on timeout.
watch_run() {
	local out
	out=$(perl -MTime::HiRes=time,sleep -e '
		my ($pid, $n, $timeout, $file) = @ARGV;
		my ($tack, $got, $deadline) = (0, 0, time + $timeout);
		while (time < $deadline) {
			$tack ||= kill(0, $pid) ? 0 : time;
			if (open(my $fh, "<", $file)) {
				my $size = -s $fh;
				seek($fh, $size > 400 ? $size - 400 : 0, 0);
				local $/;
				my @m = (<$fh> // "") =~ /mesg=(\d+)/g;
				$got = $m[-1] if @m;
			}
			if ($tack && $got >= $n) {
				printf "%.0f %.0f %d\n", $tack * 1e9, time * 1e9, $got;
				exit 0;
			}
			sleep 0.01;
		}
		printf "%.0f 0 %d\n", $tack * 1e9, $got;
		exit 1;
	' "$1" "$2" "$3" "$BENCH_DIR/sink.out")
	local rc=$?
	read -r WATCH_TACK WATCH_T1 WATCH_GOT <<<"$out"
	return $rc
}

# ---------------------------------------------------------------------
# mxrelayd

MX_DIR=""
MX_PORT=""
MX_PID=""
MX_SOCK=""

# mx_check_binaries - the build products must exist
mx_check_binaries() {
	[ -x "$MXRELAYD" ] || die "no mxrelayd at $MXRELAYD (build first, or set MXRELAYD)"
	[ -x "$RELAYCTL" ] || die "no relayctl at $RELAYCTL (build first, or set RELAYCTL)"
}

# mx_start - write a config in $BENCH_DIR/mx and start mxrelayd on a free port
# (limits.max_connections and max_connections_per_client: MX_MAX_CONNECTIONS,
# default 20000; $MX_EXTRA_CONF, when set, is appended to the file)
#
# Filters that would query DNS (SPF, DNSBL) are turned off, as they are in
# the Postfix instance, so that both servers are timed on the same work.
mx_start() {
	MX_DIR=$BENCH_DIR/mx
	mkdir -p "$MX_DIR/spool" "$MX_DIR/state"
	MX_PORT=$(free_port) || die "no free port"
	MX_SOCK=$MX_DIR/control.sock
	cat >"$MX_DIR/mxrelay.conf" <<EOF
server = {
  hostname = "mx.bench.test";
  listen = [ "127.0.0.1:$MX_PORT" ];
  user = "root";
};
paths = {
  spool = "$MX_DIR/spool";
  state = "$MX_DIR/state";
  control_socket = "$MX_SOCK";
};
limits = {
  max_connections = ${MX_MAX_CONNECTIONS:-20000};
  max_connections_per_client = ${MX_MAX_CONNECTIONS:-20000};
};
filters = {
  spf = { enabled = false; };
  dnsbl = { zones = [ ]; };
  ${MX_FILTERS_EXTRA:-}
};
${MX_EXTRA_CONF:-}
EOF
	"$MXRELAYD" -c "$MX_DIR/mxrelay.conf" 2>"$MX_DIR/log" &
	MX_PID=$!
	bench_track "$MX_PID"
	local i=0
	while ! [ -S "$MX_SOCK" ] || ! wait_port "$MX_PORT" 1; do
		kill -0 "$MX_PID" 2>/dev/null || { tail -n 20 "$MX_DIR/log" >&2; die "mxrelayd exited at startup"; }
		i=$((i + 1))
		[ "$i" -ge "$BENCH_START_TIMEOUT" ] && { tail -n 20 "$MX_DIR/log" >&2; die "mxrelayd did not come up on 127.0.0.1:$MX_PORT"; }
		sleep 1
	done
	note "mxrelayd pid $MX_PID on 127.0.0.1:$MX_PORT"
}

# mx_ctl - run relayctl against the bench daemon
mx_ctl() {
	"$RELAYCTL" -s "$MX_SOCK" "$@"
}

# mx_stop - stop mxrelayd gracefully (SIGTERM), then by force
mx_stop() {
	[ -n "$MX_PID" ] || return 0
	kill -TERM "$MX_PID" 2>/dev/null || true
	bench_wait_gone "$MX_PID" 10 || kill -KILL "$MX_PID" 2>/dev/null || true
	wait "$MX_PID" 2>/dev/null || true
	bench_untrack "$MX_PID"
	MX_PID=""
}

# ---------------------------------------------------------------------
# A private Postfix instance (its own config, queue and data directories).

PF_DIR=""
PF_PORT=""

# pf_start - create and start a Postfix instance whose smtpd listens on a
# free loopback port and accepts joe@example.test into its own queue.
#
# Delivery goes to a loopback port nobody listens on (connection refused,
# so the mail is deferred), the same dead downstream mxrelayd gets: both
# servers run their normal queue manager behind the SMTP server, with
# Postfix's normal fsync on acceptance.
#   $1: smtpd process limit (default 100, Postfix's default)
pf_start() {
	local limit=${1:-100} dead
	PF_DIR=$BENCH_DIR/pf
	mkdir -p "$PF_DIR/etc" "$PF_DIR/spool" "$PF_DIR/data"
	# postfix-script refuses to start unless mail_owner owns data_directory;
	# it creates the queue subdirectories itself (post-install create-missing).
	chown postfix "$PF_DIR/data"
	PF_PORT=$(free_port) || die "no free port"
	dead=$(free_port) || die "no free port"
	cat >"$PF_DIR/etc/main.cf" <<EOF
compatibility_level = 3.6
config_directory = $PF_DIR/etc
queue_directory = $PF_DIR/spool
data_directory = $PF_DIR/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-bench
maillog_file = $PF_DIR/maillog
maillog_file_prefixes = $PF_DIR
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = pf.bench.test
mydomain = bench.test
myorigin = \$myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
relay_domains = example.test
relay_recipient_maps = inline:{ joe@example.test=ok }
smtpd_recipient_restrictions = reject_unauth_destination
relay_transport = relay:[127.0.0.1]:$dead
default_process_limit = $limit
smtpd_banner = \$myhostname ESMTP
smtpd_tls_security_level = none
smtp_tls_security_level = none
biff = no
# No arrival-rate throttle (cleanup pausing up to 1 s per message when
# mail arrives faster than it leaves): we time acceptance, and the
# delivery side is a dead end on purpose.
in_flow_delay = 0
EOF
	# the services shared with the tests, after our smtpd
	{ echo "127.0.0.1:$PF_PORT inet n - n - $limit smtpd"
	  cat "$BENCH_SRC/../t/data/postfix-master.cf"; } >"$PF_DIR/etc/master.cf" ||
		die "cannot write $PF_DIR/etc/master.cf"
	BENCH_PF_DIRS="$BENCH_PF_DIRS $PF_DIR"
	"$POSTFIX" -c "$PF_DIR/etc" check >"$PF_DIR/check.log" 2>&1 || true
	"$POSTFIX" -c "$PF_DIR/etc" start >"$PF_DIR/start.log" 2>&1 ||
		{ cat "$PF_DIR/start.log" >&2; die "postfix start failed"; }
	wait_port "$PF_PORT" || { cat "$PF_DIR/start.log" "$PF_DIR/maillog" >&2 2>/dev/null; die "postfix smtpd did not come up"; }
	note "postfix instance $PF_DIR/etc on 127.0.0.1:$PF_PORT"
}

# pf_queue_count - messages in the instance's queue. qmgr renames files
# from queue to queue while we look, and a file keeps its queue ID as its
# name: count distinct names, scanning the queues in the order mail moves.
pf_queue_count() {
	local q
	for q in maildrop incoming active deferred hold; do
		find "$PF_DIR/spool/$q" -type f -printf '%f\n' 2>/dev/null
	done | sort -u | wc -l
}

# pf_master_wait - wait up to 10 s for the master of instance DIR to exit
pf_master_wait() {
	local i=0 mpid
	mpid=$(tr -d ' ' <"$1/spool/pid/master.pid" 2>/dev/null)
	while [ -n "$mpid" ] && kill -0 "$mpid" 2>/dev/null && [ "$i" -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}

# pf_kill - abort the Postfix instance in DIR (exit trap)
pf_kill() {
	"$POSTFIX" -c "$1/etc" abort >/dev/null 2>&1 || true
	pf_master_wait "$1"
}

# pf_stop - stop the Postfix instance
pf_stop() {
	[ -n "$PF_DIR" ] || return 0
	"$POSTFIX" -c "$PF_DIR/etc" stop >/dev/null 2>&1 ||
		"$POSTFIX" -c "$PF_DIR/etc" abort >/dev/null 2>&1 || true
	local d out=""
	for d in $BENCH_PF_DIRS; do
		[ "$d" = "$PF_DIR" ] || out="$out $d"
	done
	BENCH_PF_DIRS=$out
	# master exits asynchronously; wait so the queue can be removed.
	pf_master_wait "$PF_DIR"
	PF_DIR=""
}
