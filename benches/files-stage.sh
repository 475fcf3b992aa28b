#!/usr/bin/env bash
# Files-stage benchmark: load a config (`config::parse`) and run the files stage into a fresh
# directory root on tmpfs, for ../shared/bench/genconfig.py 2000 and 20000.
#
# Target for 20,000 files: at most 0.7 s wall and 48 MiB peak RSS (Ignition: 3.7 s + 3.2 s,
# 176 MiB). The root is fresh for every run: /etc with passwd, shadow, group (with `wheel`,
# which the generated config uses) and gshadow; users, files, units and the result file are
# written as at boot, through examples/files_stage.rs.
#
# usage: benches/files-stage.sh [SHARED_DIR]      (default ../shared)
# Needs python3, hyperfine and GNU time (/usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${1:-../shared}
gen="$shared/bench/genconfig.py"
[ -f "$gen" ] || { echo "no $gen (pass the shared directory as the first argument)" >&2; exit 2; }

cargo build --release --example files_stage
bin=$PWD/target/x86_64-unknown-linux-gnu/release/examples/files_stage

tmp=${TMPFS:-/dev/shm}
work=$(mktemp -d "$tmp/ember-files-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

cat > "$work/mkroot" <<'SH'
#!/bin/sh
set -e
rm -rf "$1"; mkdir -p "$1/etc"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$1/etc/passwd"
printf 'root:*:19000:0:99999:7:::\n' > "$1/etc/shadow"
printf 'root:x:0:\nwheel:x:10:\n' > "$1/etc/group"
printf 'root:*::\nwheel:!::\n' > "$1/etc/gshadow"
chmod 640 "$1/etc/shadow" "$1/etc/gshadow"
SH
chmod +x "$work/mkroot"

status=0
for n in 2000 20000; do
    cfg="$work/c$n.ign"
    python3 "$gen" "$n" > "$cfg"
    echo "== $n files ($(du -h "$cfg" | cut -f1) config)"
    hyperfine --warmup 1 --runs 10 --export-json "$work/h$n.json" \
        --prepare "$work/mkroot $work/root" "$bin $cfg $work/root" >/dev/null
    "$work/mkroot" "$work/root"
    read -r rss cpu_user cpu_sys < <(/usr/bin/time -f '%M %U %S' "$bin" "$cfg" "$work/root" 2>&1 >/dev/null | tail -1)
    "$work/mkroot" "$work/root"
    split=$("$bin" "$cfg" "$work/root" 2>&1 | head -1)
    echo "   one run: $split"
    python3 - "$work/h$n.json" "$rss" "$n" "$cpu_user" "$cpu_sys" <<'PY' || status=1
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
rss_mib = int(sys.argv[2]) / 1024
print("   wall mean %.3f s (min %.3f, max %.3f), peak RSS %.1f MiB, CPU %.2f s user + %.2f s sys"
      % (r["mean"], r["min"], r["max"], rss_mib, float(sys.argv[4]), float(sys.argv[5])))
if sys.argv[3] == "20000":
    ok = True
    for what, good in (("time (0.7 s)", r["mean"] <= 0.7), ("memory (48 MiB)", rss_mib <= 48)):
        print("   %s: %s" % (what, "within target" if good else "OVER TARGET"))
        ok = ok and good
    sys.exit(0 if ok else 1)
PY
done
echo "machine load: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (the wall targets assume an otherwise idle machine;"
echo "under load, CPU time is the steadier figure: the write phase runs on every core)"
exit $status
