#!/bin/sh
# iftrain eval's metrics on a data set prepared with a Hugging Face tokenizer
# (the Mistral tokenizer and its [INST] template, whose end of turn is </s> = 2,
# not the byte tokenizer's <eos>): a model whose greedy answer is known by
# construction -- a bigram model, every layer 0, so the next token depends on
# the current one alone: "[/INST]" -> "Hello" -> "world" -> "</s>" -- and the
# PyTorch reference's greedy decode confirming that answer. Then:
#   answer "Hello world"        exact match 1, ROUGE-L 1
#   answer "Hello there"        exact match 0, ROUGE-L 0.5 (1 of 2 tokens in common)
#   answer "Hello"              exact match 0, ROUGE-L 2/3 (P 1/2, R 1)
#   a two-turn conversation     only its first answer counts: exact 1
#   rows 1 and 3 together       eval_loss the mean of their means, token_nll per token
#   pairs (chosen, rejected)    preference accuracy 1 for Hello world over
#                               Hello there, 0 for the pair the other way round,
#                               each pair's log-probs as the reference computes them
# on 1 rank and on 2 ranks (the rows split over the replicas).
# Env: IFTRAIN, MPIRUN_WRAP (tests/mpirun.sh); KEEP=1 keeps the work directory.
set -u
. "$(dirname "$0")/lib.sh"
tok=$(cd "$here/../tok" && pwd)

mkmodel() {
  $REF make $w/m --seed 1 --arch mistral --vocab 32000 --hidden 64 --layers 1 --heads 4 --kv-heads 2 \
    --intermediate 128 --tied 0 --max-pos 512 --std 0 --norm-std 0 > /dev/null && hf_tokenizer mistral $w/m &&
  $PY - $tok/chat_templates.json $w/m <<'PY'
import json, struct, sys, torch
d = sys.argv[2]
c = json.load(open(d + "/tokenizer_config.json"))
c["chat_template"] = json.load(open(sys.argv[1]))["mistral_instruct"]["template"]
json.dump(c, open(d + "/tokenizer_config.json", "w"), indent=2)
p = d + "/model.safetensors"
raw = bytearray(open(p, "rb").read())
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
def get(k):
    b0, b1 = h[k]["data_offsets"]
    return torch.frombuffer(bytes(raw[8 + n + b0:8 + n + b1]), dtype=torch.float32).clone().view(h[k]["shape"])
def put(k, t):
    b0, b1 = h[k]["data_offsets"]
    raw[8 + n + b0:8 + n + b1] = t.contiguous().numpy().tobytes()
E, H = get("model.embed_tokens.weight"), get("lm_head.weight")
chain = [28793, 16230, 1526, 2]  # [/INST] Hello world </s>
for k in range(3):
    E[chain[k], k] = 1.0
    H[chain[k + 1], k] = 1.0
put("model.embed_tokens.weight", E)
put("lm_head.weight", H)
open(p, "wb").write(raw)
PY
}
check "a bigram model with the Mistral tokenizer and chat template" mkmodel
[ "$fail" -eq 0 ] || finish "eval"

ref_greedy() {
  out=$($REF greedy $w/m --tokens 1,733,16289,28793,15753,12014,733,28748,16289,28793 --max-new 4 --eos 2) &&
  echo "$out" | grep -q '"ids": \[16230, 1526, 2\]' || { echo "reference greedy: $out"; return 1; }
}
check "the reference's greedy answer to 'Say hi' is Hello world </s>" ref_greedy

msg() { printf '{"messages": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "%s"}]}\n' "$1"; }
{ msg "Hello world"; msg "Hello there"; msg "Hello"
  printf '%s\n' '{"messages": [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hello world"}, {"role": "user", "content": "Again"}, {"role": "assistant", "content": "No"}]}'
} > $w/rows.jsonl
pair() { printf '{"prompt": [{"role": "user", "content": "Say hi"}], "chosen": [{"role": "assistant", "content": "%s"}], "rejected": [{"role": "assistant", "content": "%s"}]}\n' "$1" "$2"; }
{ pair "Hello world" "Hello there"; pair "Hello there" "Hello world"; } > $w/pairs.jsonl

