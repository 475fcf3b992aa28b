#!/usr/bin/env bash
# Installs the Debian packages Ember's tests and demo need (idempotent; needs root for apt-get).
set -euo pipefail
packages=(
  e2fsprogs xfsprogs btrfs-progs dosfstools gdisk fdisk util-linux mdadm cryptsetup-bin
  genisoimage xorriso cpio busybox-static kmod passwd ca-certificates jq
  qemu-system-x86 linux-image-amd64 dracut-core systemd zstd
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
