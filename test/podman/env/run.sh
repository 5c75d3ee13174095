#!/bin/bash
# run.sh - run one command inside a root file system made by build.sh, as
# on a freshly booted machine, as root on the host.
#
# Usage: [ROOTFS=trixie|sid|DIR] [AS_USER=root|tester] [USERNS=1]
#        [PASTA=FILE] [PESTO=FILE] [PASTA_LOG=FILE] [NETNS=NAME|PATH]
#        test/podman/env/run.sh [COMMAND [ARG...]]
#
#   ROOTFS     trixie (Podman 5.4, the default) or sid (Podman 6.1), as
#              built by the build.sh beside this script (build.sh --dir
#              NAME says where), or the path of a rootfs
#   AS_USER    root (default) or tester, the rootless Podman user (uid 1000,
#              subordinate ids 100000-165535)
#   USERNS=1   run COMMAND as root of a new user namespace (ids 0-65535
#              mapped to themselves): "root in a user namespace", which
#              Podman accepts for pasta (plain root Podman refuses pasta)
#   PASTA      host path of a pasta-compatible binary: Podman runs it
#              instead of the rootfs's /usr/bin/pasta (it is mounted as
#              /usr/local/libexec/podman-pasta/pasta, first in
#              helper_binaries_dir). It must run with the rootfs's libraries
#   PESTO      the same for pesto (passt's configuration client)
#   PASTA_LOG  host file: every pasta call (argv, ids, fds, environment) is
#              appended to it
#   NETNS      run everything in this network namespace (a name in
#              /run/netns or a path), e.g. a test's simulated host. Without
#              it, containers see this machine's own interfaces
#   COMMAND    default: bash
#
# Each call is a new "boot": a private mount namespace with the rootfs as
# "/" (pivot_root: the kernel refuses user namespaces, hence rootless
# Podman, in a chroot), fresh tmpfs on /run and /dev/shm (Podman's state and
# locks), the unified cgroup hierarchy on /sys/fs/cgroup (this host mounts
# cgroup v1, which Podman 6 refuses and crun rejects in hybrid mode), and a
# PID namespace whose init is this call: every process it started,
# containers, conmon and pasta included, dies when COMMAND ends. Run a whole
# scenario (podman run -d, then what uses it) in one call.
#
# Calls on the same rootfs share its container stores, and a fresh /run
# makes Podman reset the state of every container in them, so calls on one
# rootfs are serialised: run.sh holds /run/lock/gopasta-podman-NAME-HASH.lock
# (build.sh takes it too) and waits for it up to LOCK_WAIT seconds (1800).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
die() { echo "run.sh: $*" >&2; exit 125; }

[ "$(id -u)" = 0 ] || die "run me as root"
case ${ROOTFS:=trixie} in
*/*) R=$(readlink -f "$ROOTFS") ;;
trixie | sid) R=$(bash "$HERE/build.sh" --dir "$ROOTFS")/rootfs ;;
*) die "ROOTFS is trixie, sid or a path, not '$ROOTFS'" ;;
esac
[ -x "$R/usr/bin/podman" ] || die "no rootfs at $R: run $HERE/build.sh"
# NAME-HASH of build.sh's folder names the lock (see build.sh)
NAME=$(basename "$(dirname "$R")")
NAME=${NAME#.}
NAME=${NAME%.new}
touch "$(dirname "$R")/last-used" 2>/dev/null || true
U=${AS_USER:-root}
case $U in root | tester) ;; *) die "AS_USER is root or tester, not '$U'" ;; esac
if [ -n "${NETNS:-}" ]; then
	case $NETNS in /*) NSPATH=$NETNS ;; *) NSPATH=/run/netns/$NETNS ;; esac
	[ -e "$NSPATH" ] || die "no network namespace $NSPATH"
fi
for v in PASTA PESTO; do
	if [ -n "${!v:-}" ] && [ ! -f "${!v}" ]; then die "$v: no file ${!v}"; fi
done
[ $# -gt 0 ] || set -- bash

# Descriptors other than 0-2 must not reach Podman, pasta or the containers.
for f in /proc/$$/fd/*; do
	n=${f##*/}
	if [ "$n" -gt 2 ] && [ "$n" != 255 ]; then eval "exec $n>&-" 2>/dev/null || true; fi
done
if [ -z "${GOPASTA_PODMAN_NOLOCK:-}" ]; then
	mkdir -p /run/lock
	exec 9>"/run/lock/gopasta-podman-$NAME.lock"
	flock -w "${LOCK_WAIT:-1800}" 9 || die "lock /run/lock/gopasta-podman-$NAME.lock still busy after ${LOCK_WAIT:-1800} s"
fi

