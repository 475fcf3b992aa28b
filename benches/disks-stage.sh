#!/bin/sh
# Benchmark of the disks stage (needs root: loop devices).
#
# A 256 MiB sparse loop disk gets four partitions (wipeTable) and two filesystems (vfat on
# one, ext4 on another); the stage runs N times (default 10) on a fresh disk, then once more
# with the same config (nothing to do).  Printed: median/min/max of the stage's own time
# spans (planning, GPT write, kernel notification, link creation, the wipe+mkfs section),
# Ember's own wall time (everything but the mkfs section), its CPU time from getrusage(SELF)
# and the mkfs children's CPU time from getrusage(CHILDREN).
#
# Target: Ember's own time (without the mkfs/mdadm/cryptsetup processes) at most 50 ms.
#
# Usage: benches/disks-stage.sh [ITERATIONS] [cargo profile: release (default) or dev]
set -eu
cd "$(dirname "$0")/.."
iterations=${1:-10}
profile=${2:-release}
if [ "$(id -u)" -ne 0 ]; then
    echo "benches/disks-stage.sh needs root (loop devices)" >&2
    exit 1
fi
EMBER_BENCH_ITERATIONS=$iterations exec cargo test --profile "$profile" --test integration \
    disks_stage::bench_disks_stage -- --ignored --nocapture --test-threads=1
