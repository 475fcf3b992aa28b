#!/usr/bin/env bash
# Ember's demo: boots a QEMU machine (software emulation, no KVM needed) whose initramfs is
# Ember alone, hands it examples/qemu-demo.ign through fw_cfg (the qemu platform, as
# `-fw_cfg name=opt/com.coreos/config,file=...`), and prints what was provisioned.
#
#   scripts/qemu-demo.sh [CONFIG]
#
# The machine has two disks: a small root filesystem (busybox, labelled "root") and a blank
# 512 MiB disk.  On this first boot Ember partitions the blank disk, makes ext4 and xfs on it,
# writes files, a user with an SSH key and a systemd unit, then switches to the root, whose
# /sbin/init (qemu-tests/test-init.sh) prints what it finds and powers off.  The same
# machine is what the test qemu_fw_cfg_provisions_and_pivots boots.
#
# Needs qemu-system-x86_64, mkfs.ext4, busybox-static, cpio, zstd and a kernel (see
# qemu-tests/get-kernel.sh; scripts/install-deps.sh installs all of them).  Does not need
# root.  EMBER_BINARY=path uses that ember binary instead of `cargo build --release`.
# EMBER_DEMO_KEEP=dir keeps the disk images and the full console log there.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
repo="$(pwd)"
config="$(realpath "${1:-examples/qemu-demo.ign}")"

# The packages (qemu, mkfs, busybox, a kernel, ...): installed when run as root, else named.
./scripts/install-deps.sh

for t in qemu-system-x86_64 mkfs.ext4 cpio; do
  command -v "$t" > /dev/null || { echo "qemu-demo: $t is missing (run scripts/install-deps.sh as root)" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "qemu-demo: /bin/busybox is missing (package busybox-static)" >&2; exit 1; }

if [ -t 1 ]; then
  step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  step() { printf '\n== %s\n' "$*"; }
fi

step "kernel"
read -r kver vmlinuz moddir < <(qemu-tests/get-kernel.sh)
echo "$kver ($vmlinuz)"

step "ember (static release binary)"
if [ -n "${EMBER_BINARY:-}" ]; then
  ember="$EMBER_BINARY"
else
  cargo build --release --bin ember 2>&1 | tail -n 1
  ember="$repo/target/x86_64-unknown-linux-gnu/release/ember"
fi
ls -l "$ember" | awk '{ print $5 " bytes: " $9 }'

