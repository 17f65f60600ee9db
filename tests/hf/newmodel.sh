#!/bin/sh
# A new model with a Hugging Face tokenizer (model.tokenizer): the tokenizer
# is recorded in every checkpoint as an imported model's is, so data prepared
# with prep --tokenizer is accepted (byte data and another tokenizer's are
# refused), export copies the tokenizer's files and writes its BOS/EOS ids
# into config.json and generation_config.json, the PyTorch reference loads
# the export, and iftrain eval takes it. Refused with the cause and the fix:
# a vocabulary smaller than the tokenizer's, a directory without
# tokenizer.json, model.tokenizer with ckpt.init, resuming with another
# tokenizer.
# Env: IFTRAIN, MPIRUN_WRAP (tests/mpirun.sh); KEEP=1 keeps the work directory.
set -u
. "$(dirname "$0")/lib.sh"
# shellcheck disable=SC2154  # w is set by lib.sh
HFLOGP=${HFLOGP:-$(dirname "$IFTRAIN")/tests/hf/hflogp}
tokenizers() { hf_tokenizer mistral $w/mistral && hf_tokenizer gpt2 $w/gpt2; }
check "tokenizers: Mistral (tokenizer.json + tokenizer_config.json), GPT-2 (tokenizer.json)" tokenizers
$PY - $w/t.jsonl <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(24):
        f.write(json.dumps({"text": "Line %d: the quick brown fox jumps over %d lazy dogs." % (i, 7 * i)}) + "\n")
PY
tiny="--model.vocab_size=32000 --model.hidden_size=32 --model.intermediate_size=64 --model.num_hidden_layers=1 --model.num_attention_heads=2 --model.num_key_value_heads=1 --train.batch_size=8 --train.micro_batch=4 --train.seq_len=64 --optim.schedule=constant --optim.warmup=0 --data.eval="
check "prep --tokenizer (Mistral) and without (bytes)" sh -c "
  $IFTRAIN prep $w/t.jsonl -o $w/t.h5 --tokenizer $w/mistral --quiet && $IFTRAIN prep $w/t.jsonl -o $w/tb.h5 --quiet &&
  $IFTRAIN prep $w/t.jsonl -o $w/tg.h5 --tokenizer $w/gpt2 --quiet"
check "train a new model with model.tokenizer on 2 ranks: the tokenizer recorded" sh -c "
  $MPIRUN_WRAP 2 $IFTRAIN train $tiny --model.tokenizer=$w/mistral --data.train=$w/t.h5 --train.steps=2 --ckpt.dir=$w/ck > $w/train.log 2>&1 &&
  grep -q 'a new model with the tokenizer of $w/mistral' $w/train.log &&
  $IFTRAIN ckpt info $w/ck > $w/info.txt && grep -q 'tokenizer  *LlamaTokenizer (tokenizer.json, sha256 fc4f0bd70b370931' $w/info.txt"
check "export: tokenizer files and the tokenizer's LICENSE byte for byte, BOS 1 and EOS 2 in config.json and generation_config.json" sh -c "
  $IFTRAIN export $w/ck -o $w/hf > $w/export.log 2>&1 && cmp $w/hf/tokenizer.json $w/mistral/tokenizer.json &&
  cmp $w/hf/tokenizer_config.json $w/mistral/tokenizer_config.json && cmp $w/hf/LICENSE $w/mistral/LICENSE &&
  $PY -c 'import json,sys; d=sys.argv[1]; c=json.load(open(d+\"/config.json\")); g=json.load(open(d+\"/generation_config.json\"));
