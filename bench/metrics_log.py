"""Reading an `iftrain train` metrics file (metrics.jsonl) the way a resumed
run wrote it; shared by bench/compare_report.py and data/debian/base_card.py.

A run resumed from a checkpoint (slurm/train.sbatch after a preemption or a
requeue) appends to the same file, counts its "flops" from 0 again and redoes
the steps after the checkpoint it resumed from. records() keeps each step
once, its last attempt, and drops the abandoned attempt's evaluations."""
import json


def records(path):
    """(steps, evals): the step records and the evaluation records of the run's
    final trajectory, in step order. Every record's "flops" becomes the
    training FLOPs of that trajectory up to its step, and a step record gets
    "step_flops", the FLOPs since the previous record (of that step alone when
    metrics.every = 1, the default). Exact when every step has a record or
    when checkpoints fall on record steps. Raises OSError, ValueError."""
    steps, evals = [], []
    inc = {}  # record step -> FLOPs since the previous record of its attempt
    total = 0.0
    prev = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if "eval_loss" in r:
                r["flops"] = total
                evals.append(r)
                continue
            restart = (prev is None or r["flops"] < prev["flops"] or r["step"] <= prev["step"] or
                       r.get("restart_count") != prev.get("restart_count"))
            if restart:  # the steps from here on are redone
                for k in [k for k in inc if k >= r["step"]]:
                    del inc[k]
                steps = [x for x in steps if x["step"] < r["step"]]
                evals = [x for x in evals if x["step"] < r["step"]]
                total = sum(inc.values())
            inc[r["step"]] = r["flops"] - (0.0 if restart else prev["flops"])
            prev = dict(r)
            total += inc[r["step"]]
            r["step_flops"] = inc[r["step"]]
            r["flops"] = total
            steps.append(r)
    return steps, evals
