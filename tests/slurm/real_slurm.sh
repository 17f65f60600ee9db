#!/bin/bash
# A real single-node Slurm started by the test itself (munge, slurmctld,
# slurmd on localhost; what it relies on: docs/cluster.md):
#  1. slurm/train.sbatch on 2 tasks runs to the end (srun --mpi=pmix);
#  2. the same job gets USR1 (scancel --signal=USR1 --batch), checkpoints,
#     requeues itself, resumes and finishes with /model bit-identical to 1.;
#  3. a 3-task array of slurm/scaling.sbatch (DP 1, DP 2, TP 2D 2x1) fills one CSV;
#  4. slurm/sweep.sh (3 steps per recipe): stage B starts after stage A ends.
# Every daemon it started is stopped by PID, also on failure.  Skipped (exit
# 77) without root or without the Slurm packages.
set -u
: "${IFTRAIN:?IFTRAIN must point at the binary}"
top=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: the real-Slurm test needs root to start daemons"; exit 77; }
for c in munged slurmctld slurmd sbatch scontrol scancel sinfo squeue h5diff; do
  command -v $c >/dev/null || { echo "SKIP: $c not installed (apt-get install slurmctld slurmd slurm-client munge)"; exit 77; }
done
if [ -z "${IFT_LOCKED:-}" ] && command -v flock >/dev/null; then
  exec env IFT_LOCKED=1 flock "${TMPDIR:-/tmp}/iftrain-mpi-tests.lock" bash "$0" "$@"
fi
w=$(mktemp -d /tmp/iftrain-slurm.XXXXXX)
chmod 755 "$w"
started=()
cleanup() {
  for pf in "$w/slurmd.pid" "$w/slurmctld.pid"; do
    [ -s "$pf" ] && kill "$(cat "$pf")" 2>/dev/null
  done
  for p in "${started[@]}"; do kill "$p" 2>/dev/null; done
  sleep 2
  for pf in "$w/slurmd.pid" "$w/slurmctld.pid"; do
    [ -s "$pf" ] && kill -9 "$(cat "$pf")" 2>/dev/null
  done
  for p in "${started[@]}"; do kill -9 "$p" 2>/dev/null; done
  [ "${KEEP:-0}" = 1 ] || rm -rf "$w"
}
trap cleanup EXIT
fail=0
check() { desc=$1; shift; if "$@" > "$w/out" 2>&1; then echo "PASS: $desc"; else echo "FAIL: $desc"; sed 's/^/    /' "$w/out"; fail=$((fail+1)); fi; }

# munge: reuse a running daemon, else start our own
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- munged --force || { echo "SKIP: munged does not start here"; exit 77; }
  for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  started+=("$(cat /run/munge/munged.pid)")
fi

host=$(hostname -s)
mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p')
mkdir -p "$w/state" "$w/spool"
port=$((20000 + RANDOM % 20000))
cat > "$w/slurm.conf" <<CONF
ClusterName=iftraintest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation=$w/state
SlurmdSpoolDir=$w/spool
SlurmctldPidFile=$w/slurmctld.pid
SlurmdPidFile=$w/slurmd.pid
SlurmctldLogFile=$w/slurmctld.log
SlurmdLogFile=$w/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=2000
MpiDefault=pmix
JobRequeue=1
MailProg=/bin/true
ReturnToService=2
SchedulerParameters=sched_interval=2,bf_interval=2
JobCompType=jobcomp/filetxt
JobCompLoc=$w/jobcomp.txt
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
export SLURM_CONF=$w/slurm.conf
slurmctld -f "$SLURM_CONF" || { echo "SKIP: slurmctld does not start here"; exit 77; }
slurmd -f "$SLURM_CONF" || { echo "SKIP: slurmd does not start here"; exit 77; }
for _ in $(seq 100); do [ "$(sinfo -h -o %T 2>/dev/null)" = idle ] && break; sleep 0.3; done
[ "$(sinfo -h -o %T)" = idle ] || { echo "SKIP: the Slurm node did not come up"; sinfo; tail -5 "$w/slurmctld.log"; exit 77; }

"$IFTRAIN" prep --generate arith --seed 5 -n 128 -o "$w/a.h5" >/dev/null
args=(--model.hidden_size=32 --model.intermediate_size=64 --model.num_hidden_layers=1 --train.batch_size=8
      --train.micro_batch=4 --train.steps=400 --data.train="$w/a.h5" --data.eval= --ckpt.every=50)
# submitted from outside the repository: the scripts find slurm/ themselves
cd "$w" || exit 1
submit() { # RUN_DIR, more sbatch args..., -- script args
  local dir=$1; shift
  RUN_DIR=$dir IFTRAIN=$IFTRAIN sbatch --parsable --ntasks=2 --export=ALL --output="$dir.out" "$@"
}
state() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -1; }
wait_done() { # job id, seconds
  for _ in $(seq $(($2 * 5))); do
    case "$(state "$1")" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|"") return 0 ;; esac
    sleep 0.2
  done
  return 1
}

