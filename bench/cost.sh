#!/bin/bash
# cost.sh - what one operation costs a pasta, measured in ways that a loaded
# machine disturbs little: system calls of its event loop's thread per
# operation (strace -c), and its CPU time per operation (schedstat, from
# /proc). Throughput on a shared 2-core machine is noise; these are not.
#
#   sudo bench/cost.sh                          # gopasta built from the repo, the C pastas 2026-10 and 2025-05
#   sudo CPASTA_ROOTFS= bench/cost.sh           # gopasta alone
#   sudo bench/cost.sh [LABEL=]PATH...          # each pasta given: a binary or a wrapper taking pasta's arguments
#   sudo CASES="tcp-rr udp-up" N=2000 bench/cost.sh
#   sudo TABLES=/tmp/t bench/cost.sh            # and keep strace's tables (which calls)
#   sudo PROFILES=/tmp/p bench/cost.sh          # and profile the loop's thread (perf report -i ...)
#
# Cases (each in its own pair of network namespaces made here, 192.0.2.0/24
# only; pasta runs as the unprivileged user COST_USER with --config-net, as
# Podman runs it):
#   tcp-rr          32-byte request/response on one connection, through the tap
#   tcp-crr         short connections (connect, 32 bytes each way, close), through the tap
#   tcp-rr-splice   tcp-rr to a server on the host's 127.0.0.1 (-T)
#   tcp-crr-splice  tcp-crr to a server on the host's 127.0.0.1 (-T)
#   splice-in       iperf3 -n BULK from the host's 127.0.0.1 to a server in the namespace (-t): per MiB
#   splice-out      iperf3 -n BULK from the namespace to a server on the host's 127.0.0.1 (-T): per MiB
#   udp-up          iperf3 -u -l 1400 at UDP_RATE (400M), namespace to the remote
#   udp-down        the same with -R
#
# How: the workload waits for a gate file. Once pasta is up, the process
# that holds the tap (its /proc fdinfo names an interface) is the one that
# runs the loop, on its main thread (both pastas). For the system calls,
# strace -c attaches to that thread alone, then the gate opens, and strace
# detaches when the workload says it is done; for the CPU time, a second
# run reads /proc/PID/task/*/schedstat (all threads) just before the gate and just
# after the workload. Neither counts start-up or the command's exit.
# Every process it starts is bounded by timeout(1) and killed at exit.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
export PATH="/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CASES=${CASES:-"tcp-rr tcp-crr tcp-rr-splice tcp-crr-splice splice-in splice-out udp-up udp-down"}
N=${N:-3000}               # round trips or connections per TCP case
BULK=${BULK:-2G}           # bytes per splice-in/splice-out run (iperf3 -n)
UDP_RATE=${UDP_RATE:-400M} # iperf3 -b: below what pasta can take, so nothing is lost
UDP_TIME=${UDP_TIME:-3}
COST_USER=${COST_USER:-gopasta-cost}
TABLES=${TABLES:-} # a folder: keep each strace -c table there, as PASTA-CASE.txt
PROFILES=${PROFILES:-} # a folder: a third run under perf record -g, as PASTA-CASE.perf
# With no arguments: gopasta, then the C pasta of each of these root file
# systems of test/podman/env/build.sh (sid: passt 2026-10-02, trixie:
# 2025-05-03), built if missing, run through the rootfs's loader.
CPASTA_ROOTFS=${CPASTA_ROOTFS-"sid trixie"}

die() {
	echo "cost.sh: $*" >&2
	exit 1
}
[ "$(id -u)" = 0 ] || die "run me as root (I make network namespaces)"
for tool in ip strace iperf3 jq timeout go bc setpriv useradd flock ss; do
	command -v $tool >/dev/null || die "missing tool: $tool"
done
[ -z "$PROFILES" ] || command -v perf >/dev/null || die "missing tool: perf (for PROFILES)"
[ -c /dev/net/tun ] || die "no /dev/net/tun"
# An unprivileged pasta opens the tun device itself (as bench/run.sh, which
# leaves it so too: it is what Debian ships).
chmod 0666 /dev/net/tun || die "cannot chmod /dev/net/tun"

if ! id "$COST_USER" >/dev/null 2>&1; then
	timeout 30 flock /run/lock/gopasta-bench-useradd.lock \
		useradd --system --no-create-home --shell /usr/sbin/nologin "$COST_USER" || id "$COST_USER" >/dev/null 2>&1 ||
		die "cannot create user $COST_USER"
fi
CU=$(id -u "$COST_USER") CG=$(id -g "$COST_USER")

