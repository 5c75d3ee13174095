#!/bin/bash
# build.sh - build (or check) the root file systems that test/podman runs
# Podman in, on a Debian 12 host, as root:
#
#   trixie  Debian 13: Podman 5.4, netavark 1.14, passt 2025-05 (its pasta)
#   sid     Debian sid + experimental: Podman 6.1, netavark 2.0 from
#           experimental; passt 2026-10 (pasta, pesto), rootlesskit and
#           slirp4netns from sid
#
# Usage: test/podman/env/build.sh [trixie] [sid]      (default: both)
#        test/podman/env/build.sh --dir NAME          (print where NAME is)
#
# Everything comes from deb.debian.org (MIRROR overrides) through debootstrap
# and apt. Each rootfs lives in $GOPASTA_PODMAN_CACHE/NAME-HASH (default
# /var/cache/gopasta/podman, outside any clone), HASH being that of this
# script, so that clones and branches with different versions of it each
# keep their own and never rebuild each other's. Inside:
#   rootfs/     the root file system (user "tester" for rootless Podman,
#               image localhost/bb for root and tester, no registry)
#   bin/pasta   the rootfs's C pasta, runnable on this host through the
#               rootfs's own loader (and bin/pesto where passt has one)
#   stamp       this script's hash and the Debian versions installed
#   last-used   touched by run.sh: versions unused for PRUNE_DAYS (7) are
#               removed by the next build
# A rootfs is built only when it is missing or incomplete, beside the
# final place, under the lock that run.sh takes, and moved there at the end.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SELF="$HERE/$(basename "$0")"
CACHE=${GOPASTA_PODMAN_CACHE:-/var/cache/gopasta/podman}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
RUN="$HERE/run.sh"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C

# Packages of each rootfs. The sid list installs in two steps: everything
# from sid, then podman and netavark from experimental.
PKGS_COMMON="crun conmon catatonit uidmap iproute2 busybox-static socat passt libseccomp2 nftables aardvark-dns"
PKGS_trixie="podman netavark $PKGS_COMMON"
PKGS_sid="$PKGS_COMMON rootlesskit slirp4netns"
PKGS_sid_experimental="podman netavark"
# Versions that the rest of the project relies on (a prefix of the Debian
# version; checked after the install, so that a mirror that moves on shows
# up as a build failure, not as a silently different Podman).
WANT_trixie="podman=5.4.2 netavark=1.14."
WANT_sid="podman=6.1.1 netavark=2.0.0 passt=0.0~git20261002 rootlesskit=2.0.2"

die() { echo "build.sh: $*" >&2; exit 1; }
t0=$SECONDS
say() { echo "== [$((SECONDS - t0))s] $*"; }

script_hash=$(sha256sum "$SELF" | cut -c1-16)
if [ "${1:-}" = --dir ]; then
	case ${2:-} in trixie | sid) echo "$CACHE/$2-$script_hash" && exit 0 ;; esac
	die "--dir trixie or --dir sid"
fi
[ "$(id -u)" = 0 ] || die "run me as root"
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(trixie sid)
for n in "${names[@]}"; do
	case $n in trixie | sid) ;; *) die "unknown rootfs '$n' (trixie or sid)" ;; esac
done

# complete NAME DIR: the rootfs at DIR was finished by this version of the
# script.
complete() {
	local dir=$2
	[ -f "$dir/stamp" ] && [ -x "$dir/rootfs/usr/bin/podman" ] && [ -x "$dir/bin/pasta" ] &&
		[ "$(head -1 "$dir/stamp")" = "builder $script_hash" ]
}

# in_root ROOTFS CMD...: run CMD chrooted in ROOTFS with /proc, /dev and
# /sys mounted in a private mount namespace (for apt and dpkg scripts).
in_root() {
	local r=$1
	shift
	unshare --mount --propagation private sh -c '
		r=$1; shift
		mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" && mount --rbind /sys "$r/sys" &&
			exec chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive HOME=/root "$@"
	' in_root "$r" "$@"
}

apt_install() {
	local r=$1
	shift
	in_root "$r" apt-get install -y -q --no-install-recommends -o Dpkg::Use-Pty=0 "$@"
}

