#!/usr/bin/python3
"""PyTorch peer of `iftrain generate` for bench/generate.sh: a plain Llama decoder (RMSNorm, RoPE
rotate_half, grouped-query attention, SwiGLU, tied head) in float32 with a key/value cache, random
weights, no autograd.  Prefill of a PROMPT-token prompt, then NEW tokens one at a time (the same
sampling as iftrain: softmax(logits / T) over the top-k), and the time of one single-token forward
(one token at position 0 with an empty cache, the head included; median of 9).  Prints one JSON line.

    /usr/bin/python3 bench/torch_generate.py [--threads 1] [--prompt 512] [--new 256]
        [--hidden 576 --layers 30 --heads 9 --kv-heads 3 --intermediate 1536 --vocab 49152]
"""
import argparse
import json
import math
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--hidden", type=int, default=576)
    ap.add_argument("--layers", type=int, default=30)
    ap.add_argument("--heads", type=int, default=9)
    ap.add_argument("--kv-heads", type=int, default=3)
    ap.add_argument("--intermediate", type=int, default=1536)
    ap.add_argument("--vocab", type=int, default=49152)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--top-k", type=int, default=50)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    C, H, K, F, V, L = a.hidden, a.heads, a.kv_heads, a.intermediate, a.vocab, a.layers
    D = C // H
    Tmax = a.prompt + a.new + 1

    def mat(o, i, s=0.02):
        return torch.randn(o, i) * s

    emb = mat(V, C)
    layers = [dict(ln1=torch.ones(C), qkv=mat((H + 2 * K) * D, C), o=mat(C, H * D, 0.02 / math.sqrt(2 * L)),
                   ln2=torch.ones(C), gu=mat(2 * F, C), down=mat(C, F, 0.02 / math.sqrt(2 * L))) for _ in range(L)]
    norm = torch.ones(C)
    inv = 1.0 / (10000.0 ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
    ang = torch.arange(Tmax, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)
    kc = torch.zeros(L, K, Tmax, D)
    vc = torch.zeros(L, K, Tmax, D)

    def rms(x, w):
        return w * (x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-5))

    def rot(x):
        h = x.shape[-1] // 2
        return torch.cat([-x[..., h:], x[..., :h]], -1)

    def forward(tokens, p0):
        """logits of the last position of tokens at positions p0.., keys/values into the cache."""
        T = len(tokens)
        x = emb[tokens]
        c, s = cos[p0:p0 + T], sin[p0:p0 + T]
        for i, w in enumerate(layers):
            h = rms(x, w["ln1"])
            qkv = h @ w["qkv"].t()
            q = qkv[:, :H * D].view(T, H, D).transpose(0, 1)
            k = qkv[:, H * D:(H + K) * D].view(T, K, D).transpose(0, 1)
            v = qkv[:, (H + K) * D:].view(T, K, D).transpose(0, 1)
            q = q * c + rot(q) * s
            k = k * c + rot(k) * s
            kc[i, :, p0:p0 + T] = k
            vc[i, :, p0:p0 + T] = v
            n = p0 + T
            kk = kc[i, :, :n].repeat_interleave(H // K, 0)
            vv = vc[i, :, :n].repeat_interleave(H // K, 0)
            sc = (q @ kk.transpose(1, 2)) / math.sqrt(D)
            if T > 1:
                mask = torch.ones(T, n, dtype=torch.bool).triu(p0 + 1)
                sc = sc.masked_fill(mask, float("-inf"))
            att = torch.softmax(sc, -1) @ vv
            x = x + att.transpose(0, 1).reshape(T, H * D) @ w["o"].t()
            h = rms(x, w["ln2"])
            gu = h @ w["gu"].t()
            x = x + (torch.nn.functional.silu(gu[:, :F]) * gu[:, F:]) @ w["down"].t()
        return rms(x[-1:], norm) @ emb.t()

    gen = torch.Generator().manual_seed(1)

    def sample(lg):
        lg = lg[0] / a.temperature
        top = torch.topk(lg, a.top_k)
        p = torch.softmax(top.values, -1)
        return int(top.indices[torch.multinomial(p, 1, generator=gen)])

    with torch.no_grad():
        one = []
        for _ in range(9):
            t0 = time.perf_counter()
            forward(torch.tensor([1]), 0)
            one.append(time.perf_counter() - t0)
        one.sort()
        prompt = torch.randint(0, V, (a.prompt,), generator=gen)
        t0 = time.perf_counter()
        nxt = sample(forward(prompt, 0))
        t1 = time.perf_counter()
        pos = a.prompt
        for _ in range(a.new - 1):
            nxt = sample(forward(torch.tensor([nxt]), pos))
            pos += 1
        t2 = time.perf_counter()
    print(json.dumps({"impl": "torch %s" % torch.__version__, "threads": a.threads, "prompt_tokens": a.prompt,
                      "prefill_s": t1 - t0, "decode_tokens": a.new - 1,
                      "decode_ms_per_token": 1e3 * (t2 - t1) / (a.new - 1),
                      "single_token_forward_ms": 1e3 * one[4]}))


if __name__ == "__main__":
    main()
