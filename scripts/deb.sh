#!/bin/sh
# deb.sh - build the Debian package of gopasta from this checkout:
#
#   sh scripts/deb.sh [OUTDIR]      (as root on Debian 12; OUTDIR: .)
#
# It prints the path of gopasta_VERSION_ARCH.deb. The package is staged in
# a temporary folder and put together with dpkg-deb, which every Debian
# system has: no packaging tool to download, and the few files below say
# all there is. What it installs:
#
#   /usr/libexec/gopasta/pasta          the program (out of the way of the
#                                       passt package's /usr/bin/pasta)
#   /usr/libexec/gopasta/pesto          its control client (static), which
#                                       Podman 6 finds there too
#   /usr/bin/gopasta, /usr/bin/gopesto  links to them, for people at a shell
#   /etc/containers/containers.conf.d/50-gopasta.conf
#                                       Podman looks in /usr/libexec/gopasta
#                                       first (a conffile: purge removes it)
#   /usr/share/man/man1/gopasta.1.gz    dist/pasta.1
#   /usr/share/man/man1/gopesto.1.gz    dist/pesto.1
#   /usr/share/bash-completion/completions/gopasta, gopesto
#   /usr/share/doc/gopasta/copyright    generated: ours and the licences of
#                                       the Go modules linked in
#   /usr/share/doc/gopasta/changelog.gz dist/deb/changelog
set -eu
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
die() { echo "deb.sh: $*" >&2; exit 1; }
out=$(realpath "${1:-.}")

sh scripts/deps.sh
if ! command -v dpkg-shlibdeps >/dev/null; then # it computes the Depends line
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
umask 022
root=$stage/root
bin=$root/usr/libexec/gopasta/pasta
pesto=$root/usr/libexec/gopasta/pesto
mkdir -p "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/doc/gopasta" "$root/usr/share/man/man1"

# The programs, without debugging symbols (as Debian ships programs) and
# without the paths of this machine. pesto needs no C library: static.
go build -trimpath -ldflags='-s -w' -o "$bin" .
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$pesto" ./cmd/pesto
version=$("$bin" --version | sed -n 's/^gopasta //p')
[ -n "$version" ] || die "no version from $bin --version"
head -n 1 dist/deb/changelog | grep -q "^gopasta ($version) " ||
	die "dist/deb/changelog does not start with version $version (main.go's versionString)"
arch=$(dpkg --print-architecture)

ln -s ../libexec/gopasta/pasta "$root/usr/bin/gopasta"
ln -s ../libexec/gopasta/pesto "$root/usr/bin/gopesto"
install -D -m 644 dist/containers.conf.d/50-gopasta.conf "$root/etc/containers/containers.conf.d/50-gopasta.conf"
install -D -m 644 dist/bash-completion/gopasta "$root/usr/share/bash-completion/completions/gopasta"
install -D -m 644 dist/bash-completion/pesto "$root/usr/share/bash-completion/completions/gopesto"
gzip -9n <dist/pasta.1 >"$root/usr/share/man/man1/gopasta.1.gz"
gzip -9n <dist/pesto.1 >"$root/usr/share/man/man1/gopesto.1.gz"
gzip -9n <dist/deb/changelog >"$root/usr/share/doc/gopasta/changelog.gz"

# The copyright file: our licence, then each module the programs were
# built from (go version -m lists them), with its licence text from the
# module cache, and Go's own for the standard library and runtime.
modules=$(go version -m "$bin" "$pesto" | awk '$1 == "dep" { print $2 " " $3 }' | LC_ALL=C sort -u)
{
	echo "gopasta: a Go implementation of pasta, the user-mode network helper of passt."
	echo
	echo "Copyright: the gopasta authors"
	echo "License: Apache-2.0"
	echo " On Debian systems, the full text of the Apache License, Version 2.0 is"
	echo " in /usr/share/common-licenses/Apache-2.0."
	echo
	echo "The programs are statically linked with the following Go code, each"
	echo "under its own licence, reproduced below:"
	echo
	echo " - the Go standard library and runtime, $(go env GOVERSION)"
	echo "$modules" | sed 's/^/ - /'
	printf '\n==== the Go standard library and runtime\n\n'
	cat "$(go env GOROOT)/LICENSE"
	echo "$modules" | while read -r name v; do
		m=$name@$v
		dir=$(go list -m -f '{{.Dir}}' "$m")
		lic=$(ls "$dir"/LICENSE* "$dir"/COPYING* 2>/dev/null | head -n 1)
		[ -n "$lic" ] || die "no licence file in $dir"
		printf '\n==== %s\n\n' "$m"
		cat "$lic"
	done
} >"$root/usr/share/doc/gopasta/copyright"

# Depends: the shared libraries pasta links (glibc, libseccomp), at
# the versions their packages' symbols files say, as dpkg-shlibdeps does
# for Debian's own packages (it wants a debian/control to read).
mkdir -p "$stage/src/debian"
printf 'Source: gopasta\n\nPackage: gopasta\nArchitecture: any\n' >"$stage/src/debian/control"
depends=$(cd "$stage/src" && dpkg-shlibdeps -O "$bin" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || die "dpkg-shlibdeps found no dependencies for $bin"

echo /etc/containers/containers.conf.d/50-gopasta.conf >"$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort | xargs md5sum) >"$root/DEBIAN/md5sums"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$depends/" \
	dist/deb/control >"$root/DEBIAN/control"
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

# The same sources give the same package: every timestamp is the last
# commit's (or the changelog's when there is no git).
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null ||
	date -d "$(sed -n 's/^ -- .*>  //p' dist/deb/changelog | head -n 1)" +%s)
export SOURCE_DATE_EPOCH
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
deb=$out/gopasta_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