# debootstrap_rootfs NAME ROOTFS: a minimal Debian with apt sources.
debootstrap_rootfs() {
	local name=$1 r=$2
	say "$name: debootstrap"
	debootstrap --variant=minbase "$name" "$r" "$MIRROR" >"$r.debootstrap.log" 2>&1 ||
		{ tail -30 "$r.debootstrap.log" >&2; die "$name: debootstrap failed (log: $r.debootstrap.log)"; }
	rm -f "$r.debootstrap.log"
	cat >"$r/etc/apt/apt.conf.d/90gopasta" <<-'EOF'
		// A snapshot of sid may be past its Valid-Until; this is a test system.
		Acquire::Check-Valid-Until "false";
		APT::Install-Recommends "false";
		Acquire::Languages "none";
	EOF
	if [ "$name" = sid ]; then
		printf 'deb %s sid main\ndeb %s experimental main\n' "$MIRROR" "$MIRROR" >"$r/etc/apt/sources.list"
	else
		printf 'deb %s %s main\n' "$MIRROR" "$name" >"$r/etc/apt/sources.list"
	fi
	# No daemon may start inside the rootfs while packages install.
	printf '#!/bin/sh\nexit 101\n' >"$r/usr/sbin/policy-rc.d"
	chmod 755 "$r/usr/sbin/policy-rc.d"
	cp -L /etc/resolv.conf "$r/etc/resolv.conf" # for apt only; replaced below
}

install_packages() {
	local name=$1 r=$2 list exp
	list=PKGS_$name
	say "$name: packages: ${!list}"
	in_root "$r" apt-get update -q -o Dpkg::Use-Pty=0 >/dev/null
	# shellcheck disable=SC2086
	apt_install "$r" ${!list} >/dev/null
	exp=PKGS_${name}_experimental
	if [ -n "${!exp:-}" ]; then
		local p args=()
		for p in ${!exp}; do args+=("$p/experimental"); done
		say "$name: from experimental: ${!exp}"
		apt_install "$r" "${args[@]}" >/dev/null
	fi
	in_root "$r" apt-get clean
}

check_versions() {
	local name=$1 r=$2 want w p v
	want=WANT_$name
	for w in ${!want}; do
		p=${w%%=*}
		v=$(dpkg-query --admindir="$r/var/lib/dpkg" -W -f '${Version}' "$p" 2>/dev/null || true)
		case $v in "${w#*=}"*) ;; *) die "$name: $p is '$v', want ${w#*=}*" ;; esac
	done
}

# configure NAME ROOTFS: Podman's configuration for a rootfs entered by
# run.sh (no systemd, no journald), the rootless user, the image builder.
configure() {
	local name=$1 r=$2
	say "$name: configuration"
	# Containers must never resolve names outside this machine: pasta's
	# --dns-forward goes to the first resolver of resolv.conf, a test's own
	# on the (simulated) host's loopback.
	echo 'nameserver 127.0.0.1' >"$r/etc/resolv.conf"
	mkdir -p "$r/etc/containers" "$r/usr/local/libexec/podman-pasta" "$r/.oldroot"
	cat >"$r/etc/containers/containers.conf" <<-'EOF'
		# gopasta test/podman: a rootfs entered by run.sh, without systemd
		[containers]
		log_driver = "k8s-file"

		[network]
		default_rootless_network_cmd = "pasta"

		[engine]
		cgroup_manager = "cgroupfs"
		events_logger = "file"
		runtime = "crun"
		# run.sh mounts a replacement pasta (and pesto) in the first folder;
		# the others are Podman's defaults (netavark is needed even with pasta)
		helper_binaries_dir = ["/usr/local/libexec/podman-pasta", "/usr/local/libexec/podman",
		  "/usr/local/lib/podman", "/usr/libexec/podman", "/usr/lib/podman"]
	EOF
	# Podman 5.4 wants runroot and graphroot here (root's defaults); Podman
	# 6 would apply them to rootless users too, so sid keeps its defaults.
	printf '[storage]\ndriver = "overlay"\n' >"$r/etc/containers/storage.conf"
	if [ "$name" = trixie ]; then
		printf 'runroot = "/run/containers/storage"\ngraphroot = "/var/lib/containers/storage"\n' \
			>>"$r/etc/containers/storage.conf"
	fi
	in_root "$r" sh -c 'id tester >/dev/null 2>&1 || useradd -m -u 1000 -s /bin/bash tester'
	local f
	for f in subuid subgid; do
		grep -q '^tester:' "$r/etc/$f" 2>/dev/null || echo 'tester:100000:65536' >>"$r/etc/$f"
	done
	cat >"$r/usr/local/sbin/mk-bb-image" <<-'EOF'
		#!/bin/sh
		# mk-bb-image: image localhost/bb, built here without a registry:
		# busybox-static (every applet in /bin), socat with its libraries,
		# /www/index.html for httpd.
		set -e
		d=$(mktemp -d)
		mkdir -p $d/bin $d/etc $d/tmp $d/proc $d/sys $d/dev $d/root $d/www
		cp /bin/busybox $d/bin/busybox
		for a in $(busybox --list); do [ -e $d/bin/$a ] || ln -s busybox $d/bin/$a; done
		cp /usr/bin/socat $d/bin/socat
		for l in $(/lib64/ld-linux-x86-64.so.2 --list /usr/bin/socat | grep -o '/[^ ]*'); do cp -L --parents $l $d/; done
		echo 'root:x:0:0:root:/root:/bin/sh' >$d/etc/passwd
		echo 'root:x:0:' >$d/etc/group
		echo hello-from-container >$d/www/index.html
		chmod 1777 $d/tmp
		tar -C $d -cf $d.tar .
		podman rmi -i localhost/bb >/dev/null
		podman import --change 'CMD=["/bin/sh"]' --change 'ENV=PATH=/bin' $d.tar localhost/bb >/dev/null
		rm -rf $d $d.tar
	EOF
	chmod 755 "$r/usr/local/sbin/mk-bb-image"
}

