#!/usr/bin/python3
# hfref — an independent PyTorch reference for iftrain's Hugging Face import/export tests.
#
# Written for iftrain from the public format descriptions (safetensors, config.json,
# the Llama architecture); no code copied from transformers or safetensors.
# Runs on Debian's python3-torch (CPU) and the standard library; numpy only
# speeds up writing large files when present.
#
#   hfref.py make DIR --seed S [model options]        write a random HF model directory
#   hfref.py logits DIR --tokens 1,2,3 [--out F] [--f32] [--no-logits]   float64 forward: logits, log p
#   hfref.py grad DIR --tokens ... --mask 0,1,... [--ift L,G] [--dlogp ...] [--out F.json|F.safetensors]
#   hfref.py rope DIR [--f32]                         RoPE inverse frequencies of DIR's config
#   hfref.py compare A_DIR B_DIR                      exit 0 when tensors and model config agree
#
# See tests/hf/README.md.  Exit status: 0 ok, 1 difference (compare) or failure, 2 usage/input error.
import argparse
import json
import math
import mmap
import os
import struct
import sys

try:
    import torch
except ImportError:
    sys.stderr.write("hfref: python3-torch is not installed (apt-get install -y --no-install-recommends "
                     "python3-torch); run this script with /usr/bin/python3\n")
    sys.exit(1)

try:
    import numpy  # optional: fast tensor -> bytes
except ImportError:
    numpy = None

if sys.byteorder != "little":
    sys.stderr.write("hfref: needs a little-endian machine\n")
    sys.exit(2)


class InputError(Exception):
    """A bad input file or argument: reported and exit 2."""


# ---------------------------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------------------------
ST_DTYPES = {  # code -> (torch dtype, bytes per element)
    "F64": (torch.float64, 8),
    "F32": (torch.float32, 4),
    "BF16": (torch.bfloat16, 2),
    "F16": (torch.float16, 2),
}
TORCH_TO_ST = {v[0]: k for k, v in ST_DTYPES.items()}


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def tensor_bytes(t):
    """Raw little-endian bytes of a tensor (its own dtype), row-major."""
    t = t.detach().contiguous().cpu()
    if numpy is not None:
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().tobytes()
        return t.numpy().tobytes()
    return bytes(t.reshape(-1).view(torch.uint8).tolist())


