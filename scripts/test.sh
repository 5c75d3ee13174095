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
# groff-base and mandoc lint the man page; bash-completion runs the
# completion script as an interactive shell of Debian would; dpkg-dev
# (dpkg-shlibdeps) is for scripts/deb.sh, which test/podman runs; uidmap
# (newuidmap) is for RootlessKit; gnuplot-nox draws the bench's chart.
need="iproute2 iputils-ping tcpdump util-linux procps passwd busybox isc-dhcp-client ndisc6 ncat iperf3 groff-base mandoc bash-completion dpkg-dev uidmap gnuplot-nox"
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

step "Podman root file systems (for test/podman)"
# Podman 5.4 (Debian trixie) and Podman 6.1 (Debian sid + experimental),
# debootstrapped from Debian's mirror into /var/cache/gopasta/podman: about
# a minute on a new machine, nothing when they are there and current.
bash test/podman/env/build.sh trixie sid

step "tests"
# Skipping a test for lack of root or tools is a failure here.
GOPASTA_REQUIRE_ALL=1 GOPASTA_REQUIRE_E2E=1 go test -count=1 -timeout 20m ./...

step "hostile load, alone (each load takes both cores)"
# test/hostile_test.go: port spray, SYN flood, connection storm, exit while
# busy. Built only with -tags hostile, so that the step above (every package
# in parallel) does not run them beside the Podman tests.
GOPASTA_REQUIRE_ALL=1 GOPASTA_REQUIRE_E2E=1 go test -count=1 -timeout 10m -tags hostile \
	-run 'TestHostile|TestExitWhileBusy' ./test

step "fuzzing, $FUZZTIME per target"
for pkg in $(go list ./...); do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "-- $pkg $target"
		go test -run '^$' -fuzz "^$target\$" -fuzztime "$FUZZTIME" "$pkg"
	done
done
echo
echo "all tests passed"
