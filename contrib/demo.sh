#!/bin/sh
# demo.sh - run mxrelayd from the build tree on etc/demo.conf, give it a
# domain and a mailbox, send it one message that it delivers to a local
# smtp-sink standing in for the customer's old server, and leave it running
# in the foreground (Ctrl-C stops it). Everything lives under /tmp/mxrelay-demo.
set -e
cd "$(dirname "$0")/.."
mkdir -p /tmp/mxrelay-demo/sink
# the "old server": Postfix's smtp-sink, one file per message received
smtp-sink -u root -d /tmp/mxrelay-demo/sink/%M. 127.0.0.1:2526 100 &
sink=$!
./mxrelayd -c etc/demo.conf &
pid=$!
trap 'kill $pid $sink 2>/dev/null; wait $pid 2>/dev/null' INT TERM EXIT
for i in $(seq 50); do
	[ -S /tmp/mxrelay-demo/control.sock ] && break
	sleep 0.1
done
ctl() { echo "+ relayctl $*"; ./relayctl -c etc/demo.conf "$@"; }
ctl domain add example.com --legacy '[127.0.0.1]:2526' 2>/dev/null || true
ctl address add joe@example.com || true
swaks --server 127.0.0.1:2525 --from someone@example.org --to joe@example.com \
	--header "Subject: mxrelay demo" --body "Hello from the demo." || true
swaks --server 127.0.0.1:2525 --from someone@example.org --to joe@other.example || true
sleep 2
ctl status
ctl queue list
echo "delivered to the old server (smtp-sink): $(ls /tmp/mxrelay-demo/sink | wc -l) message(s) in /tmp/mxrelay-demo/sink"
echo "mxrelayd (pid $pid) listens on 127.0.0.1:2525; try: ./relayctl -c etc/demo.conf switch example.com hosted --force"
echo "Press Ctrl-C to stop it."
wait $pid