work="${EMBER_DEMO_KEEP:-}"
if [ -z "$work" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work"

step "initramfs (initramfs/build.sh)"
initramfs/build.sh --ember "$ember" --kver "$kver" --moddir "$moddir" -o "$work/initramfs.img" 2>&1 |
  grep -v ': warning: kernel module .* not found' || true

step "disks"
tree="$work/tree"
rm -rf "$tree"
mkdir -p "$tree"/{bin,sbin,etc/ember-test,dev,proc,sys,run,tmp,mnt,home,root,var/lib,srv}
cp /bin/busybox "$tree/bin/busybox"
ln -s busybox "$tree/bin/sh"
install -m 0755 qemu-tests/test-init.sh "$tree/sbin/init"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$tree/etc/passwd"
printf 'root:x:0:\nusers:x:100:\n' > "$tree/etc/group"
printf 'root:*:19000:0:99999:7:::\n' > "$tree/etc/shadow"
printf 'root:*::\nusers:*::\n' > "$tree/etc/gshadow"
cp qemu-tests/demo-show "$tree/etc/ember-test/show"
cp qemu-tests/demo-mounts "$tree/etc/ember-test/mounts"
rm -f "$work/root.img" "$work/data.img"
mkfs.ext4 -q -F -L root -d "$tree" "$work/root.img" 64M > /dev/null
truncate -s 512M "$work/data.img"
echo "root.img: 64 MiB ext4 \"root\" with busybox; data.img: 512 MiB, blank"

step "boot (QEMU, TCG): Ember's milestones"
console="$work/console.log"
started=$(date +%s.%N)
qemu-system-x86_64 -machine q35 -accel tcg -cpu max -m 1024 \
  -display none -no-reboot -monitor none -serial stdio -nic none \
  -kernel "$vmlinuz" -initrd "$work/initramfs.img" \
  -append "console=ttyS0 panic=-1 ignition.platform.id=qemu root=LABEL=root ember.failure_timeout=0" \
  -drive "file=$work/root.img,if=none,id=root,format=raw" -device virtio-blk-pci,drive=root,serial=root \
  -drive "file=$work/data.img,if=none,id=data,format=raw" -device virtio-blk-pci,drive=data,serial=data \
  -fw_cfg "name=opt/com.coreos/config,file=$config" \
  -device virtio-rng-pci < /dev/null | tr -d '\r' | tee "$console" |
  grep --line-buffered -E '\] ember: |^ember: |^  (operation|config|hint|details):' || true
ended=$(date +%s.%N)

facts() { sed -n 's/^EMBER-TEST //p' "$console"; }
cat_of() { facts | sed -n "s|^cat $1: ||p"; }
if ! facts | grep -qx done; then
  echo
  echo "qemu-demo: the machine did not reach the provisioned root; the console is in $console" >&2
  [ -n "${EMBER_DEMO_KEEP:-}" ] || { trap - EXIT; echo "(kept $work)" >&2; }
  exit 1
fi

step "what was provisioned, seen from inside the machine after switch_root"
printf '%-24s %s\n' "process 1:" "$(facts | sed -n 's/^pid=//p' | sed 's/^1$/the root'"'"'s \/sbin\/init (pid 1)/')"
printf '%-24s %s\n' "hostname:" "$(cat_of /etc/hostname)"
printf '%-24s %s\n' "motd:" "$(cat_of /etc/motd)"
printf '%-24s %s\n' "user:" "$(cat_of /etc/passwd | grep '^core:')"
printf '%-24s %s\n' "group:" "$(cat_of /etc/group | grep '^operators:')"
printf '%-24s %s\n' "ssh key of core:" "$(cat_of /home/core/.ssh/authorized_keys.d/ignition | cut -c1-60)..."
printf '%-24s %s\n' "unit:" "/etc/systemd/system/hello.service ($(cat_of /etc/systemd/system-preset/20-ignition.preset | grep hello))"
printf '%-24s %s\n' "/etc/localtime:" "-> $(facts | sed -n 's|^link /etc/localtime -> ||p')"
facts | sed -n 's/^mounted \([^ ]*\) \([^ ]*\) \(.*\)/\1 \2 \3/p' | while read -r dir fs label; do
  printf '%-24s %s\n' "$dir:" "$fs filesystem, $label, on the once-blank disk"
done
printf '%-24s %s\n' "/var/lib/data/hello.txt:" "$(cat_of /var/lib/data/hello.txt) ($(facts | sed -n 's|^stat /var/lib/data/hello.txt: ||p' | awk '{ print "mode " $1 ", owner " $2 }'))"
printf '%-24s %s\n' "/srv/www/index.html:" "$(cat_of /srv/www/index.html)"
printf '%-24s %s\n' "initramfs freed:" "$(facts | grep -qx 'missing /init' && echo yes || echo no)"
printf '%-24s %s\n' "config cache removed:" "$(facts | grep -qx 'missing /run/ignition.json' && echo yes || echo no)"

if command -v sgdisk > /dev/null; then
  step "the data disk's partition table, seen from the host (sgdisk -p)"
  sgdisk -p "$work/data.img" | sed -n '/^Number/,$p'
fi

step "timings (guest clock, TCG emulation)"
ms() { sed -n "s/^\[ *\([0-9.]*\)\] ember: $1.*/\1/p" "$console" | head -n 1; }
t0=$(ms 'Ember .* started as process 1')
t1=$(ms 'switching to the new root')
printf '%-24s %.3f s\n' "kernel start to Ember:" "$t0"
printf '%-24s %s s\n' "Ember to switch_root:" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
printf '%-24s %s\n' "CPU:" "$(sed -n 's/^\[ *[0-9.]*\] ember: CPU time: //p' "$console")"
printf '%-24s %s s\n' "wall (host):" "$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.1f", b - a }')"
