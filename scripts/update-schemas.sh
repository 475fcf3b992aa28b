#!/usr/bin/env bash
# Regenerates config-schema/<version>.json from Ember's config model with `ember schema VERSION`.
# Run it after changing the model (src/config/model.rs or schema.rs), then commit the files.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
ember=target/x86_64-unknown-linux-gnu/debug/ember
mkdir -p config-schema
for v in 3.0.0 3.1.0 3.2.0 3.3.0 3.4.0 3.5.0 3.6.0 3.7.0-experimental; do
  "$ember" schema "$v" > "config-schema/$v.json"
done
echo "update-schemas: wrote config-schema/*.json"
