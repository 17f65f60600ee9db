#!/usr/bin/python3
"""The exported base model against an independent implementation: the float64
PyTorch reference of tests/hf/hfref.py loads RUN/base-hf and scores the first
N held-out corpus pieces (RUN/corpus_heldout.h5), and the figures are compared
with `iftrain eval --json` of the checkpoint on the same pieces.

    iftrain eval --ckpt RUN/base/ckpt --data RUN/corpus_heldout.h5 \\
        --max-samples N --max-new-tokens 1 --json --quiet > eval.json
    /usr/bin/python3 data/debian/check_base.py RUN eval.json

Prints both pieces' mean NLL (eval_loss) and token NLL, and exits 1 when they
differ by more than 1e-4 (float32 against float64). Needs python3-torch and
python3-h5py."""
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "tests", "hf"))
import hfref  # noqa: E402  (tests/hf/hfref.py)
import h5py  # noqa: E402


def die(msg):
    sys.exit(f"check_base: {msg}")


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    run, ev_path = sys.argv[1:3]
    try:
        with open(ev_path, encoding="utf-8") as f:
            ev = json.load(f)
        n = int(ev["samples"])
        ev = {k: float(ev[k]) for k in ("eval_loss", "token_nll")}
    except OSError as e:
        die(f"{ev_path}: {e.strerror} (write it with iftrain eval --json, or run 'run.sh check')")
    except (ValueError, KeyError, TypeError) as e:
        die(f"{ev_path}: not the JSON of iftrain eval --json ({e.__class__.__name__}: {e})")
    try:
        _, p, W = hfref.load_model(os.path.join(run, "base-hf"))
    except (OSError, hfref.InputError) as e:
        die(f"{run}/base-hf: {e} (run 'run.sh export' first)")
    heldout = os.path.join(run, "corpus_heldout.h5")
    if not os.path.isfile(heldout):
        die(f"{heldout}: no such file (run 'run.sh corpus' first)")
    with h5py.File(heldout, "r") as f:
        off, tok, msk = f["offsets"][: n + 1], f["tokens"], f["loss_mask"]
        per_piece, total, count = [], 0.0, 0
        for r in range(n):
            t = [int(x) for x in tok[off[r]:off[r + 1]]]
            m = msk[off[r]:off[r + 1]]
            lp = hfref.token_logp(hfref.forward(p, W, t), t)
            sel = [i for i in range(1, len(t)) if m[i]]
            nll = -sum(float(lp[i]) for i in sel)
            per_piece.append(nll / len(sel))
            total += nll
            count += len(sel)
    ref = {"eval_loss": sum(per_piece) / n, "token_nll": total / count}
    print(f"{n} held-out pieces, {count} tokens")
    worst = 0.0
    for k in ("eval_loss", "token_nll"):
        d = abs(ref[k] - ev[k])
        worst = max(worst, d)
        print(f"{k:10s} reference (float64, {run}/base-hf) {ref[k]:.5f}   iftrain eval {ev[k]:.5f}   |diff| {d:.1e}")
    sys.exit(0 if worst <= 1e-4 else 1)


if __name__ == "__main__":
    main()