SCRATCH=$(mktemp -d /tmp/gopasta-cost.XXXXXX) || die "mktemp failed"
chmod 755 "$SCRATCH"
mkdir "$SCRATCH/home" "$SCRATCH/run" && chown "$CU:$CG" "$SCRATCH/home" "$SCRATCH/run" || die "cannot make the scratch folders"
AS_USER=(setpriv "--reuid=$CU" "--regid=$CG" --clear-groups --inh-caps=-all -- env -i
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "HOME=$SCRATCH/home" "LC_ALL=C")
H=gpc-h-$$ R=gpc-r-$$
STRACE_PID=""
teardown() {
	[ -n "$STRACE_PID" ] && kill -KILL "$STRACE_PID" 2>/dev/null
	STRACE_PID=""
	for ns in "$H" "$R"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	return 0
}
cleanup() {
	teardown
	rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

(cd "$REPO" && go build -o "$SCRATCH/benchtool" ./bench/benchtool) || die "cannot build bench/benchtool"
BT=$SCRATCH/benchtool
# PASTAS: the commands to measure, LABELS: their names in the table,
# DESCS: what they are.
PASTAS=() LABELS=() DESCS=()
for a in "$@"; do
	l=${a%%=*} p=${a#*=}
	[ "$l" = "$a" ] && l=$(basename "$a")
	p=$(readlink -f "$p") && [ -x "$p" ] || die "not an executable: ${a#*=}"
	PASTAS+=("$p") LABELS+=("$l") DESCS+=("$p")
done
if [ $# = 0 ]; then
	(cd "$REPO" && go build -o "$SCRATCH/pasta" .) || die "cannot build pasta"
	PASTAS=("$SCRATCH/pasta") LABELS=(gopasta) DESCS=("built from $REPO at $(git -C "$REPO" describe --always --dirty 2>/dev/null)")
	for r in $CPASTA_ROOTFS; do
		case $r in sid | trixie) ;; *) die "CPASTA_ROOTFS: sid or trixie, not '$r'" ;; esac
		d=$(bash "$REPO/test/podman/env/build.sh" --dir "$r")
		if [ ! -x "$d/bin/pasta" ]; then
			echo "cost.sh: building the $r root file system for its C pasta (test/podman/env/build.sh)" >&2
			bash "$REPO/test/podman/env/build.sh" "$r" >"$SCRATCH/build-$r.log" 2>&1 ||
				die "cannot build the $r rootfs: $(tail -1 "$SCRATCH/build-$r.log")"
		fi
		v=$(dpkg-query --admindir="$d/rootfs/var/lib/dpkg" -W -f '${Version}' passt)
		# 0.0~git20261002.cba3570-1 -> C pasta 2026-10-02
		l=$(echo "$v" | sed -n 's/.*git\([0-9]\{4\}\)\([0-9][0-9]\)\([0-9][0-9]\).*/\1-\2-\3/p')
		PASTAS+=("$d/bin/pasta") LABELS+=("C pasta ${l:-$r}") DESCS+=("passt $v of the Debian $r rootfs, through its loader: $d/bin/pasta")
	done
fi

# wait_for TENTHS CMD...: poll CMD every 0.1 s, at most TENTHS times.
wait_for() {
	local n=$1 i
	shift
	for ((i = 0; i < n; i++)); do
		"$@" && return 0
		sleep 0.1
	done
	"$@"
}

# sandbox: the "host" netns H (192.0.2.1, default via 192.0.2.254) and the
# "remote" netns R (192.0.2.2 and .254) on a veth pair; servers in R and on
# H's loopback, as the user.
sandbox() {
	teardown # what a failed run left
	ip netns add "$H" && ip netns add "$R" &&
		ip link add cost0 netns "$H" type veth peer name cost1 netns "$R" &&
		ip -n "$R" addr add 192.0.2.2/24 dev cost1 && ip -n "$R" addr add 192.0.2.254/24 dev cost1 &&
		ip -n "$R" link set cost1 up && ip -n "$R" link set lo up &&
		ip -n "$H" addr add 192.0.2.1/24 dev cost0 && ip -n "$H" link set cost0 up &&
		ip -n "$H" link set lo up && ip -n "$H" route add default via 192.0.2.254 || return 1
	ip netns exec "$R" timeout 150 "$BT" tcprr-server -l :5303 -t 140s >/dev/null 2>&1 &
	ip netns exec "$R" timeout 150 "$BT" connrate-server -l :5301 -t 140s >/dev/null 2>&1 &
	ip netns exec "$R" timeout 150 iperf3 -s -p 5201 >/dev/null 2>&1 &
	ip netns exec "$H" timeout 150 "${AS_USER[@]}" "$BT" tcprr-server -l 127.0.0.1:5303 -t 140s >/dev/null 2>&1 &
	ip netns exec "$H" timeout 150 "${AS_USER[@]}" "$BT" connrate-server -l 127.0.0.1:5301 -t 140s >/dev/null 2>&1 &
	ip netns exec "$H" timeout 150 "${AS_USER[@]}" iperf3 -s -B 127.0.0.1 -p 5202 >/dev/null 2>&1 &
	listening() { [ "$(ip netns exec "$H" ss -Htln | wc -l)" -ge 3 ] && [ "$(ip netns exec "$R" ss -Htln | wc -l)" -ge 3 ]; }
	wait_for 50 listening
}

# workload CASE COUNT: pasta's forwarding options, then -- and the command
# in the namespace, for COUNT operations (TCP cases); it writes the
# client's JSON to $SCRATCH/run/out.json unless the client runs on the
# host (splice-in).
workload() {
	local n=$2 cmd
	case $1 in
	tcp-rr) cmd="-T none -- $BT tcprr-client -c 192.0.2.2:5303 -d 100s -max $n" ;;
	tcp-crr) cmd="-T none -- $BT connrate-client -c 192.0.2.2:5301 -d 100s -p 1 -max $n" ;;
	tcp-rr-splice) cmd="-T 5303 -- $BT tcprr-client -c 127.0.0.1:5303 -d 100s -max $n" ;;
	tcp-crr-splice) cmd="-T 5301 -- $BT connrate-client -c 127.0.0.1:5301 -d 100s -p 1 -max $n" ;;
	splice-in) cmd="-t 5204 -T none -- iperf3 -s -1 -p 5204" ;;
	splice-out) cmd="-T 5202 -- iperf3 -c 127.0.0.1 -p 5202 -n $BULK -J" ;;
	udp-up) cmd="-T none -- iperf3 -c 192.0.2.2 -u -b $UDP_RATE -l 1400 -w 4M -t $UDP_TIME -J" ;;
	udp-down) cmd="-T none -- iperf3 -c 192.0.2.2 -u -b $UDP_RATE -l 1400 -w 4M -t $UDP_TIME -J -R" ;;
	*) die "unknown case $1" ;;
	esac
	echo "$cmd"
}

