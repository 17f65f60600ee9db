#!/bin/sh
# Hugging Face export (issue 15): import -> export round trips bit for bit
# (F32; BF16 sharded with --dtype bf16), --dtype bf16 rounds to nearest even
# as torch does, --max-shard-size writes shards and an index the reference
# reader accepts, tokenizer files travel with the weights (checked against
# the SHA-256 recorded at import), bad requests are refused without leaving
# anything behind; and the whole fine-tuning path: a random HF directory
# written by PyTorch -> import -> IFT steps on 2 ranks (TP 2) -> export ->
# the float64 reference's log-probabilities of the exported directory equal
# iftrain's of the trained checkpoint.
# Env: IFTRAIN, MPIRUN_WRAP (tests/mpirun.sh); KEEP=1 keeps the work directory.
set -u
. "$(dirname "$0")/lib.sh"
HFLOGP=${HFLOGP:-$(dirname "$IFTRAIN")/tests/hf/hflogp}
small="--vocab 64 --hidden 32 --layers 2 --intermediate 48 --std 0.2"
TOK=1,5,9,13,2,7,30,63,17,4,44,12

# a source directory with tokenizer files (contents are opaque to export)
$REF make $w/src --seed 5 $small --heads 4 --kv-heads 2 --head-dim 16 --tied 0 \
  --rope-scaling llama3:8,1,4,64 > /dev/null
printf '{"version": "1.0", "model": {"type": "BPE", "vocab": {}}}\n' > $w/src/tokenizer.json
printf '{"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>"}\n' > $w/src/tokenizer_config.json
printf '{"bos_token": "<s>"}\n' > $w/src/special_tokens_map.json
printf 'The terms of this model.\n' > $w/src/LICENSE
printf 'Not a tokenizer or licence file.\n' > $w/src/README.md
$IFTRAIN import $w/src -o $w/src.h5 > /dev/null

check "F32 (untied, GQA, head_dim 16, llama3): import -> export is bit-identical, config keys equal" sh -c "
  $IFTRAIN export $w/src.h5 -o $w/e1 && $REF compare $w/src $w/e1"
check "the three tokenizer files and the LICENSE are copied byte for byte, not README.md; ckpt info shows the origin" sh -c "
  for f in tokenizer.json tokenizer_config.json special_tokens_map.json LICENSE; do cmp $w/src/\$f $w/e1/\$f || exit 1; done
  test ! -e $w/e1/README.md &&
  $IFTRAIN ckpt info $w/src.h5 > $w/info.txt &&
  grep -q 'origin .*huggingface directory $w/src' $w/info.txt &&
  grep -q \"model.safetensors  *sha256 \$(sha256sum $w/src/model.safetensors | cut -c1-64)\" $w/info.txt &&
  grep -q 'tokenizer  *PreTrainedTokenizerFast (tokenizer.json' $w/info.txt"
check "BF16 in 3 shards -> export --dtype bf16 --max-shard-size 10KB: bit-identical, shards + index" sh -c "
  $REF make $w/b --seed 6 $small --heads 8 --kv-heads 2 --dtype bf16 --shards 3 > /dev/null &&
  $IFTRAIN import $w/b -o $w/b.h5 > /dev/null &&
  $IFTRAIN export $w/b.h5 -o $w/eb --dtype bf16 --max-shard-size 10KB &&
  test -f $w/eb/model.safetensors.index.json && test ! -f $w/eb/model.safetensors &&
  n=\$(ls $w/eb/model-*-of-*.safetensors | wc -l) && test \$n -ge 3 && echo \"FIG \$n shards\" &&
  $REF compare $w/b $w/eb"
check "Mistral (sliding_window 16, eos list, tied): import -> export bit-identical, ids and window kept" sh -c "
  $REF make $w/mi --seed 4 $small --arch mistral --sliding-window 16 --eos 2,3 > /dev/null &&
  $IFTRAIN import $w/mi -o $w/mi.h5 > /dev/null && $IFTRAIN export $w/mi.h5 -o $w/emi > /dev/null &&
  $REF compare $w/mi $w/emi && grep -q MistralForCausalLM $w/emi/config.json &&
  $PY -c \"import json; g = json.load(open('$w/emi/generation_config.json')); assert g['eos_token_id'] == [2, 3] and g['bos_token_id'] == 1, g\""
check "export --dtype bf16 of F32 weights = torch's round-to-nearest-even of them" sh -c "
  $IFTRAIN export $w/src.h5 -o $w/e16 --dtype bf16 > /dev/null && grep -q '\"torch_dtype\": \"bfloat16\"' $w/e16/config.json &&
  $PY - $w/src $w/e16 $here <<'PY'
import sys; sys.path.insert(0, sys.argv[3])
import hfref, torch
a = hfref.load_raw(sys.argv[1])[0]; b = hfref.load_raw(sys.argv[2])[0]
assert set(a) == set(b)
n = 0
for k in a:
    ta, tb = hfref.raw_to_tensor(*a[k]), hfref.raw_to_tensor(*b[k])
    assert tb.dtype == torch.bfloat16, (k, tb.dtype)
    want = ta.to(torch.bfloat16)
    assert torch.equal(want.view(torch.int16), tb.view(torch.int16)), k
    n += ta.numel()
