#!/bin/bash
# Submit a recipe comparison (default: data/recipes/ on the arith task) as two
# Slurm job arrays: stage A (every one-stage recipe and the SFT stage 1) and
# stage B (SFT -> DPO and SFT -> SimPO), which starts when stage A has succeeded.
#   slurm/sweep.sh [SEEDS...]            (default 1 2 3)
# Environment: SWEEP_DIR (default runs/sweep), SBATCH_ARGS (more sbatch options),
# RECIPE_ARGS (more iftrain train options for every run, e.g. --train.steps=10),
# STAGE_A / STAGE_B (the recipe lists, defaults below; STAGE_B= runs none); the recipe set and its
# data: RECIPE_DIR, TRAIN_DATA, PREF_DATA, REF_DATA, EVAL_DATA, INIT (see
# slurm/recipes.sbatch; they reach the jobs through --export=ALL).
# Without Slurm (sinfo does not answer, or SWEEP_INPLACE=1) the array tasks run
# here, one after the other, stage A then stage B, through the same scripts
# (train.sbatch under mpirun); a task whose run has finished (ckpt/exit_status
# 0) is skipped, so after a stop run the same command again to continue.
# Summarise afterwards with: python3 bench/compare_report.py (reads the same layout).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seeds=("$@"); [ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
export SEEDS="${seeds[*]}" SWEEP_DIR=${SWEEP_DIR:-runs/sweep}
A=${STAGE_A:-sft ift_static ift_linear ift_noise orpo sft_stage1}
B=${STAGE_B-dpo simpo}  # STAGE_B= (set, empty): no stage B
na=$(( $(wc -w <<< "$A") * ${#seeds[@]} - 1 ))
nb=$(( $(wc -w <<< "$B") * ${#seeds[@]} - 1 ))
read -ra extra <<< "${RECIPE_ARGS:-}"
read -ra sbatch_args <<< "${SBATCH_ARGS:-}"
# the batch scripts find slurm/ (site.env, train.sbatch) from any submit directory
export IFTRAIN_SLURM_DIR="$here"

if [ "${SWEEP_INPLACE:-0}" = 1 ] || ! sinfo -h > /dev/null 2>&1; then
  echo "sweep.sh: no Slurm here: running the array tasks in place, one after the other"
  inplace() {  # RECIPES LAST_TASK: every task, as an array would; fails if one did
    local recipes=$1 last=$2 k r s rc=0
    read -ra rs <<< "$recipes"
    for k in $(seq 0 "$last"); do
      r=${rs[$((k / ${#seeds[@]}))]} s=${seeds[$((k % ${#seeds[@]}))]}
      if [ "$(cut -d' ' -f1 "$SWEEP_DIR/seed$s/$r/ckpt/exit_status" 2>/dev/null)" = 0 ]; then
        echo "sweep.sh: seed $s $r: finished before, skipped"; continue
      fi
      mkdir -p "$SWEEP_DIR/seed$s/$r"
      # the task's output goes to its run directory (sbatch: --output of recipes.sbatch)
      if RECIPES="$recipes" SLURM_ARRAY_TASK_ID=$k bash "$here/recipes.sbatch" "${extra[@]}" \
           >> "$SWEEP_DIR/seed$s/$r/task.out" 2>&1; then
        echo "sweep.sh: seed $s $r: done"
      else
        echo "sweep.sh: seed $s $r failed (exit $?; see $SWEEP_DIR/seed$s/$r/task.out)" >&2; rc=1
      fi
    done
    return $rc
  }
  # stage B only after every stage-A task succeeded (sbatch: --dependency=afterok)
  inplace "$A" "$na" || { echo "sweep.sh: stage A incomplete: stage B not run" >&2; exit 1; }
  inplace "$B" "$nb" || exit 1
  echo "runs in $SWEEP_DIR/seed<S>/<recipe>/; table: python3 bench/compare_report.py $SWEEP_DIR"
  exit 0
fi

ja=$(RECIPES="$A" sbatch --parsable --export=ALL "${sbatch_args[@]}" --array=0-"$na" "$here/recipes.sbatch" "${extra[@]}")
echo "stage A: job array $ja ($A) x seeds ${seeds[*]}"
if [ -n "$B" ]; then
  jb=$(RECIPES="$B" sbatch --parsable --export=ALL "${sbatch_args[@]}" --array=0-"$nb" --dependency=afterok:"${ja%%;*}" \
       "$here/recipes.sbatch" "${extra[@]}")
  echo "stage B: job array $jb ($B), after A"
fi
echo "runs in $SWEEP_DIR/seed<S>/<recipe>/; table: python3 bench/compare_report.py $SWEEP_DIR"
