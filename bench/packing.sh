#!/bin/sh
# Issue 17's packing benchmark: real tokens per second of `iftrain train` on a data set whose
# rows spread from 20 to 2000 tokens, at train.seq_len 2048, unpacked and with
# train.packing = 1, side by side in one run (the machine is shared: compare the ratios).
# Unpacked, a micro-batch of R rows is padded to its longest row (rows are sorted by length
# within a rank, so padding is already small); packed, a micro-batch of R packs holds up to
# R x 2048 tokens, several rows each.  Equal memory means equal micro_batch (R x 2048 token
# slots at most).  Reports tokens/s of real tokens (steps 2.., the first warms up), fill (real
# tokens / token slots computed) and the ratio packed / unpacked; beside the wall-clock rate
# (steps 2..) the real tokens per CPU second of the whole command (user + system), which a
# loaded machine disturbs less.
# Writes bench/results/packing-DATE.txt.
#
#   bench/packing.sh [--rows=N] [--steps=S] [--dist=uniform|log] [--loss=LIST] [--mb=LIST]
#                    [--out=FILE]
#
#   --rows   rows of the data set (default 512)
#   --steps  optimizer steps per run (default 4)
#   --batch  rows per optimizer step (default 16)
#   --dist   row lengths uniform in [20, 2000] (default) or log-uniform (more short rows)
#   --loss   sft,ift (default both)
#   --mb     micro-batch sizes to compare (default 1,4)
# Model: hidden 512, intermediate 1376, 4 layers, 8 heads, byte vocabulary (bench step's d512).
# Environment: IFTRAIN (default ./iftrain), PYTHON (default python3).
set -eu
cd "$(dirname "$0")/.."
rows=512 steps=4 batch=16 dist=uniform losses=sft,ift mbs=1,4 out=bench/results/packing-$(date +%F).txt
for a in "$@"; do
  case $a in
  --rows=*) rows=${a#*=} ;;
  --steps=*) steps=${a#*=} ;;
  --batch=*) batch=${a#*=} ;;
  --dist=*) dist=${a#*=} ;;
  --loss=*) losses=${a#*=} ;;
  --mb=*) mbs=${a#*=} ;;
  --out=*) out=${a#*=} ;;
  *) echo "bench/packing.sh: unknown option $a (see the comment at the top)" >&2; exit 2 ;;
  esac
done
IFTRAIN=${IFTRAIN:-./iftrain} PY=${PYTHON:-python3}
w=${TMPDIR:-/tmp}/iftrain-packing-bench.$$
mkdir -p "$w" "$(dirname "$out")"
trap 'rm -rf "$w"' EXIT
$PY - "$rows" "$dist" "$w/rows.jsonl" <<'PY'
import json, math, random, sys
n, dist, dst = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rng = random.Random(17)
words = "the of and to in is that for it as with was on be by at this from or an are which".split()
def text(k):
  s = ""
  while len(s) < k: s += rng.choice(words) + " "
  return s[:k]
with open(dst, "w") as f:
  for i in range(n):
    L = rng.uniform(20, 2000) if dist == "uniform" else math.exp(rng.uniform(math.log(20), math.log(2000)))
    L = int(L) - 3  # <bos>, <assistant>, <eos>
    p = max(4, L // 8)
    f.write(json.dumps({"prompt": text(p), "completion": text(L - p)}) + "\n")
PY
$IFTRAIN prep "$w/rows.jsonl" -o "$w/rows.h5" --quiet
common="--data.train=$w/rows.h5 --data.eval= --train.steps=$steps --train.batch_size=$batch \
 --train.seq_len=2048 --model.max_position_embeddings=2048 --model.hidden_size=512 \
 --model.intermediate_size=1376 --model.num_hidden_layers=4 --model.num_attention_heads=8 \
 --model.num_key_value_heads=8 --ift.lambda=0.2 --eval.every=0"
{
  echo "# bench/packing.sh $(date -u +%FT%TZ)  rows=$rows ($dist lengths 20-2000) steps=$steps batch $batch seq_len 2048"
  echo "# $(uname -m), $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
  $PY - "$w/rows.jsonl" <<'PY'
import json, sys
L = sorted(len(json.loads(l)["prompt"]) + len(json.loads(l)["completion"]) + 3 for l in open(sys.argv[1]))
print("# row lengths (tokens): min %d, median %d, mean %.0f, max %d" % (L[0], L[len(L) // 2], sum(L) / len(L), L[-1]))
print("# fill of rows padded to seq_len 2048 (a fixed-shape trainer): %.3f" % (sum(min(l, 2048) for l in L) / (2048.0 * len(L))))
PY
  printf "%-5s %-3s %-8s %12s %12s %7s %9s %9s\n" loss mb packing "tok/s wall" "tok/CPU-s" fill "wall p/u" "CPU p/u"
} | tee "$out"
for loss in $(echo "$losses" | tr , ' '); do
  for mb in $(echo "$mbs" | tr , ' '); do
    for p in 0 1; do
      m="$w/m-$loss-$mb-$p.jsonl"
      # shellcheck disable=SC2086
      /usr/bin/time -f "%U %S" -o "$m.cpu" $IFTRAIN train $common --train.loss="$loss" \
        --train.micro_batch="$mb" --train.packing=$p --metrics.path="$m" --ckpt.dir="$w/c-$loss-$mb-$p" \
        > "$w/log" 2>&1 || { cat "$w/log" >&2; exit 1; }
    done
    $PY - "$w/m-$loss-$mb-0.jsonl" "$w/m-$loss-$mb-1.jsonl" "$loss" "$mb" <<'PY' | tee -a "$out"
import json, sys
def rate(path):
  rec = [json.loads(l) for l in open(path)]
  rec = [r for r in rec if "tokens_per_s" in r]
  cpu = sum(float(x) for x in open(path + ".cpu").read().split()[-2:])  # user + system, whole run
  late = [r for r in rec if r["step"] > 1]
  tok = sum(r["tokens"] for r in late); sec = sum(r["seconds"] for r in late)
  return tok / sec, sum(r["tokens"] for r in rec) / cpu, sum(r["fill"] for r in rec) / len(rec)
u, p = rate(sys.argv[1]), rate(sys.argv[2])
print("%-5s %-3s %-8s %12.0f %12.0f %7.3f %9s %9s" % (sys.argv[3], sys.argv[4], "off", u[0], u[1], u[2], "", ""))
print("%-5s %-3s %-8s %12.0f %12.0f %7.3f %8.2fx %8.2fx" % (sys.argv[3], sys.argv[4], "on", p[0], p[1], p[2],
                                                          p[0] / u[0], p[1] / u[1]))
PY
  done
done
echo "# written to $out"
