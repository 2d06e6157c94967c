#!/bin/sh
# make bench: measures keel on this machine and prints one table (see
# docs/bench.md). Progress goes to stderr, the table to stdout.
#
#   BENCH_RUNS=N        boots per image (default 3; the median is reported)
#   BENCH_BUILD_RUNS=N  runs per build measurement (default 1; the median)
#   BENCH_SKIP=a,b      skip sections: build, sizes, boot, writers, gobench
#   BENCH_KEEP=1        keep the work directory (outputs, consoles, cache)
#   KEEL=path           the keel binary to measure (default bin/keel)
#   TMPDIR              where the work directory goes (needs ~1.5 GiB)
set -eu
cd "$(dirname "$0")/.."

for tool in git go qemu-img xorriso mkfs.vfat mcopy cpio zstd mksquashfs mkfs.erofs; do
	command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool not found (run hack/install-deps.sh)" >&2; exit 1; }
done
keel=${KEEL:-bin/keel}
[ -x "$keel" ] || { echo "bench: $keel not built (run make build)" >&2; exit 1; }

bench=$(mktemp "${TMPDIR:-/tmp}/keel-bench-driver.XXXXXX")
trap 'rm -f "$bench"' EXIT INT TERM
go build -o "$bench" ./hack/bench
"$bench" -keel "$keel" "$@"
