#!/usr/bin/python3
# hfref_check — second, deliberately naive implementation used by test_hfref.sh to check hfref.py.
#
# Pure Python (math, struct, json; no torch): its own safetensors reader, its own float32 -> bf16/f16
# rounding, a loop-written per-position forward pass, loop-written IFT token weights and finite
# differences of the SFT and IFT losses.
# Written for iftrain; no third-party code.
#
#   hfref_check.py naive DIR --tokens T --ref LOGITS.json [--tol 1e-12]
#   hfref_check.py fd DIR --tokens T --mask M --grad GRAD.json [--per-tensor 2]
#   hfref_check.py fd-ift DIR --tokens R1;R2 --mask M1;M2 --ift L,G --grad GRAD.json   the same for IFT
#   hfref_check.py rounded F32_DIR OTHER_DIR      OTHER (bf16/f16, any sharding) = F32 rounded to nearest even
import argparse
import json
import math
import os
import struct
import sys


# --- reading ---------------------------------------------------------------------------------
def read_st(path):
    """name -> (code, shape, flat list of Python floats)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack_from("<Q", data, 0)
    hdr = json.loads(data[8:8 + n])
    hdr.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, e in hdr.items():
        b, en = e["data_offsets"]
        raw = data[base + b:base + en]
        code = e["dtype"]
        if code == "F32":
            vals = list(struct.unpack("<%df" % (len(raw) // 4), raw))
        elif code == "F16":
            vals = list(struct.unpack("<%de" % (len(raw) // 2), raw))
        elif code == "BF16":
            halves = struct.unpack("<%dH" % (len(raw) // 2), raw)
            vals = [struct.unpack("<f", struct.pack("<I", h << 16))[0] for h in halves]
        elif code == "F64":
            vals = list(struct.unpack("<%dd" % (len(raw) // 8), raw))
        else:
            raise SystemExit("unsupported dtype %s" % code)
        out[name] = (code, e["shape"], vals)
    return out


def read_dir(d):
    ip = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(ip):
        with open(ip) as f:
            wm = json.load(f)["weight_map"]
        out = {}
        for fn in sorted(set(wm.values())):
            out.update(read_st(os.path.join(d, fn)))
        return out
    return read_st(os.path.join(d, "model.safetensors"))


def rows(flat, shape):
    if len(shape) == 1:
        return list(flat)
    r, c = shape
    return [list(flat[i * c:(i + 1) * c]) for i in range(r)]


class Model:
    def __init__(self, d):
        with open(os.path.join(d, "config.json")) as f:
            self.cfg = c = json.load(f)
        self.V, self.C = c["vocab_size"], c["hidden_size"]
        self.L, self.H = c["num_hidden_layers"], c["num_attention_heads"]
        self.K = c.get("num_key_value_heads") or self.H
        self.D = c.get("head_dim") or self.C // self.H
        self.eps = c["rms_norm_eps"]
        self.theta = c["rope_theta"]
        self.tied = c.get("tie_word_embeddings", False)
        self.rs = c.get("rope_scaling")
        self.W = {n: rows(v, s) for n, (code, s, v) in read_dir(d).items()}

    def inv_freq(self):
        """From the formula in docs/formats.md ("RoPE frequency scaling"), one frequency at a time."""
        out = []
        for i in range(self.D // 2):
            w = 1.0 / self.theta ** (2 * i / self.D)
            rt = None if self.rs is None else self.rs.get("rope_type", self.rs.get("type"))
            if rt == "linear":
                w = w / self.rs["factor"]
            elif rt == "llama3":
                f, lo, hi = self.rs["factor"], self.rs["low_freq_factor"], self.rs["high_freq_factor"]
                Lo = self.rs["original_max_position_embeddings"]
                lam = 2 * math.pi / w
                if lam < Lo / hi:
                    pass
                elif lam > Lo / lo:
                    w = w / f
                else:
                    s = (Lo / lam - lo) / (hi - lo)
                    w = (1 - s) * w / f + s * w
            out.append(w)
        return out


def matvec(M, x):
    return [sum(a * b for a, b in zip(row, x)) for row in M]


def rms(x, w, eps):
    r = 1.0 / math.sqrt(sum(v * v for v in x) / len(x) + eps)
    return [w[i] * x[i] * r for i in range(len(x))]


def rope(vec, nheads, D, pos, inv):
    out = list(vec)
    half = D // 2
    for h in range(nheads):
        for i in range(half):
            a, b = vec[h * D + i], vec[h * D + i + half]
            c, s = math.cos(pos * inv[i]), math.sin(pos * inv[i])
            out[h * D + i] = a * c - b * s
            out[h * D + i + half] = b * c + a * s
    return out


def naive_logits(m, tokens, emb=None):
    """emb (T lists of C floats), when given, replaces the embedding lookup (IFT's blended input)."""
    W = m.W
    T = len(tokens)
    inv = m.inv_freq()
    x = [list(W["model.embed_tokens.weight"][t]) for t in tokens] if emb is None else [list(e) for e in emb]
    group = m.H // m.K
    for l in range(m.L):
        p = "model.layers.%d." % l
        q, k, v = [], [], []
        for t in range(T):
            h = rms(x[t], W[p + "input_layernorm.weight"], m.eps)
            q.append(rope(matvec(W[p + "self_attn.q_proj.weight"], h), m.H, m.D, t, inv))
            k.append(rope(matvec(W[p + "self_attn.k_proj.weight"], h), m.K, m.D, t, inv))
            v.append(matvec(W[p + "self_attn.v_proj.weight"], h))
        for t in range(T):
            att = [0.0] * (m.H * m.D)
            for hh in range(m.H):
                kv = hh // group
                sc = []
                for j in range(t + 1):
                    sc.append(sum(q[t][hh * m.D + d] * k[j][kv * m.D + d] for d in range(m.D)) / math.sqrt(m.D))
                mx = max(sc)
                e = [math.exp(s - mx) for s in sc]
                z = sum(e)
                for d in range(m.D):
                    att[hh * m.D + d] = sum(e[j] / z * v[j][kv * m.D + d] for j in range(t + 1))
            o = matvec(W[p + "self_attn.o_proj.weight"], att)
            x[t] = [x[t][i] + o[i] for i in range(m.C)]
            h = rms(x[t], W[p + "post_attention_layernorm.weight"], m.eps)
            g = matvec(W[p + "mlp.gate_proj.weight"], h)
            u = matvec(W[p + "mlp.up_proj.weight"], h)
            a = [g[i] / (1.0 + math.exp(-g[i])) * u[i] for i in range(len(g))]
            dn = matvec(W[p + "mlp.down_proj.weight"], a)
            x[t] = [x[t][i] + dn[i] for i in range(m.C)]
    head = W["model.embed_tokens.weight"] if m.tied else W["lm_head.weight"]
    return [matvec(head, rms(x[t], W["model.norm.weight"], m.eps)) for t in range(T)]


def naive_logp(logits, tokens):
    out = [0.0]
    for t in range(1, len(tokens)):
        row = logits[t - 1]
        mx = max(row)
        lse = mx + math.log(sum(math.exp(v - mx) for v in row))
        out.append(row[tokens[t]] - lse)
    return out


def ints(s):
    return [int(v) for v in s.split(",") if v != ""]


# --- commands --------------------------------------------------------------------------------
def cmd_naive(a):
    m = Model(a.dir)
    tokens = ints(a.tokens)
    lg = naive_logits(m, tokens)
    lp = naive_logp(lg, tokens)
    with open(a.ref) as f:
        ref = json.load(f)
    dl = max(abs(x - y) for r1, r2 in zip(lg, ref["logits"]) for x, y in zip(r1, r2))
    dp = max(abs(x - y) for x, y in zip(lp, ref["logp"]))
    ds = abs(sum(lp) - ref["sum"])
    shape_ok = len(ref["logits"]) == len(tokens) and all(len(r) == m.V for r in ref["logits"])
    spread = max(max(r) - min(r) for r in lg)
    print("naive vs hfref: max|dlogits| %.3g  max|dlogp| %.3g  |dsum| %.3g  (logit spread %.3g)" % (dl, dp, ds, spread))
    ok = shape_ok and dl <= a.tol and dp <= a.tol and ds <= a.tol * len(tokens)
    if not ok:
        print("FAIL: beyond %g or shape mismatch" % a.tol)
    return 0 if ok else 1


def fd_entries(m, g, loss, emb_row, per_tensor, h):
    """Central finite differences of loss() on per_tensor entries of every tensor (the first entry
    of the embedding in row emb_row, a looked-up token) against the gradient g["grads"]."""
    seed = 12345
    bad = checked = 0
    for name in sorted(m.W):
        shape = g["shapes"][name]
        n = shape[0] * (shape[1] if len(shape) > 1 else 1)
        for j in range(per_tensor):
            seed = (seed * 1103515245 + 12345) % (1 << 31)
            idx = seed % n
            if name == "model.embed_tokens.weight" and j == 0:  # a row that is looked up
                idx = emb_row * shape[1] + seed % shape[1]
            M = m.W[name]
            r, c = (idx // shape[1], idx % shape[1]) if len(shape) > 1 else (None, idx)
            get = (lambda: M[r][c]) if r is not None else (lambda: M[c])

            def put(val):
                if r is not None:
                    M[r][c] = val
                else:
                    M[c] = val
            w0 = get()
            put(w0 + h)
            lp_ = loss()
            put(w0 - h)
            lm_ = loss()
            put(w0)
            fd = (lp_ - lm_) / (2 * h)
            ag = g["grads"][name][idx]
            err = abs(fd - ag)
            checked += 1
            flag = err > 1e-8 + 1e-6 * abs(ag)
            bad += flag
            print("%-48s [%5d] autograd % .12e  fd % .12e  %s" % (name, idx, ag, fd, "FAIL" if flag else "ok"))
    return checked, bad


def cmd_fd(a):
    m = Model(a.dir)
    tokens = ints(a.tokens)
    mask = ints(a.mask)
    with open(a.grad) as f:
        g = json.load(f)

    def loss():
        lp = naive_logp(naive_logits(m, tokens), tokens)
        return -sum(lp[t] for t in range(len(tokens)) if mask[t]) / sum(mask)

    l0 = loss()
    if abs(l0 - g["loss"]) > 1e-12:
        print("FAIL: loss %.17g, hfref says %.17g" % (l0, g["loss"]))
        return 1
    checked, bad = fd_entries(m, g, loss, tokens[1], a.per_tensor, a.h)
    print("finite differences: %d entries, %d beyond 1e-8 + 1e-6*|g|; loss %.15g" % (checked, bad, l0))
    return 1 if bad else 0


# --- IFT -------------------------------------------------------------------------------------
def naive_ift_row(ell, mask, gamma):
    """IFT weights and loss of one row, loop by loop (side left, value loss, norm L1):
    v_t = m_t ell_t / n, C_t = m_t sum_{j>=t} gamma^(j-t) v_j, w_t = n C_t / sum C on the answer,
    gamma = 0 uniform; L = sum m ell w / n.  Returns (w, L)."""
    T = len(ell)
    n = sum(mask)
    if n == 0:
        return [0.0] * T, 0.0
    if gamma == 0:
        w = [float(x) for x in mask]
    else:
        v = [mask[t] * ell[t] / n for t in range(T)]
        C = [mask[t] * sum(gamma ** (j - t) * v[j] for j in range(t, T)) for t in range(T)]
        Z = sum(C[t] for t in range(T) if mask[t])
        w = [n * C[t] / Z if mask[t] else 0.0 for t in range(T)]
    return w, sum(mask[t] * ell[t] * w[t] for t in range(T)) / n


def naive_ift_loss(ells, masks, gamma):
    """Mean over the rows of the row losses (and the rows' weights)."""
    out = [naive_ift_row(e, m, gamma) for e, m in zip(ells, masks)]
    return sum(L for _, L in out) / len(out), [w for w, _ in out], [L for _, L in out]


def rows_of(s):
    return [ints(r) for r in s.split(";")]


def cmd_fd_ift(a):
    """hfref.py grad --ift against this file's naive forward: the greedy tokens x~ of the intuition
    pass, the loss to 1e-12, and central finite differences of the naive IFT loss."""
    m = Model(a.dir)
    rows, masks = rows_of(a.tokens), rows_of(a.mask)
    lam, gam = (float(v) for v in a.ift.split(","))
    with open(a.grad) as f:
        g = json.load(f)
    one = len(rows) == 1
    want_alt = [g["alt"]] if one else g["alt"]
    alt, gap = [], float("inf")
    for r, mk in zip(rows, masks):
        lg = naive_logits(m, r)
        am = [max(range(m.V), key=lambda v: (row[v], -v)) for row in lg]  # ties: lowest id
        for t in range(1, len(r)):
            if mk[t]:
                top = sorted(lg[t - 1], reverse=True)
                gap = min(gap, top[0] - top[1])
        alt.append([r[0]] + [am[t - 1] if mk[t] else r[t] for t in range(1, len(r))])
    if alt != want_alt:
        print("FAIL: intuition tokens %s, hfref says %s" % (alt, want_alt))
        return 1
    print("intuition tokens equal hfref's (smallest top-1/top-2 logit gap %.3g); %d answer slots changed"
          % (gap, sum(x != y for ra, rr in zip(alt, rows) for x, y in zip(ra, rr))))
    E = m.W["model.embed_tokens.weight"]
    Ein = E if a.embed_grad else [list(row) for row in E]  # frozen copy of the input table

    def loss():
        ells = []
        for r, x in zip(rows, alt):
            emb = [[(1 - lam) * Ein[t][c] + lam * Ein[u][c] for c in range(m.C)] for t, u in zip(r, x)]
            ells.append([-v for v in naive_logp(naive_logits(m, r, emb), r)])
        return naive_ift_loss(ells, masks, gam)[0]

    l0 = loss()
    if abs(l0 - g["loss"]) > 1e-12:
        print("FAIL: loss %.17g, hfref says %.17g" % (l0, g["loss"]))
        return 1
    checked, bad = fd_entries(m, g, loss, rows[0][1], a.per_tensor, a.h)
    print("IFT finite differences: %d entries, %d beyond 1e-8 + 1e-6*|g|; loss %.15g" % (checked, bad, l0))
    return 1 if bad else 0


def rne_bf16(x):
    """float32 value -> bf16 bits, round to nearest, ties to even, by integer arithmetic."""
    (u,) = struct.unpack("<I", struct.pack("<f", x))
    if (u & 0x7F800000) == 0x7F800000 and (u & 0x7FFFFF):
        return (u >> 16) | 0x40  # NaN stays NaN
    low = u & 0xFFFF
    hi = u >> 16
    if low > 0x8000 or (low == 0x8000 and (hi & 1)):
        hi += 1
    return hi & 0xFFFF


def cmd_rounded(a):
    src = read_dir(a.f32)
    oth = read_dir(a.other)
    if sorted(src) != sorted(oth):
        print("FAIL: tensor names differ")
        return 1
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import hfref  # the loader under test, for the second half of the check
    _, _, W = hfref.load_model(a.other)
    bad = 0
    total = 0
    changed = 0
    for name in sorted(src):
        code, shape, fv = src[name]
        ocode, oshape, ov = oth[name]
        if code != "F32" or shape != oshape:
            print("FAIL: %s: source %s %s, other %s %s" % (name, code, shape, ocode, oshape))
            bad += 1
            continue
        if ocode == "BF16":
            want = [struct.unpack("<f", struct.pack("<I", rne_bf16(x) << 16))[0] for x in fv]
        elif ocode == "F16":
            want = [struct.unpack("<e", struct.pack("<e", x))[0] for x in fv]  # struct rounds half to even
        elif ocode == "F32":
            want = fv
        else:
            print("FAIL: %s: dtype %s" % (name, ocode))
            bad += 1
            continue
        loaded = W[name].reshape(-1).tolist()
        nb = sum(1 for x, y, z in zip(want, ov, loaded) if not (x == y == z))
        changed += sum(1 for x, y in zip(fv, want) if x != y)
        total += len(fv)
        if nb:
            print("FAIL: %s: %d of %d values are not the rounded source" % (name, nb, len(fv)))
            bad += 1
    print("rounded: %d values, %d changed by rounding, %d tensors wrong" % (total, changed, bad))
    if changed == 0 and any(oth[n][0] != "F32" for n in oth):
        print("FAIL: rounding changed nothing: the check would not see a wrong rounding")
        return 1
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd")
    n = sub.add_parser("naive")
    n.add_argument("dir")
    n.add_argument("--tokens", required=True)
    n.add_argument("--ref", required=True)
    n.add_argument("--tol", type=float, default=1e-12)
    f = sub.add_parser("fd")
    f.add_argument("dir")
    f.add_argument("--tokens", required=True)
    f.add_argument("--mask", required=True)
    f.add_argument("--grad", required=True)
    f.add_argument("--per-tensor", type=int, default=2)
    f.add_argument("--h", type=float, default=1e-5)
    fi = sub.add_parser("fd-ift")
    fi.add_argument("dir")
    fi.add_argument("--tokens", required=True, help="rows separated by ';'")
    fi.add_argument("--mask", required=True, help="rows separated by ';'")
    fi.add_argument("--ift", required=True, help="LAMBDA,GAMMA")
    fi.add_argument("--embed-grad", type=int, default=0)
    fi.add_argument("--grad", required=True)
    fi.add_argument("--per-tensor", type=int, default=2)
    fi.add_argument("--h", type=float, default=1e-5)
    r = sub.add_parser("rounded")
    r.add_argument("f32")
    r.add_argument("other")
    a = ap.parse_args()
    return {"naive": cmd_naive, "fd": cmd_fd, "fd-ift": cmd_fd_ift, "rounded": cmd_rounded}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