# host_wrappers NAME DIR: DIR/bin/pasta (and pesto) run the rootfs's C
# binaries on this host through the rootfs's loader and libraries. An
# installed Debian pasta re-executes itself as pasta.avx2 on CPUs with AVX2,
# which cannot work under an explicit loader: the wrapper picks that build
# itself.
host_wrappers() {
	local dir=$2 prog
	mkdir -p "$dir/bin"
	for prog in pasta pesto; do
		[ -x "$dir/rootfs/usr/bin/$prog" ] || continue
		cat >"$dir/bin/$prog" <<-EOF
			#!/bin/sh
			# $prog of the rootfs beside this folder, made by test/podman/env/build.sh
			r=\$(dirname "\$(dirname "\$(readlink -f "\$0")")")/rootfs
			l=\$r/usr/lib/x86_64-linux-gnu
			b=\$r/usr/bin/$prog
			if [ -x "\$b.avx2" ] && grep -qw avx2 /proc/cpuinfo; then b=\$b.avx2; fi
			exec "\$l/ld-linux-x86-64.so.2" --library-path "\$l" "\$b" "\$@"
		EOF
		chmod 755 "$dir/bin/$prog"
	done
}

# images NAME DIR: localhost/bb for root and tester, then a rootless smoke
# test with the rootfs's own pasta.
images() {
	local name=$1 dir=$2 u
	say "$name: image localhost/bb (root, tester)"
	for u in root tester; do
		ROOTFS="$dir/rootfs" AS_USER=$u GOPASTA_PODMAN_NOLOCK=1 "$RUN" mk-bb-image
	done
	say "$name: smoke test: rootless podman run --network pasta"
	ROOTFS="$dir/rootfs" AS_USER=tester GOPASTA_PODMAN_NOLOCK=1 "$RUN" \
		podman run --rm --network pasta localhost/bb ip -4 addr show
}

# prune NAME: remove the rootfs of other versions of this script that no
# run.sh used for PRUNE_DAYS days.
prune() {
	local name=$1 d
	for d in "$CACHE/$name"-*; do
		[ -d "$d" ] && [ "$d" != "$CACHE/$name-$script_hash" ] || continue
		if [ -z "$(find "$d/last-used" "$d/stamp" -mtime "-${PRUNE_DAYS:-7}" 2>/dev/null)" ]; then
			say "$name: removing $d (unused for ${PRUNE_DAYS:-7} days)"
			rm -rf "$d"
		fi
	done
}

build() {
	local name=$1 dir=$CACHE/$1-$script_hash new=$CACHE/.$1-$script_hash.new
	prune "$name"
	if complete "$name" "$dir"; then
		say "$name: up to date ($dir)"
		return
	fi
	rm -rf "$new" "$dir"
	mkdir -p "$new"
	debootstrap_rootfs "$name" "$new/rootfs"
	install_packages "$name" "$new/rootfs"
	check_versions "$name" "$new/rootfs"
	configure "$name" "$new/rootfs"
	host_wrappers "$name" "$new"
	images "$name" "$new"
	{
		echo "builder $script_hash"
		dpkg-query --admindir="$new/rootfs/var/lib/dpkg" -W -f '${Package} ${Version}\n' \
			podman netavark aardvark-dns passt crun conmon rootlesskit slirp4netns 2>/dev/null || true
	} >"$new/stamp"
	mv "$new" "$dir"
	say "$name: done, in $dir: $(tail -n +2 "$dir/stamp" | tr '\n' ' ')"
}

if ! command -v debootstrap >/dev/null; then
	say "debootstrap on the host"
	apt-get update -qq
	# "/bookworm": take nothing from a newer suite the host may list
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap/bookworm >/dev/null
fi
mkdir -p "$CACHE" /run/lock
# rootless pasta opens /dev/net/tun as the user
if [ "$(stat -c %a /dev/net/tun)" != 666 ]; then chmod 666 /dev/net/tun; fi

# Both builds at once: most of the time is spent waiting for the mirror.
pids=()
for n in "${names[@]}"; do
	(
		lock=/run/lock/gopasta-podman-$n-$script_hash.lock
		exec 8>"$lock"
		flock -w 1800 8 || die "$n: lock $lock busy for 30 min"
		build "$n"
	) > >(sed -u "s/^/[$n] /") 2>&1 &
	pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
[ $rc = 0 ] || die "a build failed"
say "all done"
