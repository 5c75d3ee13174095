#!/bin/bash
# soak.sh - run gopasta (or the C pasta) for a long time under mixed traffic
# from its namespace, as an unprivileged user with RLIMIT_NOFILE 20000, and
# print its descriptors and resident memory every 10 s; at the end, the
# first, last and largest values after the first minute. Not part of CI.
#
#   sudo bench/soak.sh                       # 30 minutes, gopasta built from the repo
#   sudo MINUTES=2 bench/soak.sh             # a short run
#   sudo PASTA=/path/to/pasta bench/soak.sh  # another pasta (a binary or a wrapper)
#
# The traffic is loadtool soak (test/testdata/loadtool): a bulk echo
# connection, short connections one after the other, UDP exchanges from new
# sockets, and every 5 s a storm of 500 connections, a spray of 1000
# datagrams to closed ports and a burst of 500 SYNs to a closed port. It
# only reaches the namespaces this script makes (192.0.2.0/24).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
export PATH="/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export LC_ALL=C
MINUTES=${MINUTES:-30}
NOFILE=${NOFILE:-20000}
SOAK_USER=${SOAK_USER:-gopasta-soak} # its own user: bench/run.sh ends all of gopasta-bench's processes
HNS=gps-host RNS=gps-remote HIF=gpsveth0 RIF=gpspeer0
PORT=7007

die() { echo "soak.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run it as root (it makes network namespaces and drops to $SOAK_USER)"
case $MINUTES in '' | *[!0-9]*) die "MINUTES must be a positive integer" ;; esac

WORK=$(mktemp -d /tmp/gopasta-soak.XXXXXX)
chmod 755 "$WORK"
cleanup() {
	set +e
	[ -n "${LOAD_PID:-}" ] && kill -- -"$LOAD_PID" 2>/dev/null
	[ -n "${SERVER_PID:-}" ] && kill -- -"$SERVER_PID" 2>/dev/null
	for ns in $HNS $RNS; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

id "$SOAK_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$SOAK_USER"
chmod 666 /dev/net/tun

if [ -z "${PASTA:-}" ]; then
	(cd "$REPO" && go build -o "$WORK/pasta" .)
	PASTA=$WORK/pasta
fi
(cd "$REPO/test/testdata/loadtool" && CGO_ENABLED=0 GOWORK=off go build -o "$WORK/loadtool" main.go)

for ns in $HNS $RNS; do ip netns del "$ns" 2>/dev/null || true; ip netns add "$ns"; done
ip link add "$HIF" netns "$HNS" type veth peer name "$RIF" netns "$RNS"
ip -n "$RNS" link set lo up
ip -n "$RNS" addr add 192.0.2.2/24 dev "$RIF"
ip -n "$RNS" addr add 192.0.2.254/24 dev "$RIF"
ip -n "$RNS" link set "$RIF" up
ip -n "$HNS" link set lo up
ip -n "$HNS" addr add 192.0.2.1/24 dev "$HIF"
ip -n "$HNS" link set "$HIF" up
ip -n "$HNS" route add default via 192.0.2.254
ip netns exec "$HNS" sysctl -qw net.ipv4.ping_group_range="0 2147483647"

setsid nsenter --net=/run/netns/"$RNS" "$WORK/loadtool" serve -port $PORT >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
uid=$(id -u "$SOAK_USER") gid=$(id -g "$SOAK_USER")
setsid prlimit --nofile="$NOFILE:$NOFILE" -- nsenter --net=/run/netns/"$HNS" \
	setpriv --reuid="$uid" --regid="$gid" --clear-groups --inh-caps=-all -- \
	env -i PATH="$PATH" HOME="$WORK" "$PASTA" --config-net -- \
	"$WORK/loadtool" soak -dst 192.0.2.2:$PORT -d "${MINUTES}m" -limit "$((MINUTES + 1))m" -settle 0s \
	>"$WORK/load.log" 2>&1 &
LOAD_PID=$!

# pasta's data path is the process that holds the tap: a descriptor whose
# fdinfo names an interface ("iff:"); its path can't tell, as confined pasta
# has no /dev and the link reads "/net/tun".
pasta_pid() {
	for p in $(pgrep -s "$LOAD_PID"); do
		if grep -qs '^iff:' /proc/"$p"/fdinfo/* 2>/dev/null; then echo "$p"; return; fi
	done
}
for _ in $(seq 100); do PID=$(pasta_pid); [ -n "$PID" ] && break; sleep 0.1; done
[ -n "${PID:-}" ] || { cat "$WORK/load.log"; die "pasta did not start"; }

printf '%8s %8s %10s\n' seconds fds rss_kib
start=$(date +%s)
rows=()
while kill -0 "$PID" 2>/dev/null; do
	t=$(($(date +%s) - start))
	fds=$(ls /proc/"$PID"/fd 2>/dev/null | wc -l)
	rss=$(awk '/^VmRSS:/ {print $2}' /proc/"$PID"/status 2>/dev/null || echo 0)
	[ -n "$rss" ] || break
	printf '%8d %8d %10d\n' "$t" "$fds" "$rss"
	rows+=("$t $fds $rss")
	sleep 10
done
echo
grep -E '^(LOAD-END|PROBE)' "$WORK/load.log" || true
printf '%s\n' "${rows[@]}" | awk '$1 >= 60 {
	if (!n++) { ffd = $2; frss = $3 }
	lfd = $2; lrss = $3
	if ($2 > mfd) mfd = $2
	if ($3 > mrss) mrss = $3
} END {
	if (n) printf "after the first minute: descriptors first %d last %d max %d; RSS KiB first %d last %d max %d\n", ffd, lfd, mfd, frss, lrss, mrss
}'
