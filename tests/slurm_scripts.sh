#!/bin/bash
# The batch scripts of slurm/ outside Slurm (the real-Slurm test is separate):
# train.sbatch forwards USR1 to iftrain, which checkpoints and exits 75; the
# rerun resumes and ends with weights bit-identical to an uninterrupted run; a
# failing run is not treated as preemption; scaling.sbatch array tasks fill
# one CSV; sweep.sh runs a recipe set given by the environment in place.
set -u
: "${IFTRAIN:?}"
# MPI jobs of the test suite run one at a time (2 cores): hold the same lock
# as tests/mpirun.sh for the whole script
if [ -z "${IFT_LOCKED:-}" ] && command -v flock >/dev/null; then
  exec env IFT_LOCKED=1 flock "${TMPDIR:-/tmp}/iftrain-mpi-tests.lock" bash "$0" "$@"
fi
top=$(cd "$(dirname "$0")/.." && pwd)
w=$(mktemp -d /tmp/iftrain-slurm-scripts.XXXXXX)
trap 'rm -rf "$w"' EXIT
fail=0
check() { desc=$1; shift; if "$@" > "$w/out" 2>&1; then echo "PASS: $desc"; else echo "FAIL: $desc"; sed 's/^/    /' "$w/out"; fail=$((fail+1)); fi; }
export IFTRAIN IFTRAIN_LAUNCHER=mpirun NTASKS=2 OMPI_MCA_rmaps_base_oversubscribe=1
"$IFTRAIN" prep --generate arith --seed 5 -n 128 -o "$w/a.h5" >/dev/null
args=(--model.hidden_size=32 --model.intermediate_size=64 --model.num_hidden_layers=1 --train.batch_size=8
      --train.micro_batch=4 --train.steps=300 --data.train="$w/a.h5" --data.eval= --ckpt.every=50)

