#!/bin/sh
# Self-tests of tests/hf/hfref.py, the PyTorch reference of the Hugging Face import/export tests,
# against tests/hf/hfref_check.py (a second, naive pure-Python implementation) and numbers
# computed by hand:
#   (a) float64 forward = loop-written per-position reference to 1e-12 (1 layer, hidden 8; tied/untied)
#   (b) autograd gradient of the SFT loss = central finite differences of the naive loss;
#       --dlogp with -mask/n reproduces the SFT loss and gradient
#   (c) BF16 (sharded) and F16 directories load back as their F32 source rounded to nearest even;
#       sharded F32 = single-file F32 bit for bit (compare); compare sees dtype, config and
#       one-byte differences; damaged files are refused with exit 2
#   (d) llama3 RoPE inverse frequencies = a table computed by hand
#   (e) GQA (heads 4, kv 2, llama3 rope), head_dim != hidden/heads (linear rope), mistral: naive
#       forward and finite differences agree
#   (f) IFT token weights, row losses, loss and dL/dlogp (hfref's autograd, the naive loops' finite
#       differences) = the specification's test vectors
#   (g) IFT on 2 rows: greedy tokens x~, loss and autograd gradient = the naive implementation and
#       its finite differences (frozen input table, tied and untied; --embed-grad 1); several-row SFT
# Usage: [PYTHON=/usr/bin/python3] sh tests/hf/test_hfref.sh   (IFTRAIN is accepted and not needed)
set -u
PY=${PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
REF="$here/hfref.py"
CHK="$here/hfref_check.py"
if ! "$PY" -c 'import torch' >/dev/null 2>&1; then
  echo "FAIL: python3-torch is missing: $PY cannot import torch."
  echo "      Install it: apt-get install -y --no-install-recommends python3-torch"
  exit 1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hfref-test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
fail=0
start=$(date +%s)
check() { # description, command...
  desc=$1; shift
  if "$@" >"$tmp/out" 2>&1; then echo "PASS: $desc"; else echo "FAIL: $desc"; sed 's/^/    /' "$tmp/out"; fail=$((fail+1)); fi
}
ref() { "$PY" "$REF" "$@"; }
chk() { "$PY" "$CHK" "$@"; }
expect() { # rc, fragment, command...
  want=$1; frag=$2; shift 2
  "$@" >"$tmp/exp" 2>&1; rc=$?
  [ "$rc" -eq "$want" ] || { echo "exit code $rc, expected $want: $*"; cat "$tmp/exp"; return 1; }
  grep -qF -- "$frag" "$tmp/exp" || { echo "no '$frag' in the output of $*:"; cat "$tmp/exp"; return 1; }
}

TOK=3,1,4,1,5,9,2,6
MASK=0,0,0,1,1,1,0,1
# tiny: 1 layer, hidden 8; std 0.5 and rope theta 100 so attention and rotation are far from trivial
TINY="--vocab 24 --hidden 8 --layers 1 --heads 2 --intermediate 12 --std 0.5 --norm-std 0.3 --rope-theta 100"

# ---- (a) forward vs naive loops -------------------------------------------------------------
forward_vs_naive() { # dir
  ref logits "$1" --tokens $TOK --out "$1.logits.json" && chk naive "$1" --tokens $TOK --ref "$1.logits.json" --tol 1e-12
}
check "make tiny models (f32 untied, f32 tied)" sh -c "
  '$PY' '$REF' make '$tmp/tiny' --seed 11 $TINY --tied 0 &&
  '$PY' '$REF' make '$tmp/tiny_tied' --seed 12 $TINY --tied 1"
check "(a) float64 forward = naive per-position reference to 1e-12 (untied)" forward_vs_naive "$tmp/tiny"
check "(a) float64 forward = naive per-position reference to 1e-12 (tied)" forward_vs_naive "$tmp/tiny_tied"

# ---- (b) gradients ------------------------------------------------------------------------------
grad_vs_fd() { # dir
  ref grad "$1" --tokens $TOK --mask $MASK --out "$1.grad.json" &&
  chk fd "$1" --tokens $TOK --mask $MASK --grad "$1.grad.json" --per-tensor 2
}
check "(b) SFT gradient = central finite differences (untied)" grad_vs_fd "$tmp/tiny"
check "(b) SFT gradient = central finite differences (tied)" grad_vs_fd "$tmp/tiny_tied"
dlogp_same() {
  ref grad "$tmp/tiny" --tokens $TOK --dlogp 0,0,0,-0.25,-0.25,-0.25,0,-0.25 --out "$tmp/dl.json" &&
  "$PY" - "$tmp/tiny.grad.json" "$tmp/dl.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
d = max(abs(x - y) for n in a["grads"] for x, y in zip(a["grads"][n], b["grads"][n]))
print("loss %.17g vs %.17g, max grad diff %.3g" % (a["loss"], b["loss"], d))
sys.exit(0 if abs(a["loss"] - b["loss"]) < 1e-14 and d < 1e-14 else 1)
EOF
}
check "(b) --dlogp -mask/n gives the SFT loss and gradient" dlogp_same
grad_safetensors() {
  ref grad "$tmp/tiny" --tokens $TOK --mask $MASK --out "$tmp/g.safetensors" &&
  "$PY" - "$tmp/tiny.grad.json" "$tmp/g.safetensors" "$REF" <<'EOF'
import json, sys, importlib.util
spec = importlib.util.spec_from_file_location("hfref", sys.argv[3]); h = importlib.util.module_from_spec(spec); spec.loader.exec_module(h)
a = json.load(open(sys.argv[1])); r = h.st_read(sys.argv[2])
ok = sorted(r) == sorted(a["grads"]) and all(
    h.raw_to_tensor(*r[n]).reshape(-1).tolist() == a["grads"][n] and r[n][0] == "F64" for n in r)
print("safetensors gradient file: %d tensors, equal to the JSON: %s" % (len(r), ok)); sys.exit(0 if ok else 1)
EOF
}
check "(b) gradient as F64 safetensors = gradient as JSON" grad_safetensors

# ---- (c) dtypes, shards, compare, damaged files ---------------------------------------------------
SRC="--seed 21 --vocab 40 --hidden 16 --layers 2 --heads 4 --kv-heads 2 --intermediate 24 --tied 0"
check "make f32 / f32 3 shards / bf16 4 shards / f16 2 shards / f32 again of one seed" sh -c "
  '$PY' '$REF' make '$tmp/f32' $SRC &&
  '$PY' '$REF' make '$tmp/f32s' $SRC --shards 3 &&
  '$PY' '$REF' make '$tmp/bf16' $SRC --dtype bf16 --shards 4 &&
  '$PY' '$REF' make '$tmp/f16' $SRC --dtype f16 --shards 2 &&
  '$PY' '$REF' make '$tmp/f32b' $SRC"
check "(c) BF16 sharded loads back as F32 source rounded to nearest even" chk rounded "$tmp/f32" "$tmp/bf16"
check "(c) F16 sharded loads back as F32 source rounded to nearest even" chk rounded "$tmp/f32" "$tmp/f16"
check "(c) F32 3 shards loads back bit-identical to F32 single file" chk rounded "$tmp/f32" "$tmp/f32s"
index_ok() {
  "$PY" - "$tmp/f32s" <<'EOF'
import json, os, sys
d = sys.argv[1]; idx = json.load(open(os.path.join(d, "model.safetensors.index.json")))
files = sorted(set(idx["weight_map"].values()))
want = ["model-%05d-of-00003.safetensors" % k for k in (1, 2, 3)]
sizes = 0
for f in files:
    b = open(os.path.join(d, f), "rb").read(); n = int.from_bytes(b[:8], "little")
    h = json.loads(b[8:8 + n]); assert h.pop("__metadata__") == {"format": "pt"} and n % 8 == 0
    sizes += len(b) - 8 - n
print("shards", files, "total_size", idx["metadata"]["total_size"], "data bytes", sizes)
sys.exit(0 if files == want and sizes == idx["metadata"]["total_size"] and sorted(os.listdir(d)) ==
         sorted(want + ["config.json", "generation_config.json", "model.safetensors.index.json"]) else 1)
EOF
}
check "(c) shard names, index total_size, header padding and metadata" index_ok
check "(c) compare: same seed single vs sharded vs remade -> exit 0" sh -c "
  '$PY' '$REF' compare '$tmp/f32' '$tmp/f32s' && '$PY' '$REF' compare '$tmp/f32' '$tmp/f32b'"
check "(c) compare: f32 vs bf16 -> exit 1 naming torch_dtype and dtypes" expect 1 'config torch_dtype' ref compare "$tmp/f32" "$tmp/bf16"
flip_byte() { # copy $1 to $2 and flip one data byte of its last tensor
  cp -r "$1" "$2" && "$PY" - "$2/model.safetensors" <<'EOF'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[-3] ^= 0x01; open(p, "wb").write(bytes(b))
EOF
}
flip_byte "$tmp/f32" "$tmp/f32x"
check "(c) compare: one flipped bit -> exit 1 naming the tensor (lm_head)" expect 1 'tensor lm_head.weight: 1 of' ref compare "$tmp/f32" "$tmp/f32x"
cp -r "$tmp/f32" "$tmp/f32cfg" && sed 's/"rms_norm_eps": 1e-05/"rms_norm_eps": 1e-06/' "$tmp/f32/config.json" >"$tmp/f32cfg/config.json"
check "(c) compare: rms_norm_eps differs -> exit 1" expect 1 'config rms_norm_eps' ref compare "$tmp/f32" "$tmp/f32cfg"
cp -r "$tmp/f32" "$tmp/trunc" && head -c 3000 "$tmp/f32/model.safetensors" >"$tmp/trunc/model.safetensors"
check "(c) truncated safetensors refused, exit 2" expect 2 'model.safetensors: tensor model.embed_tokens.weight: data_offsets [0, 2560] out of range' ref logits "$tmp/trunc" --tokens 1,2
cp -r "$tmp/f32s" "$tmp/miss" && "$PY" - "$tmp/miss/model.safetensors.index.json" <<'EOF'
import json, sys
p = sys.argv[1]; i = json.load(open(p)); i["weight_map"]["model.layers.9.mlp.up_proj.weight"] = "model-00001-of-00003.safetensors"
json.dump(i, open(p, "w"))
EOF
check "(c) index naming a tensor absent from its shard refused, exit 2" expect 2 'model.layers.9.mlp.up_proj.weight listed in the index is missing' ref logits "$tmp/miss" --tokens 1,2

# ---- (d) llama3 inverse frequencies by hand -----------------------------------------------------
# Config: head_dim 16, rope_theta 10000, llama3 factor 8, low_freq_factor 1, high_freq_factor 8,
# original_max_position_embeddings 4096.  Unscaled w_i = 10000^(-2i/16) = 10^(-i/2), i = 0..7:
#   1, 0.316227766, 0.1, 0.0316227766, 0.01, 0.00316227766, 0.001, 0.000316227766
# wavelengths 2*pi/w_i: 6.283, 19.87, 62.83, 198.7, 628.3, 1986.9, 6283.2, 19869.2
# high-frequency bound 4096/8 = 512, low-frequency bound 4096/1 = 4096:
#   i = 0..3 (wavelength < 512): unchanged
#   i = 6, 7 (wavelength > 4096): w/8 = 0.000125, 0.0000395284707521047
#   i = 4, 5 (between): s = (4096/wavelength - 1)/(8 - 1), w' = (1-s)*w/8 + s*w = w/8*(1 + 7s)
#     = w/8 * 4096/wavelength = 4096 w^2/(16 pi):  i=4: 0.4096/(16 pi) = 0.00814873308630504
#                                                    i=5: 0.04096/(16 pi) = 0.000814873308630504
#     (s = 0.788426638 and 0.151640647)
check "make llama3 rope model (head_dim 16)" ref make "$tmp/l3" --seed 3 --vocab 16 --hidden 32 --heads 2 --layers 1 \
  --intermediate 16 --rope-theta 10000 --rope-scaling llama3:8,1,8,4096 --max-pos 32768
rope_table() { # extra rope flag, relative tolerance
  ref rope "$tmp/l3" $1 --out "$tmp/rope.json" && "$PY" - "$tmp/rope.json" "$2" <<'EOF'
import json, sys
hand = [1.0, 0.316227766016837933, 0.1, 0.0316227766016837933,
        0.00814873308630504, 0.000814873308630504, 0.000125, 0.0000395284707521047]
got = json.load(open(sys.argv[1]))["inv_freq"]; tol = float(sys.argv[2])
worst = max(abs(g - h) / h for g, h in zip(got, hand))
print("inv_freq", got); print("max relative difference from the hand table %.3g (tolerance %g)" % (worst, tol))
sys.exit(0 if len(got) == 8 and worst <= tol else 1)
EOF
}
check "(d) llama3 inv_freq (float64) = hand table to 1e-14" rope_table "" 1e-14
check "(d) llama3 inv_freq (transformers' float32 arithmetic) = hand table to 1e-6" rope_table --f32 1e-6

# ---- (e) GQA, head_dim != hidden/heads, mistral ------------------------------------------------
check "make GQA (4 heads, 2 kv, llama3 rope), head_dim 6 with hidden 8 (linear rope), mistral bf16" sh -c "
  '$PY' '$REF' make '$tmp/gqa' --seed 31 --vocab 20 --hidden 16 --layers 2 --heads 4 --kv-heads 2 --intermediate 20 \
     --std 0.4 --norm-std 0.3 --rope-theta 50 --rope-scaling llama3:4,1,4,16 --max-pos 64 --tied 0 &&
  '$PY' '$REF' make '$tmp/hd' --seed 32 --vocab 20 --hidden 8 --layers 2 --heads 2 --kv-heads 1 --head-dim 6 \
     --intermediate 12 --std 0.4 --norm-std 0.3 --rope-theta 100 --rope-scaling linear:2 --tied 1 &&
  '$PY' '$REF' make '$tmp/mis' --seed 33 --arch mistral --vocab 20 --hidden 8 --layers 1 --heads 2 --kv-heads 1 \
     --intermediate 12 --std 0.4 --rope-theta 100 --dtype bf16 --shards 2 --eos 2,3"
check "(e) GQA 4/2 with llama3 rope: forward = naive to 1e-12" forward_vs_naive "$tmp/gqa"
check "(e) GQA 4/2: gradient = finite differences" grad_vs_fd "$tmp/gqa"
check "(e) head_dim 6 (hidden 8, heads 2, kv 1), linear rope: forward = naive to 1e-12" forward_vs_naive "$tmp/hd"
check "(e) head_dim 6: gradient = finite differences" grad_vs_fd "$tmp/hd"
check "(e) head_dim 6: q/k/v/o shapes use head_dim" sh -c "grep -q '\"head_dim\": 6' '$tmp/hd/config.json' &&
  '$PY' -c \"import sys; sys.path.insert(0, '$here'); import hfref; r,_=hfref.load_raw('$tmp/hd'); \
s=[r['model.layers.0.self_attn.%s_proj.weight'%n][1] for n in 'qkvo']; print(s); sys.exit(s!=[[12,8],[6,8],[6,8],[8,12]])\""
check "(e) mistral bf16 sharded, eos list: forward = naive to 1e-12" forward_vs_naive "$tmp/mis"

# ---- (f) IFT token weights: the specification's test vectors ----------------------------------
# Batch of 2, T = 6, loss values ell and mask m fed directly (no model); hfref's differentiable
# torch weighting and hfref_check's loop-written one.  Expected values to 6 decimals (issue 15).
ift_vectors() {
  "$PY" - "$here" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import torch, hfref, hfref_check
m = [[0, 1, 1, 1, 1, 0], [1, 1, 1, 0, 1, 0]]
ell = [[0, .5, 1, .25, 2, 0], [.1, .2, .3, 0, .4, 0]]
want_w = [[0, 1.281457, 1.149971, 0.812634, 0.755938, 0], [1.277682, 1.193225, 0.952620, 0, 0.576472, 0]]
want_Lb, want_L = [0.876434, 0.220697], 0.548565
want_d = [[0, -.142397, -.132689, -.061478, -.109480, 0], [-.137967, -.124769, -.110198, 0, -.096347, 0]]
fails = []
def close(what, got, want, tol=1e-6):
    g = [x for r in got for x in r] if isinstance(got[0], list) else list(got)
    w = [x for r in want for x in r] if isinstance(want[0], list) else list(want)
    d = max(abs(a - b) for a, b in zip(g, w))
    print("%-50s max |difference| %.2g" % (what, d))
    if len(g) != len(w) or not d <= tol:
        fails.append(what)
def torch_ift(gamma):
    lp = -torch.tensor(ell, dtype=torch.float64)
    lp.requires_grad_(True)
    w, Lb = hfref.ift_weights(-lp, torch.tensor(m), gamma)
    L = Lb.mean()
    L.backward()
    return w.detach().tolist(), Lb.detach().tolist(), float(L), lp.grad.tolist()
def naive_dlogp(gamma, h=1e-6):  # central differences of the naive loss in logp = -ell
    out = [[0.0] * 6 for _ in range(2)]
    for b in range(2):
        for t in range(6):
            e = [list(r) for r in ell]
            e[b][t] = ell[b][t] - h; up = hfref_check.naive_ift_loss(e, m, gamma)[0]
            e[b][t] = ell[b][t] + h; dn = hfref_check.naive_ift_loss(e, m, gamma)[0]
            out[b][t] = (up - dn) / (2 * h)
    return out
w, Lb, L, d = torch_ift(.95)
close("hfref  gamma .95: weights", w, want_w)
close("hfref  gamma .95: L_b", Lb, want_Lb)
close("hfref  gamma .95: L", [L], [want_L])
close("hfref  gamma .95: dL/dlogp (autograd)", d, want_d)
close("hfref  gamma 1: L", [torch_ift(1.0)[2]], [0.538889])
w0, _, L0, d0 = torch_ift(0.0)
close("hfref  gamma 0: L", [L0], [0.59375])
close("hfref  gamma 0: weights = mask", w0, m, 0)
close("hfref  gamma 0: dL/dlogp = -1/8 on the answer", d0, [[-0.125 * x for x in r] for r in m], 1e-15)
L, wn, Lbn = hfref_check.naive_ift_loss(ell, m, .95)
close("naive  gamma .95: weights", wn, want_w)
close("naive  gamma .95: L_b", Lbn, want_Lb)
close("naive  gamma .95: L", [L], [want_L])
close("naive  gamma .95: dL/dlogp (finite differences)", naive_dlogp(.95), want_d)
close("naive  gamma 1: L", [hfref_check.naive_ift_loss(ell, m, 1.0)[0]], [0.538889])
close("naive  gamma 0: L", [hfref_check.naive_ift_loss(ell, m, 0.0)[0]], [0.59375])
close("naive  gamma 0: dL/dlogp", naive_dlogp(0.0), [[-0.125 * x for x in r] for r in m])
if fails:
    print("FAIL:", ", ".join(fails))
sys.exit(1 if fails else 0)
EOF
}
check "(f) IFT weights, row losses, loss, dL/dlogp = the test vectors (gamma .95, 1, 0; hfref and naive)" ift_vectors

# ---- (g) IFT on a model: greedy tokens, loss and gradient against the naive implementation -------
ROWS='3,1,4,1,5,9,2,6;2,7,1,8,2,8,1,8'
MASKS='0,0,0,1,1,1,0,1;0,1,1,1,0,1,1,1'
ift_vs_fd() { # dir, embed_grad
  ref grad "$1" --tokens "$ROWS" --mask "$MASKS" --ift 0.3,0.95 --embed-grad "$2" --out "$1.ift$2.json" &&
  chk fd-ift "$1" --tokens "$ROWS" --mask "$MASKS" --ift 0.3,0.95 --embed-grad "$2" --grad "$1.ift$2.json" --per-tensor 2
}
check "(g) IFT (2 rows, lambda .3, gamma .95): x~, loss, autograd = naive finite differences (untied, frozen table)" ift_vs_fd "$tmp/tiny" 0
check "(g) IFT: the same, tied (the head's gradient reaches the embedding, the lookups' does not)" ift_vs_fd "$tmp/tiny_tied" 0
check "(g) IFT with --embed-grad 1 (gradient through both lookups), tied" ift_vs_fd "$tmp/tiny_tied" 1
frozen_differs() { # the frozen table is what makes the embedding gradients differ
  "$PY" - "$tmp/tiny_tied.ift0.json" "$tmp/tiny_tied.ift1.json" "$tmp/tiny.ift0.json" <<'EOF'
import json, sys
a, b, u = (json.load(open(p)) for p in sys.argv[1:4])
e = "model.embed_tokens.weight"
d = max(abs(x - y) for x, y in zip(a["grads"][e], b["grads"][e]))
same = all(a["grads"][n] == b["grads"][n] for n in a["grads"] if n != e)
zero = not any(u["grads"][e])
print("tied: embedding gradient frozen vs embed_grad differs by %.3g; other tensors equal: %s; "
      "untied frozen embedding gradient all zero: %s" % (d, same, zero))
sys.exit(0 if d > 1e-3 and same and zero else 1)
EOF
}
check "(g) frozen table: no embedding gradient untied; tied differs from --embed-grad 1 in the embedding only" frozen_differs
rows_mean() { # several rows: SFT loss and gradient = the mean of the single-row ones
  ref grad "$tmp/tiny" --tokens "$ROWS" --mask "$MASKS" --out "$tmp/sft2.json" &&
  ref grad "$tmp/tiny" --tokens "${ROWS%%;*}" --mask "${MASKS%%;*}" --out "$tmp/sftr0.json" &&
  ref grad "$tmp/tiny" --tokens "${ROWS#*;}" --mask "${MASKS#*;}" --out "$tmp/sftr1.json" &&
  "$PY" - "$tmp/sft2.json" "$tmp/sftr0.json" "$tmp/sftr1.json" <<'EOF'
import json, sys
a, r0, r1 = (json.load(open(p)) for p in sys.argv[1:4])
dl = abs(a["loss"] - (r0["loss"] + r1["loss"]) / 2)
dg = max(abs(x - (y + z) / 2) for n in a["grads"] for x, y, z in zip(a["grads"][n], r0["grads"][n], r1["grads"][n]))
print("2-row SFT loss vs mean of the rows %.3g, gradient %.3g" % (dl, dg))
sys.exit(0 if dl < 1e-14 and dg < 1e-14 else 1)
EOF
}
check "(g) several rows: SFT loss and gradient = mean of the per-row ones (iftrain's mean over rows)" rows_mean

end=$(date +%s)
echo "test_hfref: $fail failure(s), $((end - start)) s"
[ "$fail" -eq 0 ]
