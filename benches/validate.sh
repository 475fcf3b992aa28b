#!/usr/bin/env bash
# Benchmark of `ember validate` on a large config: ../shared/bench/genconfig.py 20000 writes an
# 11.5 MB spec 3.4.0 config (20,000 files, links, units, users). Reports the wall time (hyperfine
# when installed, else repeated /usr/bin/time runs) and the peak RSS (/usr/bin/time -f %M) over
# several runs, and checks them against the targets: <= 0.15 s wall, <= 40 MiB peak RSS.
#
#   benches/validate.sh [N_FILES]        (default 20000; GENCONFIG=path overrides the generator)
#
# Exit status 0 when both targets are met, 1 when one is missed.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
runs=${RUNS:-10}
target_wall_ms=150
target_rss_kib=$((40 * 1024))

gen=${GENCONFIG:-}
if [ -z "$gen" ]; then
  for c in ../shared/bench/genconfig.py ../../shared/bench/genconfig.py; do
    if [ -f "$c" ]; then gen=$c; break; fi
  done
fi
[ -n "$gen" ] && [ -f "$gen" ] || { echo "validate.sh: genconfig.py not found; set GENCONFIG" >&2; exit 2; }

cargo build --release --quiet
ember=target/x86_64-unknown-linux-gnu/release/ember

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cfg=$tmp/config.ign
python3 "$gen" "$n" > "$cfg"
size=$(stat -c %s "$cfg")
echo "config: $gen $n -> $((size / 1024)) KiB"
"$ember" validate "$cfg" >/dev/null || { echo "validate.sh: the generated config does not validate" >&2; exit 2; }

# Wall time.
load=$(cut -d' ' -f1-3 /proc/loadavg)
if command -v hyperfine >/dev/null; then
  hyperfine --warmup 3 --runs "$runs" --style basic --export-json "$tmp/h.json" \
    "$ember validate $cfg" >/dev/null
  read -r mean_ms median_ms min_ms max_ms user_ms sys_ms < <(jq -r '.results[0] | [.mean, .median, .min, .max, .user, .system] | map(. * 1000 | floor) | @tsv' "$tmp/h.json")
  wall_tool=hyperfine
  cpu="user ${user_ms} ms + system ${sys_ms} ms (mean)"
else
  times=()
  for _ in $(seq "$runs"); do
    /usr/bin/time -f %e -o "$tmp/t" "$ember" validate "$cfg" >/dev/null
    times+=("$(awk '{printf "%d", $1 * 1000}' "$tmp/t")")
  done
  sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  min_ms=$(head -1 <<<"$sorted"); max_ms=$(tail -1 <<<"$sorted")
  median_ms=$(sed -n "$(( (runs + 1) / 2 ))p" <<<"$sorted")
  mean_ms=$(awk '{s += $1} END {printf "%d", s / NR}' <<<"$sorted")
  wall_tool="/usr/bin/time (10 ms resolution)"
  cpu="n/a without hyperfine"
fi

# Peak RSS: the largest of several runs.
rss_max=0
for _ in $(seq 5); do
  /usr/bin/time -f %M -o "$tmp/m" "$ember" validate "$cfg" >/dev/null
  rss=$(cat "$tmp/m")
  [ "$rss" -gt "$rss_max" ] && rss_max=$rss
done

echo "wall ($wall_tool, $runs runs): mean ${mean_ms} ms, median ${median_ms} ms, min ${min_ms} ms, max ${max_ms} ms (target <= ${target_wall_ms} ms)"
echo "CPU: $cpu; load average before the runs: $load (2 cores: a loaded machine inflates wall time)"
echo "peak RSS (max of 5 runs): $((rss_max / 1024)) MiB (${rss_max} KiB; target <= 40 MiB)"
ok=0
if [ "$mean_ms" -gt "$target_wall_ms" ]; then echo "MISSED: wall time"; ok=1; fi
if [ "$rss_max" -gt "$target_rss_kib" ]; then echo "MISSED: peak RSS"; ok=1; fi
[ "$ok" -eq 0 ] && echo "targets met"
exit "$ok"
