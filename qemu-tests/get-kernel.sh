#!/usr/bin/env bash
# Finds (or fetches) the kernel the QEMU tests and the demo boot, and prints one line:
#
#   <version> <vmlinuz> <module directory>
#
# In this order:
#   1. $EMBER_QEMU_KERNEL_DIR: an unpacked linux-image package (boot/vmlinuz-*, lib/modules/*);
#   2. the cache, $EMBER_QEMU_CACHE (default <repo>/target/qemu-cache): a kernel unpacked
#      there by an earlier run;
#   3. the installed Debian kernel: /boot/vmlinuz-<v> with /lib/modules/<v>;
#   4. Debian's linux-image-amd64 fetched with `apt-get download` and unpacked with `dpkg -x`
#      into the cache (once; later runs find it at step 2).
# A module tree without modules.dep (an unpacked package) is indexed with `depmod -b`.
# Exits 1 with the reason on stderr when there is no kernel to be had.
set -euo pipefail
export LC_ALL=C
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${EMBER_QEMU_CACHE:-$repo/target/qemu-cache}"

# An unpacked package at $1: prints the line and returns 0 when it holds a kernel.
from_tree() {
  local root="$1" v img mods
  for img in "$root"/boot/vmlinuz-*; do
    [ -f "$img" ] || continue
    v="${img##*/vmlinuz-}"
    for mods in "$root/lib/modules/$v" "$root/usr/lib/modules/$v"; do
      [ -d "$mods" ] || continue
      if [ ! -f "$mods/modules.dep" ]; then
        command -v depmod > /dev/null || { echo "get-kernel: depmod (package kmod) is needed to index $mods" >&2; return 1; }
        depmod -b "${mods%/lib/modules/$v}" "$v" >&2
      fi
      echo "$v $img $mods"
      return 0
    done
  done
  return 1
}

if [ -n "${EMBER_QEMU_KERNEL_DIR:-}" ]; then
  from_tree "$EMBER_QEMU_KERNEL_DIR" && exit 0
  echo "get-kernel: EMBER_QEMU_KERNEL_DIR=$EMBER_QEMU_KERNEL_DIR holds no boot/vmlinuz-* with its lib/modules" >&2
  exit 1
fi
[ -d "$cache/kernel" ] && from_tree "$cache/kernel" && exit 0
for img in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V -r); do
  v="${img##*/vmlinuz-}"
  if [ -f "/lib/modules/$v/modules.dep" ]; then
    echo "$v $img /lib/modules/$v"
    exit 0
  fi
done

# Fetch Debian's kernel package: the linux-image-amd64 metapackage names the real one.
if ! command -v apt-get > /dev/null || ! command -v dpkg-deb > /dev/null; then
  echo "get-kernel: no kernel installed and no apt-get to fetch one (install linux-image-amd64, or set EMBER_QEMU_KERNEL_DIR)" >&2
  exit 1
fi
mkdir -p "$cache/debs"
cd "$cache/debs"
echo "get-kernel: downloading linux-image-amd64 into $cache" >&2
if ! ls linux-image-amd64_*.deb > /dev/null 2>&1; then
  apt-get download -q linux-image-amd64 >&2 || { echo "get-kernel: apt-get download linux-image-amd64 failed" >&2; exit 1; }
fi
meta="$(ls -1 linux-image-amd64_*.deb | sort -V | tail -n 1)"
real="$(dpkg-deb -f "$meta" Depends | tr ',' '\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -n 1)"
[ -n "$real" ] || { echo "get-kernel: $meta names no kernel package" >&2; exit 1; }
if ! ls "${real}"_*.deb > /dev/null 2>&1; then
  apt-get download -q "$real" >&2 || { echo "get-kernel: apt-get download $real failed" >&2; exit 1; }
fi
deb="$(ls -1 "${real}"_*.deb | sort -V | tail -n 1)"
rm -rf "$cache/kernel.tmp"
dpkg -x "$deb" "$cache/kernel.tmp"
rm -rf "$cache/kernel"
mv "$cache/kernel.tmp" "$cache/kernel"
from_tree "$cache/kernel" && exit 0
echo "get-kernel: $deb holds no kernel image with modules" >&2
exit 1
