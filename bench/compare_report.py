#!/usr/bin/env python3
"""Summarise bench/compare.sh or slurm/sweep.sh: a markdown table (exact match
and held-out loss, mean ± std over seeds, FLOPs used) and per-method curves of
exact match vs training FLOPs for bench/plot_compare.gp.

    python3 bench/compare_report.py [OUT]   (default bench/out/compare)
writes OUT/compare.md and OUT/curves.dat (one gnuplot block per method).
The table's numbers are the final in-training evaluation of each run, unless
the run directory holds the held-out evaluations of data/debian/run.sh report
(eval_qa.json, eval_sft.json, eval_pref.json: `iftrain eval --json` on the
question set, the held-out conversations and the held-out pairs): then the
table has their exact match, ROUGE-L, answer NLL, conversation NLL and
preference accuracy instead, and a second table gives every seed's values;
OUT/base/eval_*.json, the same evaluations of the model every run started
from, make the table's first row.
COMPARE_CURVE=eval_loss (or rouge_l) makes the curves the in-training evaluations'
held-out loss (ROUGE-L %) instead of their exact match %.
A two-stage method's steps are the SFT stage's plus its own ("160 + 38"); with
one seed a cell is the value alone (no ± 0.0).
A seed whose run of a method failed, stopped early or is missing is left out of
that method's mean ± std and counted in the table's "failed" column; the list
under the table names each with the reason."""
import json, os, re, statistics, sys

from metrics_log import records

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "out", "compare")
CURVE = os.environ.get("COMPARE_CURVE") or "exact_match"
if CURVE not in ("exact_match", "rouge_l", "eval_loss"):
    sys.exit(f"compare_report: COMPARE_CURVE={CURVE}: choose exact_match, rouge_l or eval_loss")
SCALE = 1.0 if CURVE == "eval_loss" else 100.0  # fractions are plotted as %
METHODS = [("sft", "SFT", None), ("ift_static", "IFT (static λ)", None),
           ("ift_linear", "IFT (linear λ)", None), ("ift_noise", "IFT (noise λ)", None),
           ("dpo", "SFT → DPO", "sft_stage1"), ("simpo", "SFT → SimPO", "sft_stage1"),
           ("orpo", "ORPO", None)]


def ref_flops(seed_dir):
    m = re.search(r"([0-9.eE+]+) FLOPs", open(os.path.join(seed_dir, "ref.log")).read())
    return float(m.group(1))


class RunFailed(Exception):
    pass


EVALS = ("qa", "sft", "pref")


def held_out(d):
    """The run's eval_<set>.json files (all three, or none: {})."""
    have = [os.path.exists(os.path.join(d, f"eval_{k}.json")) for k in EVALS]
    if not any(have):
        return {}
    if not all(have):
        raise RunFailed("held-out evaluation incomplete (eval_qa/sft/pref.json)")
    return {k: json.load(open(os.path.join(d, f"eval_{k}.json"))) for k in EVALS}


def run(seed_dir, name, stage1):
    """(final exact, final loss, total flops, steps, curve [(flops, CURVE)],
    held-out evaluations {set: eval json} or {})."""
    d = os.path.join(seed_dir, name)
    if not os.path.isdir(d):
        raise RunFailed("no run directory")
    # how the run ended: iftrain's exit_status in its checkpoint directory
    # (the run directory for bench/compare.sh, RUN/ckpt for slurm/sweep.sh)
    for st in (os.path.join(d, "exit_status"), os.path.join(d, "ckpt", "exit_status")):
        if os.path.exists(st):
            status = open(st).read().split()
            if not status or status[0] != "0":
                raise RunFailed(f"exit status {' '.join(status[:2]) or 'empty'} ({st})")
            break
    else:
        if not os.path.exists(os.path.join(d, "done")):
            raise RunFailed("did not finish (no exit_status, no done)")
    steps, evals = records(os.path.join(d, "metrics.jsonl"))
    if not steps or not evals:
        raise RunFailed("no training step or no evaluation in metrics.jsonl")
    base, curve, nsteps = 0.0, [], f"{steps[-1]['step']}"
    if stage1:
        s1, e1 = records(os.path.join(seed_dir, stage1, "metrics.jsonl"))
        curve += [(e["flops"], e[CURVE]) for e in e1]
        base = s1[-1]["flops"] + (ref_flops(seed_dir) if name == "dpo" else 0.0)
        nsteps = f"{s1[-1]['step']} + {nsteps}"  # the SFT stage's steps, then this stage's
    curve += [(base + e["flops"], e[CURVE]) for e in evals]
    return (evals[-1]["exact_match"], evals[-1]["eval_loss"], base + steps[-1]["flops"], nsteps, curve,
            held_out(d))


def ms(v):
    return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def cell(fmt, v):
    """mean ± std of v in fmt ("{:.1f} ± {:.1f}"); the mean alone for one seed,
    where there is no spread to report."""
    return fmt.format(*ms(v)) if len(v) > 1 else fmt.split(" ±")[0].format(v[0])


