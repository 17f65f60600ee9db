#!/bin/sh
# A short run of prep --tokenizer for the sanitizer build (.ci/run; the full
# tests/tok/prep.sh takes over 25 min under ASan): the Mistral tokenizer
# (the smallest stored one) and its [INST] template, every line format, on
# 1 and 2 ranks, checked: the messages rows' ids and assistant-only masks
# against tests/tok/chat.jsonl (the libraries' ids, transformers' mask), 2
# ranks = 1 rank, the first bad line reported, the refusals' exit codes.
# Env: IFTRAIN, MPIRUN_WRAP; KEEP=1 keeps the work directory.
set -u
. "$(dirname "$0")/../hf/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
sh "$here/unpack.sh" "$w/tk" || { echo "FAIL: tests/tok/unpack.sh"; exit 1; }
tk=$w/tk/mistral
/usr/bin/python3 - "$here/chat.jsonl" "$w" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
sel = [r for r in rows if r["template"] == "mistral_instruct" and not r["error"] and not r["add_generation_prompt"]]
w = sys.argv[2]
with open(w + "/m.jsonl", "w") as f, open(w + "/want.json", "w") as g:
    for r in sel:
        f.write(json.dumps({"messages": r["messages"]}) + "\n")
    json.dump([[r["ids"] if isinstance(r["ids"], list) else json.loads(r["ids"]), r["mask"]] for r in sel], g)
with open(w + "/other.jsonl", "w") as f:
    f.write(json.dumps({"prompt": "What is 2+2?", "completion": " Four."}) + "\n")
    f.write(json.dumps({"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Hello."}]}) + "\n")
    f.write(json.dumps({"text": "A plain line of text."}) + "\n")
with open(w + "/pairs.jsonl", "w") as f:
    f.write(json.dumps({"prompt": "Say yes.", "chosen": " Yes.", "rejected": " No."}) + "\n")
    f.write(json.dumps({"prompt": [{"role": "user", "content": "Say yes."}], "chosen": [{"role": "assistant", "content": "Yes."}], "rejected": [{"role": "assistant", "content": "No."}]}) + "\n")
PY
cat > $w/same.py <<'PY'
import h5py, json, sys
a = h5py.File(sys.argv[1], "r")
if sys.argv[2] == "want":
    want = json.load(open(sys.argv[3]))
    off, tok, mask = a["offsets"][...], a["tokens"][...], a["loss_mask"][...]
    assert len(off) - 1 == len(want), (len(off) - 1, len(want))
    for i, (ids, m) in enumerate(want):
        got = tok[off[i]:off[i + 1]].tolist()
        assert got == ids, ("ids", i)
        assert "".join(str(x) for x in mask[off[i]:off[i + 1]]) == m, ("mask", i)
    print("FIG %d conversations: ids and masks equal" % len(want))
else:
    b = h5py.File(sys.argv[2], "r")
    assert a.attrs["content_sha256"] == b.attrs["content_sha256"]
    print("FIG 2 ranks = 1 rank: content_sha256 %s" % str(a.attrs["content_sha256"])[:20])
PY
check "messages (Mistral [INST]): ids and assistant-only masks equal the libraries'" sh -c "
  $IFTRAIN prep $w/m.jsonl --tokenizer $tk --chat-template mistral -o $w/m1.h5 --quiet > /dev/null &&
  $PY $w/same.py $w/m1.h5 want $w/want.json"
check "2 ranks write the data set 1 rank writes" sh -c "
  for i in 1 2 3 4; do cat $w/m.jsonl; done > $w/m4.jsonl &&
  $IFTRAIN prep $w/m4.jsonl --tokenizer $tk --chat-template mistral -o $w/a1.h5 --quiet > /dev/null &&
  $MPIRUN_WRAP 2 $IFTRAIN prep $w/m4.jsonl --tokenizer $tk --chat-template mistral -o $w/a2.h5 --quiet > /dev/null &&
  $PY $w/same.py $w/a1.h5 $w/a2.h5"
check "plain and conversational prompt/completion, text, and pairs prepare" sh -c "
  $IFTRAIN prep $w/other.jsonl --tokenizer $tk --chat-template mistral -o $w/o.h5 --quiet | grep -q '3 rows written' &&
  $MPIRUN_WRAP 2 $IFTRAIN prep $w/pairs.jsonl --tokenizer $tk --chat-template mistral -o $w/p.h5 --quiet | grep -q '2 rows written'"
check "bad lines: the first one reported on 2 ranks (exit 2), --skip-bad skips them" sh -c "
  awk 'NR==3{print \"{oops\"} {print} END{print \"[1]\"}' $w/m4.jsonl > $w/bad.jsonl
  $MPIRUN_WRAP 2 $IFTRAIN prep $w/bad.jsonl --tokenizer $tk --chat-template mistral -o $w/b.h5 > $w/b.log 2>&1
  rc=\$?; [ \$rc -eq 2 ] && grep -q 'bad.jsonl:3:2: ' $w/b.log && test ! -e $w/b.h5 &&
  $MPIRUN_WRAP 2 $IFTRAIN prep $w/bad.jsonl --tokenizer $tk --chat-template mistral -o $w/s.h5 --skip-bad --quiet | grep -q '2 malformed skipped'"
check "a conversation the template refuses is a bad line; no --tokenizer with --chat-template is refused" sh -c "
  echo '{\"messages\": [{\"role\": \"assistant\", \"content\": \"x\"}]}' > $w/r.jsonl
  $IFTRAIN prep $w/r.jsonl --tokenizer $tk --chat-template mistral -o $w/r.h5 > $w/r.log 2>&1; [ \$? -eq 2 ] &&
  grep -q 'r.jsonl:1' $w/r.log &&
  $IFTRAIN prep $w/m.jsonl --chat-template mistral -o $w/n.h5 > /dev/null 2>&1; [ \$? -eq 2 ]"
finish "prep --tokenizer (short)"
