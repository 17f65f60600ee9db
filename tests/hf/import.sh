#!/bin/sh
# Hugging Face import against an independent implementation: random HF
# model directories written by tests/hf/hfref.py (PyTorch), their float64
# log-probabilities from hfref.py's own forward, and iftrain's (tests/hf/hflogp)
# after reading the directory directly and through `iftrain import` -- on one
# rank and with the shards split over 2 tensor-parallel ranks; F32, BF16 and
# F16, one file and sharded, tied and untied, GQA.  Then a fine-tuning start
# from a directory on 2 ranks, and every malformed or unsupported input's
# exit code and message.
set -u
fail=0
check() { # description, command...
  desc=$1; shift
  if "$@" >/tmp/iftrain-hf.$$ 2>&1 && ! san_reports; then echo "PASS: $desc"; else
    echo "FAIL: $desc"; sed 's/^/    /' /tmp/iftrain-hf.$$; san_reports && san_print; fail=$((fail+1)); fi
}
# Sanitizer builds: every ASan/UBSan/LSan report of any process (also those
# whose exit code a check does not look at, and MPI ranks) goes to $w/san.PID
# and fails the check it happened in.
san_reports() { ls "$w"/san.* >/dev/null 2>&1; }
san_print() { for f in "$w"/san.*; do echo "    sanitizer report $f:"; head -n 60 "$f" | sed 's/^/      /'; rm -f "$f"; done; }
: "${IFTRAIN:?IFTRAIN must point at the binary}"
: "${MPIRUN_WRAP:?MPIRUN_WRAP must point at tests/mpirun.sh}"
here=$(cd "$(dirname "$0")" && pwd)
HFLOGP=${HFLOGP:-$(dirname "$IFTRAIN")/tests/hf/hflogp}
# Debian's python3 with python3-torch, even when another python3 comes first in PATH
PY=
for p in /usr/bin/python3 python3; do "$p" -c 'import torch' 2>/dev/null && { PY=$p; break; }; done
[ -n "$PY" ] || { echo "FAIL: python3-torch is needed for the reference (apt-get install python3-torch)"; exit 1; }
if [ -z "${IFT_LOCKED:-}" ] && command -v flock >/dev/null; then
  exec env IFT_LOCKED=1 flock "${TMPDIR:-/tmp}/iftrain-mpi-tests.lock" sh "$0" "$@"
fi
IFT_NO_LOCK=1; export IFT_NO_LOCK
w=/tmp/iftrain-hf.$$.d
mkdir -p $w
# --enable-sanitizers (make check): LeakSanitizer on, Open MPI's leaks
# suppressed (Makefile.am, tests/lsan-mpi.supp)
[ -z "${IFT_LSAN_MPI:-}" ] || export $IFT_LSAN_MPI
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$w/san"
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:log_path=$w/san"
export ASAN_OPTIONS UBSAN_OPTIONS
REF="$PY $here/hfref.py"
TOK=1,5,9,13,2,7,30,63,17,4,44,12
small="--vocab 64 --hidden 32 --layers 2 --intermediate 48 --std 0.2"

# close A.json B.json TOL: every log-prob within TOL (absolute)
cat > $w/close.py <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))["logp"]; b = json.load(open(sys.argv[2]))["logp"]
tol = float(sys.argv[3])
assert len(a) == len(b), (len(a), len(b))
d = max(abs(x - y) for x, y in zip(a, b))
print("max |difference| %.3g over %d positions" % (d, len(a)))
sys.exit(0 if d <= tol else 1)
PY
agree() { # name, make-args...: direct read on 1 and 2 ranks (TP 2), and via import
  name=$1; shift
  $REF make $w/$name --seed 7 $small "$@" > /dev/null || return 1
  $REF logits $w/$name --tokens $TOK --out $w/$name.ref.json || return 1
  "$HFLOGP" $w/$name $TOK > $w/$name.1.json || return 1
  $MPIRUN_WRAP 2 "$HFLOGP" $w/$name $TOK 2 > $w/$name.2.json || return 1
  $IFTRAIN import $w/$name -o $w/$name.h5 > /dev/null || return 1
  "$HFLOGP" $w/$name.h5 $TOK > $w/$name.ck.json || return 1
  for k in 1 2 ck; do $PY $w/close.py $w/$name.ref.json $w/$name.$k.json 1e-5 || { echo "    ($k)"; return 1; }; done
}
check "F32, untied, GQA 4/2: logp equal the float64 reference to 1e-5 (1 rank, TP 2, imported)" agree f32 --heads 4 --kv-heads 2 --tied 0 --dtype f32
check "BF16 in 3 shards, tied, GQA 8/2" agree bf16 --heads 8 --kv-heads 2 --tied 1 --dtype bf16 --shards 3
check "F16, untied, multi-head 2/2, Mistral" agree f16 --heads 2 --kv-heads 2 --tied 0 --dtype f16 --arch mistral
# gradcheck A.json B.json TOL: the SFT loss and every tensor's gradient (relative L2)
cat > $w/gradcheck.py <<'PY'
import json, math, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2])); tol = float(sys.argv[3])
assert abs(a["loss"] - b["loss"]) <= tol * abs(b["loss"]), (a["loss"], b["loss"])
assert set(a["grads"]) == set(b["grads"]), set(a["grads"]) ^ set(b["grads"])
worst = max((math.sqrt(sum((x - y) ** 2 for x, y in zip(a["grads"][n], g))) /
             max(math.sqrt(sum(y * y for y in g)), 1e-30), n) for n, g in b["grads"].items())
