#!/bin/sh
# test.sh - the whole test suite, as root on Debian 12: installs what the
# tests need, checks formatting and static analysis, runs unit, frame-level
# and end-to-end tests (as root and as an unprivileged user), then each fuzz
# target for a short while.
set -eu
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
# A count, not a duration: a duration's deadline can expire while a worker
# runs its last input on a loaded machine, which Go reports as a failure.
FUZZTIME=${FUZZTIME:-50000x}

step() { printf '\n== %s\n' "$*"; }

step "packages"
sh scripts/deps.sh
need="iproute2 iputils-ping tcpdump util-linux procps passwd busybox isc-dhcp-client ndisc6 ncat iperf3"
missing=""
for p in $need; do dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"; done
if [ -n "$missing" ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

step "gofmt, go vet, staticcheck"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then echo "not gofmt-clean: $unformatted"; exit 1; fi
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

step "Podman 5 root file system (for test/podman)"
# setup.sh is idempotent: about 2 minutes on a new machine (debootstrap from
# Debian's mirrors), a few seconds when the rootfs is already there. CI lays
# shared/ beside the clone; sessions have it at /work/shared.
if [ -z "${PODMAN5_DIR:-}" ]; then
	PODMAN5_DIR=/work/shared/podman5
	if [ -f ../shared/podman5/setup.sh ]; then PODMAN5_DIR=$(cd ../shared/podman5 && pwd); fi
fi
export PODMAN5_DIR
bash "$PODMAN5_DIR/setup.sh"

step "tests"
# Skipping a test for lack of root or tools is a failure here.
GOPASTA_REQUIRE_ALL=1 GOPASTA_REQUIRE_E2E=1 go test -count=1 -timeout 20m ./...

step "fuzzing, $FUZZTIME per target"
for pkg in $(go list ./...); do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "-- $pkg $target"
		go test -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZTIME" "$pkg"
	done
done
echo
echo "all tests passed"
