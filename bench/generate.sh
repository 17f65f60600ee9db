#!/bin/sh
# Decode speed of `iftrain generate` at the SmolLM-135M shape (hidden 576, 30 layers, 9 heads,
# 3 KV heads, intermediate 1536, vocab 49152, tied; random weights: `train --train.steps=0`
# writes the initial model), 1 rank: a 512-token prompt (the byte tokenizer: <bos>, 510 bytes,
# <assistant>), then 256 new tokens sampled (temperature 0.8, top-k 50; and greedy).
# Printed: the prefill time, ms per generated token after the first, and one single-token
# forward = model_decode of one token at position 0 (empty cache: every weight matrix, the LM
# head over the whole vocabulary and its argmax; median of 9), with the ratio ms/token over it
# (target <= 1.5: the loop adds attention over the cache, the logits gather and the sampling).
# Beside it PyTorch (bench/torch_generate.py: a plain Llama forward with a KV cache, same shape,
# same threads; its single-token forward is the same position-0 forward, head included).
#   bench/generate.sh [THREADS...]          (default: 1)  IFTRAIN=./iftrain
set -eu
here=$(cd "$(dirname "$0")" && pwd)
IFTRAIN=${IFTRAIN:-$here/../iftrain}
PY=/usr/bin/python3
threads=${*:-1}
w=${TMPDIR:-/tmp}/iftrain-bench-generate.$$
mkdir -p $w
trap 'rm -rf $w' EXIT
shape="--model.vocab_size=49152 --model.hidden_size=576 --model.num_hidden_layers=30 --model.num_attention_heads=9
  --model.num_key_value_heads=3 --model.intermediate_size=1536 --model.tie_word_embeddings=1
  --model.max_position_embeddings=2048"
$IFTRAIN prep --generate arith -n 16 -o $w/a.h5 > /dev/null
$IFTRAIN train $shape --train.steps=0 --train.seq_len=64 --train.batch_size=1 --train.micro_batch=1 \
  --data.train=$w/a.h5 --data.eval= --ckpt.dir=$w/ck --quiet > /dev/null
prompt=$($PY -c 'print(("12+34=46 " * 100)[:510])')
echo "iftrain generate at the SmolLM-135M shape, 1 rank: 512-token prompt, 256 new tokens ($(date -u +%Y-%m-%d), $(nproc) cores shared)"
printf '%-28s %7s %11s %12s %14s %8s\n' implementation threads prefill_ms ms_per_token single_fwd_ms ratio
for t in $threads; do
  for mode in sample greedy; do
    opt="--temperature 0.8 --top-k 50 --seed 1"
    [ $mode = greedy ] && opt=
    $IFTRAIN generate --ckpt $w/ck --prompt "$prompt" --max-new-tokens 256 $opt --json --timing --threads=$t \
      2> $w/err > $w/out.json || { cat $w/err; exit 1; }
    $PY - $w/out.json "iftrain ($mode)" $t <<'PY'
import json, sys
j = json.loads(open(sys.argv[1]).read()); m = j["timing"]
assert m["prompt_tokens"] == 512, m
print("%-28s %7s %11.1f %12.2f %14.2f %8.2f   (%d tokens, stop %s)" % (sys.argv[2], sys.argv[3], 1e3 * m["prefill_s"],
      m["decode_ms_per_token"], m["single_token_forward_ms"], m["decode_ms_per_token"] / m["single_token_forward_ms"],
      m["decode_tokens"] + 1, j["stop"]))
PY
  done
  $PY $here/torch_generate.py --threads $t > $w/torch.json
  $PY - $w/torch.json $t <<'PY'
import json, sys
m = json.loads(open(sys.argv[1]).read())
print("%-28s %7s %11.1f %12.2f %14.2f %8.2f   (%d tokens)" % (m["impl"] + " (sample)", sys.argv[2], 1e3 * m["prefill_s"],
      m["decode_ms_per_token"], m["single_token_forward_ms"], m["decode_ms_per_token"] / m["single_token_forward_ms"],
      m["decode_tokens"] + 1))
PY
done
