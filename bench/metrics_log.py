"""Reading an `iftrain train` metrics file (metrics.jsonl) the way a resumed
run wrote it; shared by bench/compare_report.py and data/debian/base_card.py.

A run resumed from a checkpoint (slurm/train.sbatch after a preemption or a
requeue) appends to the same file, counts its "flops" from 0 again and redoes
the steps after the checkpoint it resumed from. records() keeps each step
once, its last attempt, and each evaluation once, its last attempt."""
import bisect
import json


def records(path):
    """(steps, evals): the step records and the evaluation records of the run's
    final trajectory, in step order. A step record's "flops" becomes the
    training FLOPs of that trajectory up to its step, and it gets
    "step_flops", the FLOPs since the previous record (of that step alone when
    metrics.every = 1, the default); an evaluation's "flops" becomes that of
    the last step record at or before its step. Exact when every step has a
    record or when checkpoints fall on record steps. Raises OSError,
    ValueError."""
    steps, evals = [], {}
    prev = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if "eval_loss" in r:
                # the last attempt's: a resumed attempt that evaluates before
                # its first step record replaces the abandoned one's evaluations
                evals[r["step"]] = r
                continue
            restart = (prev is None or r["flops"] < prev["flops"] or r["step"] <= prev["step"] or
                       r.get("restart_count") != prev.get("restart_count"))
            if restart:  # the steps from here on are redone
                while steps and steps[-1]["step"] >= r["step"]:
                    steps.pop()
                # evaluations so far at those steps are the abandoned attempt's
                # (an attempt evaluates a step after that step's record)
                for k in [k for k in evals if k >= r["step"]]:
                    del evals[k]
            r["step_flops"] = r["flops"] - (0.0 if restart else prev["flops"])
            prev = dict(r)
            r["flops"] = (steps[-1]["flops"] if steps else 0.0) + r["step_flops"]
            steps.append(r)
    at = [s["step"] for s in steps]
    out = []
    for k in sorted(evals):
        i = bisect.bisect_right(at, k)
        evals[k]["flops"] = steps[i - 1]["flops"] if i else 0.0
        out.append(evals[k])
    return steps, out
