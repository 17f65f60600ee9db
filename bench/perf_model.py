#!/usr/bin/env python3
"""α–β performance model of an iftrain training step.

    python3 bench/perf_model.py [--results bench/results] [--out bench/results]

Inputs (all measured on this machine, in RESULTS):
  comm.jsonl     `mpirun -n 2 iftrain bench comm --json`   ping-pong and all-reduce sweeps
  gemm.jsonl     `iftrain bench gemm --json ...`            single-core sgemm rate
  scaling.csv    `mpirun -n 2 iftrain bench scaling --csv`  measured step times per layout

Model (no overlap of computation and communication, as iftrain does today):
  t_step = t_compute + t_comm
  t_compute = FLOPs per rank / (R · e_h)         R: single-core sgemm rate; e_h: efficiency
                                                 of the model width h, calibrated once from
                                                 the measured 1x1 step of that width
  t_allreduce(n bytes, p) = 2(p-1)·α + 2(p-1)/p · n·β      (ring)
  DP: one all-reduce of the gradients (4·params/TP bytes) over the DP group per step
  TP: per layer and micro-batch 2 all-reduces of the activations (B·T·C floats) in every
      forward (2 forwards for IFT) and 2 in the backward; the embedding and LM-head
      collectives add 1 + 4 small ones per forward
α, β are fitted to the ping-pong sweep (least squares, t = α + n·β); the all-reduce sweep checks
the ring formula.  Writes model_vs_measured.md, projection.csv/.md and projection.png (gnuplot),
and tp2d_model.md (TP traffic per layer of 1D vs 2D, a volume model).
"""
import argparse
import csv
import json
import math
import os
import subprocess


def fit_line(xs, ys):
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    b = sxy / sxx
    return my - b * mx, b


