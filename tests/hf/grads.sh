#!/bin/sh
# Gradients after a Hugging Face import against an independent float64 PyTorch
# implementation (issue 15): the loss and the gradient of every tensor of one
# SFT and one IFT micro-batch (2 rows; IFT lambda .25, gamma .95, side left,
# value loss, norm L1, frozen input table) computed by iftrain's
# step_microbatch on the weights of a random HF directory (tests/hf/hfgrad)
# equal tests/hf/hfref.py grad to 1e-4 relative (L2 per tensor), on 1 rank,
# TP 2 in 1D mode, TP 2 in 2D mode (grid 2x1 one block per process, grid 1x2
# block-cyclic), and DP 2 (one row per rank, gradients summed over DP as
# train does); iftrain's intuition tokens x~ equal the reference's argmax.
# Models: untied GQA 4/2 F32 and tied GQA 8/2 BF16 in 3 shards, std 0.2.
# Prints the worst relative differences per layout.
# Env: IFTRAIN (the binary; hfgrad is found beside it, or HFGRAD=),
# MPIRUN_WRAP (tests/mpirun.sh), KEEP=1 keeps the work directory.
set -u
. "$(dirname "$0")/lib.sh"
HFGRAD=${HFGRAD:-$(dirname "$IFTRAIN")/tests/hf/hfgrad}
[ -x "$HFGRAD" ] || { echo "FAIL: $HFGRAD not built (make tests/hf/hfgrad)"; exit 1; }
start=$(date +%s)
# Two rows of 12 tokens; mask[t] = 1 puts token t in the loss (position 0 never).  With these
# rows and seed 7 the reference's top-1/top-2 logit gap at every position whose argmax IFT uses
# is >= 1e-3 (checked below), far above float32 rounding: no near-ties.
TOK='1,5,9,13,2,7,30,63,17,4,44,12;3,8,21,40,11,6,59,2,33,18,27,9'
MASK='0,0,0,1,1,1,1,1,1,1,1,0;0,0,1,1,1,1,0,1,1,1,1,1'
IFT=0.25,0.95
TOL=1e-4
small="--vocab 64 --hidden 32 --layers 2 --intermediate 48 --std 0.2"

# cmp.py IFTRAIN.json REF.json TOL LABEL: loss, every tensor's gradient (relative L2), x~
cat > $w/cmp.py <<'PY'
import json, math, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2])); tol = float(sys.argv[3]); label = sys.argv[4]
bad = []
dl = abs(a["loss"] - b["loss"]) / abs(b["loss"])
if not dl <= tol:
    bad.append("loss %.10g, reference %.10g" % (a["loss"], b["loss"]))
if set(a["grads"]) != set(b["grads"]):
    bad.append("tensors differ: %s" % sorted(set(a["grads"]) ^ set(b["grads"])))
worst, wn = 0.0, "-"
for n in sorted(set(a["grads"]) & set(b["grads"])):
    x, y = a["grads"][n], b["grads"][n]
    if len(x) != len(y):
        bad.append("%s: %d values, reference %d" % (n, len(x), len(y)))
        continue
    r = math.sqrt(sum((p - q) ** 2 for p, q in zip(x, y))) / max(math.sqrt(sum(q * q for q in y)), 1e-30)
    if r > tol:
        bad.append("%s: relative L2 difference %.3g" % (n, r))
    if r >= worst:
        worst, wn = r, n
extra = ""
if "alt" in b:
    rows = b["tokens"] if isinstance(b["tokens"][0], list) else [b["tokens"]]
    alt = b["alt"] if isinstance(b["alt"][0], list) else [b["alt"]]
    if a.get("alt") != alt:
        bad.append("intuition tokens x~ %s, reference %s" % (a.get("alt"), alt))
    if b["argmax_gap"] < 1e-3:
        bad.append("the reference's argmax has a near-tie (gap %.3g): choose other tokens or seed" % b["argmax_gap"])
    changed = sum(p != q for ra, rt in zip(alt, rows) for p, q in zip(ra, rt))
    if changed == 0:
        bad.append("x~ = x: the blend would not be tested")
    extra = ", x~ equal (%d answer slots replaced, nearest argmax tie %.3g)" % (changed, b["argmax_gap"])
if a.get("replica_spread", 0) > 1e-6:
    bad.append("TP ranks' copies of a replicated gradient differ by %.3g" % a["replica_spread"])
