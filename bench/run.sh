#!/bin/bash
# run.sh - benchmark gopasta against the C pasta, slirp4netns and the bare
# veth (the ceiling), in a sandbox of network namespaces, each helper run by
# an unprivileged user. Prints a table of medians and gopasta's ratios.
#
#   sudo bench/run.sh                 # default: 3 rounds, 5 s per test
#   sudo QUICK=1 bench/run.sh         # smoke test: 1 round, 2 s per test
#   sudo RUNS=5 DURATION=10 TESTS="tcp4-up tcp4-down" bench/run.sh
#   sudo PUBLISH=1 bench/run.sh       # then put the chart and table in the README
#
# See bench/README.md for the sandbox, every setting and how to read the
# table. Only addresses inside the namespaces this script makes
# (192.0.2.0/24, 2001:db8::/32) and loopback are ever used.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
export PATH="/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export LC_ALL=C

# --- settings ---------------------------------------------------------------

if [ "${QUICK:-0}" = 1 ]; then
	RUNS=${RUNS:-1}
	DURATION=${DURATION:-2}
else
	RUNS=${RUNS:-3}
	DURATION=${DURATION:-5}
fi
HELPERS=${HELPERS:-"veth gopasta cpasta cpasta25 slirp4netns"}
# Any test may also be given as TEST@1500: every helper then runs with an
# MTU of 1500 (pasta -m 1500, slirp4netns --mtu=1500).
ALL_TESTS="tcp4-up tcp4-down tcp6-up tcp6-down tcp4-in tcp6-in tcp4-splice-in tcp4-splice-out
	tcp4-crr tcp4-crr-splice tcp4-rr tcp4-rr-splice udp4-up udp4-down udp4-up-8k udp4-down-8k udp4-rr"
TESTS=${TESTS:-"tcp4-up tcp4-down tcp6-up tcp6-down tcp4-in tcp4-splice-in tcp4-splice-out
	tcp4-crr tcp4-crr-splice tcp4-rr tcp4-rr-splice udp4-up udp4-down udp4-up-8k udp4-down-8k udp4-rr
	tcp4-up@1500 tcp4-down@1500 tcp4-in@1500 udp4-up@1500 udp4-down@1500"}
BENCH_USER=${BENCH_USER:-gopasta-bench}
CONNRATE_PAR=${CONNRATE_PAR:-4} # concurrent short connections
UDPRR_PAR=${UDPRR_PAR:-1}       # concurrent UDP request/response sockets
UDP_RATE=${UDP_RATE:-0}         # iperf3 -b for the UDP tests (0: as fast as the sender can)
UDP_LEN=${UDP_LEN:-1400}        # iperf3 -l for the UDP tests (the -8k ones: 8000)
UDP_WINDOW=${UDP_WINDOW:-4M}    # iperf3 -w (socket buffers) for the UDP test
UDP_ARGS=${UDP_ARGS:-}          # more iperf3 options for the UDP test
VETH_MTU=${VETH_MTU:-1500}
GOPASTA_ARGS=${GOPASTA_ARGS:-}
CPASTA_ARGS=${CPASTA_ARGS:-}
SLIRP_ARGS=${SLIRP_ARGS:-}
CPASTA_ROOTFS=${CPASTA_ROOTFS:-sid} # which rootfs of test/podman/env/build.sh the C pasta comes from

HNS=gpb-host RNS=gpb-remote HIF=gpbveth0 RIF=gpbpeer0
H4=192.0.2.1 R4=192.0.2.2 GW4=192.0.2.254
H6=2001:db8::1 R6=2001:db8::2 GW6=fe80::fe
IPERF_PORT=5201 CRR_PORT=5301 RR_PORT=5302 TCPRR_PORT=5303
LOCK=/run/lock/gopasta-bench.lock

die() {
	echo "run.sh: $*" >&2
	exit 1
}
say() { echo "$*" | tee -a "${OUT:-/dev/null}/log.txt" >&2; }

for v in RUNS DURATION CONNRATE_PAR UDPRR_PAR UDP_LEN VETH_MTU; do
	case ${!v} in '' | *[!0-9]*) die "$v must be a positive integer, not '${!v}'" ;; esac
	[ "${!v}" -ge 1 ] || die "$v must be >= 1"
done
[ "$RUNS" -le 50 ] || die "RUNS is at most 50"
[ "$DURATION" -le 120 ] || die "DURATION is at most 120 s"
for t in $TESTS; do
	case " $(echo $ALL_TESTS) " in *" ${t%@1500} "*) ;; *) die "unknown test $t (known: $(echo $ALL_TESTS), each also as TEST@1500)" ;; esac
done
for h in $HELPERS; do
	case $h in veth | gopasta | cpasta | cpasta25 | cpasta12 | slirp4netns) ;; *) die "unknown helper $h" ;; esac
done

[ "$(id -u)" = 0 ] || die "run me as root (I make namespaces and drop to the user $BENCH_USER myself)"
for tool in ip nsenter setpriv setsid unshare ss iperf3 jq timeout useradd flock ps go; do
	command -v $tool >/dev/null || die "missing tool: $tool"
done
# gnuplot draws the chart (chart.svg) from the program benchtool writes.
if ! command -v gnuplot >/dev/null; then
	echo "run.sh: installing gnuplot-nox for the chart" >&2
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null; } ||
		die "cannot install gnuplot-nox (the chart needs gnuplot)"
fi

exec 9>"$LOCK" || die "cannot open $LOCK"
flock -n 9 || die "another bench/run.sh is running (lock $LOCK)"

# --- scratch, results, cleanup ----------------------------------------------

STAMP=$(date -u +%Y%m%d-%H%M%S)
OUT=$REPO/bench/results/$STAMP
mkdir -p "$OUT/raw" || die "cannot create $OUT"
: >"$OUT/log.txt"
SCRATCH=$(mktemp -d /tmp/gopasta-bench.XXXXXX) || die "mktemp failed"
chmod 755 "$SCRATCH"
mkdir -p "$SCRATCH/bin" "$SCRATCH/home" "$SCRATCH/u"
TSV=$OUT/results.tsv
RSSTSV=$OUT/rss.tsv
: >"$TSV"
: >"$RSSTSV"