def st_header(entries):
    """entries: list of (name, code, shape).  Returns (header bytes incl. the 8-byte length, data size)."""
    hdr = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, code, shape in entries:
        n = numel(shape) * ST_DTYPES[code][1]
        hdr[name] = {"dtype": code, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(hdr, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h, off


def st_write(path, entries, produce, metadata=None):
    """Write a safetensors file.  entries: (name, code, shape) in file order; produce(name) returns the
    tensor (already in its dtype), called in the same order so a random generator stays in step."""
    head, _ = st_header(entries)
    if metadata:
        hdr = json.loads(head[8:].decode("utf-8"))
        hdr["__metadata__"].update(metadata)
        h = json.dumps(hdr, separators=(",", ":")).encode("utf-8")
        h += b" " * ((8 - len(h) % 8) % 8)
        head = struct.pack("<Q", len(h)) + h
    with open(path, "wb") as f:
        f.write(head)
        for name, code, shape in entries:
            t = produce(name)
            if TORCH_TO_ST[t.dtype] != code or list(t.shape) != list(shape):
                raise AssertionError("tensor %s is %s %s, header says %s %s" % (name, t.dtype, list(t.shape), code, shape))
            f.write(tensor_bytes(t))


def st_read_header(path):
    """Parse and validate a safetensors file's header.  Returns (entries dict name -> (code, shape, begin, end),
    data start offset, metadata).  Raises InputError naming the file and tensor."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise InputError("%s: file shorter than the 8-byte header length" % path)
            (n,) = struct.unpack("<Q", raw)
            if n > size - 8:
                raise InputError("%s: header length %d beyond the file's %d bytes" % (path, n, size))
            htext = f.read(n)
    except OSError as e:
        raise InputError("%s: %s" % (path, e))
    try:
        hdr = json.loads(htext.decode("utf-8"), object_pairs_hook=_no_dup_pairs)
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError("%s: bad header JSON: %s" % (path, e))
    if not isinstance(hdr, dict):
        raise InputError("%s: header is not a JSON object" % path)
    meta = hdr.pop("__metadata__", None)
    buf = size - 8 - n
    out = {}
    spans = []
    for name, e in hdr.items():
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise InputError("%s: tensor %s: entry needs exactly dtype, shape, data_offsets" % (path, name))
        code, shape, offs = e["dtype"], e["shape"], e["data_offsets"]
        if code not in ST_DTYPES:
            raise InputError("%s: tensor %s: unsupported dtype %r" % (path, name, code))
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise InputError("%s: tensor %s: bad shape %r" % (path, name, shape))
        if (not isinstance(offs, list) or len(offs) != 2 or not all(isinstance(o, int) for o in offs)
                or offs[0] < 0 or offs[1] < offs[0] or offs[1] > buf):
            raise InputError("%s: tensor %s: data_offsets %r out of range (buffer %d bytes)" % (path, name, offs, buf))
        if offs[1] - offs[0] != numel(shape) * ST_DTYPES[code][1]:
            raise InputError("%s: tensor %s: %d bytes for shape %r of %s" % (path, name, offs[1] - offs[0], shape, code))
        out[name] = (code, list(shape), offs[0], offs[1])
        spans.append((offs[0], offs[1], name))
    spans.sort()
    pos = 0
    for b, e, name in spans:
        if b != pos:
            raise InputError("%s: tensor %s: data_offsets start at %d, expected %d (overlap or gap)" % (path, name, b, pos))
        pos = e
    if pos != buf:
        raise InputError("%s: tensors cover %d of the %d data bytes" % (path, pos, buf))
    return out, 8 + n, meta


def _no_dup_pairs(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate key %r" % k)
        d[k] = v
    return d


def st_read(path):
    """name -> (code, shape, raw bytes) of every tensor in a safetensors file.  The bytes are
    read-only memoryviews of the mapped file (no copy; the mapping lives as long as they do)."""
    entries, start, _ = st_read_header(path)
    out = {}
    with open(path, "rb") as f:
        mv = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)) if os.path.getsize(path) else None
    for name, (code, shape, b, e) in entries.items():
        out[name] = (code, shape, mv[start + b:start + e] if mv is not None else b"")
    return out


def raw_to_tensor(code, shape, raw):
    dt, _ = ST_DTYPES[code]
    if not raw:
        return torch.zeros(shape, dtype=dt)
    return torch.frombuffer(bytearray(raw), dtype=dt).reshape(shape)


# ---------------------------------------------------------------------------------------------
# model directory
# ---------------------------------------------------------------------------------------------
INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


def read_json(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise InputError("%s: %s" % (path, e))


def load_raw(d):
    """All tensors of a model directory: name -> (code, shape, raw bytes), and the list of files read."""
    ip = os.path.join(d, INDEX)
    if os.path.exists(ip):
        idx = read_json(ip)
        wm = idx.get("weight_map") if isinstance(idx, dict) else None
        if not isinstance(wm, dict):
            raise InputError("%s: no weight_map object" % ip)
        out = {}
        files = sorted(set(wm.values()))
        for fn in files:
            if not isinstance(fn, str) or "/" in fn:
                raise InputError("%s: bad shard file name %r" % (ip, fn))
            t = st_read(os.path.join(d, fn))
            for name in t:
                if wm.get(name) != fn:
                    raise InputError("%s: tensor %s is not in the index under this file" % (os.path.join(d, fn), name))
                if name in out:
                    raise InputError("%s: tensor %s appears twice" % (d, name))
            out.update(t)
        for name, fn in wm.items():
            if name not in out:
                raise InputError("%s: tensor %s listed in the index is missing from %s" % (d, name, fn))
        total = sum(len(v[2]) for v in out.values())
        ts = idx.get("metadata", {}).get("total_size")
        if ts is not None and ts != total:
            raise InputError("%s: metadata.total_size %r but tensors hold %d bytes" % (ip, ts, total))
        return out, files
    sp = os.path.join(d, SINGLE)
    if not os.path.exists(sp):
        raise InputError("%s: neither %s nor %s" % (d, SINGLE, INDEX))
    return st_read(sp), [SINGLE]


class Params:
    pass


def model_params(cfg, where="config.json"):
    """Architecture of a config.json dict; refuses what this reference does not implement."""
    def need(k, typ=int):
        v = cfg.get(k)
        if not isinstance(v, typ) or isinstance(v, bool):
            raise InputError("%s: %s missing or not %s: %r" % (where, k, typ.__name__, v))
        return v

    p = Params()
    p.model_type = cfg.get("model_type")
    if p.model_type not in ("llama", "mistral"):
        raise InputError("%s: model_type %r (llama or mistral only)" % (where, p.model_type))
    p.V = need("vocab_size")
    p.C = need("hidden_size")
    p.F = need("intermediate_size")
    p.L = need("num_hidden_layers")
    p.H = need("num_attention_heads")
    p.K = cfg.get("num_key_value_heads") or p.H
    p.D = cfg.get("head_dim") or p.C // p.H
    if p.H % p.K:
        raise InputError("%s: num_attention_heads %d not a multiple of num_key_value_heads %d" % (where, p.H, p.K))
    p.eps = float(cfg.get("rms_norm_eps", 1e-6))
    p.theta = float(cfg.get("rope_theta", 10000.0))
    p.tied = bool(cfg.get("tie_word_embeddings", False))
    act = cfg.get("hidden_act", "silu")
    if act != "silu":
        raise InputError("%s: hidden_act %r (silu only)" % (where, act))
    for k in ("attention_bias", "mlp_bias"):
        if cfg.get(k, False):
            raise InputError("%s: %s %r (false only)" % (where, k, cfg.get(k)))
    p.sliding_window = cfg.get("sliding_window")
    p.rope_scaling = cfg.get("rope_scaling")
    inv_freq(p, torch.float64)  # validates rope_scaling
    return p


def rope_type(rs):
    if rs is None:
        return "default"
    return rs.get("rope_type", rs.get("type", "default"))


def inv_freq(p, dtype):
    """Inverse frequencies for head dim p.D, following transformers' default / linear / llama3 rules
    (modeling_rope_utils).  dtype=torch.float32 reproduces transformers' float32 arithmetic step by step;
    float64 evaluates the same expressions in double."""
    D = p.D
    inv = 1.0 / (p.theta ** (torch.arange(0, D, 2, dtype=torch.int64).to(dtype) / D))
    rs = p.rope_scaling
    rt = rope_type(rs)
    if rt == "default":
        return inv
    if rt == "linear":
        return inv / float(rs["factor"])
    if rt == "llama3":
        try:
            factor = float(rs["factor"])
            lo = float(rs["low_freq_factor"])
            hi = float(rs["high_freq_factor"])
            old = rs["original_max_position_embeddings"]
        except (KeyError, TypeError, ValueError) as e:
            raise InputError("config.json: rope_scaling llama3 incomplete: %s" % e)
        lo_wl = old / lo
        hi_wl = old / hi
        wl = 2 * math.pi / inv
        # wavelength above old/lo: divided by factor; below old/hi: unchanged; between: blended
        scaled = torch.where(wl > lo_wl, inv / factor, inv)
        s = (old / wl - lo) / (hi - lo)
        blended = (1 - s) * scaled / factor + s * scaled
        mid = ~(wl < hi_wl) * ~(wl > lo_wl)
        return torch.where(mid, blended, scaled)
    raise InputError("config.json: rope_scaling rope_type %r not implemented (default, linear, llama3)" % rt)


def layer_names(i):
    pre = "model.layers.%d." % i
    return [pre + "input_layernorm.weight",
            pre + "self_attn.q_proj.weight", pre + "self_attn.k_proj.weight",
            pre + "self_attn.v_proj.weight", pre + "self_attn.o_proj.weight",
            pre + "post_attention_layernorm.weight",
            pre + "mlp.gate_proj.weight", pre + "mlp.up_proj.weight", pre + "mlp.down_proj.weight"]


def tensor_shapes(p):
    """(name, shape) in model order, HF names, [out, in] linear weights."""
    out = [("model.embed_tokens.weight", [p.V, p.C])]
    for i in range(p.L):
        n = layer_names(i)
        out += [(n[0], [p.C]),
                (n[1], [p.H * p.D, p.C]), (n[2], [p.K * p.D, p.C]), (n[3], [p.K * p.D, p.C]),
                (n[4], [p.C, p.H * p.D]),
                (n[5], [p.C]),
                (n[6], [p.F, p.C]), (n[7], [p.F, p.C]), (n[8], [p.C, p.F])]
    out.append(("model.norm.weight", [p.C]))
    if not p.tied:
        out.append(("lm_head.weight", [p.V, p.C]))
    return out


def load_model(d, dtype=torch.float64):
    """(config dict, Params, name -> tensor converted to dtype) with names and shapes checked."""
    cfg = read_json(os.path.join(d, "config.json"))
    if not isinstance(cfg, dict):
        raise InputError("%s/config.json: not an object" % d)
    p = model_params(cfg, os.path.join(d, "config.json"))
    raw, _ = load_raw(d)
    W = {}
    want = tensor_shapes(p)
    for name, shape in want:
        if name not in raw:
            raise InputError("%s: missing tensor %s" % (d, name))
        code, sh, b = raw[name]
        if sh != shape:
            raise InputError("%s: tensor %s has shape %r, config implies %r" % (d, name, sh, shape))
        W[name] = raw_to_tensor(code, sh, b).to(dtype)
    extra = sorted(set(raw) - {n for n, _ in want})
    if extra:
        raise InputError("%s: unexpected tensors: %s" % (d, ", ".join(extra[:5])))
    return cfg, p, W


# ---------------------------------------------------------------------------------------------
# forward (float64)
# ---------------------------------------------------------------------------------------------
def rmsnorm(x, w, eps):
    return w * (x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def forward(p, W, tokens, emb=None):
    """Logits [T, V] in float64 of one sequence.  emb [T, C], when given, replaces the input
    embedding lookup (IFT's blended inputs); tokens then only give the length."""
    T = len(tokens)
    if p.sliding_window is not None and p.sliding_window < T:
        raise InputError("sliding_window %d smaller than the %d tokens: not implemented" % (p.sliding_window, T))
    for t in tokens:
        if not 0 <= t < p.V:
            raise InputError("token %d outside [0, %d)" % (t, p.V))
    dt = W["model.embed_tokens.weight"].dtype
    x = W["model.embed_tokens.weight"][torch.tensor(tokens, dtype=torch.long)] if emb is None else emb
    ang = torch.arange(T, dtype=dt)[:, None] * inv_freq(p, dt)[None, :]  # [T, D/2]
    cos = torch.cat([torch.cos(ang), torch.cos(ang)], -1)
    sin = torch.cat([torch.sin(ang), torch.sin(ang)], -1)
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    rep = p.H // p.K
    for i in range(p.L):
        n = layer_names(i)
        h = rmsnorm(x, W[n[0]], p.eps)
        q = (h @ W[n[1]].t()).view(T, p.H, p.D).transpose(0, 1)  # [H, T, D]
        k = (h @ W[n[2]].t()).view(T, p.K, p.D).transpose(0, 1)  # [K, T, D]
        v = (h @ W[n[3]].t()).view(T, p.K, p.D).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(rep, dim=0)  # q head j uses kv head j // rep
        v = v.repeat_interleave(rep, dim=0)
        s = (q @ k.transpose(1, 2)) / math.sqrt(p.D)
        s = s.masked_fill(causal, float("-inf"))
        a = torch.softmax(s, dim=-1) @ v  # [H, T, D]
        x = x + a.transpose(0, 1).reshape(T, p.H * p.D) @ W[n[4]].t()
        h = rmsnorm(x, W[n[5]], p.eps)
        g = h @ W[n[6]].t()
        u = h @ W[n[7]].t()
        x = x + (torch.nn.functional.silu(g) * u) @ W[n[8]].t()
    x = rmsnorm(x, W["model.norm.weight"], p.eps)
    head = W["model.embed_tokens.weight"] if p.tied else W["lm_head.weight"]
    return x @ head.t()


def token_logp(logits, tokens):
    """logp[t] = log p(tokens[t] | tokens[:t]) for t >= 1; logp[0] = 0 (iftrain's convention)."""
    lsm = torch.log_softmax(logits, dim=-1)
    tgt = torch.tensor(tokens[1:], dtype=torch.long)
    lp = lsm[:-1].gather(1, tgt[:, None])[:, 0]
    return torch.cat([torch.zeros(1, dtype=lp.dtype), lp])


# ---------------------------------------------------------------------------------------------
# make
# ---------------------------------------------------------------------------------------------
DTYPE_NAMES = {"f32": ("F32", "float32"), "bf16": ("BF16", "bfloat16"), "f16": ("F16", "float16")}


def parse_rope_scaling(s, max_pos):
    if s in (None, "", "none"):
        return None
    kind, _, rest = s.partition(":")
    vals = [v for v in rest.split(",") if v != ""]
    try:
        if kind == "linear" and len(vals) == 1:
            return {"factor": float(vals[0]), "rope_type": "linear"}
        if kind == "llama3" and len(vals) == 4:
            return {"factor": float(vals[0]), "high_freq_factor": float(vals[2]),
                    "low_freq_factor": float(vals[1]),
                    "original_max_position_embeddings": int(vals[3]), "rope_type": "llama3"}
    except ValueError:
        pass
    raise InputError("--rope-scaling %r: none | linear:F | llama3:F,low,high,orig" % s)


def parse_ids(s):
    v = [int(x) for x in str(s).split(",") if x != ""]
    return v[0] if len(v) == 1 else v


def make_config(a):
    arch = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM"}[a.arch]
    cfg = {
        "architectures": [arch],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": parse_ids(a.bos),
        "eos_token_id": parse_ids(a.eos),
        "hidden_act": "silu",
        "hidden_size": a.hidden,
        "initializer_range": 0.02,
        "intermediate_size": a.intermediate,
        "max_position_embeddings": a.max_pos,
        "mlp_bias": False,
        "model_type": a.arch,
        "num_attention_heads": a.heads,
        "num_hidden_layers": a.layers,
        "num_key_value_heads": a.kv_heads if a.kv_heads else a.heads,
        "rms_norm_eps": a.rms_eps,
        "rope_scaling": parse_rope_scaling(a.rope_scaling, a.max_pos),
        "rope_theta": a.rope_theta,
        "tie_word_embeddings": bool(a.tied),
        "torch_dtype": DTYPE_NAMES[a.dtype][1],
        "transformers_version": "4.46.0",
        "use_cache": True,
        "vocab_size": a.vocab,
    }
    if a.arch == "llama":
        cfg["pretraining_tp"] = 1
    else:
        cfg["sliding_window"] = a.sliding_window
    if a.head_dim:
        cfg["head_dim"] = a.head_dim
    return cfg


def split_shards(entries, n):
    """Split tensors (model order) into n consecutive non-empty groups of roughly equal bytes."""
    if n > len(entries):
        raise InputError("--shards %d: only %d tensors" % (n, len(entries)))
    sizes = [numel(s) * ST_DTYPES[c][1] for _, c, s in entries]
    total = sum(sizes)
    groups, cur, acc = [], [], 0
    for i, e in enumerate(entries):
        left = len(entries) - i  # tensors not yet placed, this one included
        need = n - len(groups) - 1  # groups still to open after the current one
        if cur and (left == need or (acc >= total * (len(groups) + 1) / n and need > 0)):
            groups.append(cur)
            cur = []
        cur.append(e)
        acc += sizes[i]
    groups.append(cur)
    assert len(groups) == n and all(groups)
    return groups


def cmd_make(a):
    cfg = make_config(a)
    p = model_params(cfg)
    code = DTYPE_NAMES[a.dtype][0]
    os.makedirs(a.dir, exist_ok=True)
    with open(os.path.join(a.dir, "config.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    gen = {"_from_model_config": True, "bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"],
           "transformers_version": cfg["transformers_version"]}
    with open(os.path.join(a.dir, "generation_config.json"), "w") as f:
        f.write(json.dumps(gen, indent=2, sort_keys=True) + "\n")
    entries = [(n, code, s) for n, s in tensor_shapes(p)]
    g = torch.Generator()
    g.manual_seed(a.seed)
    tdt = ST_DTYPES[code][0]

    def produce(name):
        shape = dict(tensor_shapes(p))[name]
        r = torch.randn(shape, generator=g, dtype=torch.float32)
        if len(shape) == 1:  # norm weights: 1 +- norm_std
            w = 1.0 + a.norm_std * r
        else:
            w = a.std * r
        return w.to(tdt)  # torch's conversion: round to nearest even

    for fn in os.listdir(a.dir):  # stale weights of an earlier make
        if fn == SINGLE or fn == INDEX or (fn.startswith("model-") and fn.endswith(".safetensors")):
            os.remove(os.path.join(a.dir, fn))
    if a.shards <= 1:
        st_write(os.path.join(a.dir, SINGLE), entries, produce)
    else:
        wm = {}
        total = 0
        groups = split_shards(entries, a.shards)
        for k, grp in enumerate(groups):
            fn = "model-%05d-of-%05d.safetensors" % (k + 1, a.shards)
            st_write(os.path.join(a.dir, fn), grp, produce)
            for n, c, s in grp:
                wm[n] = fn
                total += numel(s) * ST_DTYPES[c][1]
        idx = {"metadata": {"total_size": total}, "weight_map": dict(sorted(wm.items()))}
        with open(os.path.join(a.dir, INDEX), "w") as f:
            f.write(json.dumps(idx, indent=2) + "\n")
    return 0


# ---------------------------------------------------------------------------------------------
# logits, grad, rope
# ---------------------------------------------------------------------------------------------
def parse_list(s, conv, what):
    try:
        return [conv(x) for x in s.split(",") if x.strip() != ""]
    except ValueError:
        raise InputError("%s: not a comma-separated list: %r" % (what, s))


def write_out(obj, out):
    text = json.dumps(obj)
    if out in (None, "-"):
        sys.stdout.write(text + "\n")
    else:
        with open(out, "w") as f:
            f.write(text + "\n")


def cmd_logits(a):
    # --f32: the same forward in float32 (weights, RoPE tables and arithmetic, as transformers runs
    # an F32 model): its distance from the float64 result is what float32 rounding alone costs, the
    # scale for a float32 implementation's tolerance.  --no-logits: logp and sum only (a 32000-word
    # vocabulary makes the logits rows megabytes of JSON).
    _, p, W = load_model(a.dir, torch.float32 if a.f32 else torch.float64)
    tokens = parse_list(a.tokens, int, "--tokens")
    if len(tokens) < 1:
        raise InputError("--tokens: empty")
    with torch.no_grad():
        lg = forward(p, W, tokens)
        lp = token_logp(lg, tokens)
    out = {"tokens": tokens, "logp": lp.tolist(), "sum": float(lp.sum())}
    if not a.no_logits:
        out["logits"] = lg.tolist()
    write_out(out, a.out)
    return 0


def cmd_greedy(a):
    """Greedy decoding without a cache: a full float64 forward of the growing sequence per token,
    stopping after --max-new tokens or at an --eos id (included).  gaps[i]: top-1 minus top-2 logit
    of step i (a float32 implementation may pick otherwise only where it is tiny)."""
    _, p, W = load_model(a.dir)
    seq = parse_list(a.tokens, int, "--tokens")
    eos = set(parse_list(a.eos, int, "--eos")) if a.eos else set()
    ids, gaps = [], []
    with torch.no_grad():
        for _ in range(a.max_new):
            lg = forward(p, W, seq)[-1]
            top = torch.topk(lg, 2)
            nxt = int(torch.argmax(lg))  # the lowest id of equal maxima, as iftrain
            gaps.append(float(top.values[0] - top.values[1]))
            ids.append(nxt)
            seq = seq + [nxt]
            if nxt in eos:
                break
    write_out({"ids": ids, "gaps": gaps}, a.out)
    return 0


def parse_rows(s, conv, what):
    """Rows separated by ';', each a comma list; every row the same length."""
    rows = [parse_list(r, conv, what) for r in s.split(";")]
    if not rows or any(len(r) != len(rows[0]) for r in rows):
        raise InputError("%s: rows of different lengths: %r" % (what, s))
    return rows


# ---------------------------------------------------------------------------------------------
# IFT (the project's method, Hua et al. 2024; iftrain's docs/ift.md) -- written from the specification
# of issue 15, not from iftrain's loss.c
# ---------------------------------------------------------------------------------------------
def ift_weights(ell, m, gamma):
    """IFT token weights and row losses (side left, value loss, norm L1) in the dtype of ell,
    differentiable (the weights are NOT detached).  ell, m: [B, T] (m 0/1).  Per row b:
      n = sum_t m_t,  v_t = m_t ell_t / n,  C_t = m_t sum_{j>=t} gamma^(j-t) v_j,
      w_t = n C_t / sum_t C_t on answer positions, 0 elsewhere  (gamma = 0: w_t = m_t, uniform),
      L_b = sum_t m_t ell_t w_t / n  (0 for a row without answer tokens).
    Returns (w [B, T], L [B])."""
    B, T = ell.shape
    m = m.to(ell.dtype)
    n = m.sum(1)
    nz = torch.where(n > 0, n, torch.ones_like(n))
    if gamma == 0:
        w = m.clone()  # a special case, not the limit of the formula
    else:
        idx = torch.arange(T)
        e = (idx[None, :] - idx[:, None]).to(ell.dtype)  # e[t, j] = j - t
        G = torch.where(e >= 0, float(gamma) ** e.clamp(min=0), torch.zeros_like(e))
        v = m * ell / nz[:, None]
        C = m * (v @ G.t())  # C[b, t] = sum_j G[t, j] v[b, j]
        Z = C.sum(1)
        w = nz[:, None] * C / torch.where(Z != 0, Z, torch.ones_like(Z))[:, None]
    L = torch.where(n > 0, (m * ell * w).sum(1) / nz, torch.zeros_like(n))
    return w, L


def ift_alt(tokens, mask, argmax):
    """IFT steps 2-3 for one row: x~[0] = x[0]; x~[t] = argmax[t-1] where mask[t] = 1, else x[t]."""
    return [tokens[0]] + [argmax[t - 1] if mask[t] else tokens[t] for t in range(1, len(tokens))]


def cmd_grad(a):
    _, p, W = load_model(a.dir)
    rows = parse_rows(a.tokens, int, "--tokens")
    B, T = len(rows), len(rows[0])
    if T < 2:
        raise InputError("--tokens: need at least 2 tokens")
    one = B == 1  # one row: flat lists in the output, as before
    shape_out = (lambda r: r[0]) if one else (lambda r: r)
    E = "model.embed_tokens.weight"
    for w in W.values():
        w.requires_grad_(True)
    out = {"tokens": shape_out(rows)}
    masks = None
    if a.dlogp is None:
        masks = parse_rows(a.mask, int, "--mask") if a.mask is not None else [[0] + [1] * (T - 1)] * B
        if (len(masks) != B or any(len(m) != T or any(v not in (0, 1) for v in m) or m[0] != 0 or sum(m) == 0
                                   for m in masks)):
            raise InputError("--mask: %d rows of %d values 0/1 (one row per --tokens row), first 0, "
                             "at least one 1 in each row" % (B, T))
    if a.ift is not None:
        if masks is None:
            raise InputError("--ift and --dlogp exclude each other")
        lg = parse_list(a.ift, float, "--ift")
        if len(lg) != 2 or not 0 <= lg[0] <= 1 or not 0 <= lg[1] <= 1:
            raise InputError("--ift LAMBDA,GAMMA with both in [0, 1]: %r" % a.ift)
        lam, gam = lg
        # 1. intuition pass (no gradient): greedy prediction at every position
        alt, amax, gap = [], [], float("inf")
        with torch.no_grad():
            for r, m in zip(rows, masks):
                lgt = forward(p, W, r)
                am = lgt.argmax(-1).tolist()
                top = lgt.topk(2, dim=-1).values
                gap = min([gap] + [float(top[t - 1, 0] - top[t - 1, 1]) for t in range(1, T) if m[t]])
                amax.append(am)
                alt.append(ift_alt(r, m, am))  # 2-3. shift right, replace answer slots only
        # 4. blended input embeddings from a frozen copy of the table (--embed-grad 1: the live one)
        Ein = W[E] if a.embed_grad else W[E].detach().clone()
        lp = torch.stack([token_logp(forward(p, W, r, emb=(1 - lam) * Ein[torch.tensor(r)] +
                                             lam * Ein[torch.tensor(x)]), r)
                          for r, x in zip(rows, alt)])
    else:
        lp = torch.stack([token_logp(forward(p, W, r), r) for r in rows])
    lp.retain_grad()
    if a.dlogp is not None:
        dl = parse_rows(a.dlogp, float, "--dlogp")
        if len(dl) != B or len(dl[0]) != T:
            raise InputError("--dlogp: %d rows of %d values for %d rows of %d tokens" % (len(dl), len(dl[0]), B, T))
        obj = (torch.tensor(dl, dtype=lp.dtype) * lp).sum()
        out["dlogp"] = shape_out(dl)
    else:
        mt = torch.tensor(masks, dtype=lp.dtype)
        if a.ift is not None:
            w, Lb = ift_weights(-lp, mt, gam)  # 5-7. targets: the original tokens
            out["ift"] = {"lambda": lam, "gamma": gam, "embed_grad": a.embed_grad}
            out["alt"] = shape_out(alt)
            out["argmax"] = shape_out(amax)
            out["argmax_gap"] = gap
            out["weights"] = shape_out(w.detach().tolist())
        else:
            Lb = (mt * -lp).sum(1) / mt.sum(1)  # per row: mean masked NLL
        obj = Lb.sum() / B  # mean over the rows (iftrain: sum_b L_b / n_global)
        out["mask"] = shape_out(masks)
        out["row_loss"] = Lb.detach().tolist()
    obj.backward()
    for w in W.values():  # untied IFT with a frozen input table: no gradient reaches the embedding
        if w.grad is None:
            w.grad = torch.zeros_like(w)
    out["loss"] = float(obj)
    out["logp"] = shape_out(lp.detach().tolist())
    out["dloss_dlogp"] = shape_out(lp.grad.tolist())
    names = [n for n, _ in tensor_shapes(p)]
    if a.out and a.out.endswith(".safetensors"):
        code = "F32" if a.grad_dtype == "f32" else "F64"
        dt = ST_DTYPES[code][0]
        entries = [(n, code, list(W[n].shape)) for n in names]
        st_write(a.out, entries, lambda n: W[n].grad.to(dt),
                 metadata={"loss": repr(out["loss"]), "tokens": json.dumps(out["tokens"])})
        return 0
    out["shapes"] = {n: list(W[n].shape) for n in names}
    out["grads"] = {n: W[n].grad.reshape(-1).tolist() for n in names}
    write_out(out, a.out)
    return 0


def cmd_rope(a):
    cfg = read_json(os.path.join(a.dir, "config.json"))
    p = model_params(cfg)
    inv = inv_freq(p, torch.float32 if a.f32 else torch.float64)
    write_out({"rope_type": rope_type(p.rope_scaling), "head_dim": p.D,
               "inv_freq": [float(v) for v in inv.tolist()]}, a.out)
    return 0


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------
MODEL_KEYS = ["architectures", "model_type", "vocab_size", "hidden_size", "intermediate_size",
              "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_act",
              "max_position_embeddings", "rms_norm_eps", "rope_theta", "rope_scaling", "tie_word_embeddings",
              "attention_bias", "mlp_bias", "bos_token_id", "eos_token_id", "torch_dtype", "sliding_window"]


def model_keys(cfg):
    """The model-defining keys with their defaults filled in (absent num_key_value_heads = heads,
    absent head_dim = hidden/heads, rope_scaling 'type' = 'rope_type', 'default' = null)."""
    c = dict(cfg)
    c.setdefault("num_key_value_heads", c.get("num_attention_heads"))
    if c.get("num_key_value_heads") is None:
        c["num_key_value_heads"] = c.get("num_attention_heads")
    if c.get("head_dim") is None and c.get("hidden_size") and c.get("num_attention_heads"):
        c["head_dim"] = c["hidden_size"] // c["num_attention_heads"]
    c.setdefault("hidden_act", "silu")
    c.setdefault("attention_bias", False)
    c.setdefault("mlp_bias", False)
    c.setdefault("tie_word_embeddings", False)
    c.setdefault("sliding_window", None)
    rs = c.get("rope_scaling")
    if isinstance(rs, dict):
        rs = dict(rs)
        if "rope_type" not in rs and "type" in rs:
            rs["rope_type"] = rs.pop("type")
        if rs.get("rope_type") == "default" and len(rs) == 1:
            rs = None
        c["rope_scaling"] = rs
    return {k: c.get(k) for k in MODEL_KEYS}


def cmd_compare(a):
    diffs = []
    ca = model_keys(read_json(os.path.join(a.a, "config.json")))
    cb = model_keys(read_json(os.path.join(a.b, "config.json")))
    for k in MODEL_KEYS:
        if ca[k] != cb[k]:
            diffs.append("config %s: %s vs %s" % (k, json.dumps(ca[k]), json.dumps(cb[k])))
    ra, _ = load_raw(a.a)
    rb, _ = load_raw(a.b)
    for n in sorted(set(ra) | set(rb)):
        if n not in rb:
            diffs.append("tensor %s: only in %s" % (n, a.a))
        elif n not in ra:
            diffs.append("tensor %s: only in %s" % (n, a.b))
        else:
            (c1, s1, b1), (c2, s2, b2) = ra[n], rb[n]
            if c1 != c2 or s1 != s2:
                diffs.append("tensor %s: %s %r vs %s %r" % (n, c1, s1, c2, s2))
            elif b1 != b2:
                t1, t2 = raw_to_tensor(c1, s1, b1), raw_to_tensor(c2, s2, b2)
                bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[ST_DTYPES[c1][1]]
                nbad = int((t1.reshape(-1).view(bits) != t2.reshape(-1).view(bits)).sum())
                md = float((t1.double() - t2.double()).abs().nan_to_num(float("inf")).max())
                diffs.append("tensor %s: %d of %d elements differ in bits, max |diff| %g" % (n, nbad, t1.numel(), md))
    for d in diffs[:50]:
        print(d)
    if len(diffs) > 50:
        print("... %d more differences" % (len(diffs) - 50))
    if diffs:
        return 1
    print("same: %d tensors, bit-identical; model config keys equal" % len(ra))
    return 0


# ---------------------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(prog="hfref.py", description="PyTorch reference for iftrain's HF tests")
    sub = ap.add_subparsers(dest="cmd")
    m = sub.add_parser("make", help="write a random HF model directory")
    m.add_argument("dir")
    m.add_argument("--seed", type=int, required=True)
    m.add_argument("--vocab", type=int, default=64)
    m.add_argument("--hidden", type=int, default=16)
    m.add_argument("--layers", type=int, default=2)
    m.add_argument("--heads", type=int, default=4)
    m.add_argument("--kv-heads", type=int, default=0, help="0 = heads")
    m.add_argument("--intermediate", type=int, default=32)
    m.add_argument("--head-dim", type=int, default=0, help="written to config.json when given")
    m.add_argument("--tied", type=int, choices=(0, 1), default=1)
    m.add_argument("--dtype", choices=sorted(DTYPE_NAMES), default="f32")
    m.add_argument("--shards", type=int, default=1)
    m.add_argument("--rope-scaling", default="none")
    m.add_argument("--rope-theta", type=float, default=10000.0)
    m.add_argument("--max-pos", type=int, default=2048)
    m.add_argument("--rms-eps", type=float, default=1e-5)
    m.add_argument("--arch", choices=("llama", "mistral"), default="llama")
    m.add_argument("--sliding-window", type=int, default=None, help="mistral only; default null")
    m.add_argument("--bos", default="1", help="id or comma list")
    m.add_argument("--eos", default="2", help="id or comma list")
    m.add_argument("--std", type=float, default=0.02, help="std of matrices")
    m.add_argument("--norm-std", type=float, default=0.1, help="norm weights are 1 + N(0, norm_std)")
    lg = sub.add_parser("logits", help="float64 forward")
    lg.add_argument("dir")
    lg.add_argument("--tokens", required=True)
    lg.add_argument("--out")
    lg.add_argument("--f32", action="store_true", help="the forward in float32 instead of float64")
    lg.add_argument("--no-logits", action="store_true", help="omit the logits rows from the output")
    gr = sub.add_parser("grad", help="SFT or IFT loss (or sum dlogp*logp) and its gradient, float64 autograd")
    gr.add_argument("dir")
    gr.add_argument("--tokens", required=True, help="comma list; several rows (same length) separated by ';'")
    gr.add_argument("--mask", help="one 0/1 per token, first 0 (default 0,1,1,...); rows separated by ';'")
    gr.add_argument("--dlogp", help="one weight per token: objective sum_t dlogp[t]*logp[t] instead of SFT")
    gr.add_argument("--out", help="FILE.json (default stdout) or FILE.safetensors")
    gr.add_argument("--grad-dtype", choices=("f64", "f32"), default="f64", help="safetensors output dtype")
    gr.add_argument("--ift", metavar="LAMBDA,GAMMA",
                    help="the IFT loss (side left, value loss, norm L1) instead of SFT; gamma 0 = uniform weights")
    gr.add_argument("--embed-grad", type=int, choices=(0, 1), default=0,
                    help="IFT: 1 lets the gradient flow through the input lookups (iftrain ift.embed_grad)")
    gd = sub.add_parser("greedy", help="float64 greedy decoding (no cache): generated ids and top-2 gaps")
    gd.add_argument("dir")
    gd.add_argument("--tokens", required=True, help="the prompt's ids, comma list")
    gd.add_argument("--max-new", type=int, default=16)
    gd.add_argument("--eos", help="stop ids, comma list")
    gd.add_argument("--out")
    ro = sub.add_parser("rope", help="inverse frequencies of DIR's config")
    ro.add_argument("dir")
    ro.add_argument("--f32", action="store_true", help="transformers' float32 arithmetic")
    ro.add_argument("--out")
    cp = sub.add_parser("compare", help="bit-identical tensors and equal model config keys")
    cp.add_argument("a")
    cp.add_argument("b")
    a = ap.parse_args(argv)
    if a.cmd is None:
        ap.print_help()
        return 2
    fn = {"make": cmd_make, "logits": cmd_logits, "grad": cmd_grad, "greedy": cmd_greedy, "rope": cmd_rope,
          "compare": cmd_compare}[a.cmd]
    try:
        return fn(a)
    except InputError as e:
        sys.stderr.write("hfref: %s\n" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
