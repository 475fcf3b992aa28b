#!/usr/bin/env bash
# Builds Ember's minimal initramfs: no dracut, no systemd, no shell unless asked for.
#
#   initramfs/build.sh --ember target/x86_64-unknown-linux-gnu/release/ember \
#       [--kver 6.1.0-56-amd64] [--moddir /lib/modules/6.1.0-56-amd64] \
#       [--busybox[=/bin/busybox]] [--compress zstd|gzip|xz|none] \
#       [--module NAME]... [--tool NAME|PATH]... [--file SRC:DEST]... -o initramfs.img
#
# The image holds Ember as /init (and as /sbin/modprobe for the kernel's module requests),
# the kernel modules for disks, NICs, filesystems, md, dm-crypt and fw_cfg resolved with their
# dependencies from modules.dep, the mkfs/mdadm/cryptsetup programs with their shared
# libraries and the dynamic loader, /etc/nsswitch.conf (hosts: files dns), CA certificates.
# The output is a newc cpio, compressed; the same inputs give the same bytes
# (SOURCE_DATE_EPOCH sets every timestamp, default 0).  See docs/boot.md.
set -euo pipefail
export LC_ALL=C

die() { echo "build.sh: $*" >&2; exit 1; }
warn() { echo "build.sh: warning: $*" >&2; }

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

ember="" kver="" moddir="" out="" compress="" busybox=""
extra_modules=() extra_tools=() extra_files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ember) ember="${2:?}"; shift 2 ;;
    --ember=*) ember="${1#*=}"; shift ;;
    --kver) kver="${2:?}"; shift 2 ;;
    --kver=*) kver="${1#*=}"; shift ;;
    --moddir) moddir="${2:?}"; shift 2 ;;
    --moddir=*) moddir="${1#*=}"; shift ;;
    -o|--output) out="${2:?}"; shift 2 ;;
    --output=*) out="${1#*=}"; shift ;;
    --compress) compress="${2:?}"; shift 2 ;;
    --compress=*) compress="${1#*=}"; shift ;;
    --busybox) busybox=/bin/busybox; shift ;;
    --busybox=*) busybox="${1#*=}"; shift ;;
    --module) extra_modules+=("${2:?}"); shift 2 ;;
    --module=*) extra_modules+=("${1#*=}"); shift ;;
    --tool) extra_tools+=("${2:?}"); shift 2 ;;
    --tool=*) extra_tools+=("${1#*=}"); shift ;;
    --file) extra_files+=("${2:?}"); shift 2 ;;
    --file=*) extra_files+=("${1#*=}"); shift ;;
    -h|--help) usage 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; usage 2 ;;
  esac
done

[ -n "$ember" ] || die "--ember PATH is required (the static ember binary)"
[ -n "$out" ] || die "-o OUTPUT is required"
[ -f "$ember" ] || die "$ember does not exist"
if ! file -b "$ember" 2>/dev/null | grep -q 'statically linked'; then
  warn "$ember does not look statically linked; /init must not need shared libraries"
fi
[ -n "$kver" ] || kver="$(uname -r)"
[ -n "$moddir" ] || moddir="/lib/modules/$kver"
[ -d "$moddir" ] || die "no module directory $moddir (use --moddir)"
if [ -z "$compress" ]; then
  if command -v zstd >/dev/null; then compress=zstd; else compress=gzip; fi
fi
case "$compress" in
  zstd|gzip|xz|none) ;;
  *) die "--compress must be zstd, gzip, xz or none" ;;
esac
epoch="${SOURCE_DATE_EPOCH:-0}"
# Everything below runs inside the staging directory: make the inputs absolute.
ember="$(realpath "$ember")"
moddir="$(realpath "$moddir")"
out="$(realpath -m "$out")"
[ -z "$busybox" ] || busybox="$(realpath -m "$busybox")"
for i in "${!extra_files[@]}"; do
  f="${extra_files[$i]}"
  extra_files[$i]="$(realpath -m "${f%%:*}"):${f#*:}"