BG_PIDS=() # process groups this script started

kill_group() {
	[ -n "${1:-}" ] || return 0
	kill -KILL -- "-$1" 2>/dev/null
	kill -KILL "$1" 2>/dev/null
	return 0
}

# Every process of the benchmark user is one this script started.
kill_user_procs() {
	local p uid
	uid=$(id -u "$BENCH_USER" 2>/dev/null) || return 0
	for p in $(ps -e -o pid=,uid= | awk -v u="$uid" '$2 == u { print $1 }'); do
		kill -KILL "$p" 2>/dev/null
	done
	return 0
}

kill_netns_procs() {
	local ns p
	for ns in "$HNS" "$RNS"; do
		[ -e "/run/netns/$ns" ] || continue
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	done
	return 0
}

# Kill everything a run may have left: the groups we started, the user's
# processes, whatever is in our namespaces. Bounded wait until they are gone.
kill_leftovers() {
	local p i
	for p in "${BG_PIDS[@]}"; do kill_group "$p"; done
	kill_user_procs
	kill_netns_procs
	for ((i = 0; i < 40; i++)); do
		[ -z "$(user_pids)$(ip netns pids "$HNS" 2>/dev/null)$(ip netns pids "$RNS" 2>/dev/null)" ] && break
		sleep 0.05
		kill_user_procs
		kill_netns_procs
	done
	BG_PIDS=()
	return 0
}

user_pids() {
	local uid
	uid=$(id -u "$BENCH_USER" 2>/dev/null) || return 0
	ps -e -o pid=,uid=,stat= | awk -v u="$uid" '$2 == u && $3 !~ /^Z/ { print $1 }'
}

cleanup() {
	trap - EXIT INT TERM HUP
	kill_leftovers
	ip netns del "$HNS" 2>/dev/null
	ip netns del "$RNS" 2>/dev/null
	[ -n "${SCRATCH:-}" ] && [ -d "$SCRATCH" ] && rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'echo "run.sh: interrupted" >&2; exit 130' INT TERM HUP

# nap: sleep 50 ms without starting a process (a read that times out on a
# FIFO nobody writes to), so that polling stays cheap on a loaded machine.
mkfifo "$SCRATCH/nap.fifo" && exec 8<>"$SCRATCH/nap.fifo" || die "cannot make a FIFO"
nap() { read -r -t 0.05 -u 8 _; return 0; }

# wait_for SECONDS CMD...: poll CMD every 50 ms, at most SECONDS.
wait_for() {
	local n=$(($1 * 20)) i
	shift
	for ((i = 0; i < n; i++)); do
		"$@" && return 0
		nap
	done
	"$@"
}

# --- the user ------------------------------------------------------------------

if ! id "$BENCH_USER" >/dev/null 2>&1; then
	ok=0
	for i in 1 2 3 4 5; do
		if timeout 30 flock /run/lock/gopasta-bench-useradd.lock \
			useradd --system --no-create-home --shell /usr/sbin/nologin "$BENCH_USER" 2>>"$OUT/log.txt"; then
			ok=1
			break
		fi
		id "$BENCH_USER" >/dev/null 2>&1 && ok=1 && break
		sleep 1
	done
	[ $ok = 1 ] || die "cannot create user $BENCH_USER"
fi
BU=$(id -u "$BENCH_USER") BG=$(id -g "$BENCH_USER")
chown "$BU:$BG" "$SCRATCH/home" "$SCRATCH/u"
USER_ENV=(env -i "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	"HOME=$SCRATCH/home" "USER=$BENCH_USER" "LOGNAME=$BENCH_USER" "SHELL=/bin/sh" "LC_ALL=C")
AS_USER=(setpriv "--reuid=$BU" "--regid=$BG" --clear-groups --inh-caps=-all -- "${USER_ENV[@]}")

# in_ns NS CMD...: run CMD as root in a named netns.
in_ns() {
	local ns=$1
	shift
	nsenter "--net=/run/netns/$ns" -- "$@"
}
# user_in_ns NS CMD...: the same as the benchmark user.
user_in_ns() {
	local ns=$1
	shift
	nsenter "--net=/run/netns/$ns" -- "${AS_USER[@]}" "$@"
}

# --- binaries ------------------------------------------------------------------

say "== building"
cp "$REPO/bench/ns.sh" "$SCRATCH/bin/ns.sh" && chmod 755 "$SCRATCH/bin/ns.sh" || die "cannot copy ns.sh"
(cd "$REPO" && timeout 300 go build -o "$SCRATCH/bin/benchtool" ./bench/benchtool) >>"$OUT/log.txt" 2>&1 ||
	die "cannot build bench/benchtool (see $OUT/log.txt)"
BT=$SCRATCH/bin/benchtool

GOPASTA_BROKEN=""
GOPASTA_DESC=""
if [ -n "${GOPASTA:-}" ]; then
	cp "$GOPASTA" "$SCRATCH/bin/pasta" && chmod 755 "$SCRATCH/bin/pasta" || GOPASTA_BROKEN="cannot copy $GOPASTA"
	GOPASTA_DESC="$GOPASTA"
else
	if (cd "$REPO" && timeout 600 go build -o "$SCRATCH/bin/pasta" .) >>"$OUT/log.txt" 2>&1; then
		GOPASTA_DESC="built from $REPO at $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo '?')"
	else
		GOPASTA_BROKEN="go build failed (see log.txt)"
		GOPASTA_DESC="build failed"
	fi
fi
GOPASTA_BIN=$SCRATCH/bin/pasta

# The C pastas: the one of the root file system ROOTFS (sid: passt
# 2026-10-02, the newest; trixie: 2025-05-03) that test/podman/env/build.sh
# makes (built here if missing), run through the rootfs's own loader by the
# build's bin/pasta wrapper, which picks the AVX2 build on a CPU that has
# AVX2, as an installed pasta does by itself. "cpasta" is CPASTA if given,
# else that of CPASTA_ROOTFS (else Debian 12's /usr/bin/pasta);
# "cpasta25" is the trixie one.
case $CPASTA_ROOTFS in trixie | sid) ;; *) die "CPASTA_ROOTFS is trixie or sid, not '$CPASTA_ROOTFS'" ;; esac
# rootfs_dir ROOTFS: the folder of ROOTFS as this clone's build.sh makes it.
rootfs_dir() { bash "$REPO/test/podman/env/build.sh" --dir "$1"; }