full() { RUN_DIR=$w/full bash "$top/slurm/train.sbatch" "${args[@]}" && test -f "$w/full/ckpt/step_300.h5"; }
preempted() {
  RUN_DIR=$w/pre bash "$top/slurm/train.sbatch" "${args[@]}" > "$w/pre.log" 2>&1 &
  pid=$!
  n=0; while [ "$(cat "$w/pre/metrics.jsonl" 2>/dev/null | wc -l)" -lt 5 ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done
  kill -USR1 $pid
  wait $pid; rc=$?
  [ $rc -eq 75 ] || { echo "first run exit $rc, expected 75"; cat "$w/pre.log"; return 1; }
  grep -q "checkpoint written" "$w/pre.log" || return 1
  RUN_DIR=$w/pre bash "$top/slurm/train.sbatch" "${args[@]}" >> "$w/pre.log" 2>&1 || { cat "$w/pre.log"; return 1; }
  grep -q "resumed from" "$w/pre.log" || { echo "second run did not resume"; return 1; }
  h5diff -q "$w/full/ckpt/step_300.h5" "$w/pre/ckpt/step_300.h5" /model /model ||
    { echo "final weights differ from the uninterrupted run"; return 1; }
}
crash() {
  RUN_DIR=$w/crash bash "$top/slurm/train.sbatch" "${args[@]}" --train.batch_size=7 > "$w/crash.log" 2>&1
  rc=$?
  [ $rc -ne 0 ] && [ $rc -ne 75 ] && grep -q "not requeueing" "$w/crash.log"
}
array() {
  for t in 0 1 2; do
    RUN_DIR=$w/scal LAYOUTS="1x1 2x1 1x2x1" SLURM_ARRAY_TASK_ID=$t bash "$top/slurm/scaling.sbatch" --hidden=64 --layers=1 --steps=1 --batch=4 --seq=16 --mode=strong >/dev/null || return 1
  done
  [ "$(head -1 "$w/scal/scaling.csv" | cut -d, -f1)" = mode ] && [ "$(wc -l < "$w/scal/scaling.csv")" -eq 4 ] &&
    grep -q ',2x1$' "$w/scal/scaling.csv" # the 2D layout's row
}
recipes() {
  local tiny=(--model.hidden_size=32 --model.intermediate_size=64 --model.num_hidden_layers=1
              --train.batch_size=8 --train.micro_batch=4 --train.steps=4 --eval.max_samples=8 --eval.every=0)
  export SWEEP_DIR=$w/sweep SEEDS="1 2"
  # stage A: sft_stage1 for both seeds; stage B: dpo and simpo for seed 2
  RECIPES="sft_stage1" SLURM_ARRAY_TASK_ID=1 bash "$top/slurm/recipes.sbatch" "${tiny[@]}" || return 1
  RECIPES="dpo" SLURM_ARRAY_TASK_ID=0 bash "$top/slurm/recipes.sbatch" "${tiny[@]}" 2>&1 | grep -q "needs the sft_stage1 run of seed 1" || { echo "missing stage 1 not reported"; return 1; }
  RECIPES="dpo simpo" SLURM_ARRAY_TASK_ID=1 bash "$top/slurm/recipes.sbatch" "${tiny[@]}" || return 1
  RECIPES="dpo simpo" SLURM_ARRAY_TASK_ID=3 bash "$top/slurm/recipes.sbatch" "${tiny[@]}" || return 1
  grep -q "initial weights from $w/sweep/seed2/sft_stage1/ckpt/step_4.h5" "$w/sweep/seed2/dpo/"*.log 2>/dev/null ||
    grep -q '"step":4' "$w/sweep/seed2/dpo/metrics.jsonl" || { echo "dpo did not run 4 steps"; return 1; }
  # the first DPO step starts at the reference: loss log 2
  head -1 "$w/sweep/seed2/dpo/metrics.jsonl" | grep -q '"loss":0.69314' || { echo "first DPO loss is not log 2:"; head -1 "$w/sweep/seed2/dpo/metrics.jsonl"; return 1; }
  grep -q '"pref_acc"' "$w/sweep/seed2/simpo/metrics.jsonl" && test -s "$w/sweep/seed2/ref.log"
}
sweep_inplace() {
  # RECIPE_ARGS is read as one line
  local small="--model.hidden_size=32 --model.intermediate_size=64 --model.num_hidden_layers=1"
  small+=" --train.batch_size=8 --train.micro_batch=4 --train.steps=2 --eval.max_samples=8 --eval.every=0"
  mkdir -p "$w/rs"
  for r in sft orpo sft_stage1 dpo; do cp "$top/data/recipes/$r.ini" "$w/rs/"; done
  run_sweep() {
    SWEEP_INPLACE=1 SWEEP_DIR=$w/sw RECIPE_DIR=$w/rs TRAIN_DATA=$w/a.h5 PREF_DATA=$top/data/arith_train.h5 \
      EVAL_DATA="" INIT=$w/full/ckpt/step_300.h5 STAGE_A="sft orpo sft_stage1" STAGE_B=dpo RECIPE_ARGS="$small" \
      bash "$top/slurm/sweep.sh" 1
  }
  run_sweep > "$w/sw.log" 2>&1 || { cat "$w/sw.log"; return 1; }
  # stage A from INIT on its data; stage B from stage 1 on the pairs; no evaluation
  grep -q "initial weights from $w/full/ckpt/step_300.h5" "$w/sw/seed1/sft/task.out" || { echo "sft did not start from INIT"; return 1; }
  grep -q "^train = $w/a.h5" "$w/sw/seed1/sft/task.out" || { echo "sft did not train on TRAIN_DATA"; return 1; }
  grep -q "^train = $top/data/arith_train.h5" "$w/sw/seed1/orpo/task.out" || { echo "orpo did not train on PREF_DATA"; return 1; }
  grep -q "initial weights from $w/sw/seed1/sft_stage1/ckpt/step_2.h5" "$w/sw/seed1/dpo/task.out" || { echo "dpo did not start from stage 1"; return 1; }
  ! grep -q eval_loss "$w/sw/seed1/sft/metrics.jsonl" || { echo "evaluated although EVAL_DATA is empty"; return 1; }
  # a rerun skips the finished runs
  run_sweep > "$w/sw2.log" 2>&1 && [ "$(grep -c 'finished before, skipped' "$w/sw2.log")" -eq 4 ] || { cat "$w/sw2.log"; return 1; }
  # STAGE_B set and empty: stage A alone (not the default dpo simpo, which would fail here)
  SWEEP_INPLACE=1 SWEEP_DIR=$w/sw STAGE_A=sft STAGE_B='' bash "$top/slurm/sweep.sh" 1 > "$w/sw3.log" 2>&1 &&
    [ "$(grep -c '^sweep.sh: seed' "$w/sw3.log")" -eq 1 ] || { echo "STAGE_B= ran a stage B:"; cat "$w/sw3.log"; return 1; }
}
check "train.sbatch: a run to the end exits 0" full
check "sweep.sh in place: recipe set, data and INIT from the environment; a rerun skips finished runs" sweep_inplace
check "recipes.sbatch: SFT stage 1, then SFT -> DPO (reference cache) and SFT -> SimPO" recipes
check "train.sbatch: USR1 -> checkpoint, exit 75; rerun resumes to bit-identical weights" preempted
check "train.sbatch: a failing run exits non-zero and is not requeued" crash
check "scaling.sbatch: three array tasks fill one CSV" array
[ $fail -eq 0 ]