seeds = sorted((d for d in os.listdir(OUT) if d.startswith("seed")), key=lambda d: (len(d), d))
rows, curves, failed, per_seed = [], {}, [], []
sft_flops = None
for key, label, stage1 in METHODS:
    res, fails, names = [], [], []
    for sd in seeds:
        try:
            res.append(run(os.path.join(OUT, sd), key, stage1))
            names.append(sd)
        except (OSError, ValueError, IndexError, AttributeError, KeyError, TypeError, RunFailed) as e:
            fails.append(f"{label}, {sd}: {'' if isinstance(e, RunFailed) else e.__class__.__name__ + ': '}{e}")
    if not res and all(x.endswith(": no run directory") for x in fails):
        continue  # a method this sweep did not run
    failed += fails
    rows.append((label, key, res, fails))
    if key == "sft" and res:
        sft_flops = statistics.mean(r[2] for r in res)
    if res:
        curves[label] = [r[4] for r in res]
    per_seed += [(label, sd, r) for sd, r in zip(names, res)]

# the held-out evaluations decide the table when every counted run has them
real = bool(per_seed) and all(r[5] for _, _, r in per_seed)
try:  # OUT/base: the base model's held-out evaluations (all three, or no row)
    base = held_out(os.path.join(OUT, "base"))
except RunFailed as e:
    print(f"compare_report: {os.path.join(OUT, 'base')}: {e}: no base row", file=sys.stderr)
    base = {}
# (column, value of a held-out evaluation set, format of mean ± std)
HELD_OUT = [("exact match %", lambda h: 100 * h["qa"]["exact_match"], "{:.1f} ± {:.1f}"),
            ("ROUGE-L %", lambda h: 100 * h["qa"]["rouge_l"], "{:.1f} ± {:.1f}"),
            ("answer NLL", lambda h: h["qa"]["eval_loss"], "{:.3f} ± {:.3f}"),
            ("conversation NLL", lambda h: h["sft"]["eval_loss"], "{:.3f} ± {:.3f}"),
            ("pref acc %", lambda h: 100 * h["pref"]["pref_acc"], "{:.1f} ± {:.1f}")]
nan = float("nan")
with open(os.path.join(OUT, "compare.md"), "w") as f:
    if real:
        f.write("| method | steps | training FLOPs | vs SFT | " + " | ".join(c for c, _, _ in HELD_OUT) +
                " | seeds | failed |\n")
        f.write("|---" * (len(HELD_OUT) + 6) + "|\n")
    else:
        f.write("| method | steps | training FLOPs | vs SFT | exact match % | held-out loss | per seed | seeds | failed |\n")
        f.write("|---|---|---|---|---|---|---|---|---|\n")
    if real and base:
        # the starting point, scored by the same evaluations (data/debian/run.sh report)
        f.write("| base model, no fine-tuning | – | – | – | " +
                " | ".join(cell(fmt, [get(base)]) for _, get, fmt in HELD_OUT) + " | – | – |\n")
    for label, key, res, fails in rows:
        flops = statistics.mean(r[2] for r in res) if res else nan
        ratio = flops / sft_flops if sft_flops else nan
        steps = res[0][3] if res else "–"
        head = f"| {label} | {steps} | {flops:.3g} | {ratio:.2f} | "
        if real:
            cells = [cell(fmt, [get(r[5]) for r in res]) if res else "–" for _, get, fmt in HELD_OUT]
            f.write(head + " | ".join(cells) + f" | {len(res)} | {len(fails)} |\n")
        else:
            ex, lo = ([100 * r[0] for r in res], [r[1] for r in res]) if res else ([nan], [nan])
            f.write(head + f"{cell('{:.1f} ± {:.1f}', ex)} | {cell('{:.4f} ± {:.4f}', lo)} | "
                    f"{', '.join(f'{100*r[0]:.1f}' for r in res)} | {len(res)} | {len(fails)} |\n")
    if real:
        n = {k: per_seed[0][2][5][k]["samples"] for k in EVALS}
        f.write(f"\nHeld-out sets: {n['qa']} questions (exact match, ROUGE-L, answer NLL), {n['sft']} "
                f"conversations (NLL of every answer), {n['pref']} pairs (preference accuracy).\n\n")
        f.write("| method | seed | " + " | ".join(c for c, _, _ in HELD_OUT) + " |\n")
        f.write("|---" * (len(HELD_OUT) + 2) + "|\n")
        for label, sd, r in per_seed:
            f.write(f"| {label} | {sd[4:]} | " +
                    " | ".join(cell(fmt, [get(r[5])]) for _, get, fmt in HELD_OUT) + " |\n")
    if failed:
        f.write("\nNot counted in mean ± std (failed, unfinished or missing runs):\n\n")
        f.writelines(f"- {x}\n" for x in failed)
with open(os.path.join(OUT, "curves.dat"), "w") as f:
    for k, (label, runs) in enumerate((lb, r) for lb, r in curves.items() if r):
        if k:
            f.write("\n\n")  # gnuplot index separator (none after the last block)
        f.write(f'"{label}"\n')
        # mean over seeds at each evaluation point (same schedule in every seed)
        n = min(len(c) for c in runs)
        for i in range(n):
            xs = [c[i][0] for c in runs]
            ys = [c[i][1] for c in runs]
            m, s = ms(ys)
            f.write(f"{statistics.mean(xs)/1e12:.4f} {SCALE*m:.4g} {SCALE*s:.4g}\n")
print(open(os.path.join(OUT, "compare.md")).read())
if failed:
    print(f"compare_report: {len(failed)} run(s) not counted (listed under the table)", file=sys.stderr)