print("SFT gradients: worst relative L2 difference %.3g (%s) over %d tensors" % (worst[0], worst[1], len(b["grads"])))
sys.exit(0 if worst[0] <= tol else 1)
PY
MASK=0,1,1,1,0,1,1,1,1,1,1,1
grads() { # name: one SFT step's loss and gradients against the float64 autograd
  "$HFLOGP" $w/$1 $TOK 1 $MASK > $w/$1.g.json &&
  $REF grad $w/$1 --tokens $TOK --mask $MASK --out $w/$1.g.ref.json &&
  $PY $w/gradcheck.py $w/$1.g.json $w/$1.g.ref.json 1e-4
}
check "SFT loss and gradients of every tensor equal float64 autograd to 1e-4 (F32, untied, GQA)" grads f32
check "SFT loss and gradients (BF16 sharded, tied: the head's gradient flows into the embedding)" grads bf16
check "BF16 weights convert exactly (the imported checkpoint holds the rounded values)" sh -c "
  $PY - $w/bf16 $w/bf16.h5 <<'PY'
import json, struct, sys, h5py, numpy as np
d, ck = sys.argv[1], sys.argv[2]
idx = json.load(open(d + '/model.safetensors.index.json'))['weight_map']
f = h5py.File(ck, 'r')
for name, file in sorted(idx.items()):
    raw = open(d + '/' + file, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]; h = json.loads(raw[8:8 + n]); e = h[name]
    b0, b1 = e['data_offsets']
    u = np.frombuffer(raw[8 + n + b0:8 + n + b1], dtype='<u2').astype(np.uint32) << 16
    want = u.view(np.float32).reshape(e['shape'])
    got = f['/model/' + name][...]
    assert got.dtype == np.float32 and np.array_equal(got, want), name
print(len(idx), 'tensors bit-exact')
PY"

# a fine-tuning start from a directory (vocab of the shipped byte task)
$IFTRAIN prep --generate arith --seed 3 -n 64 -o $w/a.h5 > /dev/null
check "train --ckpt.init=HF_DIR on 2 ranks (TP 2), then eval --ckpt HF_DIR" sh -c "
  $REF make $w/byte --seed 3 --vocab 264 --hidden 32 --layers 1 --heads 2 --kv-heads 2 --intermediate 64 --max-pos 128 > /dev/null &&
  $MPIRUN_WRAP 2 $IFTRAIN train --train.batch_size=8 --train.micro_batch=4 --train.steps=2 --dist.tp=2 \
    --data.train=$w/a.h5 --data.eval= --ckpt.dir=$w/ft --ckpt.init=$w/byte > $w/ft.log 2>&1 &&
  grep -q 'initial weights from $w/byte' $w/ft.log && test -f $w/ft/step_2.h5 &&
  $IFTRAIN eval --ckpt $w/byte --data $w/a.h5 --max-samples 4 --max-new-tokens 4 | grep -q 'exact match'"
