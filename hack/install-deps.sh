#!/bin/sh
# Install the Debian packages keel's tests and `make run` need. Idempotent:
# apt-get runs (with one update first) only when a package is missing.
set -eu

packages="qemu-system-x86 qemu-system-arm ovmf qemu-efi-aarch64 qemu-utils
dosfstools util-linux xorriso mtools gdisk fdisk runc e2fsprogs cpio zstd xz-utils file
u-boot-qemu p7zip-full ca-certificates python3-libvmdk squashfs-tools erofs-utils
device-tree-compiler cryptsetup-bin sbsigntool osslsigncode efitools swtpm swtpm-tools
systemd"

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: not a Debian-based system; install these packages yourself:" >&2
	echo "  $(echo $packages)" >&2
	exit 1
fi

missing=""
for p in $packages; do
	status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$status" = "installed" ] || missing="$missing $p"
done
[ -n "$missing" ] || exit 0

if [ "$(id -u)" -eq 0 ]; then
	sudo=""
elif command -v sudo >/dev/null 2>&1; then
	sudo="sudo"
else
	echo "install-deps: missing:$missing" >&2
	echo "install-deps: run as root:" >&2
	echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi

echo "install-deps: installing$missing" >&2
$sudo apt-get update
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
