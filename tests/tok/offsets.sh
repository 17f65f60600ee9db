#!/bin/sh
# Token offsets against the Hugging Face tokenizers library (issue 16): every
# line of tests/tok/corpus.jsonl encoded with the post-processor by
# `iftrain tokenize --add-special --offsets` with each stored tokenizer.json
# must give the library's offsets (vectors/NAME.offsets.jsonl.gz, made by
# make_offsets.js) token by token.  iftrain's offsets are bytes; the
# library's count characters: the check converts as the library's bindings
# do (a byte range -> the characters its first and last byte are in).  The
# assistant-only loss mask of chat data is built on these offsets.
# Env: IFTRAIN (the binary); KEEP=1 keeps the work directory.
set -u
: "${IFTRAIN:?IFTRAIN must point at the binary}"
here=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python3}
w=${TMPDIR:-/tmp}/iftrain-offs.$$
rm -rf "$w"; mkdir -p "$w"
fail=0
sh "$here/unpack.sh" "$w/tk" || { echo "FAIL: tests/tok/unpack.sh (stored tokenizer files damaged?)"; exit 1; }
# gpt2_trim: GPT-2's file with a ByteLevel post-processor that trims offsets
mkdir -p "$w/tk/gpt2_trim" && $PY -c '
import json, sys
j = json.load(open(sys.argv[1], encoding="utf-8"))
j["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
json.dump(j, open(sys.argv[2], "w", encoding="utf-8"), ensure_ascii=False)' "$w/tk/gpt2/tokenizer.json" "$w/tk/gpt2_trim/tokenizer.json" ||
  { echo "FAIL: making gpt2_trim"; exit 1; }
for t in gpt2 gpt2_trim llama3 llama3_instruct mistral qwen3; do
  "$IFTRAIN" tokenize --tokenizer "$w/tk/$t" --add-special --offsets < "$here/corpus.jsonl" > "$w/$t.out" ||
    { echo "FAIL: $t: iftrain tokenize exit $?"; fail=$((fail+1)); continue; }
  if $PY - "$here/vectors/$t.offsets.jsonl.gz" "$here/vectors/${t%_trim}.jsonl.gz" "$w/$t.out" "$here/corpus.jsonl" <<'PY'
import gzip, json, sys
want = [json.loads(l)["offsets"] for l in gzip.open(sys.argv[1], "rt", encoding="utf-8")]
ids = [json.loads(l)["ids_special"] for l in gzip.open(sys.argv[2], "rt", encoding="utf-8")]
got = [json.loads(l) for l in open(sys.argv[3], encoding="utf-8")]
text = [json.loads(l)["text"] for l in open(sys.argv[4], encoding="utf-8")]
assert len(want) == len(got) == len(text) == len(ids)
bad = ntok = 0
for k, (w, g, t, i) in enumerate(zip(want, got, text, ids)):
    if g["ids"] != i:
        bad += 1; print("  line %d: ids differ from the vectors" % (k + 1)); continue
    # byte -> character index, as the library's BytesToCharOffsetConverter
    ch = []
    for c, x in enumerate(t):
        ch += [c] * len(x.encode("utf-8"))
    conv = [[ch[a], ch[b - 1] + 1] if b > a else [ch[a] if a < len(ch) else len(t)] * 2 if a else [0, 0]
            for a, b in g["offsets"]]
    ntok += len(w)
    if conv != w:
        bad += 1
        j = next(j for j in range(min(len(w), len(conv))) if w[j] != conv[j]) if len(w) == len(conv) else -1
        if bad <= 5:
            print("  line %d token %d: library %s, iftrain %s (bytes %s)" % (k + 1, j, w[j] if j >= 0 else len(w),
                  conv[j] if j >= 0 else len(conv), g["offsets"][j] if j >= 0 else ""))
print("    %d lines, %d tokens%s" % (len(want), ntok, ", all offsets equal" if not bad else ", %d lines differ" % bad))
sys.exit(1 if bad else 0)
PY
  then echo "PASS: $t offsets"; else echo "FAIL: $t offsets"; fail=$((fail+1)); fi
done
[ "${KEEP:-0}" = 1 ] || rm -rf "$w"
[ "$fail" -eq 0 ] || { echo "$fail offset check(s) failed"; exit 1; }