# rootfs_pasta ROOTFS: print the wrapper of ROOTFS's pasta, building the
# rootfs if needed; fail if there is none.
rootfs_pasta() {
	local w
	w=$(rootfs_dir "$1")/bin/pasta
	if [ ! -x "$w" ]; then
		say "building the $1 root file system for its C pasta (test/podman/env/build.sh)"
		bash "$REPO/test/podman/env/build.sh" "$1" >>"$OUT/log.txt" 2>&1 || say "build.sh failed (see log.txt)"
	fi
	[ -x "$w" ] && echo "$w"
}
rootfs_desc() { # ROOTFS WRAPPER
	echo "passt $(dpkg-query --admindir="$(rootfs_dir "$1")/rootfs/var/lib/dpkg" -W -f '${Version}' passt 2>/dev/null) (Debian $1 rootfs, through its loader: $2)"
}

CPASTA_CMD=()
if [ -n "${CPASTA:-}" ]; then
	CPASTA_CMD=("$CPASTA")
	v=$(timeout 10 script -qec "$CPASTA --version" /dev/null </dev/null 2>/dev/null | tr -d '\r' | grep -m1 '^pasta')
	CPASTA_DESC="$CPASTA (${v:-version unknown})"
	if [ "$CPASTA" = /usr/bin/pasta ]; then
		CPASTA_DESC="/usr/bin/pasta: passt $(dpkg-query -W -f '${Version}' passt 2>/dev/null) (Debian 12)"
	fi
elif w=$(rootfs_pasta "$CPASTA_ROOTFS"); then
	CPASTA_CMD=("$w")
	CPASTA_DESC=$(rootfs_desc "$CPASTA_ROOTFS" "$w")
elif [ -x /usr/bin/pasta ]; then
	CPASTA_CMD=(/usr/bin/pasta)
	CPASTA_DESC="/usr/bin/pasta: passt $(dpkg-query -W -f '${Version}' passt 2>/dev/null) (Debian 12; the $CPASTA_ROOTFS rootfs is missing)"
else
	CPASTA_DESC="none found"
fi
CPASTA25_CMD=()
CPASTA25_DESC="none: the trixie rootfs could not be built"
case " $HELPERS " in *" cpasta25 "*)
	if w=$(rootfs_pasta trixie); then
		CPASTA25_CMD=("$w")
		CPASTA25_DESC=$(rootfs_desc trixie "$w")
	fi
	;;
esac
# cpasta12 (optional column): Debian 12's own pasta, /usr/bin/pasta.
CPASTA12_DESC="/usr/bin/pasta: passt $(dpkg-query -W -f '${Version}' passt 2>/dev/null) (Debian 12)"
CPASTA12_BROKEN=""
if ! timeout 10 "${AS_USER[@]}" /usr/bin/pasta --version >/dev/null 2>&1; then
	CPASTA12_BROKEN="$BENCH_USER cannot run /usr/bin/pasta"
fi
# slirp4netns: the one of the sid root file system (1.3.3 with libslirp
# 4.9, the newest, from the same place as the newest C pasta), run through
# that rootfs's loader by a wrapper like the C pasta's; if there is no sid
# rootfs, Debian 12's (1.2.0, libslirp 4.7), installed with apt-get when
# missing, as gnuplot-nox is. See bench/README.md, "Which slirp4netns".
SLIRP_BROKEN="" SLIRP_BIN=$SCRATCH/bin/slirp4netns SLIRP_FROM="" SLIRP_DESC="not used"
case " $HELPERS " in *" slirp4netns "*)
	if rootfs_pasta sid >/dev/null && sr=$(rootfs_dir sid)/rootfs && [ -x "$sr/usr/bin/slirp4netns" ]; then
		cat >"$SLIRP_BIN" <<EOF
#!/bin/sh
l=$sr/usr/lib/x86_64-linux-gnu
exec "\$l/ld-linux-x86-64.so.2" --library-path "\$l" "$sr/usr/bin/slirp4netns" "\$@"
EOF
		chmod 755 "$SLIRP_BIN"
		SLIRP_FROM="Debian sid rootfs, through its loader"
	else
		if ! command -v slirp4netns >/dev/null; then
			say "installing Debian 12's slirp4netns (no sid rootfs)"
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slirp4netns >/dev/null; } >>"$OUT/log.txt" 2>&1
		fi
		if command -v slirp4netns >/dev/null; then
			ln -s "$(command -v slirp4netns)" "$SLIRP_BIN"
			SLIRP_FROM="Debian 12's $(command -v slirp4netns); no sid rootfs"
		fi
	fi
	if v=$(timeout 10 "${AS_USER[@]}" "$SLIRP_BIN" --version 2>/dev/null); then
		SLIRP_DESC="$(echo "$v" | head -1), $(echo "$v" | grep libslirp) ($SLIRP_FROM)"
	elif [ -z "$SLIRP_FROM" ]; then
		SLIRP_DESC="none" SLIRP_BROKEN="no slirp4netns: no sid rootfs, and apt-get install slirp4netns failed (see log.txt)"
	else
		SLIRP_DESC="unusable" SLIRP_BROKEN="$BENCH_USER cannot run $SLIRP_BIN --version ($SLIRP_FROM)"
	fi
	;;
esac

# The user must be able to run each of them.
if [ -z "$GOPASTA_BROKEN" ] && ! timeout 10 "${AS_USER[@]}" "$GOPASTA_BIN" --version >/dev/null 2>&1; then
	GOPASTA_BROKEN="$BENCH_USER cannot run $GOPASTA_BIN --version"
