#!/bin/bash
# Benchmark (not a test): 32 files x 32 MiB, each verified with sha512, from a local server that
# waits 50 ms before answering each request; Fetcher::fetch_many with parallelism 1, 4 and 8.
# Shows how much of the per-request latency parallel downloads hide. With big files the two cores
# (hashing, page cache) are the limit; `benches/fetch-parallel.sh 32 1M` isolates the latency.
# Usage: benches/fetch-parallel.sh [count, default 32] [size, default 32M] [delay ms, default 50]
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-32}
SIZE=${2:-32M}
DELAY=${3:-50}

BIN=$(cargo bench --bench fetch-bench --no-run --message-format=json 2>/dev/null |
  jq -r 'select(.reason == "compiler-artifact" and .target.name == "fetch-bench" and .executable != null) | .executable' | tail -1)
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/ember-fetch-parallel.XXXXXX")
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

mkdir "$WORK/src"
for i in $(seq "$COUNT"); do head -c "$SIZE" /dev/urandom > "$WORK/src/f$i"; done
(cd "$WORK/src" && sha512sum f*) > "$WORK/manifest"
sync

"$BIN" serve "$WORK/src" "$DELAY" > "$WORK/port" &
SERVER=$!
for _ in $(seq 50); do [ -s "$WORK/port" ] && break; sleep 0.1; done
PORT=$(cat "$WORK/port")

echo "# $COUNT files x $SIZE, ${DELAY} ms per request, $(nproc) cores"
for P in 1 4 8; do
  rm -rf "$WORK/out"; mkdir "$WORK/out"
  "$BIN" many "http://127.0.0.1:$PORT" "$WORK/manifest" "$WORK/out" "$P" | grep -v '^many_files'
  (cd "$WORK/out" && sha512sum --quiet -c "$WORK/manifest")
  rm -rf "$WORK/out"; sync
done
