#!/bin/sh
# Regenerate the binary seeds of the fuzz targets (the text seeds are kept by
# hand): small data sets from `iftrain prep` and a tiny checkpoint from
# `iftrain train --train.steps=0`.
#   tests/fuzz/make_seeds.sh [IFTRAIN]     (default: ./iftrain of the build)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
ift=${1:-./iftrain}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
s=$here/seeds
printf '%s\n' '{"prompt":"1+2=","response":"3"}' '{"prompt":"ab","response":"ba"}' \
  '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}' > "$tmp/sft.jsonl"
printf '%s\n' '{"prompt":"1+1=","chosen":"2","rejected":"3"}' '{"prompt":"x","chosen":"y","rejected":"zz"}' > "$tmp/pairs.jsonl"
"$ift" prep "$tmp/sft.jsonl" -o "$s/dataset/sft.h5" >/dev/null
"$ift" prep "$tmp/pairs.jsonl" -o "$s/dataset/pairs.h5" >/dev/null
"$ift" train --train.steps=0 --model.hidden_size=16 --model.intermediate_size=16 \
  --model.num_hidden_layers=1 --model.num_attention_heads=2 --model.num_key_value_heads=1 \
  --model.max_position_embeddings=8 --train.seq_len=8 --train.batch_size=1 --train.micro_batch=1 \
  --data.train="$s/dataset/sft.h5" --data.eval= --ckpt.dir="$tmp/ck" >/dev/null 2>&1
cp "$tmp"/ck/*.h5 "$s/ckpt/tiny.h5"
ls -l "$s/dataset" "$s/ckpt"