done
for i in "${!extra_tools[@]}"; do
  case "${extra_tools[$i]}" in */*) extra_tools[$i]="$(realpath -m "${extra_tools[$i]}")" ;; esac
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"
cd "$root"

# --- layout (merged /usr) ---------------------------------------------------------------
mkdir -p usr/bin usr/sbin usr/lib usr/lib64 etc/ember etc/ssl/certs dev proc sys run sysroot tmp root
ln -s usr/bin bin
ln -s usr/sbin sbin
ln -s usr/lib lib
ln -s usr/lib64 lib64
chmod 1777 tmp
chmod 0700 root

install -m 0755 "$ember" init
for name in usr/bin/ember usr/bin/ignition usr/sbin/modprobe; do
  ln -s ../../init "$name"
done

# --- kernel modules ---------------------------------------------------------------------
# Drivers: Ember loads each one at boot when the machine has its device (matching the
# device's modalias in sysfs against modules.alias): disk controllers, NICs, fw_cfg.
driver_modules=(
  virtio_pci virtio_blk virtio_scsi virtio_net nvme ahci ata_piix
  e1000 e1000e qemu_fw_cfg virtio_rng
  # clouds: AWS (ena, nvme), Azure/Hyper-V, VMware, Xen
  ena hv_vmbus hv_storvsc hv_netvsc hv_utils vmw_pvscsi vmxnet3 xen_blkfront xen_netfront
)
# Loaded at every boot (listed in /etc/ember/modules): the SCSI disk and CD-ROM drivers, whose
# devices a controller finds only after its own driver's probe has returned.
boot_modules=(sd_mod sr_mod)
# Shipped and loaded on demand (the kernel asks /sbin/modprobe for fs-*, crypto-*, ...;
# the disks stage asks for md and dm).
demand_modules=(
  ext4 xfs btrfs vfat isofs udf nls_cp437 nls_iso8859_1 nls_utf8 nls_ascii
  md_mod raid0 raid1 raid10 raid456 linear dm_mod dm_crypt
  xts cbc ecb essiv aesni_intel sha256_ssse3 sha512_ssse3 af_alg algif_skcipher algif_hash
)

deptab="$moddir/modules.dep"
if [ ! -f "$deptab" ]; then
  # A module tree without indexes (a kernel package unpacked with dpkg -x): index a
  # symlinked copy, leaving the original untouched.
  command -v depmod >/dev/null || die "$moddir has no modules.dep and depmod is not installed"
  mkdir -p "$work/depmod/lib/modules"
  cp -rs "$(cd "$moddir" && pwd)" "$work/depmod/lib/modules/$kver"
  depmod -b "$work/depmod" "$kver"
  deptab="$work/depmod/lib/modules/$kver/modules.dep"
fi

# name<TAB>path<TAB>deps (names), from modules.dep; dashes are underscores in names.
awk -F: '
  function modname(p,   n) { n = p; sub(/.*\//, "", n); sub(/\.ko.*/, "", n); gsub(/-/, "_", n); return n }
  NF >= 1 && $1 != "" {
    deps = ""; n = split($2, d, " ")
    for (i = 1; i <= n; i++) deps = deps " " modname(d[i])
    print modname($1) "\t" $1 "\t" deps
  }' "$deptab" > "$work/modtab"