print("FIG %-34s loss %.2g, gradients worst %.2g (%s) over %d tensors%s" % (label, dl, worst, wn, len(b["grads"]), extra))
with open(sys.argv[5], "a") as f:
    f.write("%s %.3g %.3g\n" % (label, dl, worst))
for m in bad:
    print(m)
sys.exit(1 if bad else 0)
PY
# layouts: name, ranks, hfgrad options
LAYOUTS='1rank:1:
tp2-1d:2:--tp 2
tp2-2d-2x1:2:--tp 2 --grid 2x1
tp2-2d-1x2-bc:2:--tp 2 --grid 1x2 --block BLK
dp2:2:'
layouts() { # model, block size for the block-cyclic grid: one SFT and one IFT step per layout
  name=$1; blk=$2
  $REF grad $w/$name --tokens "$TOK" --mask "$MASK" --out $w/$name.sft.ref.json || return 1
  $REF grad $w/$name --tokens "$TOK" --mask "$MASK" --ift $IFT --out $w/$name.ift.ref.json || return 1
  echo "$LAYOUTS" | while IFS=: read -r lay np opts; do
    opts=$(echo "$opts" | sed "s/BLK/$blk/")
    for loss in sft ift; do
      [ $loss = ift ] && lo="--ift $IFT" || lo=
      # shellcheck disable=SC2086
      $MPIRUN_WRAP $np "$HFGRAD" $w/$name --tokens "$TOK" --mask "$MASK" $lo $opts < /dev/null > $w/$name.$loss.$lay.json ||
        { echo "hfgrad $name $loss $lay failed"; exit 1; }
      $PY $w/cmp.py $w/$name.$loss.$lay.json $w/$name.$loss.ref.json $TOL "$lay $loss $name" $w/figures || exit 1
    done
  done
}
check "make untied GQA 4/2 F32 and tied GQA 8/2 BF16 (3 shards) directories, std 0.2" sh -c "
  $REF make $w/f32 --seed 7 $small --heads 4 --kv-heads 2 --tied 0 --dtype f32 > /dev/null &&
  $REF make $w/bf16 --seed 7 $small --heads 8 --kv-heads 2 --tied 1 --dtype bf16 --shards 3 > /dev/null"
check "F32 untied GQA: SFT and IFT loss and every gradient = float64 autograd to $TOL; x~ = argmax (1 rank, TP 2 1D, 2D 2x1, 2D 1x2 block-cyclic 8, DP 2)" layouts f32 8
check "BF16 sharded tied GQA: the same (the head's gradient reaches the embedding; 2D 1x2 block-cyclic 4)" layouts bf16 4
embed_grad() { # ift.embed_grad = 1 against the reference's --embed-grad 1; a control: it is not the frozen default
  $REF grad $w/bf16 --tokens "$TOK" --mask "$MASK" --ift $IFT --embed-grad 1 --out $w/eg.ref.json &&
  "$HFGRAD" $w/bf16 --tokens "$TOK" --mask "$MASK" --ift $IFT --embed-grad 1 > $w/eg.json &&
  $PY $w/cmp.py $w/eg.json $w/eg.ref.json $TOL "1rank ift-embed_grad bf16" $w/figures &&
  if $PY $w/cmp.py $w/eg.json $w/bf16.ift.ref.json $TOL control $w/control > $w/control.log; then
    echo "iftrain's embed_grad = 1 gradient passes against the frozen-table reference: the check cannot see the frozen table"
    return 1
  fi
}
check "ift.embed_grad = 1 = reference --embed-grad 1 (1 rank), and differs from the frozen-table reference" embed_grad

if [ -f $w/figures ]; then
  echo "worst relative differences per layout (SFT and IFT, both models; tolerance $TOL):"
  awk '{ k = $1; if (!(k in n)) { order[++c] = k; L[k] = $4; G[k] = $5 }
         if ($4 > L[k]) L[k] = $4; if ($5 > G[k]) G[k] = $5; n[k]++ }
       END { for (i = 1; i <= c; i++) { k = order[i]; printf "    %-14s loss %.2g  gradients %.2g  (%d runs)\n", k, L[k], G[k], n[k] } }' $w/figures
fi
echo "grads.sh: $(( $(date +%s) - start )) s"
finish gradient
