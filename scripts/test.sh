#!/usr/bin/env bash
# Runs every Ember test: unit tests, and the integration tests (which use loop devices, mkfs,
# local HTTP servers and so need root). Installs the packages the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo test --all-targets "$@"
