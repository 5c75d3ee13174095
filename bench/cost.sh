#!/bin/bash
# cost.sh - what one operation costs a pasta, measured in ways that a loaded
# machine disturbs little: system calls of its event loop's thread per
# operation (strace -c), and its CPU time per operation (utime + stime from
# /proc). Throughput on a shared 2-core machine is noise; these are not.
#
#   sudo bench/cost.sh                          # gopasta built from the repo
#   sudo bench/cost.sh /path/to/pasta OTHER...  # each binary given (the C pasta fails here yet)
#   sudo CASES="tcp-rr udp-up" N=2000 bench/cost.sh
#
# Cases (each in its own pair of network namespaces made here, 192.0.2.0/24
# only; pasta runs as root with --config-net):
#   tcp-rr          32-byte request/response on one connection, through the tap
#   tcp-crr         short connections (connect, 32 bytes each way, close), through the tap
#   tcp-rr-splice   tcp-rr to a server on the host's 127.0.0.1 (-T)
#   tcp-crr-splice  tcp-crr to a server on the host's 127.0.0.1 (-T)
#   udp-up          iperf3 -u -l 1400 at UDP_RATE (400M), namespace to the remote
#   udp-down        the same with -R
# Every process it starts is bounded by timeout(1) and killed at exit.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
export PATH="/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CASES=${CASES:-"tcp-rr tcp-crr tcp-rr-splice tcp-crr-splice udp-up udp-down"}
N=${N:-3000}              # round trips or connections per TCP case
UDP_RATE=${UDP_RATE:-400M} # iperf3 -b: below what pasta can take, so nothing is lost
UDP_TIME=${UDP_TIME:-3}

die() {
	echo "cost.sh: $*" >&2
	exit 1
}
[ "$(id -u)" = 0 ] || die "run me as root (I make network namespaces)"
for tool in ip strace iperf3 jq timeout go bc; do
	command -v $tool >/dev/null || die "missing tool: $tool"
done

SCRATCH=$(mktemp -d /tmp/gopasta-cost.XXXXXX) || die "mktemp failed"
chmod 755 "$SCRATCH" # the C pasta runs the command as nobody
H=gpc-h-$$ R=gpc-r-$$
cleanup() {
	for ns in "$H" "$R"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

(cd "$REPO" && go build -o "$SCRATCH/benchtool" ./bench/benchtool) || die "cannot build bench/benchtool"
BT=$SCRATCH/benchtool
PASTAS=("$@")
if [ ${#PASTAS[@]} = 0 ]; then
	(cd "$REPO" && go build -o "$SCRATCH/pasta" .) || die "cannot build pasta"
	PASTAS=("$SCRATCH/pasta")
fi

# sandbox: the "host" netns H (192.0.2.1, default via 192.0.2.254) and the
# "remote" netns R (192.0.2.2 and .254) on a veth pair; servers in R and on
# H's loopback.
sandbox() {
	teardown # what a failed run left
	ip netns add "$H" && ip netns add "$R" &&
		ip link add cost0 netns "$H" type veth peer name cost1 netns "$R" &&
		ip -n "$R" addr add 192.0.2.2/24 dev cost1 && ip -n "$R" addr add 192.0.2.254/24 dev cost1 &&
		ip -n "$R" link set cost1 up && ip -n "$R" link set lo up &&
		ip -n "$H" addr add 192.0.2.1/24 dev cost0 && ip -n "$H" link set cost0 up &&
		ip -n "$H" link set lo up && ip -n "$H" route add default via 192.0.2.254 || return 1
	ip netns exec "$R" timeout 120 "$BT" tcprr-server -l :5303 -t 110s >/dev/null 2>&1 &
	ip netns exec "$R" timeout 120 "$BT" connrate-server -l :5301 -t 110s >/dev/null 2>&1 &
	ip netns exec "$H" timeout 120 "$BT" tcprr-server -l 127.0.0.1:5303 -t 110s >/dev/null 2>&1 &
	ip netns exec "$H" timeout 120 "$BT" connrate-server -l 127.0.0.1:5301 -t 110s >/dev/null 2>&1 &
	ip netns exec "$R" timeout 120 iperf3 -s -p 5201 >/dev/null 2>&1 &
	sleep 0.5
}
teardown() {
	for ns in "$H" "$R"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
}

# command CASE COUNT: pasta's forwarding options, then -- and the
# workload, for COUNT operations (TCP cases).
command_for() {
	local n=$2
	case $1 in
	tcp-rr) echo "-T none -- $BT tcprr-client -c 192.0.2.2:5303 -d 60s -max $n" ;;
	tcp-crr) echo "-T none -- $BT connrate-client -c 192.0.2.2:5301 -d 60s -p 1 -max $n" ;;
	tcp-rr-splice) echo "-T 5303 -- $BT tcprr-client -c 127.0.0.1:5303 -d 60s -max $n" ;;
	tcp-crr-splice) echo "-T 5301 -- $BT connrate-client -c 127.0.0.1:5301 -d 60s -p 1 -max $n" ;;
	udp-up) echo "-T none -- iperf3 -c 192.0.2.2 -u -b $UDP_RATE -l 1400 -w 4M -t $UDP_TIME -J" ;;
	udp-down) echo "-T none -- iperf3 -c 192.0.2.2 -u -b $UDP_RATE -l 1400 -w 4M -t $UDP_TIME -J -R" ;;
	*) die "unknown case $1" ;;
	esac
}

