#!/usr/bin/env bash
# The comparison of issue 9 on the default task at equal compute: SFT, IFT
# (static, linear and noise lambda), SFT -> DPO, SFT -> SimPO and ORPO, with
# the recipes of data/recipes/, for several seeds (seed = data order and
# weight initialisation).  Every method gets the FLOPs of 1500 SFT steps
# (the recipes' headers give the arithmetic); the exact FLOPs each run used
# are read from its metrics (and from prep --ref-logp for the DPO cache).
#   bench/compare.sh [SEEDS...]          (default 1 2 3)
# then bench/compare_report.py OUT writes the table and the plot data.
# Environment: IFTRAIN (binary), NP (ranks, default 2), OUT (run directory,
# default bench/out/compare), EXTRA (more --section.key=value overrides).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
IFTRAIN=${IFTRAIN:-$top/iftrain}
NP=${NP:-2}
OUT=${OUT:-$top/bench/out/compare}
seeds=("$@"); [ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
read -ra extra <<< "${EXTRA:-}"   # EXTRA: whitespace-separated overrides
cd "$top"
run() { # NAME SEED [overrides...]
  local name=$1 s=$2; shift 2
  local dir="$OUT/seed$s/$name"
  if [ -s "$dir/done" ]; then echo "seed $s $name: done before" >&2; return; fi
  rm -rf "$dir"; mkdir -p "$dir"
  local recipe=$name; [ "$name" = dpo_ls ] && recipe=dpo
  "$top/tests/mpirun.sh" "$NP" "$IFTRAIN" train --config "data/recipes/$recipe.ini" \
    --train.seed="$s" --model.init_seed="$s" --ckpt.dir="$dir" --metrics.path="$dir/metrics.jsonl" \
    "$@" "${extra[@]}" > "$dir/log" 2>&1 || { echo "seed $s $name FAILED (see $dir/log)" >&2; return 1; }
  grep '^final exact match' "$dir/log" > "$dir/done"
  echo "seed $s $name: $(cat "$dir/done")" >&2
}
for s in "${seeds[@]}"; do
  for r in sft ift_static ift_linear ift_noise orpo sft_stage1; do run "$r" "$s"; done
  # the last checkpoint of stage 1, whatever its step count (the recipe or EXTRA decides)
  stage1_dir="$OUT/seed$s/sft_stage1"
  [ -s "$stage1_dir/latest" ] || { echo "seed $s: no sft_stage1 checkpoint ($stage1_dir/latest); skipping dpo and simpo" >&2; continue; }
  stage1="$stage1_dir/$(cat "$stage1_dir/latest")"
  ref="$OUT/seed$s/train_ref.h5"
  if [ ! -s "$OUT/seed$s/ref.log" ]; then
    cp data/arith_train.h5 "$ref"
    "$top/tests/mpirun.sh" "$NP" "$IFTRAIN" prep --ref-logp "$stage1" --data "$ref" > "$OUT/seed$s/ref.log.tmp" 2>&1
    mv "$OUT/seed$s/ref.log.tmp" "$OUT/seed$s/ref.log"
  fi
  run dpo "$s" --ckpt.init="$stage1" --data.train="$ref"
  run simpo "$s" --ckpt.init="$stage1"
done