# eval_rows NP: each row alone (a one-row set) on NP ranks against its expected figures
eval_rows() {
  np=$1
  for i in 1 2 3 4; do
    sed -n "${i}p" $w/rows.jsonl > $w/r$i.jsonl &&
    $IFTRAIN prep $w/r$i.jsonl -o $w/r$i.h5 --tokenizer $w/m --quiet > /dev/null || return 1
  done
  for spec in "1 1 1" "2 0 0.5" "3 0 0.666667" "4 1 1"; do
    set -- $spec
    out=$($MPIRUN_WRAP "$np" $IFTRAIN eval --ckpt $w/m --data $w/r$1.h5 --max-new-tokens 8 --json) || return 1
    echo "$out" | $PY -c '
import json, sys
r = json.loads(sys.stdin.read().strip().splitlines()[-1])
want_e, want_r = float(sys.argv[1]), float(sys.argv[2])
ok = abs(r["exact_match"] - want_e) < 1e-9 and abs(r["rouge_l"] - want_r) < 1e-5
print(("" if ok else "MISMATCH ") + "row %s: exact %s rouge_l %s (want %s, %s)" % (sys.argv[3], r["exact_match"], r["rouge_l"], want_e, want_r))
sys.exit(0 if ok else 1)' "$2" "$3" "$1" || return 1
  done
  echo "FIG rows 1-4 on $np rank(s): exact 1 0 0 1, ROUGE-L 1 0.5 0.667 1"
}
check "exact match and ROUGE-L of known greedy answers, the end of turn being </s> (1 rank)" eval_rows 1
check "the same on 2 ranks" eval_rows 2

# eval_loss is the mean over rows of each row's mean answer NLL; token_nll
# weighs every answer token alike: on rows 1 and 3 together (3 and 2 answer
# tokens) both follow from the one-row evaluations
eval_nll() {
  for i in 1 3; do
    $IFTRAIN eval --ckpt $w/m --data $w/r$i.h5 --max-new-tokens 1 --json | tail -n 1 > $w/nll$i.json || return 1
  done
  sed -n '1p;3p' $w/rows.jsonl > $w/r13.jsonl &&
  $IFTRAIN prep $w/r13.jsonl -o $w/r13.h5 --tokenizer $w/m --quiet > /dev/null &&
  $MPIRUN_WRAP 2 $IFTRAIN eval --ckpt $w/m --data $w/r13.h5 --max-new-tokens 1 --json | tail -n 1 > $w/nll13.json || return 1
  $PY - $w <<'PY'
import h5py, json, sys
w = sys.argv[1]
one = {i: json.load(open("%s/nll%d.json" % (w, i))) for i in (1, 3)}
both = json.load(open(w + "/nll13.json"))
n = {i: int(h5py.File("%s/r%d.h5" % (w, i), "r")["loss_mask"][:].sum()) for i in (1, 3)}
for i in (1, 3):  # one row: the row mean is the token mean
    assert abs(one[i]["token_nll"] - one[i]["eval_loss"]) < 1e-5, one[i]
want_row = (one[1]["eval_loss"] + one[3]["eval_loss"]) / 2
want_tok = (n[1] * one[1]["eval_loss"] + n[3] * one[3]["eval_loss"]) / (n[1] + n[3])
print("FIG answer tokens %s; eval_loss %.6f (want %.6f), token_nll %.6f (want %.6f)"
      % (n, both["eval_loss"], want_row, both["token_nll"], want_tok))
assert n == {1: 3, 3: 2}
assert abs(both["eval_loss"] - want_row) < 1e-5 and abs(both["token_nll"] - want_tok) < 1e-5
assert abs(want_row - want_tok) > 1e-3  # the two means differ on these rows
PY
}
check "eval_loss (mean of the rows' means) and token_nll (per answer token) on 2 rows of 3 and 2 answer tokens" eval_nll

eval_pairs() {
  $IFTRAIN prep $w/pairs.jsonl -o $w/pairs.h5 --tokenizer $w/m --quiet > /dev/null || return 1
  for np in 1 2; do
    out=$($MPIRUN_WRAP "$np" $IFTRAIN eval --ckpt $w/m --data $w/pairs.h5 --max-new-tokens 8 --json) || return 1
    # 2 pairs, the first right way round: accuracy 1/2
    echo "$out" | $PY -c '
import json, sys
r = json.loads(sys.stdin.read().strip().splitlines()[-1])
ok = r.get("pairs") == 2 and abs(r["pref_acc"] - 0.5) < 1e-9
print(("" if ok else "MISMATCH ") + "pairs %s pref_acc %s (want 2, 0.5)" % (r.get("pairs"), r.get("pref_acc")))
sys.exit(0 if ok else 1)' || return 1
    sed -n 1p $w/pairs.jsonl > $w/p1.jsonl
    $IFTRAIN prep $w/p1.jsonl -o $w/p1.h5 --tokenizer $w/m --quiet > /dev/null || return 1
    out=$($MPIRUN_WRAP "$np" $IFTRAIN eval --ckpt $w/m --data $w/p1.h5 --json) || return 1
    echo "$out" | grep -q '"pref_acc":1' || { echo "one right pair: $out"; return 1; }
  done
  echo "FIG preference accuracy 0.5 of a right and a wrong pair, 1 of the right one (1 and 2 ranks)"
}
check "preference accuracy on pairs (chosen's summed log-prob above rejected's)" eval_pairs
finish "eval"
