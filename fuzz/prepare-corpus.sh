#!/bin/sh
# Fills fuzz/corpus/<target>/ (git-ignored) with the committed seeds, the example configs and,
# when ../shared/reference is beside the repository (or in $SHARED_DIR), the JSON snippets of Ignition's docs
# (extracted at run time, never committed). Safe to run again: files are named by content.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
docs="${SHARED_DIR:-$repo/../shared}/reference/ignition-docs"

add() { # target file
    mkdir -p "$here/corpus/$1"
    cp "$2" "$here/corpus/$1/seed-$(sha1sum "$2" | cut -c1-16)"
}

for t in parse lint url dataurl unit; do
    for f in "$here/corpus-seed/$t"/*; do add "$t" "$f"; done
done
for f in "$repo"/examples/*.ign; do
    add parse "$f"
    add lint "$f"
done
if [ -d "$docs" ]; then
    tmp=$(mktemp -d)
    python3 - "$docs" "$tmp" <<'PY'
import glob, json, os, re, sys
docs, out = sys.argv[1], sys.argv[2]
n = 0
for md in sorted(glob.glob(os.path.join(docs, "*.md"))):
    for m in re.finditer(r"```json\n(.*?)```", open(md, encoding="utf-8").read(), re.S):
        n += 1
        open(os.path.join(out, f"doc-{n:03}.json"), "w", encoding="utf-8").write(m.group(1))
PY
    for f in "$tmp"/*.json; do
        [ -e "$f" ] || continue
        add parse "$f"
        add lint "$f"
    done
    rm -r "$tmp"
fi
for t in parse lint url dataurl unit; do
    echo "$t: $(ls "$here/corpus/$t" | wc -l) inputs"
done