assert (c[\"bos_token_id\"], c[\"eos_token_id\"], g[\"bos_token_id\"], g[\"eos_token_id\"], c[\"vocab_size\"]) == (1, 2, 1, 2, 32000), (c, g)' $w/hf"
# a sentence the export's tokenizer encodes: iftrain's per-token log-probs of the
# checkpoint = the float64 PyTorch reference's of the exported directory (5e-5,
# as tests/hf/userpath.sh argues)
cat > $w/logp.py <<'PY'
import json, sys
it, ref = (json.load(open(f))["logp"] for f in sys.argv[1:3])
assert len(it) == len(ref) >= 8, (len(it), len(ref))
d = max(abs(x - y) for x, y in zip(it, ref))
print("FIG %d positions: max |logp(iftrain) - logp(reference f64)| = %.3g (tolerance 5e-5)" % (len(it), d))
sys.exit(0 if d <= 5e-5 else 1)
PY
reference() {
  printf '%s\n' '{"text": "The lazy dog jumps over the quick brown fox."}' > $w/s.jsonl &&
  $IFTRAIN tokenize --tokenizer $w/hf < $w/s.jsonl > $w/s.tok.json &&
  ids=$($PY -c 'import json, sys; print(",".join(map(str, json.load(open(sys.argv[1]))["ids"])))' $w/s.tok.json) &&
  $HFLOGP $w/ck/step_2.h5 "$ids" > $w/it.json && $REF logits $w/hf --tokens "$ids" --no-logits --out $w/ref.json &&
  $PY $w/logp.py $w/it.json $w/ref.json
}
check "the PyTorch reference loads the export and reproduces iftrain's log-probs" reference
check "iftrain eval of the export on the Mistral data" sh -c "
  $IFTRAIN eval --ckpt $w/hf --data $w/t.h5 --json > $w/eval.json && grep -q '\"samples\":24,' $w/eval.json"
# refusals: exit 2, the cause and the fix
refuse() { # log text command...
  log=$1 text=$2; shift 2
  "$@" > "$log" 2>&1; rc=$?
  [ $rc -eq 2 ] || { echo "exit $rc (want 2): $*"; cat "$log"; return 1; }
  grep -qF -- "$text" "$log" || { echo "'$text' not in:"; cat "$log"; return 1; }
  grep -q 'hint:' "$log" || { echo "no hint:"; cat "$log"; return 1; }
}
check "refused: model.vocab_size below the tokenizer's 32000 ids" refuse $w/r1.log \
  "has 32000 ids (0..31999), more than model.vocab_size = 1000" \
  $IFTRAIN train $tiny --model.vocab_size=1000 --model.tokenizer=$w/mistral --data.train=$w/t.h5 --train.steps=1 --ckpt.dir=$w/r1
check "refused: a directory without tokenizer.json" refuse $w/r2.log "no readable $w/tokenizer.json" \
  $IFTRAIN train $tiny --model.tokenizer=$w --data.train=$w/t.h5 --train.steps=1 --ckpt.dir=$w/r2
check "refused: model.tokenizer with ckpt.init" refuse $w/r3.log "starts from an existing model" \
  $IFTRAIN train $tiny --model.tokenizer=$w/mistral --ckpt.init=$w/hf --data.train=$w/t.h5 --train.steps=1 --ckpt.dir=$w/r3
check "refused: resuming with another tokenizer (GPT-2)" refuse $w/r4.log "is not the tokenizer of" \
  $IFTRAIN train $tiny --model.tokenizer=$w/gpt2 --data.train=$w/t.h5 --train.steps=3 --ckpt.dir=$w/ck --ckpt.resume=auto
check "resuming with the same tokenizer goes on" sh -c "
  $IFTRAIN train $tiny --model.tokenizer=$w/mistral --data.train=$w/t.h5 --train.steps=3 --ckpt.dir=$w/ck --ckpt.resume=auto --quiet && test -f $w/ck/step_3.h5"
check "refused: byte data for the Mistral-tokenizer model" refuse $w/r5.log "holds ids of iftrain's byte tokenizer" \
  $IFTRAIN train $tiny --model.tokenizer=$w/mistral --data.train=$w/tb.h5 --train.steps=1 --ckpt.dir=$w/r5
check "refused: GPT-2 data for the Mistral-tokenizer model" refuse $w/r6.log "was tokenized by another tokenizer than the model" \
  $IFTRAIN train $tiny --model.tokenizer=$w/mistral --data.train=$w/tg.h5 --train.steps=1 --ckpt.dir=$w/r6
finish "new model"
