#!/bin/sh
# Issue 16's prep benchmark: `iftrain prep --tokenizer` of a chat JSONL of about --mb MB on 1
# and on 2 ranks, side by side in one run (the machine is shared: compare the ratio), with the
# rows/s and MB/s prep prints, the wall time of the whole command, and the check that both
# data sets are the same (content_sha256).  The JSONL is made from the real text of
# tests/tok/corpus.jsonl: conversation i is {"messages": [system, user: line i, assistant:
# line i+1, user: line i+2, assistant: line i+3]}, the corpus cycled until the size is
# reached (the BPE cache of a real run warms up alike on real text with repeated words).
# Writes bench/results/prep-DATE.txt.
#
#   bench/prep.sh [--mb=M] [--tokenizer=NAME] [--rounds=R] [--out=FILE]
#
#   --mb        size of the JSONL (default 200)
#   --tokenizer one of tests/tok/data (default llama3_instruct)
#   --rounds    rounds of (1 rank, 2 ranks), the order alternating (default 2)
# Environment: IFTRAIN (default ./iftrain), MPIRUN (default mpirun), PYTHON (default python3).
set -eu
cd "$(dirname "$0")/.."
mb=200 tk=llama3_instruct rounds=2 out=bench/results/prep-$(date +%F).txt
for a in "$@"; do
  case $a in
  --mb=*) mb=${a#*=} ;;
  --tokenizer=*) tk=${a#*=} ;;
  --rounds=*) rounds=${a#*=} ;;
  --out=*) out=${a#*=} ;;
  *) echo "bench/prep.sh: unknown option $a (see the comment at the top)" >&2; exit 2 ;;
  esac
done
IFTRAIN=${IFTRAIN:-./iftrain} MPIRUN=${MPIRUN:-mpirun} PY=${PYTHON:-python3}
root=""; [ "$(id -u)" = 0 ] && root=--allow-run-as-root
w=${TMPDIR:-/tmp}/iftrain-prep-bench.$$
mkdir -p "$w" "$(dirname "$out")"
trap 'rm -rf "$w"' EXIT
sh tests/tok/unpack.sh "$w/tk" > /dev/null
$PY - "$mb" tests/tok/corpus.jsonl "$w/chat.jsonl" <<'PY'
import json, sys
mb, src, dst = float(sys.argv[1]), sys.argv[2], sys.argv[3]
lines = [json.loads(l)["text"] for l in open(src, encoding="utf-8")]
n, i, size = len(lines), 0, 0
with open(dst, "w", encoding="utf-8") as f:
    while size < mb * 1e6:
        m = [{"role": "system", "content": "You are a helpful assistant."}]
        for k in range(4):
            m.append({"role": "user" if k % 2 == 0 else "assistant", "content": lines[(i + k) % n]})
        s = json.dumps({"messages": m}, ensure_ascii=False) + "\n"
        f.write(s)
        size += len(s.encode("utf-8"))
        i += 4
PY
bytes=$(wc -c < "$w/chat.jsonl")
{
  echo "# bench/prep.sh $*  ($(date -u +%FT%TZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
  echo "# input: $w/chat.jsonl, $bytes bytes, $(wc -l < "$w/chat.jsonl") conversations; tokenizer tests/tok/data/$tk"
  printf '%-6s %-6s %9s %10s %9s %8s  %s\n' round ranks wall_s rows_per_s MB_per_s load content_sha256
} > "$out"
r=1
while [ "$r" -le "$rounds" ]; do
  order="1 2"; [ $((r % 2)) -eq 0 ] && order="2 1"
  for P in $order; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    t0=$(date +%s.%N)
    $MPIRUN $root --oversubscribe -n "$P" "$IFTRAIN" prep "$w/chat.jsonl" --tokenizer "$w/tk/$tk" \
      -o "$w/out$P.h5" --quiet > "$w/log$P"
    t1=$(date +%s.%N)
    $PY - "$w/log$P" "$w/out$P.h5" "$r" "$P" "$t0" "$t1" "$bytes" "$load" >> "$out" <<'PY'
import re, sys, h5py
log, h5, r, P, t0, t1, nbytes, load = sys.argv[1:]
wall = float(t1) - float(t0)
rows = int(re.search(r"(\d+) rows written", open(log).read()).group(1))
sha = h5py.File(h5, "r").attrs["content_sha256"]
sha = sha.decode() if isinstance(sha, bytes) else sha
print("%-6s %-6s %9.1f %10.0f %9.2f %8s  %s" % (r, P, wall, rows / wall, int(nbytes) / 1e6 / wall, load, sha[:16]))
PY
    rm -f "$w/out$P.h5"
  done
  r=$((r + 1))
done
$PY - "$out" >> "$out" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l[0] != "#" and not l.startswith("round")]
best = {}
for r in rows:
    best[r[1]] = min(best.get(r[1], 1e99), float(r[2]))
shas = {r[6] for r in rows}
print("# best wall: 1 rank %.1f s, 2 ranks %.1f s: speed-up %.2fx; data sets identical: %s"
      % (best["1"], best["2"], best["1"] / best["2"], "yes" if len(shas) == 1 else "NO"))
PY
cat "$out"