# ops CASE FILE: operations done, from the workload's JSON.
ops() {
	case $1 in
	udp-*) jq '.end.sum_received.packets - .end.sum_received.lost_packets' "$2" ;;
	*) jq '.done' "$2" ;;
	esac
}

# syscalls PASTA CASE: system calls of the loop's thread per operation.
syscalls() {
	local out=$SCRATCH/out.json n calls
	sandbox || die "sandbox setup failed"
	# shellcheck disable=SC2046
	ip netns exec "$H" timeout 120 strace -c -o "$SCRATCH/strace" "$1" --config-net -t none -u none -U none \
		$(command_for "$2" "$N") >"$out" 2>/dev/null
	teardown
	n=$(ops "$2" "$out" 2>/dev/null)
	case $n in '' | null | 0) echo fail && return ;; esac
	calls=$(awk '$NF == "total" { print $(NF-2) }' "$SCRATCH/strace")
	echo "scale=2; $calls / $n" | bc
}

# cputime PASTA CASE COUNT: pasta's CPU time (clock ticks, all threads,
# not its children) for COUNT operations, and the operations done.
cputime() {
	local out=$SCRATCH/out.json pp pid="" last=0 s i
	sandbox || die "sandbox setup failed"
	# shellcheck disable=SC2046
	ip netns exec "$H" timeout 120 "$1" --config-net -t none -u none -U none \
		$(command_for "$2" "$3") >"$out" 2>/dev/null &
	pp=$!
	for ((i = 0; i < 100; i++)); do
		sleep 0.05
		pid=$(pgrep -P "$pp" | head -1)
		[ -n "$pid" ] && break
	done
	# The last utime + stime before pasta exits.
	while [ -n "$pid" ] && s=$(cut -d' ' -f14,15 "/proc/$pid/stat" 2>/dev/null) && [ -n "$s" ]; do
		last=$((${s% *} + ${s#* }))
		sleep 0.05
	done
	wait "$pp"
	teardown
	echo "$last $(ops "$2" "$out" 2>/dev/null)"
}

# cpu PASTA CASE: CPU microseconds per operation. For TCP cases, the CPU
# of a run of one operation (start-up, set-up) is taken off.
cpu() {
	local t n t1 n1
	read -r t n <<<"$(cputime "$1" "$2" "$N")"
	case $n in '' | null | 0) echo fail && return ;; esac
	t1=0 n1=0
	case $2 in tcp-*) read -r t1 n1 <<<"$(cputime "$1" "$2" 1)" ;; esac
	echo "scale=1; ($t - $t1) * 1000000 / $(getconf CLK_TCK) / ($n - $n1)" | bc
}

echo "| pasta | case | system calls per operation | CPU µs per operation |"
echo "| --- | --- | --: | --: |"
for p in "${PASTAS[@]}"; do
	for c in $CASES; do
		echo "| $(basename "$p") | $c | $(syscalls "$p" "$c") | $(cpu "$p" "$c") |"
	done
done
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg), N=$N, UDP at $UDP_RATE for $UDP_TIME s;"
echo "system calls: of the thread that runs the loop (strace -c without -f); CPU: all of pasta's threads,"
echo "less a run of one operation for the TCP cases (start-up); the clock ticks are 10 ms, so keep N large."
