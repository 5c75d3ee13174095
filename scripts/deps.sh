#!/bin/sh
# deps.sh - install what building gopasta needs on Debian 12, as root.
# Go itself is expected at /usr/local/go (Debian 12's golang is too old for
# go.mod's Go version); the Go module proxy provides the modules.
set -eu
if ! command -v gcc >/dev/null || [ ! -e /usr/include/seccomp.h ]; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		gcc libc6-dev libseccomp-dev pkg-config iproute2 >/dev/null
fi
