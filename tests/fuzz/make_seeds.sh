#!/bin/sh
# Regenerate the binary seeds of the fuzz targets (the text seeds are kept by
# hand): small data sets from `iftrain prep`, a tiny checkpoint from
# `iftrain train --train.steps=0`, and two tiny Hugging Face model
# directories (sharded with an index, and one file) from tests/hf/hfref.py
# (needs python3-torch) packed as fuzz_hf's directory inputs.
#   tests/fuzz/make_seeds.sh [IFTRAIN]     (default: ./iftrain of the build)
#   SEEDS="hf" tests/fuzz/make_seeds.sh    only some of: dataset ckpt hf
set -eu
here=$(cd "$(dirname "$0")" && pwd)
ift=${1:-./iftrain}
only=${SEEDS:-dataset ckpt hf}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
s=$here/seeds
case " $only " in *" dataset "*|*" ckpt "*)
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
ls -l "$s/dataset" "$s/ckpt" ;;
esac
case " $only " in *" hf "*)
PY=
for p in /usr/bin/python3 python3; do "$p" -c 'import torch' 2>/dev/null && { PY=$p; break; }; done
[ -n "$PY" ] || { echo "make_seeds.sh: the hf seeds need python3-torch" >&2; exit 1; }
small="--vocab 8 --hidden 4 --layers 1 --heads 2 --kv-heads 1 --intermediate 4 --max-pos 8 --dtype bf16"
"$PY" "$here/../hf/hfref.py" make "$tmp/sharded" --seed 5 $small --tied 0 --shards 2 >/dev/null
"$PY" "$here/../hf/hfref.py" make "$tmp/single" --seed 6 $small --tied 1 >/dev/null
# byte 2 (directory mode), then the files in fuzz_hf.c's order, separated by HF_SEP
"$PY" - "$tmp" "$s/hf" <<'PY'
import os, sys
tmp, out = sys.argv[1:]
sep = b"\n@@iftrain-fuzz-file@@\n"
files = ["config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors",
         "model-00002-of-00002.safetensors", "model.safetensors"]
for d in ("sharded", "single"):
    parts = [open(os.path.join(tmp, d, f), "rb").read() if os.path.exists(os.path.join(tmp, d, f)) else b""
             for f in files]
    open(os.path.join(out, "dir_" + d), "wb").write(b"\x02" + sep.join(parts))
PY
ls -l "$s/hf" ;;
esac