def model_dims(hidden, layers, heads=None, kv=None, inter=None, vocab=264):
    heads = heads or max(2, hidden // 64)
    return dict(C=hidden, L=layers, H=heads, K=kv or heads, D=hidden // heads,
                F=inter or int(2.75 * hidden) // 8 * 8, V=vocab)


def params(d):
    C, L, H, K, D, F, V = (d[k] for k in "CLHKDFV")
    return V * C * 2 + L * (2 * C + C * (H + 2 * K) * D + H * D * C + 3 * C * F) + C


def fwd_flops_per_token(d, T):
    C, L, H, K, D, F, V = (d[k] for k in "CLHKDFV")
    tavg = (T + 1) / 2
    return L * (2 * C * (H + 2 * K) * D + 2 * H * D * C + 4 * C * F + 2 * F * C + 4 * H * D * tavg) + 2 * C * V


def t_allreduce(nbytes, p, alpha, beta):
    if p <= 1:
        return 0.0
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes * beta


def step_time(d, T, global_batch, dp, tp, rate, eff, alpha, beta, ift=True, micro=8,
              alpha_dp=None, beta_dp=None):
    passes = 4 if ift else 3
    tokens = global_batch * T
    flops = fwd_flops_per_token(d, T) * tokens * passes
    t_comp = flops / (dp * tp) / (rate * eff)
    rows = global_batch / dp
    mbs = math.ceil(rows / micro)
    act_bytes = min(micro, rows) * T * d["C"] * 4
    fwd = 2 if ift else 1
    per_mb = d["L"] * (2 * fwd + 2) + (1 + 4) * fwd + 1
    t_tp = mbs * per_mb * t_allreduce(act_bytes, tp, alpha, beta)
    grad_bytes = 4 * params(d) / tp
    t_dp = t_allreduce(grad_bytes, dp, alpha_dp or alpha, beta_dp or beta)
    return t_comp + t_tp + t_dp, t_comp, t_tp + t_dp


def grid_2d(p):
    """The trainer's automatic 2D grid: most square, rows >= columns."""
    pc = max(d for d in range(1, int(math.isqrt(p)) + 1) if p % d == 0)
    return p // pc, pc


def summa_words(m, n, k, pr, pc):
    """Words one rank receives in SUMMA for C (m x n) = A (m x k) B (k x n) on pr x pc."""
    return m * k / pr * (pc - 1) / pc + k * n / pc * (pr - 1) / pr


def tp_words_per_layer(d, N, p, two_d):
    """Words one TP rank receives per layer for one forward + backward on N tokens.

    1D (Megatron): 2 all-reduces of N x C in the forward, 2 in the backward.
    2D (iftrain's dist.tp_mode = 2d): SUMMA volume of the 3 GEMMs of each of the 7 linears
    (forward W^T X, backward W dY and X dY^T), psgemr2d of q, k, v, att (forward) and att, d att,
    dq, dk, dv (backward) between the grid and the head layout, and 4 gathers of N x C into the
    replicated residual stream (psgemr2d to token blocks + all-gather)."""
    C, H, K, D, F = (d[k] for k in "CHKDF")
    if p <= 1:
        return 0.0
    if not two_d:
        return 4 * 2 * (p - 1) / p * N * C
    pr, pc = grid_2d(p)
    lin = [(C, H * D), (C, K * D), (C, K * D), (H * D, C), (C, F), (C, F), (F, C)]
    w = 0.0
    for i, o in lin:
        w += summa_words(o, N, i, pr, pc)   # Y = W^T X
        w += summa_words(i, N, o, pr, pc)   # dX = W dY
        w += summa_words(i, o, N, pr, pc)   # dW = X dY^T
    moved = (1 - 1 / p) / p * N  # a block of M x N rows leaves its rank
    w += moved * (2 * (H * D + 2 * K * D) + 2 * H * D + H * D)
    w += 4 * (N * C / p + (p - 1) / p * N * C)
    return w


def tp2d_table(out, rate, eff, beta):
    """Bandwidth-only comparison of the TP traffic of 1D and 2D per layer."""
    lines = ["# TP 1D vs 2D: communication per layer and rank (volume model)", "",
             f"One forward + backward of one layer on a micro-batch of N tokens; MB received per rank; "
             f"time at {1 / beta / 1e9:.0f} GB/s (bandwidth term only, no latency, no overlap); compute at "
             f"{rate / 1e9:.0f} GFLOP/s × {eff:.2f} per rank. 2D grid = the trainer's automatic choice "
             "(most square, rows ≥ columns). SUMMA volumes stand in for PBLAS psgemm; measured only at "
             "P = 2 (bench/README.md), where PBLAS runs at 138–189 GFLOP/s on 2 ranks against 2 × 105 for "
             "1D's local BLIS GEMMs. Rows with P above the head count are hypothetical: the attention "
             "core is head-parallel in both modes, so iftrain refuses them.", "",
             "| hidden | N tokens | P | grid | 1D MB | 2D MB | 2D / 1D | 1D comm ms | 2D comm ms | compute ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    cross = []
    for C, F, Hh in [(1024, 2816, 16), (4096, 11008, 32), (8192, 28672, 64)]:
        d = model_dims(C, 1, Hh, Hh, F)
        for N in [8 * 1024, 128 * 1024]:
            fl = 3 * 2 * N * (4 * C * C + 3 * C * F) + 3 * 4 * N * C * 512
            first = None
            for p in [2 ** i for i in range(1, 15)]:
                w1, w2 = tp_words_per_layer(d, N, p, False), tp_words_per_layer(d, N, p, True)
                if first is None and w2 < w1:
                    first = p
                if p in (2, 4, 16, 64, 256, 1024):
                    pr, pc = grid_2d(p)
                    lines.append(f"| {C} | {N} | {p}{'' if p <= Hh else ' *'} | {pr}×{pc} | {4 * w1 / 1e6:.0f} | "
                                 f"{4 * w2 / 1e6:.0f} | {w2 / w1:.2f} | {4 * w1 * beta * 1e3:.1f} | "
                                 f"{4 * w2 * beta * 1e3:.1f} | {fl / p / (rate * eff) * 1e3:.1f} |")
            cross.append(f"hidden {C}, N = {N}: 2D moves less than 1D from P = {first}" if first else
                         f"hidden {C}, N = {N}: 2D never moves less than 1D up to P = 16384")
    lines += ["", "(* P above the head count.)", "", "Crossover (first power of two P where 2D receives fewer words than 1D):", ""]
    lines += [f"- {c}" for c in cross]
    lines += ["", "1D's all-reduces stay ≈ 2·N·C per rank whatever P; 2D's SUMMA volume shrinks as 1/√P but "
              "carries the weights (3 GEMMs per linear) and iftrain's 2D keeps the residual stream "
              "replicated (4 gathers of N·C per layer, so 2D can never move less than about half of 1D). "
              "By this model 2D moves less than 1D only from about 256 TP ranks, whatever the micro-batch "
              "— more ranks than these models have heads — and on CPUs either traffic is a few per cent "
              "of the compute time."]
    open(os.path.join(out, "tp2d_model.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", default=os.path.join(os.path.dirname(__file__), "results"))
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    out = a.out or a.results
    comm = [json.loads(l) for l in open(os.path.join(a.results, "comm.jsonl"))]
    pp = [(r["bytes"], r["seconds"]) for r in comm if r["bench"] == "pingpong"]
    alpha, beta = fit_line([b for b, _ in pp], [t for _, t in pp])
    alpha = max(alpha, min(t for _, t in pp) * 0.5)
    ar = [(r["bytes"], r["seconds"]) for r in comm if r["bench"] == "allreduce"]
    gemm = [json.loads(l) for l in open(os.path.join(a.results, "gemm.jsonl"))]
    rate = max(r["gflops"] for r in gemm if r["threads"] == 1) * 1e9
    lines = ["# α–β model vs measurement (this machine)", "",
             f"Fitted from the ping-pong sweep: α = {alpha * 1e6:.2f} µs, β = {beta * 1e9:.3f} ns/byte "
             f"({1 / beta / 1e9:.2f} GB/s); sgemm rate R = {rate / 1e9:.1f} GFLOP/s per core.", "",
             "All-reduce on 2 ranks, ring model vs measured:", "", "| bytes | model µs | measured µs |", "|---|---|---|"]
    for n, t in ar[::2]:
        lines.append(f"| {n} | {t_allreduce(n, 2, alpha, beta) * 1e6:.1f} | {t * 1e6:.1f} |")
    rows = list(csv.DictReader(open(os.path.join(a.results, "scaling.csv"))))
    eff = {}
    for r in rows:
        if int(r["dp"]) == 1 and int(r["tp"]) == 1:
            d = model_dims(int(r["hidden"]), int(r["layers"]))
            T, gb = int(r["seq"]), int(r["global_batch"])
            flops = fwd_flops_per_token(d, T) * gb * T * (4 if r["loss"] == "ift" else 3)
            eff[(r["mode"], r["hidden"])] = flops / rate / float(r["step_s"])
    lines += ["", "Step time per measured layout (efficiency e_h calibrated on the 1x1 row of each width):", "",
              "| mode | hidden | DPxTP | e_h | predicted s | measured s | error |", "|---|---|---|---|---|---|---|"]
    errs = []
    for r in rows:
        d = model_dims(int(r["hidden"]), int(r["layers"]))
        e = eff[(r["mode"], r["hidden"])]
        pred, _, _ = step_time(d, int(r["seq"]), int(r["global_batch"]), int(r["dp"]), int(r["tp"]), rate, e,
                               alpha, beta, ift=r["loss"] == "ift")
        meas = float(r["step_s"])
        err = (pred - meas) / meas
        if int(r["ranks"]) > 1:
            errs.append(abs(err))
        lines.append(f"| {r['mode']} | {r['hidden']} | {r['dp']}x{r['tp']} | {e:.2f} | {pred:.4f} | {meas:.4f} | {100 * err:+.1f} % |")
    if errs:
        lines += ["", f"Mean absolute prediction error over the multi-rank layouts: {100 * sum(errs) / len(errs):.1f} %."]
    open(os.path.join(out, "model_vs_measured.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))

    tp2d_table(out, 100e9, 0.75, 1 / 10e9)

    # Projection to a cluster profile (assumptions stated in the output)
    prof = dict(cores_per_node=64, rate=100e9, eff=0.75,
                alpha_intra=0.5e-6, beta_intra=1 / 10e9, alpha_inter=2e-6, beta_inter=1 / 12.5e9)
    models = {"1B": model_dims(2048, 22, 32, 4, 5632, 32000), "7B": model_dims(4096, 32, 32, 32, 11008, 32000)}
    T, gb = 1024, 512
    proj = [["model", "ranks", "dp", "tp", "step_s", "compute_s", "comm_s", "efficiency", "efficiency_1seq"]]
    for name, d in models.items():
        tp = 1 if name == "1B" else 8
        for ranks in [8, 16, 32, 64, 128, 256, 512, 1024]:
            dp = ranks // tp
            if gb % dp:
                continue
            inter = ranks > prof["cores_per_node"]
            s, c, m = step_time(d, T, gb, dp, tp, prof["rate"], prof["eff"],
                                prof["alpha_intra"], prof["beta_intra"], ift=True, micro=8,
                                alpha_dp=prof["alpha_inter"] if inter else prof["alpha_intra"],
                                beta_dp=prof["beta_inter"] if inter else prof["beta_intra"])
            # the same layout with one sequence per replica: communication exposed
            s1, c1, _ = step_time(d, T, dp, dp, tp, prof["rate"], prof["eff"],
                                  prof["alpha_intra"], prof["beta_intra"], ift=True, micro=1,
                                  alpha_dp=prof["alpha_inter"] if inter else prof["alpha_intra"],
                                  beta_dp=prof["beta_inter"] if inter else prof["beta_intra"])
            proj.append([name, ranks, dp, tp, f"{s:.3f}", f"{c:.3f}", f"{m:.3f}", f"{c / s:.3f}", f"{c1 / s1:.3f}"])
    with open(os.path.join(out, "projection.csv"), "w", newline="") as f:
        csv.writer(f).writerows(proj)
    md = ["# Projected IFT step on a CPU cluster (α–β model)", "",
          "Assumptions: 64-core nodes, one rank per core; sgemm 100 GFLOP/s per core at 75 % efficiency; "
          "intra-node α = 0.5 µs, 10 GB/s; InfiniBand 100 Gb/s between nodes (α = 2 µs, 12.5 GB/s) for the "
          "data-parallel all-reduce once DP spans nodes; TP stays inside a node (1B: TP 1, 7B: TP 8); "
          "global batch 512 × 1024 tokens (the paper's setup), micro-batch 8; no overlap of communication "
          "with computation; ring all-reduce.", "",
          "The last column is the same layout with one 1024-token sequence per data-parallel replica (global batch = DP), "
          "where the gradient all-reduce is no longer hidden by the large batch.", "",
          "| model | ranks | DP×TP | step s | compute s | comm s | efficiency | efficiency, 1 seq/replica |",
          "|---|---|---|---|---|---|---|---|"]
    for r in proj[1:]:
        md.append(f"| {r[0]} | {r[1]} | {r[2]}×{r[3]} | {r[4]} | {r[5]} | {r[6]} | {100 * float(r[7]):.0f} % | {100 * float(r[8]):.0f} % |")
    open(os.path.join(out, "projection.md"), "w").write("\n".join(md) + "\n")
    print("\n".join(md))
    gp = f"""set datafile separator ','
set terminal pngcairo size 800,500 noenhanced
set output '{os.path.join(out, 'projection.png')}'
set logscale x 2
set xlabel 'ranks'; set ylabel 'efficiency (compute / step time)'; set yrange [0:1.05]; set grid
set title 'Projected IFT scaling efficiency (alpha-beta model, 100 Gb/s IB, 64-core nodes)'
plot '{os.path.join(out, 'projection.csv')}' using (strcol(1) eq '1B' ? $2 : 1/0):8 skip 1 with linespoints title '1B (TP 1)', \\
     '' using (strcol(1) eq '7B' ? $2 : 1/0):8 skip 1 with linespoints title '7B (TP 8)', \\
     '' using (strcol(1) eq '1B' ? $2 : 1/0):9 skip 1 with linespoints title '1B, 1 seq/replica', \\
     '' using (strcol(1) eq '7B' ? $2 : 1/0):9 skip 1 with linespoints title '7B, 1 seq/replica'
"""
    try:
        subprocess.run(["gnuplot"], input=gp.encode(), check=True)
    except (OSError, subprocess.CalledProcessError):
        print("gnuplot not available: projection.png not written")


if __name__ == "__main__":
    main()
