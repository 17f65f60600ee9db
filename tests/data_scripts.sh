#!/bin/sh
# data/debian's scripts refuse bad input with the cause and the fix, before
# reading anything: exit 2 (argparse) for a bad option, 1 with an apt-get
# hint when WordNet is missing (WORDNET_DIR points at an empty directory).
# base_card.py, check_base.py and run.sh report name the missing pipeline
# output and the stage that makes it.
# Their output on the real database is described in data/debian/README.md.
set -u
PY=python3
PYTHONDONTWRITEBYTECODE=1; export PYTHONDONTWRITEBYTECODE  # nothing written beside the scripts
command -v $PY >/dev/null || { echo "SKIP: no python3"; exit 77; }
top=$(cd "$(dirname "$0")/.." && pwd)
w=${TMPDIR:-/tmp}/iftrain-data-scripts.$$
mkdir -p "$w/empty"
trap 'rm -rf "$w"' EXIT
fail=0
# expect CODE 'TEXT' SCRIPT ARGS...: exit code CODE, TEXT in the messages, no output directory made
expect() {
  code=$1 text=$2; shift 2
  WORDNET_DIR=$w/empty $PY "$@" > "$w/log" 2>&1; rc=$?
  if [ $rc -ne "$code" ] || ! grep -qF -- "$text" "$w/log" || [ -e "$w/out" ]; then
    echo "FAIL: $* -> exit $rc (want $code), want '$text':"; sed 's/^/    /' "$w/log"; fail=1
  else
    echo "PASS: $(basename "$1"): $text"
  fi
}
g=$top/data/debian/gather_corpus.py m=$top/data/debian/make_instruct.py
expect 2 "--heldout 1.5: a fraction" "$g" -o "$w/out" --heldout 1.5
expect 2 "--heldout 0.0: a fraction" "$g" -o "$w/out" --heldout 0
expect 2 "--max-chars 10: pieces are cut at paragraphs" "$g" -o "$w/out" --max-chars 10
expect 2 "unknown source wiki; choose from wordnet, man, doc" "$g" -o "$w/out" --sources man,wiki
expect 2 "the following arguments are required: -o/--out" "$g"
expect 1 "hint: apt-get install wordnet-base" "$g" -o "$w/out"
expect 2 "--test -0.1: a fraction of the words" "$m" -o "$w/out" --test -0.1
expect 1 "hint: apt-get install wordnet-base" "$m" -o "$w/out"
# base_card.py on a run directory that lacks the exported model
b=$top/data/debian/base_card.py
expect 1 "base-hf/config.json: No such file or directory (run 'run.sh export' first)" "$b" "$w/empty"
# run.sh report before run.sh compare: no sweep directory, then one without runs
# (IFTRAIN need only be executable: nothing runs)
r=$top/data/debian/run.sh
export RUN="$w/run" IFTRAIN=/bin/true
SWEEP_DIR=$w/none PY=bash expect 2 "no $w/none: run 'compare' first" "$r" report
SWEEP_DIR=$w/empty PY=bash expect 2 "no runs in $w/empty/seed*/: run 'compare' first" "$r" report
# check_base.py (python3-torch, python3-h5py): a bad eval JSON, a run without base-hf
if /usr/bin/python3 -c 'import torch, h5py' 2>/dev/null; then
  c=$top/data/debian/check_base.py
  echo '{"samples": 4}' > "$w/ev.json"
  PY=/usr/bin/python3 expect 1 "ev.json: not the JSON of iftrain eval --json (KeyError" "$c" "$w/empty" "$w/ev.json"
  echo '{"samples": 4, "eval_loss": 1, "token_nll": 1}' > "$w/ev.json"
  PY=/usr/bin/python3 expect 1 "base-hf/config.json" "$c" "$w/empty" "$w/ev.json"
  PY=/usr/bin/python3 expect 1 "(run 'run.sh export' first)" "$c" "$w/empty" "$w/ev.json"
  PY=/usr/bin/python3 expect 2 "check_base.py RUN eval.json" "$c" "$w/empty"
else
  echo "(check_base.py not checked: no python3-torch/python3-h5py)"
fi
exit $fail
