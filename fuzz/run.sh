#!/bin/sh
# Runs one fuzz target with the settings used for Ember: one worker (the build machines have
# two cores), 64 KiB inputs, 10 s per input, 2 GiB RSS, the config dictionary, and a report of
# any input slower than one second. Usage: fuzz/run.sh TARGET SECONDS [extra libFuzzer flags]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
target=$1
secs=$2
shift 2
cd "$here"
[ -d "corpus/$target" ] || ./prepare-corpus.sh
exec cargo +nightly fuzz run "$target" -- \
    -jobs=1 -workers=1 -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -report_slow_units=1 -dict=config.dict -print_final_stats=1 \
    -max_total_time="$secs" "$@"
