#!/bin/sh
# Build buildkitd, BuildKit's daemon, at a pinned version from the Go module
# proxy, once: the binary is kept under a directory keyed by the version and
# reused while it is there (the build takes minutes on two cores). keel's
# BuildKit tests start it (internal/buildkit, test/buildkit_test.go); it
# runs rootful with Debian's runc, installed by hack/install-deps.sh.
#
# `go install github.com/moby/buildkit/cmd/buildkitd@VERSION` refuses
# BuildKit's go.mod (it has exclude directives), so the module is
# downloaded with `go mod download` and built in a copy of itself, as its
# own main module: with its own go.mod and go.sum, the same build.
#
# Prints the binary's path. KEEL_TOOLS_DIR overrides the directory
# (default: ${XDG_CACHE_HOME:-~/.cache}/keel/tools).
set -eu

version=v0.33.1
tools="${KEEL_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/keel/tools}"
dir="$tools/buildkitd-$version"
bin="$dir/buildkitd"
go="${GO:-go}"

if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q " $version"; then
	echo "$bin"
	exit 0
fi
if ! command -v runc >/dev/null 2>&1 && [ ! -x /usr/sbin/runc ]; then
	echo "install-buildkitd: runc is missing: run hack/install-deps.sh" >&2
	exit 1
fi

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
echo "install-buildkitd: building buildkitd $version into $dir (takes a few minutes)" >&2
start=$(date +%s)
src=$(cd "$work" && GOFLAGS=-mod=mod "$go" mod download -json "github.com/moby/buildkit@$version" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
if [ -z "$src" ] || [ ! -f "$src/go.mod" ]; then
	echo "install-buildkitd: go mod download github.com/moby/buildkit@$version failed" >&2
	exit 1
fi
cp -R "$src" "$work/buildkit"
chmod -R u+w "$work/buildkit"
mkdir -p "$dir"
(cd "$work/buildkit" && CGO_ENABLED=0 GOFLAGS=-mod=mod "$go" build -trimpath \
	-ldflags "-s -w -X github.com/moby/buildkit/version.Version=$version" \
	-o "$bin.tmp" ./cmd/buildkitd)
mv "$bin.tmp" "$bin"
echo "install-buildkitd: built in $(($(date +%s) - start))s" >&2
echo "$bin"
