#!/bin/sh
# ns.sh - the workload side of one benchmark run (bench/run.sh copies it to a
# scratch directory). It runs as the benchmark user inside the namespace a
# helper serves (pasta's or slirp4netns'), or directly in the "host" netns for
# the bare veth.
#
#   ns.sh RUNDIR MODE NETWAIT PROTO PORT -- CMD...
#
#   MODE client   run CMD and wait for it
#   MODE server   start CMD, wait until it listens on PROTO (tcp|udp) PORT,
#                 create RUNDIR/ready, wait for CMD
#   NETWAIT none  the network is ready (pasta configures it before CMD runs)
#   NETWAIT slirp4|slirp6
#                 turn IPv6 DAD off, create RUNDIR/nsready (run.sh then starts
#                 slirp4netns on this process), and wait until slirp4netns
#                 has configured tap0: an IPv4 default route, and for slirp6
#                 also a usable global IPv6 address and an IPv6 default route
#
# CMD's stdout and stderr go to RUNDIR/out and RUNDIR/err, its exit status to
# RUNDIR/rc. Then RUNDIR/done is created and ns.sh waits (at most 30 s) for
# RUNDIR/release, so that run.sh can read the helper's peak RSS while the
# helper is still alive. Every wait here is bounded.
set -u
rd=$1 mode=$2 netwait=$3 proto=$4 port=$5
shift 5
[ "${1:-}" = -- ] && shift

log() { echo "ns.sh: $*" >>"$rd/ns.log"; }

case $netwait in
slirp4 | slirp6)
	{ echo 0 >/proc/sys/net/ipv6/conf/default/accept_dad; } 2>/dev/null || log "cannot turn IPv6 DAD off"
	: >"$rd/nsready"
	i=0
	while [ $i -lt 300 ]; do
		if ip -4 route show default 2>/dev/null | grep -q via; then
			[ "$netwait" = slirp4 ] && break
			if ip -6 route show default 2>/dev/null | grep -q via &&
				ip -6 addr show scope global 2>/dev/null | grep -q inet6 &&
				! ip -6 addr show tentative 2>/dev/null | grep -q inet6; then
				break
			fi
		fi
		sleep 0.05
		i=$((i + 1))
	done
	[ $i -lt 300 ] || log "network not configured by slirp4netns after 15 s"
	;;
esac

case $mode in
client)
	"$@" >"$rd/out" 2>"$rd/err" </dev/null
	echo $? >"$rd/rc"
	;;
server)
	"$@" >"$rd/out" 2>"$rd/err" </dev/null &
	cpid=$!
	case $proto in udp) f=u ;; *) f=t ;; esac
	i=0
	while [ $i -lt 200 ]; do
		ss -Hln$f "sport = :$port" 2>/dev/null | grep -q . && break
		kill -0 $cpid 2>/dev/null || break
		sleep 0.05
		i=$((i + 1))
	done
	[ $i -lt 200 ] || log "server not listening on $proto port $port after 10 s"
	: >"$rd/ready"
	wait $cpid
	echo $? >"$rd/rc"
	;;
*)
	log "bad mode $mode"
	echo 2 >"$rd/rc"
	;;
esac

: >"$rd/done"
i=0
while [ ! -e "$rd/release" ] && [ $i -lt 600 ]; do
	sleep 0.05
	i=$((i + 1))
done
exit "$(cat "$rd/rc")"