fi
CPASTA_BROKEN=""
if [ ${#CPASTA_CMD[@]} = 0 ]; then
	CPASTA_BROKEN="no C pasta"
elif ! timeout 10 "${AS_USER[@]}" "${CPASTA_CMD[@]}" --version >/dev/null 2>&1; then
	CPASTA_BROKEN="$BENCH_USER cannot run ${CPASTA_CMD[*]}"
fi
CPASTA25_BROKEN=""
if [ ${#CPASTA25_CMD[@]} = 0 ]; then
	CPASTA25_BROKEN="no C pasta 2025"
elif ! timeout 10 "${AS_USER[@]}" "${CPASTA25_CMD[@]}" --version >/dev/null 2>&1; then
	CPASTA25_BROKEN="$BENCH_USER cannot run ${CPASTA25_CMD[*]}"
fi

# --- the sandbox -------------------------------------------------------------

say "== sandbox: $HNS ($H4, $H6) <-veth-> $RNS ($R4, $R6)"
# Leftovers of an earlier run that could not clean up.
for ns in "$HNS" "$RNS"; do
	if [ -e "/run/netns/$ns" ]; then
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	fi
done
kill_user_procs

if [ -c /dev/net/tun ]; then
	chmod 0666 /dev/net/tun || die "cannot chmod /dev/net/tun"
else
	die "no /dev/net/tun"
fi

setup_sandbox() {
	ip netns add "$HNS" && ip netns add "$RNS" || return 1
	in_ns "$HNS" sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
		"net.ipv4.ping_group_range=0 2147483647" "net.ipv4.ip_local_port_range=10000 65000" || return 1
	in_ns "$RNS" sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 || return 1
	ip link add "$HIF" netns "$HNS" mtu "$VETH_MTU" type veth peer name "$RIF" netns "$RNS" mtu "$VETH_MTU" || return 1
	ip -n "$RNS" -batch - <<EOF || return 1
link set lo up
link set $RIF addrgenmode none
address add $GW6/64 dev $RIF nodad
address add $R4/24 dev $RIF
address add $GW4/24 dev $RIF
address add $R6/64 dev $RIF nodad
link set $RIF up
EOF
	ip -n "$HNS" -batch - <<EOF || return 1
link set lo up
address add $H4/24 dev $HIF
address add $H6/64 dev $HIF nodad
link set $HIF up
route add default via $GW4 dev $HIF
route add default via $GW6 dev $HIF
EOF
	no_tentative() { ! ip -n "$HNS" -6 addr show tentative | grep -q inet6 && ! ip -n "$RNS" -6 addr show tentative | grep -q inet6; }
	wait_for 10 no_tentative || return 1
	in_ns "$HNS" timeout 10 ping -n -c 1 -W 3 "$R4" >/dev/null || return 1
	in_ns "$HNS" timeout 10 ping -n -c 1 -W 3 "$R6" >/dev/null || return 1
}
setup_sandbox || die "sandbox setup failed"
HNS_INODE=$(stat -L -c %i "/run/netns/$HNS")

# --- one run -------------------------------------------------------------------

record() { # test helper round status value [note]
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "${6:-}" >>"$TSV"
}

# rows_of TEST: the rows of the table a test fills.
rows_of() {
	local base=${1%@1500} sfx=""
	[ "$base" != "$1" ] && sfx=@1500
	case $base in
	udp4-up* | udp4-down*) echo "$base$sfx $base-loss$sfx" ;;
	tcp4-rr | tcp4-rr-splice) echo "$base-p50$sfx $base-p99$sfx" ;;
	*) echo "$1" ;;
	esac
}

# record_test STATUS VALUE NOTE: the same record in every row of the test
# of run_one ($t, $h, $r).
record_test() {
	local row
	for row in $(rows_of "$t"); do record "$row" "$h" "$r" "$1" "$2" "$3"; done
}

# helper_rss PID: sum of the proportional set size (Pss, KiB, from
# smaps_rollup) of PID and its descendants that run the same executable
# (gopasta's launcher and its re-executed child; one process for the C pasta
# and slirp4netns). The workload is a descendant of pasta, but runs another
# executable. Pss, not VmHWM: gopasta's two processes map the same program
# text, which a sum of their resident sizes would count twice; Pss counts
# each shared page once over all the processes that map it.
helper_rss() {
	local root=$1 exe kids p sum=0 hwm
	exe=$(readlink "/proc/$root/exe" 2>/dev/null) || return 1
	kids=$(ps -e -o pid=,ppid= | awk -v r="$root" '
		{ parent[$1] = $2 }
		END {
			set[r] = 1; changed = 1
			for (n = 0; changed && n < 100; n++) {
				changed = 0
				for (p in parent) if (!(p in set) && (parent[p] in set)) { set[p] = 1; changed = 1 }
			}
			for (p in set) print p
		}')
	for p in $kids; do
		[ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$exe" ] || continue
		hwm=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null)
		[ -n "$hwm" ] || continue
		echo "$p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-120) Pss=${hwm}kB VmHWM=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null)kB"
		sum=$((sum + hwm))
	done
	echo "total $sum"
}

# Start a background process (own process group) and remember it.
# Sets LAST_PID.
start_bg() { # logfile-prefix CMD...
	local pfx=$1
	shift
	setsid "$@" >"$pfx.stdout" 2>"$pfx.stderr" </dev/null 8>&- 9>&- &
	LAST_PID=$!
	# Out of the job table, so that bash does not report killed jobs; it
	# still reaps them.
	disown "$LAST_PID"
	BG_PIDS+=("$LAST_PID")
}

# alive PID: the process exists and is not a zombie (builtins only).
alive() {
	local st
	kill -0 "$1" 2>/dev/null || return 1
	{ read -r st <"/proc/$1/stat"; } 2>/dev/null || return 1
	st=${st##*) }
	[ "${st%% *}" != Z ]
}

# parse TEST FILE: print the value (and for UDP "value loss"), or fail with a
# message on stdout.
parse() {
	local t=$1 f=$2 filter out rc
	[ -s "$f" ] || {
		echo "no output"
		return 1
	}
	case $t in
	tcp4-crr* | udp4-rr*)
		filter='if .done > 0 then "\(.rate) \(.errors) \(.timeouts // 0)" else error("nothing completed: \(.first_error // "")") end'
		;;
	tcp4-rr*)
		filter='if .done > 0 then "\(.p50_us) \(.p99_us) \(.rate)" else error("nothing completed: \(.first_error // "")") end'
		;;
	tcp*)
		filter='if .error then error(.error) else
			"\(.end.sum_received.bits_per_second / 1e9) \(.end.sum_sent.retransmits // "")" end'
		;;
	udp4-*)
		# iperf3 client, UDP, either direction: end.sum_received is what
		# the receiver got (iperf3 3.12 and later), with the loss it
		# counted; older ones only have end.sum, the sender's rate.
		filter='if .error then error(.error) elif .end.sum_received then
			"\(.end.sum_received.bits_per_second / 1e9) \(.end.sum_received.lost_percent)" else
			"\(.end.sum.bits_per_second * (100 - .end.sum.lost_percent) / 100 / 1e9) \(.end.sum.lost_percent)" end'
		;;
	esac
	out=$(jq -er "$filter" "$f" 2>&1)
	rc=$?
	# "jq: error (at FILE:N): MESSAGE" -> "MESSAGE"
	printf '%s\n' "$out" | tail -1 | sed 's/^jq: error (at [^)]*): //'
	return $rc
}

