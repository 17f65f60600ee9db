#!/bin/bash
# Submit the comparison of data/recipes/ as two Slurm job arrays: stage A
# (every one-stage recipe and the SFT stage 1) and stage B (SFT -> DPO and
# SFT -> SimPO), which starts when stage A has succeeded.
#   slurm/sweep.sh [SEEDS...]            (default 1 2 3)
# Environment: SWEEP_DIR (default runs/sweep), SBATCH_ARGS (more sbatch options),
# RECIPE_ARGS (more iftrain train options for every run, e.g. --train.steps=10).
# Summarise afterwards with: python3 bench/compare_report.py (reads the same layout).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seeds=("$@"); [ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)
export SEEDS="${seeds[*]}" SWEEP_DIR=${SWEEP_DIR:-runs/sweep}
A="sft ift_static ift_linear ift_noise orpo sft_stage1"
B="dpo simpo"
na=$(( $(wc -w <<< "$A") * ${#seeds[@]} - 1 ))
nb=$(( $(wc -w <<< "$B") * ${#seeds[@]} - 1 ))
read -ra extra <<< "${RECIPE_ARGS:-}"
read -ra sbatch_args <<< "${SBATCH_ARGS:-}"
# the batch scripts find slurm/ (site.env, train.sbatch) from any submit directory
export IFTRAIN_SLURM_DIR="$here"
ja=$(RECIPES="$A" sbatch --parsable --export=ALL "${sbatch_args[@]}" --array=0-"$na" "$here/recipes.sbatch" "${extra[@]}")
jb=$(RECIPES="$B" sbatch --parsable --export=ALL "${sbatch_args[@]}" --array=0-"$nb" --dependency=afterok:"${ja%%;*}" \
     "$here/recipes.sbatch" "${extra[@]}")
echo "stage A: job array $ja ($A) x seeds ${seeds[*]}"
echo "stage B: job array $jb ($B), after A"
echo "runs in $SWEEP_DIR/seed<S>/<recipe>/; table: python3 bench/compare_report.py $SWEEP_DIR"
