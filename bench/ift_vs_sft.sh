#!/usr/bin/env bash
# SFT vs IFT on the default task: same steps, same seeds, several seeds;
# prints a markdown table of held-out exact match and loss (mean ± std).
#   bench/ift_vs_sft.sh [SEEDS...]       (default seeds 1 2 3)
# Environment: IFTRAIN (binary), NP (ranks, default 2), EXTRA (more
# --section.key=value overrides), OUT (directory for logs and metrics).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
IFTRAIN=${IFTRAIN:-$top/iftrain}
NP=${NP:-2}
OUT=${OUT:-$top/bench/out/ift_vs_sft}
seeds=("$@"); [ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
mkdir -p "$OUT"
for s in "${seeds[@]}"; do
  for loss in sft ift; do
    log="$OUT/$loss-seed$s.log"
    if [ ! -s "$log" ] || ! grep -q '^final exact match' "$log"; then
      "$top/tests/mpirun.sh" "$NP" "$IFTRAIN" train --train.loss=$loss --train.seed=$s \
        --model.init_seed=$s --ckpt.dir= --metrics.path="$OUT/$loss-seed$s.jsonl" \
        --data.train="$top/data/arith_train.h5" --data.eval="$top/data/arith_test.h5" \
        ${EXTRA:-} > "$log" 2>&1
    fi
    echo "$loss seed $s: $(grep '^final exact match' "$log")" >&2
  done
done
python3 - "$OUT" "${seeds[@]}" <<'PY'
import re, statistics, sys
out, seeds = sys.argv[1], sys.argv[2:]
rows = {}
for loss in ("sft", "ift"):
    em, hl, secs = [], [], []
    for s in seeds:
        t = open(f"{out}/{loss}-seed{s}.log").read()
        m = re.search(r"final exact match: ([0-9.]+)\s+held-out loss: ([0-9.]+)", t)
        em.append(float(m.group(1))); hl.append(float(m.group(2)))
        d = re.search(r"done: \d+ steps in ([0-9.]+) s", t)
        if d: secs.append(float(d.group(1)))
    sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
    rows[loss] = (em, hl, secs)
    print(f"| {loss.upper()} | {100*statistics.mean(em):.1f} ± {100*sd(em):.1f} | "
          f"{statistics.mean(hl):.4f} ± {sd(hl):.4f} | "
          f"{', '.join(f'{100*x:.1f}' for x in em)} |")
PY