run_one() { # test helper round
	local t=$1 h=$2 r=$3
	local rd=$SCRATCH/u/$t-$h-r$r raw=$OUT/raw/$t/$h-r$r
	local kind dst srv=() cli=() nscmd=() port proto=tcp fam=4 fwd=() status="" note="" val=""
	local base=${t%@1500} mtu="" sfx=""
	[ "$base" != "$t" ] && mtu=1500 sfx=@1500
	local hpid="" wpid="" spid="" deadline start rss="" i
	mkdir -p "$rd" "$raw"
	chown "$BU:$BG" "$rd"
	start=$EPOCHREALTIME
	: >"$raw/timing.txt"
	phase() { echo "$(awk -v s="$start" -v n="$EPOCHREALTIME" 'BEGIN { printf "%6.2f", n - s }') $*" >>"$raw/timing.txt"; }

	case $base in *6*) fam=6 dst=$R6 ;; *) dst=$R4 ;; esac
	local D=$DURATION udplen=$UDP_LEN
	# kind: out = client in the namespace, server in the remote netns;
	# in = server in the namespace, client in the remote netns (-t);
	# lo-out = client in the namespace, server on the host's 127.0.0.1 (-T);
	# lo-in = server in the namespace, client on the host's 127.0.0.1 (-t).
	case $base in
	tcp?-up | tcp?-down)
		kind=out port=$IPERF_PORT
		srv=(iperf3 -s -1 -p "$port" -J)
		nscmd=(iperf3 -c "$dst" -p "$port" -t "$D" -J --connect-timeout 5000)
		[ "${t#*-}" = down ] && nscmd+=(-R)
		;;
	tcp?-in)
		kind=in port=$IPERF_PORT
		local hdst=$H4
		[ $fam = 6 ] && hdst=$H6
		nscmd=(iperf3 -s -1 -p "$port" -J)
		cli=(iperf3 -c "$hdst" -p "$port" -t "$D" -J --connect-timeout 5000)
		;;
	tcp4-splice-in)
		kind=lo-in port=$IPERF_PORT
		nscmd=(iperf3 -s -1 -p "$port" -J)
		cli=(iperf3 -c 127.0.0.1 -p "$port" -t "$D" -J --connect-timeout 5000)
		;;
	tcp4-splice-out)
		kind=lo-out port=$IPERF_PORT
		srv=(iperf3 -s -1 -B 127.0.0.1 -p "$port" -J)
		nscmd=(iperf3 -c 127.0.0.1 -p "$port" -t "$D" -J --connect-timeout 5000)
		;;
	tcp4-crr)
		kind=out port=$CRR_PORT
		srv=("$BT" connrate-server -l ":$port" -t "$((D + 60))s")
		nscmd=("$BT" connrate-client -c "$dst:$port" -d "${D}s" -p "$CONNRATE_PAR")
		;;
	tcp4-crr-splice)
		kind=lo-out port=$CRR_PORT
		srv=("$BT" connrate-server -l "127.0.0.1:$port" -t "$((D + 60))s")
		nscmd=("$BT" connrate-client -c "127.0.0.1:$port" -d "${D}s" -p "$CONNRATE_PAR")
		;;
	tcp4-rr)
		kind=out port=$TCPRR_PORT
		srv=("$BT" tcprr-server -l ":$port" -t "$((D + 60))s")
		nscmd=("$BT" tcprr-client -c "$dst:$port" -d "${D}s")
		;;
	tcp4-rr-splice)
		kind=lo-out port=$TCPRR_PORT
		srv=("$BT" tcprr-server -l "127.0.0.1:$port" -t "$((D + 60))s")
		nscmd=("$BT" tcprr-client -c "127.0.0.1:$port" -d "${D}s")
		;;
	udp4-up* | udp4-down*)
		kind=out port=$IPERF_PORT
		case $base in *-8k) udplen=8000 ;; esac
		srv=(iperf3 -s -1 -p "$port" -J)
		# shellcheck disable=SC2206
		nscmd=(iperf3 -c "$dst" -p "$port" -u -b "$UDP_RATE" -l "$udplen" -w "$UDP_WINDOW" -t "$D" -J --connect-timeout 5000 $UDP_ARGS)
		case $base in udp4-down*) nscmd+=(-R) ;; esac
		;;
	udp4-rr)
		kind=out port=$RR_PORT proto=udp
		srv=("$BT" udprr-server -l ":$port" -t "$((D + 60))s")
		nscmd=("$BT" udprr-client -c "$dst:$port" -d "${D}s" -p "$UDPRR_PAR")
		;;
	esac

	# Helpers that cannot do a test at all.
	if [ "$h" = slirp4netns ] && [ "$base" = tcp6-in ]; then
		record_test n/a "" "slirp4netns forwards IPv4 ports only"
		return
	fi
	if [ "$h" = slirp4netns ] && [ $kind = lo-out ]; then
		record_test n/a "" "slirp4netns has no forwarding to the host's loopback like -T"
		return
	fi
	if [ "$h" = veth ] && [ -n "$mtu" ]; then
		record_test n/a "" "no helper, no MTU: the same as the row without @1500"
		return
	fi
	if [ "$h" = gopasta ] && [ -n "$GOPASTA_BROKEN" ]; then
		record_test fail "" "$GOPASTA_BROKEN"
		return
	fi
	if [ "$h" = cpasta ] && [ -n "$CPASTA_BROKEN" ]; then
		record_test fail "" "$CPASTA_BROKEN"
		return
	fi
	if [ "$h" = cpasta25 ] && [ -n "$CPASTA25_BROKEN" ]; then
		record_test fail "" "$CPASTA25_BROKEN"
		return
	fi
	if [ "$h" = cpasta12 ] && [ -n "$CPASTA12_BROKEN" ]; then
		record_test fail "" "$CPASTA12_BROKEN"
		return
	fi
	if [ "$h" = slirp4netns ] && [ -n "$SLIRP_BROKEN" ]; then
		record_test fail "" "$SLIRP_BROKEN"
		return
	fi

	# 1. The server in the remote netns for outbound tests, on the host's
	# loopback (as the benchmark user) for lo-out.
	local sns=$RNS
	[ $kind = lo-out ] && sns=$HNS
	if [ $kind = out ] || [ $kind = lo-out ]; then
		if [ $kind = out ]; then
			start_bg "$raw/server" timeout -k 2 $((D + 60)) nsenter "--net=/run/netns/$RNS" -- "${srv[@]}"
		else
			start_bg "$raw/server" timeout -k 2 $((D + 60)) nsenter "--net=/run/netns/$HNS" -- "${AS_USER[@]}" "${srv[@]}"
		fi
		spid=$LAST_PID
		local f=t
		[ $proto = udp ] && f=u
		listening() { in_ns "$sns" ss -Hln$f "sport = :$port" | grep -q .; }
		if ! wait_for 5 listening; then
			status=fail note="server in $sns did not start"
		fi
	fi

	phase "server ready"
	# 2. The helper with the workload in its namespace.
	local nsmode=client
	case $kind in in | lo-in) nsmode=server ;; esac
	local ns=(sh "$SCRATCH/bin/ns.sh" "$rd" "$nsmode")
	local nstail=("$proto" "$port" -- "${nscmd[@]}")
	# Like Podman: only the ports asked for, no automatic forwarding.
	fwd=(-t none -u none -T none -U none)
	case $kind in
	in | lo-in) fwd=(-t "$port" -u none -T none -U none) ;;
	lo-out) fwd=(-t none -u none -T "$port" -U none) ;;
	esac
	local mtuopt=() slirpmtu=65520
	[ -n "$mtu" ] && mtuopt=(-m "$mtu") slirpmtu=$mtu
	if [ -z "$status" ]; then
		case $h in
		veth)
			start_bg "$raw/helper" nsenter "--net=/run/netns/$HNS" -- "${AS_USER[@]}" "${ns[@]}" none "${nstail[@]}"
			wpid=$LAST_PID
			;;
		gopasta)
			# shellcheck disable=SC2086
			start_bg "$raw/helper" nsenter "--net=/run/netns/$HNS" -- "${AS_USER[@]}" \
				"$GOPASTA_BIN" --config-net "${fwd[@]}" "${mtuopt[@]}" $GOPASTA_ARGS -- "${ns[@]}" none "${nstail[@]}"
			hpid=$LAST_PID
			;;
		cpasta | cpasta25 | cpasta12)
			local cp=("${CPASTA_CMD[@]}")
			[ "$h" = cpasta25 ] && cp=("${CPASTA25_CMD[@]}")
			[ "$h" = cpasta12 ] && cp=(/usr/bin/pasta)
			# shellcheck disable=SC2086
			start_bg "$raw/helper" nsenter "--net=/run/netns/$HNS" -- "${AS_USER[@]}" \
				"${cp[@]}" --config-net "${fwd[@]}" "${mtuopt[@]}" $CPASTA_ARGS -- "${ns[@]}" none "${nstail[@]}"
			hpid=$LAST_PID
			;;
		slirp4netns)
			start_bg "$raw/workload" nsenter "--net=/run/netns/$HNS" -- "${AS_USER[@]}" \
				unshare --user --map-root-user --net "${ns[@]}" "slirp$fam" "${nstail[@]}"
			wpid=$LAST_PID
			nsready() { [ -e "$rd/nsready" ] || ! alive "$wpid"; }
			wait_for 10 nsready
			if [ -e "$rd/nsready" ]; then
				local api=()
				[ $nsmode = server ] && api=(--api-socket "$rd/api.sock")
				# shellcheck disable=SC2086
				start_bg "$raw/helper" nsenter "--net=/run/netns/$HNS" -- "${AS_USER[@]}" \
					"$SLIRP_BIN" --configure "--mtu=$slirpmtu" --disable-host-loopback --enable-ipv6 \
					"${api[@]}" $SLIRP_ARGS "$wpid" tap0
				hpid=$LAST_PID
				if [ $nsmode = server ]; then
					apiready() { [ -S "$rd/api.sock" ] || ! alive "$hpid"; }
					wait_for 10 apiready
					if ! timeout 15 "${AS_USER[@]}" "$BT" slirp-api "$rd/api.sock" \
						"{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"tcp\", \"host_addr\": \"0.0.0.0\", \"host_port\": $port, \"guest_port\": $port}}" \
						>"$raw/api.txt" 2>&1; then
						status=fail note="add_hostfwd: $(tail -1 "$raw/api.txt")"
					fi
				fi
			else
				status=fail note="the workload did not start its namespace"
			fi
			;;
		esac
	fi
	phase "helper started"
	local main=${hpid:-$wpid}
	# The whole run is bounded by this deadline.
	deadline=$(($(date +%s) + D + 40))

	# 3. Inbound: the client in the remote netns (or on the host's loopback)
	# once the server listens.
	if [ -z "$status" ] && [ $nsmode = server ]; then
		local cliwhere=("nsenter" "--net=/run/netns/$RNS" --) cname=$RNS
		[ $kind = lo-in ] && cliwhere=(nsenter "--net=/run/netns/$HNS" -- "${AS_USER[@]}") cname="$HNS (127.0.0.1)"
		ready() { [ -e "$rd/ready" ] || ! alive "$main" || { [ -n "$wpid" ] && ! alive "$wpid"; }; }
		wait_for 15 ready
		if [ -e "$rd/ready" ]; then
			timeout -k 2 $((D + 30)) "${cliwhere[@]}" "${cli[@]}" \
				>"$raw/client.json" 2>"$raw/client.stderr" </dev/null 8>&- 9>&-
			local crc=$?
			if [ $crc = 124 ] || [ $crc = 137 ]; then
				status=timeout note="iperf3 client in $cname timed out"
			elif [ $crc != 0 ]; then
				# The server in the namespace may wait forever for a
				# test that never comes: do not wait for it.
				status=fail note="client: $(parse "$t" "$raw/client.json")"
			fi
		elif alive "$main"; then
			status=timeout note="the server in the namespace was not listening after 15 s"
		else
			status=fail note="the server in the namespace did not start"
		fi
	fi

	[ $nsmode = server ] && phase "client done"
	# 4. Wait for the workload to finish, then read the helper's memory (Pss).
	if [ -z "$status" ]; then
		finished() { [ -e "$rd/done" ] || ! alive "$main" || { [ -n "$wpid" ] && ! alive "$wpid"; }; }
		local left=$((deadline - $(date +%s)))
		[ $left -lt 1 ] && left=1
		# (If the helper died instead, parsing the output says so below.)
		if ! wait_for "$left" finished; then
			status=timeout note="no result after $((D + 40)) s"
		fi
	fi
	if [ -n "$hpid" ] && [ -e "$rd/done" ] && alive "$hpid"; then
		if helper_rss "$hpid" >"$raw/rss.txt" 2>&1; then
			rss=$(awk '$1 == "total" { print $2 }' "$raw/rss.txt")
		fi
	fi
	phase "workload done, RSS read"
	: >"$rd/release" 2>/dev/null

	# 5. Let everything end (bounded), then kill what is left. slirp4netns
	# does not notice that its namespace is gone: stop it once the workload
	# has exited.
	# After a failure or a timeout, do not wait: kill.
	local wl=${wpid:-$hpid}
	wlgone() { ! alive "$wl"; }
	gone() { ! alive "$main"; }
	if [ -z "$status" ]; then
		wait_for 10 wlgone || { [ ! -e "$rd/done" ] && status=timeout note="the workload did not exit"; }
		if [ "$h" = slirp4netns ] && [ -n "$hpid" ]; then
			kill -TERM "$hpid" 2>/dev/null
		fi
		wait_for 5 gone
	fi
	if [ -z "$status" ] && [ -n "$spid" ] && [ "${srv[0]}" = iperf3 ]; then
		# iperf3 -s -1 ends by itself after one test; our own servers
		# run until killed.
		sgone() { ! alive "$spid"; }
		wait_for 5 sgone
	fi
	phase "all exited"
	kill_leftovers

	phase "cleaned up"
	# 6. Collect and parse.
	for i in out err rc; do [ -e "$rd/$i" ] && cp "$rd/$i" "$raw/ns.$i"; done
	[ -e "$rd/ns.log" ] && cp "$rd/ns.log" "$raw/ns.log"
	local result=$raw/ns.out
	[ $nsmode = server ] && result=$raw/client.json
	if [ -z "$status" ]; then
		if val=$(parse "$t" "$result"); then
			status=ok
		else
			status=fail note="$val"
			val=""
		fi
	fi
	if [ "$status" != ok ]; then
		# The most telling message: the helper's own error, then the
		# workload's.
		local m="" f
		for f in helper.stderr ns.err ns.log client.stderr workload.stderr api.txt; do
			m=$(grep -iE 'error|fail|not supported|cannot|can.t|unable|refused|invalid|denied|no such|usage' "$raw/$f" 2>/dev/null |
				grep -v 'Can.t run AVX2' | tail -1)
			[ -n "$m" ] && break
		done
		[ -n "$m" ] && note="$note; $m"
	fi
	note=$(printf '%s' "$note" | tr '\t\n' '  ' | cut -c1-200)
	local el
	el=$(awk -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }')
	local v1 v2 v3
	read -r v1 v2 v3 <<<"$val"
	case $status in
	ok)
		case $base in
		udp4-up* | udp4-down*)
			record "$t" "$h" "$r" ok "$v1"
			record "$base-loss$sfx" "$h" "$r" ok "$v2"
			say "  round $r  $t  $h: $(printf '%.2f' "$v1") Gbit/s received, ${v2}% lost  (${el} s)"
			;;
		tcp4-rr | tcp4-rr-splice)
			record "$base-p50$sfx" "$h" "$r" ok "$v1" "rate=$v3"
			record "$base-p99$sfx" "$h" "$r" ok "$v2" "rate=$v3"
			say "  round $r  $t  $h: p50 $v1 us, p99 $v2 us, $(printf '%.0f' "$v3")/s  (${el} s)"
			;;
		tcp4-crr* | udp4-rr)
			record "$t" "$h" "$r" ok "$v1" "errors=$v2 timeouts=$v3"
			say "  round $r  $t  $h: $(printf '%.0f' "$v1")/s, errors $v2, timeouts $v3  (${el} s)"
			;;
		*)
			record "$t" "$h" "$r" ok "$v1" "retransmits=$v2"
			say "  round $r  $t  $h: $(printf '%.2f' "$v1") Gbit/s, retransmits ${v2:-?}  (${el} s)"
			;;
		esac
		;;
	*)
		record_test "$status" "" "$note"
		say "  round $r  $t  $h: $status: $note  (${el} s)"
		;;
	esac
	if [ -n "$rss" ]; then
		printf '%s\t%s\t%s\t%s\n' "$t" "$h" "$r" "$rss" >>"$RSSTSV"
	fi
	rm -rf "$rd"
}

