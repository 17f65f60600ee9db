#!/bin/sh
# The tokenizer against the Hugging Face tokenizers library (issue 16):
# every line of tests/tok/corpus.jsonl encoded by `iftrain tokenize` with
# each stored tokenizer.json (GPT-2, Llama 3, Llama 3 Instruct, Mistral,
# Qwen3) must give exactly the library's ids -- without and with the
# post-processor's special tokens -- and the library's ids must decode to
# the library's text.  The vectors were made by tests/tok/make_vectors.js
# (npm `tokenizers`); this check needs only python3 (standard library).
# Env: IFTRAIN (the binary); KEEP=1 keeps the work directory.
set -u
: "${IFTRAIN:?IFTRAIN must point at the binary}"
here=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python3}
w=${TMPDIR:-/tmp}/iftrain-tok.$$
rm -rf "$w"; mkdir -p "$w"
fail=0
sh "$here/unpack.sh" "$w/tk" || { echo "FAIL: tests/tok/unpack.sh (stored tokenizer files damaged?)"; exit 1; }
for t in gpt2 llama3 llama3_instruct mistral qwen3; do
  start=$(date +%s.%N)
  "$IFTRAIN" tokenize --tokenizer "$w/tk/$t" < "$here/corpus.jsonl" > "$w/$t.enc" &&
  "$IFTRAIN" tokenize --tokenizer "$w/tk/$t" --add-special < "$here/corpus.jsonl" > "$w/$t.encs" &&
  gzip -dc "$here/vectors/$t.jsonl.gz" | $PY -c '
import json, sys
for l in sys.stdin:
    print(json.dumps({"ids": json.loads(l)["ids_special"]}))' > "$w/$t.decin" &&
  "$IFTRAIN" tokenize --tokenizer "$w/tk/$t" --decode < "$w/$t.decin" > "$w/$t.dec"
  rc=$?
  end=$(date +%s.%N)
  if [ $rc -ne 0 ]; then echo "FAIL: $t: iftrain tokenize exit $rc"; fail=$((fail+1)); continue; fi
  if $PY - "$here/vectors/$t.jsonl.gz" "$w/$t.enc" "$w/$t.encs" "$w/$t.dec" "$here/corpus.jsonl" "$start" "$end" "$t" <<'PY'
import gzip, json, sys
vec = [json.loads(l) for l in gzip.open(sys.argv[1], "rt", encoding="utf-8")]
enc = [json.loads(l)["ids"] for l in open(sys.argv[2], encoding="utf-8")]
encs = [json.loads(l)["ids"] for l in open(sys.argv[3], encoding="utf-8")]
dec = [json.loads(l)["text"] for l in open(sys.argv[4], encoding="utf-8")]
text = [json.loads(l)["text"] for l in open(sys.argv[5], encoding="utf-8")]
n = len(vec)
bad = 0
for what, got, key in (("encode", enc, "ids"), ("encode with special tokens", encs, "ids_special"),
                       ("decode", dec, "decode_special")):
    if len(got) != n:
        print("%s: %d output lines for %d vectors" % (what, len(got), n)); bad += 1; continue
    diff = [i for i in range(n) if got[i] != vec[i][key]]
    if diff:
        bad += 1
        i = diff[0]
        print("%s: %d of %d lines differ; first: line %d %r\n  library: %r\n  iftrain: %r" % (
            what, len(diff), n, i + 1, text[i][:100], vec[i][key][:24], got[i][:24]))
tokens = sum(len(v["ids"]) for v in vec)
mb = sum(len(t.encode()) for t in text) / 1e6
if not bad: print("    %s: %d lines, %d tokens identical in both encode modes and decode (%.2f MB, 3 runs in %.1f s incl. loading)" % (
    sys.argv[8], n, tokens, mb, float(sys.argv[7]) - float(sys.argv[6])))
sys.exit(1 if bad else 0)
PY
  then echo "PASS: $t"; else fail=$((fail+1)); echo "FAIL: $t"; fi
done
[ "${KEEP:-0}" = 1 ] || rm -rf "$w"
[ "$fail" -eq 0 ] || { echo "$fail tokenizer(s) differ from the library"; exit 1; }