builtin="$moddir/modules.builtin"
is_builtin() {
  [ -f "$builtin" ] && awk -v m="$1" '
    { n = $0; sub(/.*\//, "", n); sub(/\.ko.*/, "", n); gsub(/-/, "_", n); if (n == m) { found = 1; exit } }
    END { exit !found }' "$builtin"
}

srcdir="$(dirname "$deptab")"
declare -A shipped=()
ship_module() { # name -> copies it and its dependencies; returns 1 when unknown
  local name="${1//-/_}" line path deps d m
  [ -n "${shipped[$name]:-}" ] && return 0
  line="$(awk -F'\t' -v m="$name" '$1 == m { print; exit }' "$work/modtab")"
  if [ -z "$line" ]; then
    is_builtin "$name" && return 0
    return 1
  fi
  path="$(printf '%s' "$line" | cut -f2)"
  deps="$(printf '%s' "$line" | cut -f3)"
  shipped[$name]="$path"
  for d in $deps; do ship_module "$d" || warn "dependency $d of $name not found"; done
  # Soft dependencies (ext4 needs crc32c through the crypto API): names or aliases.
  for d in $(softdeps_of "$name"); do
    for m in $(resolve_alias "$d"); do ship_module "$m" || true; done
  done
  return 0
}
softdeps_of() {
  [ -f "$srcdir/modules.softdep" ] || return 0
  awk -v m="$1" '$1 == "softdep" { n = $2; gsub(/-/, "_", n); if (n == m) for (i = 3; i <= NF; i++) if ($i !~ /:$/) print $i }' \
    "$srcdir/modules.softdep"
}
resolve_alias() { # a module name or an exact alias -> module names
  local n="${1//-/_}"
  if awk -F'\t' -v m="$n" '$1 == m { found = 1; exit } END { exit !found }' "$work/modtab"; then
    echo "$n"
  elif [ -f "$srcdir/modules.alias" ]; then
    awk -v a="$1" '$1 == "alias" && $2 == a { print $3 }' "$srcdir/modules.alias"
  fi
}

loaded=()
for m in "${boot_modules[@]}" "${extra_modules[@]}"; do
  if ship_module "$m"; then loaded+=("${m//-/_}"); else warn "kernel module $m not found for $kver: skipped"; fi
done
for m in "${driver_modules[@]}" "${demand_modules[@]}"; do
  ship_module "$m" || warn "kernel module $m not found for $kver: skipped"
done

mdst="usr/lib/modules/$kver"
mkdir -p "$mdst"
for name in $(printf '%s\n' "${!shipped[@]}" | sort); do
  path="${shipped[$name]}"
  plain="${path%.xz}"; plain="${plain%.zst}"; plain="${plain%.gz}"
  mkdir -p "$mdst/$(dirname "$plain")"
  case "$path" in
    *.xz) xz -dc "$srcdir/$path" > "$mdst/$plain" ;;
    *.zst) zstd -q -dc "$srcdir/$path" > "$mdst/$plain" ;;
    *.gz) gzip -dc "$srcdir/$path" > "$mdst/$plain" ;;
    *) cp -L "$srcdir/$path" "$mdst/$plain" ;;
  esac
  chmod 0644 "$mdst/$plain"