# --- the rounds ----------------------------------------------------------------

BEGIN=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
say "== $RUNS round(s) of: $TESTS"
say "   helpers: $HELPERS; $DURATION s per test"
say "   gopasta: $GOPASTA_DESC${GOPASTA_BROKEN:+ (unusable: $GOPASTA_BROKEN)}"
say "   C pasta: $CPASTA_DESC${CPASTA_BROKEN:+ (unusable: $CPASTA_BROKEN)}"
case " $HELPERS " in *" cpasta25 "*) say "   C pasta 2025: $CPASTA25_DESC${CPASTA25_BROKEN:+ (unusable: $CPASTA25_BROKEN)}" ;; esac
case " $HELPERS " in *" cpasta12 "*) say "   C pasta 12: $CPASTA12_DESC${CPASTA12_BROKEN:+ (unusable: $CPASTA12_BROKEN)}" ;; esac
say "   slirp4netns: $SLIRP_DESC"
for ((round = 1; round <= RUNS; round++)); do
	for t in $TESTS; do
		# Alternate the helpers within a round, so that noise from other
		# load on the machine spreads over all of them.
		for h in $HELPERS; do
			run_one "$t" "$h" "$round"
		done
	done
done
ELAPSED=$(($(date +%s) - BEGIN))

# Memory: per round, the highest Pss at the end of any test; then the
# median over rounds like every other row.
for h in $HELPERS; do
	[ "$h" = veth ] && continue
	for ((round = 1; round <= RUNS; round++)); do
		m=$(awk -F'\t' -v h="$h" -v r="$round" '$2 == h && $3 == r && $4 > m { m = $4 } END { if (m) print m / 1024 }' "$RSSTSV")
		if [ -n "$m" ]; then record rss "$h" "$round" ok "$m"; else record rss "$h" "$round" fail "" "no measurement"; fi
	done