# ops CASE FILE: operations done, from the client's JSON.
ops() {
	case $1 in
	udp-*) jq '.end.sum_received.packets - .end.sum_received.lost_packets' "$2" ;;
	splice-*) jq '.end.sum_received.bytes / 1048576 | floor' "$2" ;;
	*) jq '.done' "$2" ;;
	esac
}

# loop_pid: the process in H that holds a tap (its fdinfo names the
# interface): the one that runs pasta's loop.
loop_pid() {
	local p f
	for p in $(ip netns pids "$H" 2>/dev/null); do
		for f in /proc/"$p"/fdinfo/*; do
			grep -qs '^iff:' "$f" && echo "$p" && return 0
		done
	done
	return 1
}

# cpu_ns PID: nanoseconds on a CPU of all its threads, then of its main
# thread (the loop's): schedstat's first field, exact, unlike stat's 10 ms
# ticks.
cpu_ns() {
	local all
	all=$(cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ t += $1 } END { printf "%d\n", t }')
	echo "$all $(cut -d' ' -f1 "/proc/$1/task/$1/schedstat")"
}

# measure PASTA LABEL CASE MODE: one run; MODE strace prints the system
# calls of the loop's thread per operation, MODE cpu its process's CPU µs
# per operation (all threads, then the loop's in parentheses).
measure() {
	local pasta=$1 file=${2//[^A-Za-z0-9.-]/_} c=$3 mode=$4 run=$SCRATCH/run out pid pp t0 t1 m0 m1 n calls
	rm -f "$run"/*
	out=$run/out.json
	sandbox || { echo "sandbox failed" && return; }
	# The command waits for the gate, runs, says it is done and waits to
	# be released, so that only the workload is measured.
	local cmd gate=$run/gate fin=$run/done rel=$run/release ready=$run/ready
	read -r -a cmd <<<"$(workload "$c" "$N")"
	local fwd=() i
	for ((i = 0; i < ${#cmd[@]}; i++)); do
		[ "${cmd[i]}" = -- ] && break
		fwd+=("${cmd[i]}")
	done
	cmd=("${cmd[@]:i+1}")
	# shellcheck disable=SC2016
	# A server (iperf3 -s, splice-in) says it is ready once it listens.
	local script='g=$1 f=$2 r=$3 y=$4 o=$5; shift 5
		if [ "$1 $2" = "iperf3 -s" ]; then
			"$@" >"$o.server" 2>&1 & s=$!
			i=0; until ss -Htln | grep -q ":5204 "; do i=$((i+1)); [ $i -le 100 ] || exit 1; sleep 0.05; done
			: >"$y"; wait $s
		else
			: >"$y"; i=0; until [ -e "$g" ]; do i=$((i+1)); [ $i -le 600 ] || exit 1; sleep 0.05; done
			"$@" >"$o"
		fi
		: >"$f"; i=0; until [ -e "$r" ]; do i=$((i+1)); [ $i -le 600 ] || exit 1; sleep 0.05; done'
	ip netns exec "$H" timeout 140 "${AS_USER[@]}" "$pasta" --config-net -u none -U none "${fwd[@]}" \
		-- sh -c "$script" sh "$gate" "$fin" "$rel" "$ready" "$out" "${cmd[@]}" >/dev/null 2>"$run/pasta.err" &
	pp=$!
	if ! wait_for 100 test -e "$ready" || ! pid=$(loop_pid); then
		echo "no start: $(tail -1 "$run/pasta.err")"
		return
	fi
	if [ "$mode" = strace ]; then
		strace -c -o "$run/strace" -p "$pid" 2>/dev/null &
		STRACE_PID=$!
		traced() { grep -q '^TracerPid:[[:space:]]*[1-9]' "/proc/$pid/status"; }
		wait_for 50 traced || { echo "strace did not attach" && return; }
	elif [ "$mode" = perf ]; then
		mkdir -p "$PROFILES"
		perf record -q -e cpu-clock -g -t "$pid" -o "$PROFILES/$file-$c.perf" 2>/dev/null &
		STRACE_PID=$!
		sleep 0.5 # (perf has no sign that it started)
	else
		read -r t0 m0 <<<"$(cpu_ns "$pid")"
	fi
	: >"$gate"
	if [ "$c" = splice-in ]; then
		ip netns exec "$H" timeout 100 "${AS_USER[@]}" iperf3 -c 127.0.0.1 -p 5204 -n "$BULK" -J >"$out" 2>/dev/null
	fi
	wait_for 1200 test -e "$fin"
	if [ "$mode" != cpu ]; then
		kill -INT "$STRACE_PID"
		wait "$STRACE_PID"
		STRACE_PID=""
	else
		read -r t1 m1 <<<"$(cpu_ns "$pid")"
	fi
	: >"$rel"
	wait "$pp"
	teardown
	n=$(ops "$c" "$out" 2>/dev/null)
	case $n in '' | null | 0) echo "fail" && return ;; esac
	if [ "$mode" = strace ]; then
		calls=$(awk '$NF == "total" { print $(NF-2) }' "$run/strace")
		[ -n "$TABLES" ] && mkdir -p "$TABLES" && cp "$run/strace" "$TABLES/$file-$c.txt"
		echo "scale=2; $calls / $n" | bc
	else
		echo "$(echo "scale=1; ($t1 - $t0) / 1000 / $n" | bc) ($(echo "scale=1; ($m1 - $m0) / 1000 / $n" | bc))"
	fi
}

# The pastas take turns on each case, so that load from elsewhere spreads
# over all of them; a line on stderr per measurement, the table at the end.
declare -A CALLS CPU
for c in $CASES; do
	for i in "${!PASTAS[@]}"; do
		CALLS[$c.$i]=$(measure "${PASTAS[i]}" "${LABELS[i]}" "$c" strace)
		CPU[$c.$i]=$(measure "${PASTAS[i]}" "${LABELS[i]}" "$c" cpu)
		echo "cost.sh: $c, ${LABELS[i]}: ${CALLS[$c.$i]} calls, ${CPU[$c.$i]} µs per operation" >&2
		[ -n "$PROFILES" ] && measure "${PASTAS[i]}" "${LABELS[i]}" "$c" perf >/dev/null
	done
done
head="| case |" rule="| --- |"
for l in "${LABELS[@]}"; do head="$head $l: calls |" rule="$rule --: |"; done
for l in "${LABELS[@]}"; do head="$head $l: CPU µs |" rule="$rule --: |"; done
echo "System calls and CPU time per operation"
echo
echo "$head"
echo "$rule"
for c in $CASES; do
	line="| $c |"
	for i in "${!PASTAS[@]}"; do line="$line ${CALLS[$c.$i]} |"; done
	for i in "${!PASTAS[@]}"; do line="$line ${CPU[$c.$i]} |"; done
	echo "$line"
done
echo
for i in "${!PASTAS[@]}"; do echo "- ${LABELS[i]}: ${DESCS[i]}"; done
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg), N=$N, BULK=$BULK, UDP at $UDP_RATE for $UDP_TIME s;"
echo "an operation is a round trip (tcp-rr*), a connection (tcp-crr*), a MiB (splice-*) or a datagram received (udp-*);"
echo "system calls: of the thread that runs the loop (strace -c -p); CPU: all of pasta's threads (the loop's), workload only;"
echo "CPU time from /proc/PID/task/*/schedstat."
