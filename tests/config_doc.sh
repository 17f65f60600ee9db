#!/bin/sh
# docs/config.md is the output of `iftrain train --help-config=markdown`
# (the key table of src/app/config.c); this fails when the two differ, so a
# key added, renamed or given another default or range without `make
# config-doc` is caught.  Run from the source tree: the defaults of
# data.train and data.eval name data/ there.
set -u
: "${IFTRAIN:?IFTRAIN must point at the binary}"
top=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp /tmp/iftrain-config-doc.XXXXXX)
trap 'rm -f "$out"' EXIT
(cd "$top" && "$IFTRAIN" train --help-config=markdown) > "$out" || {
  echo "FAIL: iftrain train --help-config=markdown exited non-zero"; exit 1; }
if diff -u "$top/docs/config.md" "$out"; then
  echo "PASS: docs/config.md matches iftrain train --help-config=markdown"
else
  echo "FAIL: docs/config.md is out of date: run 'make config-doc' and commit it"
  exit 1
fi
