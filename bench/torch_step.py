#!/usr/bin/env python3
"""PyTorch peer of `iftrain bench step`: the same Llama model, batch and AdamW
step for SFT and IFT, timed on the CPU with the same thread count.

    BLIS_ARCH_TYPE=0 python3 bench/torch_step.py [--hidden 512] [--threads 1] [--json]

Debian's python3-torch takes its GEMMs from libblas.so.3 (BLIS), so run it
with BLIS_ARCH_TYPE set to the kernel set iftrain selects (0 = skx), or it
may run BLIS's generic kernels.  Not a dependency of iftrain: a benchmark peer.
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_tables(T, D, theta):
    inv = theta ** (-torch.arange(0, D, 2, dtype=torch.float32) / D)
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cos(ang), torch.sin(ang)


def rope(x, cos, sin):  # x [B, H, T, D], HF rotate_half
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Llama(torch.nn.Module):
    def __init__(s, V, C, F_, L, H, K):
        super().__init__()
        s.V, s.C, s.L, s.H, s.K, s.D = V, C, L, H, K, C // H
        g = torch.Generator().manual_seed(0)
        p = lambda *shape: torch.nn.Parameter(torch.randn(*shape, generator=g) * 0.02)
        s.embed = p(V, C)
        s.head = p(V, C)
        s.norm = torch.nn.Parameter(torch.ones(C))
        s.layers = torch.nn.ModuleList()
        for _ in range(L):
            m = torch.nn.Module()
            m.ln1 = torch.nn.Parameter(torch.ones(C))
            m.ln2 = torch.nn.Parameter(torch.ones(C))
            m.qkv = p((H + 2 * K) * s.D, C)
            m.o = p(C, H * s.D)
            m.gu = p(2 * F_, C)
            m.down = p(C, F_)
            s.layers.append(m)

    def forward(s, x0, cos, sin):
        B, T, C = x0.shape
        x = x0
        for m in s.layers:
            h = rms(x, m.ln1, 1e-5) @ m.qkv.t()
            q, k, v = h.split([s.H * s.D, s.K * s.D, s.K * s.D], dim=-1)
            q = rope(q.view(B, T, s.H, s.D).transpose(1, 2), cos, sin)
            k = rope(k.view(B, T, s.K, s.D).transpose(1, 2), cos, sin)
            v = v.view(B, T, s.K, s.D).transpose(1, 2)
            if s.K != s.H:
                k = k.repeat_interleave(s.H // s.K, 1)
                v = v.repeat_interleave(s.H // s.K, 1)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True) if hasattr(
                F, "scaled_dot_product_attention") else causal_attn(q, k, v)
            x = x + a.transpose(1, 2).reshape(B, T, C) @ m.o.t()
            g, u = (rms(x, m.ln2, 1e-5) @ m.gu.t()).chunk(2, dim=-1)
            x = x + (F.silu(g) * u) @ m.down.t()
        return rms(x, s.norm, 1e-5) @ s.head.t()


def causal_attn(q, k, v):
    T = q.shape[-2]
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    return torch.softmax(s, -1) @ v


def ift_weights(ell, m, gamma):  # left / loss / L1, not detached
    n = m.sum(1, keepdim=True)
    v = m * ell / n
    T = v.shape[1]
    c = torch.zeros_like(v)
    run = torch.zeros_like(v[:, 0])
    cols = []
    for t in range(T - 1, -1, -1):
        run = v[:, t] + gamma * run
        cols.append(run)
    c = torch.stack(cols[::-1], 1) * m
    return n * c / (c * m).sum(1, keepdim=True)


def step(model, opt, tok, mask, cos, sin, kind, lam, gamma):
    opt.zero_grad(set_to_none=True)
    E = model.embed
    if kind == "ift":
        with torch.no_grad():
            pred = model(E[tok], cos, sin).argmax(-1)
        alt = torch.cat([tok[:, :1], pred[:, :-1]], 1)
        alt = torch.where(mask.bool(), alt, tok)
        Ed = E.detach()  # frozen input table (reference semantics)
        x0 = (1 - lam) * Ed[tok] + lam * Ed[alt]
    else:
        x0 = E[tok]
    logits = model(x0, cos, sin)
    logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, tok[:, 1:, None])[..., 0]
    m = mask[:, 1:]
    ell = -logp
    if kind == "ift":
        w = ift_weights(ell, m, gamma)
        loss = ((m * ell * w).sum(1) / m.sum(1)).mean()
    else:
        loss = ((m * ell).sum(1) / m.sum(1)).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--intermediate", type=int, default=1376)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Llama(a.vocab, a.hidden, a.intermediate, a.layers, a.heads, a.kv_heads)
    cos, sin = rope_tables(a.seq, a.hidden // a.heads, 10000.0)
    tok = torch.randint(0, a.vocab, (a.batch, a.seq))
    mask = (torch.arange(a.seq)[None, :] >= a.seq // 4).float().expand(a.batch, -1).contiguous()
    res = {}
    for kind in ("sft", "ift"):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        step(model, opt, tok, mask, cos, sin, kind, 0.2, 0.95)
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step(model, opt, tok, mask, cos, sin, kind, 0.2, 0.95)
        dt = (time.perf_counter() - t0) / a.steps
        res[kind] = dt
        tps = a.batch * a.seq / dt
        if a.json:
            print(json.dumps({"bench": "torch_step", "loss": kind, "threads": a.threads,
                              "seconds": round(dt, 5), "tokens_per_s": round(tps, 1),
                              "torch": torch.__version__}))
        else:
            print(f"torch {torch.__version__} {kind}: {dt:.4f} s/step, {tps:.1f} tokens/s")
    if not a.json:
        print(f"IFT/SFT time ratio: {res['ift'] / res['sft']:.3f}")


if __name__ == "__main__":
    main()