print('FIG %d values equal torch .to(bfloat16) bit for bit' % n)
PY"
check "a tokenizer file changed since the import: refused by name (exit 2), nothing left; --no-tokenizer exports" sh -c "
  cp -r $w/src $w/src2 && $IFTRAIN import $w/src2 -o $w/src2.h5 > /dev/null &&
  echo ' ' >> $w/src2/tokenizer_config.json
  $IFTRAIN export $w/src2.h5 -o $w/e2 > $w/e2.log 2>&1; rc=\$?
  test \$rc -eq 2 && grep -q 'tokenizer_config.json changed since the import' $w/e2.log &&
  test ! -e $w/e2 && test ! -e $w/e2.tmp &&
  $IFTRAIN export $w/src2.h5 -o $w/e2 --no-tokenizer > /dev/null && test ! -e $w/e2/tokenizer.json &&
  $REF compare $w/src $w/e2"
check "the LICENSE removed since the import: refused by name (exit 2), nothing left" sh -c "
  cp -r $w/src $w/src3 && $IFTRAIN import $w/src3 -o $w/src3.h5 > /dev/null && rm $w/src3/LICENSE
  $IFTRAIN export $w/src3.h5 -o $w/e3 > $w/e3.log 2>&1; rc=\$?
  test \$rc -eq 2 && grep -q 'src3/LICENSE of the source model is gone' $w/e3.log && grep -q 'licence files' $w/e3.log &&
  test ! -e $w/e3 && test ! -e $w/e3.tmp"
check "export does not overwrite: an existing directory is refused (exit 2), untouched" sh -c "
  mkdir -p $w/exists && touch $w/exists/keep
  $IFTRAIN export $w/src.h5 -o $w/exists > $w/ex.log 2>&1; test \$? -eq 2 && grep -q 'does not overwrite' $w/ex.log && test -f $w/exists/keep"
check "bad options: --dtype f16 and --max-shard-size 5XB exit 2 with the accepted values" sh -c "
  $IFTRAIN export $w/src.h5 -o $w/x --dtype f16 2> $w/o1.log; test \$? -eq 2 && grep -q 'f32 or bf16' $w/o1.log &&
  $IFTRAIN export $w/src.h5 -o $w/x --max-shard-size 5XB 2> $w/o2.log; test \$? -eq 2 && grep -q 'GiB' $w/o2.log && test ! -e $w/x"

# The fine-tuning path (issue 15 \"Done when\"): vocabulary of the shipped byte task (the
# directory has no tokenizer.json: train refuses byte data for a model with a tokenizer of its own)
$IFTRAIN prep --generate arith --seed 3 -n 64 -o $w/a.h5 > /dev/null
check "HF dir -> import -> 3 IFT steps on 2 ranks (TP 2) -> export: reference logp of the export = iftrain's (1e-5)" sh -c "
  $REF make $w/base --seed 9 --vocab 264 --hidden 32 --layers 2 --heads 4 --kv-heads 2 --intermediate 64 \
    --tied 0 --max-pos 128 --std 0.2 --rope-scaling llama3:4,1,4,32 > /dev/null &&
  cp $w/src/tokenizer_config.json $w/base/ &&
  $IFTRAIN import $w/base -o $w/base.h5 > /dev/null &&
  $MPIRUN_WRAP 2 $IFTRAIN train --train.loss=ift --train.batch_size=8 --train.micro_batch=4 --train.steps=3 \
    --optim.lr=1e-2 --dist.tp=2 --data.train=$w/a.h5 --data.eval= --ckpt.dir=$w/ft --ckpt.init=$w/base.h5 > $w/ft.log 2>&1 &&
  $IFTRAIN export $w/ft -o $w/out > /dev/null &&
  cmp $w/base/tokenizer_config.json $w/out/tokenizer_config.json &&
  ! $REF compare $w/base $w/out > /dev/null &&
  $HFLOGP $w/ft/step_3.h5 $TOK > $w/it.json &&
  $HFLOGP $w/base $TOK > $w/b0.json &&
  $REF logits $w/out --tokens $TOK --out $w/ref.json &&
  $PY - $w/it.json $w/ref.json $w/b0.json <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))['logp']; r = json.load(open(sys.argv[2]))['logp']; b = json.load(open(sys.argv[3]))['logp']
d = max(abs(x - y) for x, y in zip(a, r)); moved = max(abs(x - y) for x, y in zip(a, b))
print('FIG max |logp(iftrain, trained) - logp(reference, exported)| = %.3g; training moved logp by %.3g' % (d, moved))
sys.exit(0 if d <= 1e-5 and moved > 1e-3 else 1)
PY"
check "prep --ref-logp HF_DIR (2 ranks): DPO from the directory and from its import accept the cache, another model is refused" sh -c "
  cp $w/a.h5 $w/p.h5 && $MPIRUN_WRAP 2 $IFTRAIN prep --ref-logp $w/base --data $w/p.h5 > $w/rl.log 2>&1 &&
  grep -q 'fingerprint' $w/rl.log &&
  $IFTRAIN train --train.loss=dpo --train.batch_size=4 --train.micro_batch=4 --train.steps=1 --data.train=$w/p.h5 \
    --data.eval= --ckpt.dir=$w/dpo1 --ckpt.init=$w/base > $w/dpo1.log 2>&1 &&
  $IFTRAIN train --train.loss=dpo --train.batch_size=4 --train.micro_batch=4 --train.steps=1 --data.train=$w/p.h5 \
    --data.eval= --ckpt.dir=$w/dpo2 --ckpt.init=$w/base.h5 > $w/dpo2.log 2>&1 &&
  $IFTRAIN train --train.loss=dpo --train.batch_size=4 --train.micro_batch=4 --train.steps=1 --data.train=$w/p.h5 \
    --data.eval= --ckpt.dir=$w/dpo3 --ckpt.init=$w/ft/step_3.h5 > $w/dpo3.log 2>&1; rc=\$?
  test \$rc -eq 2 && grep -q 'computed from another model' $w/dpo3.log"
finish "HF export"
