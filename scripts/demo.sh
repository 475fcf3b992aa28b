#!/usr/bin/env bash
# Ember's demo: builds the static release binary and lints the two shipped example configs,
# one clean and one with typical mistakes.
set -uo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet || exit 1
ember=target/x86_64-unknown-linux-gnu/release/ember
echo "== ember validate examples/clean.ign examples/mistakes.ign"
"$ember" validate examples/clean.ign examples/mistakes.ign
echo "== exit code $? (0: no errors, 1: errors, 2: unreadable input or bad usage)"