done
# modules.dep for what is shipped (uncompressed names), modules.alias for those modules,
# modules.builtin as it is.
awk -F: -v list="$(printf '%s\n' "${!shipped[@]}")" '
  function modname(p,   n) { n = p; sub(/.*\//, "", n); sub(/\.ko.*/, "", n); gsub(/-/, "_", n); return n }
  function plain(p) { sub(/\.(xz|zst|gz)$/, "", p); return p }
  BEGIN { n = split(list, l, "\n"); for (i = 1; i <= n; i++) want[l[i]] = 1 }
  want[modname($1)] {
    line = plain($1) ":"; k = split($2, d, " ")
    for (i = 1; i <= k; i++) line = line " " plain(d[i])
    print line
  }' "$deptab" | sort > "$mdst/modules.dep"
if [ -f "$srcdir/modules.alias" ]; then
  awk -v list="$(printf '%s\n' "${!shipped[@]}")" '
    BEGIN { n = split(list, l, "\n"); for (i = 1; i <= n; i++) want[l[i]] = 1 }
    $1 == "alias" { m = $3; gsub(/-/, "_", m); if (want[m]) print }' "$srcdir/modules.alias" > "$mdst/modules.alias"
fi
if [ -f "$srcdir/modules.softdep" ]; then
  awk -v list="$(printf '%s\n' "${!shipped[@]}")" '
    BEGIN { n = split(list, l, "\n"); for (i = 1; i <= n; i++) want[l[i]] = 1 }
    $1 == "softdep" { m = $2; gsub(/-/, "_", m); if (want[m]) print }' "$srcdir/modules.softdep" > "$mdst/modules.softdep"
fi
[ -f "$builtin" ] && cp "$builtin" "$mdst/modules.builtin"
{
  echo "# Kernel modules Ember loads at every boot, besides the drivers of the devices found"
  echo "# (one per line); see docs/boot.md."
  printf '%s\n' "${loaded[@]}"
} > etc/ember/modules
echo "$kver" > etc/ember/kernel

# --- programs and their libraries ---------------------------------------------------------
find_program() {
  case "$1" in
    /*) [ -x "$1" ] && echo "$1" ;;
    *) PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH" command -v "$1" 2>/dev/null || true ;;
  esac
}
copy_libs() { # program -> copies its shared libraries and the loader
  local lib
  for lib in $(ldd "$1" 2>/dev/null | awk '/=> \// { print $3 } /^[ \t]*\/[^ ]+ \(0x/ { print $1 }'); do
    [ -e ".$lib" ] && continue
    mkdir -p ".$(dirname "$lib")"
    cp -L "$lib" ".$lib"
  done
}
add_program() { # name-or-path [required]
  local p dest
  p="$(find_program "$1")"
  if [ -z "$p" ]; then
    warn "program $1 not found: skipped"
    return 0
  fi
  dest="usr/sbin/$(basename "$1")"
  [ -e "$dest" ] && return 0
  cp -L "$p" "$dest"
  chmod 0755 "$dest"
  copy_libs "$p"
}
for t in mkfs.ext4 mkfs.xfs mkfs.btrfs mkfs.fat mkswap wipefs mdadm cryptsetup; do
  add_program "$t"
done
# clevis is a set of shell scripts around jose; ship them with what they run, when present.
if [ -n "$(find_program clevis)" ]; then
  cdir="$(dirname "$(find_program clevis)")"
  for t in "$cdir"/clevis "$cdir"/clevis-* jose bash curl; do add_program "$t"; done
fi
for t in "${extra_tools[@]}"; do add_program "$t"; done
# glibc loads libgcc_s at run time for thread cancellation (cryptsetup's argon2 threads).
if [ -d usr/lib/x86_64-linux-gnu ] || [ -d lib/x86_64-linux-gnu ]; then
  for g in /lib/x86_64-linux-gnu/libgcc_s.so.1 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1; do
    if [ -e "$g" ]; then mkdir -p "usr/lib/x86_64-linux-gnu"; cp -L "$g" usr/lib/x86_64-linux-gnu/; break; fi
  done
fi

if [ -n "$busybox" ]; then
  [ -x "$busybox" ] || die "busybox $busybox not found"
  cp -L "$busybox" usr/bin/busybox
  chmod 0755 usr/bin/busybox
  copy_libs "$busybox"
  for applet in $("$busybox" --list); do
    case "$applet" in init|linuxrc|modprobe|insmod|rmmod|depmod|switch_root) continue ;; esac
    [ -e "usr/bin/$applet" ] || [ -e "usr/sbin/$applet" ] || ln -s busybox "usr/bin/$applet"
  done
  [ -e usr/bin/sh ] || ln -s busybox usr/bin/sh
fi

# --- configuration --------------------------------------------------------------------------
cat > etc/nsswitch.conf <<'EOF'
passwd: files
group: files
shadow: files
hosts: files dns
EOF
printf '127.0.0.1 localhost\n::1 localhost\n' > etc/hosts
printf 'root:x:0:0:root:/root:/bin/sh\n' > etc/passwd
printf 'root:x:0:\n' > etc/group
printf 'NAME="Ember initramfs"\nID=ember-initramfs\n' > etc/initrd-release
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp -L /etc/ssl/certs/ca-certificates.crt etc/ssl/certs/ca-certificates.crt
elif [ -f /etc/pki/tls/certs/ca-bundle.crt ]; then
  cp -L /etc/pki/tls/certs/ca-bundle.crt etc/ssl/certs/ca-certificates.crt
else
  warn "no CA certificate bundle found: https:// configs will need ignition.security.tls"
fi
[ -f /etc/mke2fs.conf ] && cp -L /etc/mke2fs.conf etc/mke2fs.conf
for f in "${extra_files[@]}"; do
  src="${f%%:*}" dest="${f#*:}"
  [ -e "$src" ] || die "--file $f: $src does not exist"
  case "$dest" in /*) ;; *) die "--file $f: the destination must be absolute" ;; esac
  mkdir -p ".$(dirname "$dest")"
  cp -L "$src" ".$dest"
done

# --- archive --------------------------------------------------------------------------------
find . -mindepth 1 -exec touch -h -d "@$epoch" {} +
case "$compress" in
  zstd) squeeze=(zstd -q -T1 -15 -c) ;;
  gzip) squeeze=(gzip -n -9 -c) ;;
  xz) squeeze=(xz -q -T1 --check=crc32 -9 -c) ;;
  none) squeeze=(cat) ;;
esac
tmp_out="$out.tmp.$$"
find . -mindepth 1 | sed 's|^\./||' | sort \
  | cpio --quiet -o -H newc -R 0:0 --reproducible \
  | "${squeeze[@]}" > "$tmp_out"
mv -f "$tmp_out" "$out"
echo "build.sh: $out: $(stat -c %s "$out") bytes ($compress), kernel $kver," \
  "${#shipped[@]} modules (${#loaded[@]} loaded at every boot, drivers when their device is there)" >&2