done

# --- the table -------------------------------------------------------------

ROWS=""
for t in $TESTS; do
	ROWS="$ROWS $(rows_of "$t")"
done
ROWS="$ROWS rss"
{
	echo "gopasta benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "- machine: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs, kernel $(uname -r), load average $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after"
	echo "- $RUNS run(s) per cell, medians; iperf3 tests $DURATION s each; $(iperf3 --version | head -1)"
	echo "- gopasta: $GOPASTA_DESC"
	echo "- C pasta: $CPASTA_DESC"
	case " $HELPERS " in *" cpasta25 "*) echo "- C pasta 2025: $CPASTA25_DESC" ;; esac
	case " $HELPERS " in *" cpasta12 "*) echo "- C pasta 12: $CPASTA12_DESC" ;; esac
	echo "- slirp4netns: $SLIRP_DESC (--mtu=65520 or 1500 --enable-ipv6 --disable-host-loopback)"
	echo "- TCP in the sandbox (inherited from the machine): congestion control $(in_ns "$HNS" sysctl -n net.ipv4.tcp_congestion_control), tcp_rmem $(in_ns "$HNS" sysctl -n net.ipv4.tcp_rmem | tr '\t' ' '), tcp_wmem $(in_ns "$HNS" sysctl -n net.ipv4.tcp_wmem | tr '\t' ' ')"
	echo "- veth: the bare veth pair (MTU $VETH_MTU) between the host and remote namespaces, no helper: the ceiling"
	echo "- every helper and workload runs as the unprivileged user $BENCH_USER; total time $((ELAPSED / 60)) min $((ELAPSED % 60)) s"
	echo
	"$BT" report -helpers "$HELPERS" -tests "$ROWS" "$TSV"
	echo
	echo "Cells: median (min-max) of the runs. Ratios are gopasta's median divided by the other's;"
	echo "for latency, loss and memory lower is better. Rows: TCP up/down = iperf3 client in the namespace"
	echo "to a server in the remote netns (download with -R), receiver's rate. Inbound = iperf3 client in"
	echo "the remote netns to the host's address, forwarded into the namespace (-t, slirp4netns"
	echo "add_hostfwd). From host 127.0.0.1 = the same client on the host's loopback (pasta splices it)."
	echo "To host 127.0.0.1 = client in the namespace to 127.0.0.1, a server on the host's loopback (-T)."
	echo "Short connections = $CONNRATE_PAR parallel connect/32-byte request/answer/close loops."
	echo "Request/response = one TCP connection, one 32-byte message in flight, round-trip percentiles."
	echo "UDP = iperf3 -u -b $UDP_RATE -l $UDP_LEN (or 8000) -w $UDP_WINDOW, upload or download (-R), rate and"
	echo "loss seen by the receiver. UDP request/response = $UDPRR_PAR socket(s) with one 48-byte request"
	echo "in flight. MTU 1500 = every helper with an MTU of 1500 (pasta -m 1500, slirp4netns --mtu=1500)."
	echo "Memory = sum of Pss of the helper's processes at the end of a test, highest of a round."
	notes=$(awk -F'\t' '$4 != "ok" && $6 != "" { k = $1 " " $2; if (!(k in seen)) { seen[k] = 1; printf "- %s, %s: %s: %s\n", $1, $2, $4, $6 } }' "$TSV")
	if [ -n "$notes" ]; then
		echo
		echo "Cells without a value (failed, timed out, or n/a by design), first message of each:"
		echo "$notes"
	fi
} >"$OUT/table.md"

# The chart: each row as a ratio to the veth's value, helpers side by side.
"$BT" chart -helpers "$HELPERS" -tests "$ROWS" -title "$(head -n 1 "$OUT/table.md"), $RUNS run(s) of $DURATION s per cell" \
	"$TSV" >"$OUT/chart.gp" && gnuplot "$OUT/chart.gp" >"$OUT/chart.svg" || say "the chart failed (see $OUT/chart.gp)"

echo >&2
cat "$OUT/table.md"
echo
echo "Raw results: $OUT (table.md, chart.svg)"
if [ "${PUBLISH:-0}" = 1 ]; then
	"$REPO/bench/publish.sh" "$OUT"
fi