full() {
  j=$(submit "$w/full" "$top/slurm/train.sbatch" "${args[@]}") || return 1
  wait_done "$j" 180 || { echo "job $j did not finish"; return 1; }
  [ "$(state "$j")" = COMPLETED ] || { echo "job $j: $(state "$j")"; cat "$w/full.out"; return 1; }
  grep -q "launcher srun" "$w/full.out" && test -f "$w/full/ckpt/step_400.h5"
}
preempt() {
  j=$(submit "$w/pre" "$top/slurm/train.sbatch" "${args[@]}") || return 1
  for _ in $(seq 600); do [ "$(cat "$w/pre/metrics.jsonl" 2>/dev/null | wc -l)" -ge 5 ] && break; sleep 0.1; done
  scancel --signal=USR1 --batch "$j" || return 1
  wait_done "$j" 240 || { echo "job $j did not finish after the requeue"; cat "$w/pre.out"; return 1; }
  [ "$(state "$j")" = COMPLETED ] || { echo "job $j: $(state "$j")"; cat "$w/pre.out"; return 1; }
  grep -q "requeueing job $j" "$w/pre.out" || { echo "no requeue"; cat "$w/pre.out"; return 1; }
  grep -q "restart 1:" "$w/pre.out" && grep -q "resumed from" "$w/pre.out" || { echo "no resume"; cat "$w/pre.out"; return 1; }
  grep -q '"restart_count":1' "$w/pre/metrics.jsonl" || { echo "restart_count not in the metrics"; return 1; }
  h5diff -q "$w/full/ckpt/step_400.h5" "$w/pre/ckpt/step_400.h5" /model /model ||
    { echo "weights differ from the uninterrupted run"; return 1; }
}
array() {
  j=$(RUN_DIR=$w/scal LAYOUTS="1x1 2x1 1x2x1" IFTRAIN=$IFTRAIN sbatch --parsable --array=0-2 --ntasks=2 --export=ALL \
      --output="$w/scal-%a.out" "$top/slurm/scaling.sbatch" --hidden=64 --layers=1 --steps=1 --batch=4 --seq=16 --mode=strong) || return 1
  for _ in $(seq 600); do [ -z "$(squeue -h -j "$j" 2>/dev/null)" ] && break; sleep 0.2; done
  [ "$(wc -l < "$w/scal/scaling.csv")" -eq 4 ] && grep -q ',2x1$' "$w/scal/scaling.csv" ||
    { cat "$w"/scal-*.out; cat "$w/scal/scaling.csv"; return 1; }
}
sweep() { # slurm/sweep.sh: stage B (DPO, SimPO from the SFT stage 1) only after stage A
  out=$(SWEEP_DIR=$w/sweep IFTRAIN=$IFTRAIN SBATCH_ARGS="--output=$w/sweep-%A_%a.out" \
        RECIPE_ARGS="--train.steps=3 --eval.every=0 --eval.max_samples=4" bash "$top/slurm/sweep.sh" 1) || { echo "$out"; return 1; }
  ja=$(sed -n 's/^stage A: job array \([0-9]*\).*/\1/p' <<< "$out")
  jb=$(sed -n 's/^stage B: job array \([0-9]*\).*/\1/p' <<< "$out")
  [ -n "$ja" ] && [ -n "$jb" ] || { echo "$out"; return 1; }
  for _ in $(seq 1500); do [ -z "$(squeue -h -j "$ja,$jb" 2>/dev/null)" ] && break; sleep 0.2; done
  for r in sft ift_static ift_linear ift_noise orpo sft_stage1 dpo simpo; do
    [ -s "$w/sweep/seed1/$r/ckpt/latest" ] || { echo "no checkpoint of $r"; cat "$w"/sweep-*.out; return 1; }
  done
  grep -q "pairs scored by" "$w/sweep/seed1/ref.log" || { cat "$w/sweep/seed1/ref.log"; return 1; }
  # every stage-B task started after the last stage-A task ended (job completion log)
  python3 - "$w/jobcomp.txt" "$ja" "$jb" <<'PY'
import re, sys
from datetime import datetime
rows = [dict(re.findall(r"(\w+)=(\S+)", l)) for l in open(sys.argv[1])]
def times(arr, key):
    return [datetime.fromisoformat(r[key]) for r in rows if r.get("ArrayJobId", r.get("JobId")) == arr or r.get("JobId") == arr]
end_a, start_b = times(sys.argv[2], "EndTime"), times(sys.argv[3], "StartTime")
assert len(end_a) == 6 and len(start_b) == 2, (len(end_a), len(start_b))
assert min(start_b) >= max(end_a), (min(start_b), max(end_a))
PY
}
check "real Slurm: train.sbatch on 2 tasks runs to the end with srun" full
check "real Slurm: USR1 -> checkpoint -> requeue -> resume -> bit-identical weights" preempt
check "real Slurm: 3-task array of scaling.sbatch fills one CSV" array
check "real Slurm: sweep.sh runs stage B (DPO, SimPO) after stage A (6 recipes)" sweep
[ $fail -eq 0 ]