uid=$(awk -F: -v u="$U" '$1 == u { print $3 }' "$R/etc/passwd")
gid=$(awk -F: -v u="$U" '$1 == u { print $4 }' "$R/etc/passwd")
home=$(awk -F: -v u="$U" '$1 == u { print $6 }' "$R/etc/passwd")
[ -n "$uid" ] || die "no user $U in $R"
if [ "$uid" != 0 ] && [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
	echo "run.sh: warning: rootless pasta needs /dev/net/tun mode 666" >&2
fi
# The argv logger writes into a folder of ours beside PASTA_LOG (any user
# may write there; a call killed before its end leaves it in the caller's
# folder, not in /tmp), appended to PASTA_LOG at the end.
logdir=""
if [ -n "${PASTA_LOG:-}" ]; then
	touch "$PASTA_LOG"
	logdir=$(mktemp -d "$(dirname "$(readlink -f "$PASTA_LOG")")/.pasta-log.XXXXXX")
	chmod 1777 "$logdir"
	# (no file when Podman called no pasta through the logger: not an error)
	trap 'cat "$logdir"/* >>"$PASTA_LOG" 2>/dev/null || true; rm -rf "$logdir"' EXIT
fi

pre=()
if [ -n "${NETNS:-}" ]; then pre=(nsenter "--net=$NSPATH"); fi # not "ip netns exec": it remounts /sys
export _R=$R _UID=$uid _GID=$gid _HOME=$home _USER=$U _USERNS=${USERNS:-} \
	_PASTA=${PASTA:-} _PESTO=${PESTO:-} _LOG=$logdir
# The new PID namespace's init is bash: it mounts, pivots, runs COMMAND and
# reaps; when it exits, the kernel kills whatever is left.
rc=0
"${pre[@]}" unshare --mount --propagation private --pid --fork --kill-child bash -c '
set -eu
mount --bind "$_R" "$_R"   # "/" must be a mount point: containers/storage remounts it
mount --rbind /dev "$_R/dev"
mount -t tmpfs -o mode=1777 tmpfs "$_R/dev/shm"
mount --rbind /sys "$_R/sys"
if mountpoint -q "$_R/sys/fs/cgroup"; then umount -R "$_R/sys/fs/cgroup"; fi
mount -t cgroup2 none "$_R/sys/fs/cgroup"
mount -t proc proc "$_R/proc"
mount -t tmpfs -o mode=755 tmpfs "$_R/run"
mkdir -p "$_R/run/lock" "$_R/.oldroot"
if [ "$_UID" != 0 ]; then install -d -m 700 -o "$_UID" -g "$_GID" "$_R/run/user/$_UID"; fi

# A replacement pasta/pesto, and the argv logger, in the first folder of
# helper_binaries_dir.
D=/usr/local/libexec/podman-pasta
if [ -n "$_PASTA$_PESTO$_LOG" ]; then
	mount -t tmpfs -o mode=755 tmpfs "$_R$D"
	real=/usr/bin/pasta
	if [ -n "$_PASTA" ]; then install -m 755 "$_PASTA" "$_R$D/pasta.bin"; real=$D/pasta.bin; fi
	if [ -n "$_PESTO" ]; then install -m 755 "$_PESTO" "$_R$D/pesto"; fi
	if [ -n "$_LOG" ]; then
		mkdir "$_R/run/pasta-log"
		mount --bind "$_LOG" "$_R/run/pasta-log"
		cat >"$_R$D/pasta" <<EOF
#!/bin/sh
# run.sh: log this call to /run/pasta-log/argv, then run the real pasta
{ echo "=== \$(date +%T.%N) pid=\$\$ ppid=\$PPID uid=\$(id -u) uid_map=\$(tr -s " \n" " " </proc/self/uid_map)"
  printf "argv:"; for a in "\$@"; do printf " %s" "\$a"; done; echo
  echo "parent: \$(tr "\0" " " </proc/\$PPID/cmdline)"
  echo "fds:"; for f in /proc/\$\$/fd/*; do echo "  \${f##*/} -> \$(readlink \$f)"; done
  echo "env:"; env | sort | sed "s/^/  /"; } >>/run/pasta-log/argv 2>&1
exec $real "\$@"
EOF
		chmod 755 "$_R$D/pasta"
	elif [ -n "$_PASTA" ]; then
		mv "$_R$D/pasta.bin" "$_R$D/pasta"
	fi
fi

cd "$_R"
pivot_root . .oldroot
cd /
umount -l /.oldroot
mount --make-rshared /
env=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$_HOME" USER="$_USER"
	LOGNAME="$_USER" TERM="${TERM:-dumb}" LC_ALL=C)
cd "$_HOME" 2>/dev/null || true
set +e
if [ "$_UID" != 0 ]; then
	setpriv --reuid="$_UID" --regid="$_GID" --init-groups env -i "${env[@]}" XDG_RUNTIME_DIR=/run/user/$_UID "$@"
elif [ -n "$_USERNS" ]; then
	env -i "${env[@]}" unshare --user --map-users=0:0:65536 --map-groups=0:0:65536 --mount -- "$@"
else
	env -i "${env[@]}" "$@"
fi
' run.sh "$@" 9>&- || rc=$?
exit $rc
