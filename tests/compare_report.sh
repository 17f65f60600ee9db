#!/bin/sh
# bench/compare_report.py on a synthetic sweep whose numbers are known:
#   seed1/sft         6 steps of 10 FLOPs, one record a step
#   seed1/ift_static  preempted after step 5, resumed from its step-3 checkpoint
#                     (steps 4 and 5 done twice, the first attempt's evaluation at
#                     step 4 abandoned): 6 steps of 13 FLOPs = 78, not 117
#   seed2/sft         as seed1's
#   seed2/ift_static  one record every 2 steps, preempted after step 6, resumed from
#                     the step-4 checkpoint (a Slurm requeue: restart_count 1): 78
#   seed3/sft         exit status 1: not counted, listed as failed
#   seed1/sft_stage1  4 steps of 10 FLOPs, then seed1/dpo 2 steps of 5 after a
#                     reference cache of 7 FLOPs (ref.log): 4 + 2 steps, 57 FLOPs,
#                     one seed (cells without ± 0.0)
#   base              the base model's held-out evaluations: the first row
# and bench/metrics_log.py alone on a resumed run with one record every 10 steps;
# and the held-out evaluations (eval_qa/sft/pref.json) of every counted run.
# Checks the steps and FLOPs columns, the FLOP ratio to SFT, mean ± std over
# seeds, the per-seed table, the failed run and the curve's points.
set -u
PY=python3
command -v $PY >/dev/null || { echo "SKIP: no python3"; exit 77; }
top=$(cd "$(dirname "$0")/.." && pwd)
w=${TMPDIR:-/tmp}/iftrain-compare-report.$$
trap 'rm -rf "$w"' EXIT
$PY - "$w" <<'PY' || exit 1
import json, os, sys
w = sys.argv[1]
def run(d, recs, status="0", exact=None, rouge=0.5, nll=1.0, pacc=0.5):
    os.makedirs(d)
    with open(os.path.join(d, "metrics.jsonl"), "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(d, "exit_status"), "w") as f:
        f.write(status + "\n")
    if exact is not None:
        for k, v in (("qa", {"exact_match": exact, "rouge_l": rouge, "eval_loss": nll, "samples": 10}),
                     ("sft", {"exact_match": 0, "rouge_l": 0, "eval_loss": nll + 1, "samples": 5}),
                     ("pref", {"exact_match": 0, "rouge_l": 0, "eval_loss": 0, "pref_acc": pacc, "samples": 4})):
            json.dump(v, open(os.path.join(d, f"eval_{k}.json"), "w"))
def steps(first, last, per, every=1, rc=0, start=0.0):
    return [{"step": s, "flops": start + per * (s - first + 1), "restart_count": rc}
            for s in range(first, last + 1) if s % every == 0 or s == last]
def ev(step, e):
    return {"step": step, "exact_match": e, "eval_loss": 2.5 if e == 0.9 else 2.0}
sft = steps(1, 3, 10) + [ev(3, 0.1)] + steps(4, 6, 10, start=30) + [ev(6, 0.2)]
for sd in ("seed1", "seed2"):
    run(f"{w}/{sd}/sft", sft, exact=0.4, rouge=0.6, nll=1.5, pacc=0.5)
# preempted after step 5, resumed from step 3: flops restart at 0
ift1 = steps(1, 3, 13) + [ev(3, 0.3)] + steps(4, 4, 13, start=39) + [ev(4, 0.9)] + steps(5, 5, 13, start=52) + \
       steps(4, 6, 13) + [ev(6, 0.5)]
run(f"{w}/seed1/ift_static", ift1, exact=0.5, rouge=0.7, nll=1.2, pacc=0.75)
# a record every 2 steps, preempted after 6, resumed (Slurm requeue) from step 4
ift2 = steps(1, 6, 13, every=2) + [ev(6, 0.9)] + steps(5, 6, 13, every=2, rc=1) + [ev(6, 0.7)]
run(f"{w}/seed2/ift_static", ift2, exact=0.7, rouge=0.9, nll=1.0, pacc=1.0)
run(f"{w}/seed3/sft", sft, status="1 failed")
run(f"{w}/seed1/sft_stage1", steps(1, 4, 10) + [ev(4, 0.1)])
run(f"{w}/seed1/dpo", steps(1, 2, 5) + [ev(2, 0.3)], exact=0.3, rouge=0.8, nll=2.0, pacc=0.25)
# the base model's evaluations: the table's first row
os.makedirs(f"{w}/base")
for k, v in (("qa", {"exact_match": 0.1, "rouge_l": 0.05, "eval_loss": 7.0, "samples": 10}),
             ("sft", {"exact_match": 0, "rouge_l": 0, "eval_loss": 6.5, "samples": 5}),
             ("pref", {"exact_match": 0, "rouge_l": 0, "eval_loss": 0, "pref_acc": 0.5, "samples": 4})):
    json.dump(v, open(f"{w}/base/eval_{k}.json", "w"))
open(f"{w}/seed1/ref.log", "w").write("prep: reference log-probabilities of 8 pairs, 7 FLOPs\n")
PY
$PY "$top/bench/compare_report.py" "$w" > "$w/out.txt" 2> "$w/err.txt" || { echo "FAIL: compare_report.py exited $?"; cat "$w/err.txt"; exit 1; }
fail=0
want() { grep -qF -- "$1" "$w/compare.md" || { echo "FAIL: not in compare.md: $1"; fail=1; }; }
# steps, FLOPs (each step once), ratio, exact % mean ± std, ROUGE-L %, answer NLL, conversation NLL, pref acc %, seeds, failed
want "| SFT | 6 | 60 | 1.00 | 40.0 ± 0.0 | 60.0 ± 0.0 | 1.500 ± 0.000 | 2.500 ± 0.000 | 50.0 ± 0.0 | 2 | 1 |"
want "| IFT (static λ) | 6 | 78 | 1.30 | 60.0 ± 14.1 | 80.0 ± 14.1 | 1.100 ± 0.141 | 2.100 ± 0.141 | 87.5 ± 17.7 | 2 | 1 |"
want "| IFT (static λ) | 2 | 70.0 | 90.0 | 1.000 | 2.000 | 100.0 |"
want "| SFT → DPO | 4 + 2 | 57 | 0.95 | 30.0 | 80.0 | 2.000 | 3.000 | 25.0 | 1 | 2 |"
want "| SFT → DPO | 1 | 30.0 | 80.0 | 2.000 | 3.000 | 25.0 |"
want "| base model, no fine-tuning | – | – | – | 10.0 | 5.0 | 7.000 | 6.500 | 50.0 | – | – |"
want "Held-out sets: 10 questions"
want "- SFT, seed3: exit status 1 failed"
want "- IFT (static λ), seed3: no run directory"
grep -q "not counted" "$w/err.txt" || { echo "FAIL: no warning of the failed run"; fail=1; }
# the curve: IFT's evaluations at steps 3 and 6 (the abandoned one at step 4 dropped),
# at 39 and 78 FLOPs (in 1e12: 0.0000 at 4 decimals) -> check the exact-match column
$PY - "$w/curves.dat" <<'PY' || fail=1
import sys
blocks = open(sys.argv[1]).read().strip().split("\n\n\n")
ift = [l.split() for l in blocks[1].splitlines()[1:]]
assert [b.splitlines()[0] for b in blocks] == ['"SFT"', '"IFT (static λ)"', '"SFT → DPO"'], blocks
# DPO's curve: the SFT stage's evaluation at 40 FLOPs, then its own at 40 + 7 + 10
dpo = [l.split() for l in blocks[2].splitlines()[1:]]
assert [float(x[1]) for x in dpo] == [10.0, 30.0], dpo
# seed1: 0.3 at step 3, 0.5 at step 6; seed2 (records every 2 steps, one evaluation kept): 0.7
# the mean over seeds is taken per evaluation index, over the shortest run's count
assert len(ift) == 1 and float(ift[0][1]) == 50.0, ift
PY
# COMPARE_CURVE=eval_loss: the curves are the evaluations' held-out loss (2.0 in every record
# but the abandoned one, 2.5)
COMPARE_CURVE=eval_loss $PY "$top/bench/compare_report.py" "$w" > /dev/null 2>&1 &&
  $PY -c 'import sys; b = open(sys.argv[1]).read().strip().split("\n\n\n")[1].splitlines()[1:];
assert [float(l.split()[1]) for l in b] == [2.0], b' "$w/curves.dat" || { echo "FAIL: the eval_loss curve"; fail=1; }
COMPARE_CURVE=bogus $PY "$top/bench/compare_report.py" "$w" > /dev/null 2> "$w/err2.txt" &&
  { echo "FAIL: COMPARE_CURVE=bogus accepted"; fail=1; }
grep -q "choose exact_match, rouge_l or eval_loss" "$w/err2.txt" || { echo "FAIL: no message for COMPARE_CURVE=bogus"; fail=1; }
# an incomplete base (one of its three evaluations missing): no base row, a warning naming it
rm "$w/base/eval_pref.json"
$PY "$top/bench/compare_report.py" "$w" > /dev/null 2> "$w/err3.txt" || { echo "FAIL: compare_report.py failed on an incomplete base"; fail=1; }
grep -q "base: held-out evaluation incomplete.*no base row" "$w/err3.txt" || { echo "FAIL: no warning of the incomplete base"; fail=1; }
! grep -q "^| base model" "$w/compare.md" || { echo "FAIL: a base row from an incomplete base"; fail=1; }
# bench/metrics_log.py on a run with metrics.every = 10 and eval.every = 4, stopped
# after step 40 and resumed from its step-20 checkpoint: the second attempt
# evaluates steps 24 and 28 before its first record (step 30). Each step and
# each evaluation once, the last attempt's, with the trajectory's FLOPs (1 a step).
$PY - "$top/bench" "$w/every10.jsonl" <<'PY' || { echo "FAIL: metrics_log.py on a resumed run with metrics.every = 10"; fail=1; }
import json, sys
sys.path.insert(0, sys.argv[1])
from metrics_log import records
recs = []
def attempt(first, last, tag):
    flops = 0
    for s in range(first, last + 1):
        flops += 1
        if s % 10 == 0:
            recs.append({"step": s, "flops": flops, "restart_count": 0})
        if s % 4 == 0:
            recs.append({"step": s, "eval_loss": tag, "exact_match": 0, "flops": flops})
attempt(1, 40, 1.0)
attempt(21, 60, 2.0)
with open(sys.argv[2], "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in recs)
steps, evals = records(sys.argv[2])
assert [(r["step"], r["flops"]) for r in steps] == [(s, s) for s in range(10, 61, 10)], steps
got = [(r["step"], r["flops"], r["eval_loss"]) for r in evals]
want = [(s, s // 10 * 10, 1.0 if s <= 20 else 2.0) for s in range(4, 61, 4)]
assert got == want, (got, want)
PY
[ $fail -eq 0 ] && echo "PASS: compare_report.py tables and curves" || cat "$w/compare.md"
exit $fail