check "eval --ckpt of another model's directory in a changed copy is refused, naming the key" sh -c "
  cp -r $w/byte $w/byte2 && sed -i 's/\"hidden_size\": 32/\"hidden_size\": 64/' $w/byte2/config.json &&
  $IFTRAIN eval --ckpt $w/byte2 --data $w/a.h5 > $w/ft2.log 2>&1
  test \$? -eq 2 && grep -q -e 'config.json implies' -e 'hidden_size' $w/ft2.log"
check "resume from a directory is refused (no optimizer state)" sh -c "
  $IFTRAIN train --train.steps=1 --data.train=$w/a.h5 --data.eval= --ckpt.dir=$w/ft3 --ckpt.resume=$w/byte > $w/ft3.log 2>&1
  test \$? -eq 2 && grep -q 'Hugging Face model directory' $w/ft3.log"

# malformed and unsupported inputs: exit code and message
bad() { # description, expected exit, message, directory setup (shell)
  d=$w/bad$5; rm -rf $d; cp -r $w/f32 $d; sh -c "$4" || return 1
  "$HFLOGP" $d $TOK > $d.log 2>&1; rc=$?
  [ $rc -eq "$2" ] || { echo "    exit $rc, expected $2"; cat $d.log; return 1; }
  grep -q -e "$3" $d.log || { echo "    '$3' not in:"; cat $d.log; return 1; }
  $IFTRAIN import $d -o $d.h5 > $d.imp.log 2>&1; rc=$?
  [ $rc -eq "$2" ] && [ ! -f $d.h5 ] || { echo "    import: exit $rc"; cat $d.imp.log; return 1; }
}
check "truncated safetensors" bad x 2 'model.safetensors' "head -c 3000 $w/f32/model.safetensors > $w/badt/model.safetensors" t
check "header length beyond the file" bad x 2 'header' "printf '\\377\\377\\377\\377\\000\\000\\000\\000' | dd of=$w/badh/model.safetensors bs=1 conv=notrunc 2>/dev/null" h
check "a tensor missing" bad x 2 'has no tensor model.norm.weight' "$PY -c \"
import json, struct
p = '$w/badm/model.safetensors'; raw = open(p, 'rb').read(); n = struct.unpack('<Q', raw[:8])[0]
h = json.loads(raw[8:8 + n]); h['model.xorm.weight'] = h.pop('model.norm.weight')
hb = json.dumps(h).encode(); hb += b' ' * (-len(hb) % 8)
open(p, 'wb').write(struct.pack('<Q', len(hb)) + hb + raw[8 + n:])\"" m
check "a shape that does not match config.json" bad x 2 'config.json implies' "sed -i 's/\"intermediate_size\": 48/\"intermediate_size\": 40/' $w/bads/config.json" s
check "attention_bias true is refused by name" bad x 2 'attention_bias' "sed -i 's/\"attention_bias\": false/\"attention_bias\": true/' $w/bada/config.json" a
check "hidden_act gelu is refused by name" bad x 2 'hidden_act' "sed -i 's/\"silu\"/\"gelu\"/' $w/badg/config.json" g
check "bad config.json" bad x 2 'config.json' "printf '{\"vocab_size\": ' > $w/badj/config.json" j
check "rope_scaling llama3 is not supported yet (exit 3, named)" sh -c "
  $REF make $w/l3 --seed 1 $small --heads 4 --kv-heads 2 --rope-scaling llama3:8,1,4,64 > /dev/null
  $IFTRAIN import $w/l3 -o $w/l3.h5 > $w/l3.log 2>&1; test \$? -eq 3 && grep -q 'rope_scaling (llama3) is not supported yet' $w/l3.log"
check "head_dim != hidden/heads is not supported yet (exit 3, named)" sh -c "
  $REF make $w/hd --seed 1 $small --heads 4 --kv-heads 2 --head-dim 16 > /dev/null
  $IFTRAIN import $w/hd -o $w/hd.h5 > $w/hd.log 2>&1; test \$? -eq 3 && grep -q 'head_dim = 16' $w/hd.log"
check "import refuses to overwrite an existing file" sh -c "
  $IFTRAIN import $w/f32 -o $w/f32.h5 > $w/ow.log 2>&1; test \$? -eq 2 && grep -q 'does not overwrite' $w/ow.log"

check "no sanitizer report outside the checks above" true

[ "${KEEP:-0}" = 1 ] || rm -rf $w
rm -f /tmp/iftrain-hf.$$
[ "$fail" -eq 0 ] || { echo "$fail HF import check(s) failed"; exit 1; }
