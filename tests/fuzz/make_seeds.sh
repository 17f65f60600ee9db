#!/bin/sh
# Regenerate the binary seeds of the fuzz targets (the text seeds are kept by
# hand): small data sets from `iftrain prep`, a tiny checkpoint from
# `iftrain train --train.steps=0`, and two tiny Hugging Face model
# directories (sharded with an index, and one file) from tests/hf/hfref.py
# (needs python3-torch) packed as fuzz_hf's directory inputs, and fuzz_tok's
# seeds (python3 alone): small handmade tokenizer.json files using every
# component, lines of tests/tok/corpus.jsonl and id lists, and the
# tokenizers fuzz_tok encodes with, tests/fuzz/tok/*.json: the real ones of
# tests/tok/data cut to their first 1000 merges (every component and added
# token kept).
#   tests/fuzz/make_seeds.sh [IFTRAIN]     (default: ./iftrain of the build)
#   SEEDS="hf" tests/fuzz/make_seeds.sh    only some of: dataset ckpt hf tok
set -eu
here=$(cd "$(dirname "$0")" && pwd)
ift=${1:-./iftrain}
only=${SEEDS:-dataset ckpt hf tok}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
s=$here/seeds
case " $only " in *" dataset "*|*" ckpt "*)
printf '%s\n' '{"prompt":"1+2=","response":"3"}' '{"prompt":"ab","response":"ba"}' \
  '{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}' > "$tmp/sft.jsonl"
printf '%s\n' '{"prompt":"1+1=","chosen":"2","rejected":"3"}' '{"prompt":"x","chosen":"y","rejected":"zz"}' > "$tmp/pairs.jsonl"
"$ift" prep "$tmp/sft.jsonl" -o "$s/dataset/sft.h5" >/dev/null
"$ift" prep "$tmp/pairs.jsonl" -o "$s/dataset/pairs.h5" >/dev/null
"$ift" train --train.steps=0 --model.hidden_size=16 --model.intermediate_size=16 \
  --model.num_hidden_layers=1 --model.num_attention_heads=2 --model.num_key_value_heads=1 \
  --model.max_position_embeddings=8 --train.seq_len=8 --train.batch_size=1 --train.micro_batch=1 \
  --data.train="$s/dataset/sft.h5" --data.eval= --ckpt.dir="$tmp/ck" >/dev/null 2>&1
cp "$tmp"/ck/*.h5 "$s/ckpt/tiny.h5"
ls -l "$s/dataset" "$s/ckpt" ;;
esac
case " $only " in *" hf "*)
PY=
for p in /usr/bin/python3 python3; do "$p" -c 'import torch' 2>/dev/null && { PY=$p; break; }; done
[ -n "$PY" ] || { echo "make_seeds.sh: the hf seeds need python3-torch" >&2; exit 1; }
small="--vocab 8 --hidden 4 --layers 1 --heads 2 --kv-heads 1 --intermediate 4 --max-pos 8 --dtype bf16"
"$PY" "$here/../hf/hfref.py" make "$tmp/sharded" --seed 5 $small --tied 0 --shards 2 >/dev/null
"$PY" "$here/../hf/hfref.py" make "$tmp/single" --seed 6 $small --tied 1 >/dev/null
# byte 2 (directory mode), then the files in fuzz_hf.c's order, separated by HF_SEP
"$PY" - "$tmp" "$s/hf" <<'PY'
import os, sys
tmp, out = sys.argv[1:]
sep = b"\n@@iftrain-fuzz-file@@\n"
files = ["config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors",
         "model-00002-of-00002.safetensors", "model.safetensors"]
for d in ("sharded", "single"):
    parts = [open(os.path.join(tmp, d, f), "rb").read() if os.path.exists(os.path.join(tmp, d, f)) else b""
             for f in files]
    open(os.path.join(out, "dir_" + d), "wb").write(b"\x02" + sep.join(parts))
PY
ls -l "$s/hf" ;;
esac
case " $only " in *" tok "*)
sh "$here/../tok/unpack.sh" "$tmp/tk" >/dev/null
mkdir -p "$here/tok"
python3 - "$tmp/tk" "$here/../tok/corpus.jsonl" "$here/../tok/corpus.sources.tsv" "$s/tok" "$here/tok" <<'PY'
import csv, json, os, sys
tk, corpus, sources, out, real = sys.argv[1:]
def put(name, mode, data):
    open(os.path.join(out, name), "wb").write(bytes([mode]) + data)
def dump(d):
    return json.dumps(d, ensure_ascii=False, separators=(",", ":")).encode()

# The real files cut to the single characters, the <0xNN> bytes, the added
# tokens and the first 1000 merges whose parts are kept; ids renumbered in
# their order, added tokens numbered as the tokenizers library numbers them,
# the template's ids with them.
def trim(src, nmerges=1000):
    d = json.load(open(src, encoding="utf-8"))
    m, added = d["model"], {a["content"] for a in d["added_tokens"]}
    vocab = m["vocab"]
    keep = {t for t in vocab if len(t) == 1 or (len(t) == 6 and t[:3] == "<0x" and t[5] == ">") or t in added}
    if m.get("unk_token"): keep.add(m["unk_token"])
    merges = []
    for x in m["merges"]:
        a, b = x.split(" ", 1) if isinstance(x, str) else x
        if a in keep and b in keep and a + b in vocab:
            keep.add(a + b)
            merges.append(x)
            if len(merges) == nmerges: break
    ids = {t: i for i, t in enumerate(sorted(keep, key=lambda t: vocab[t]))}
    n, ren = len(ids), {}
    for a in d["added_tokens"]:
        if a["content"] in ids: a["id"] = ids[a["content"]]
        else: a["id"], n = n, n + 1
        ren[a["content"]] = a["id"]
    def post(p):
        if p and p.get("type") == "Sequence":
            for q in p["processors"]: post(q)
        if p and p.get("type") == "TemplateProcessing":
            for s in p["special_tokens"].values(): s["ids"] = [ren.get(t, ids.get(t)) for t in s["tokens"]]
    post(d["post_processor"])
    m["vocab"], m["merges"] = ids, merges
    return d
for name, src in (("gpt2", "gpt2"), ("llama3", "llama3_instruct"), ("mistral", "mistral"), ("qwen3", "qwen3")):
    open(os.path.join(real, name + ".json"), "wb").write(dump(trim(os.path.join(tk, src, "tokenizer.json"))))

# Small handmade files with every component
def tok(vocab, merges, added=(), nm=None, pt=None, post=None, dc=None, **model):
    m = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None, "end_of_word_suffix": None,
         "fuse_unk": False, "byte_fallback": False, "ignore_merges": False, "vocab": vocab, "merges": merges}
    m.update(model)
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": list(added), "normalizer": nm,
            "pre_tokenizer": pt, "post_processor": post, "decoder": dc, "model": m}
def add(i, c, special=True, **kw):
    a = {"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": not special,
         "special": special}
    a.update(kw)
    return a
def template(tok_id, tok_str="<s>"):
    return {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": tok_str, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": tok_str, "type_id": 0}}], "pair": [],
            "special_tokens": {tok_str: {"id": tok_str, "ids": [tok_id], "tokens": [tok_str]}}}
chars = list("abcdefghijklmnopqrstuvwxyz0123456789 .,'!?\n") + ["\u2581", "\u00e9", "\u65e5"]
V = {c: i for i, c in enumerate(chars)}
M = []
for a, b in (("t", "h"), ("th", "e"), ("h", "e"), ("\u2581", "t"), ("\u2581t", "he"), ("i", "n"), ("in", "g"), ("e", "r"), ("a", "n"),
             ("1", "2"), ("12", "3"), ("'", "s"), ("\u2581", "a")):
    V.setdefault(a + b, len(V))
    M.append([a, b])
n = len(V)
put("load_small_normalizers", 0, dump(tok(V, M,
    [add(n, "<s>"), add(n + 1, "th e", special=False), add(n + 2, "<x>", lstrip=True, rstrip=True),
     add(n + 3, "ings", special=False, single_word=True)],
    nm={"type": "Sequence", "normalizers": [{"type": "NFKD"}, {"type": "NFD"}, {"type": "NFKC"}, {"type": "NFC"},
        {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}, {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    post=template(n),
    dc={"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"Regex": "\u2581+"}, "content": " "},
        {"type": "Strip", "content": " ", "start": 2, "stop": 1}]})))
put("load_small_split", 0, dump(tok(V, M, [add(n, "<s>"), add(n + 1, "</s>")], pt={"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"String": "."}, "behavior": "MergedWithPrevious", "invert": False},
    {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated", "invert": False},
    {"type": "Split", "pattern": {"Regex": "[aeiou]*"}, "behavior": "MergedWithNext", "invert": False},
    {"type": "Split", "pattern": {"Regex": "\\s"}, "behavior": "Contiguous", "invert": True},
    {"type": "Split", "pattern": {"String": "!"}, "behavior": "Removed", "invert": False},
    {"type": "Digits", "individual_digits": True}]},
    post={"type": "Sequence", "processors": [{"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
          "use_regex": True}, template(n)]}, dc={"type": "Fuse"})))
put("load_small_metaspace", 0, dump(tok(V, M, [add(0, "a", special=False)], pt={"type": "Sequence", "pretokenizers": [
    {"type": "Digits", "individual_digits": False},
    {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}]},
    dc={"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True})))
BV = {}
bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
cs, k = bs[:], 0
for b in range(256):
    if b not in bs: bs.append(b); cs.append(256 + k); k += 1
for b, c in sorted(zip(bs, cs)): BV[chr(c)] = b
BM = []
for a, b in (("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("i", "n"), ("\u0120", "\u0120"), ("\u010a", "\u010a")):
    BV.setdefault(a + b, len(BV))
    BM.append(a + " " + b)
put("load_small_bytelevel", 0, dump(tok(BV, BM, [add(len(BV), "<|end|>"), add(len(BV) + 1, " in", special=False, lstrip=True)],
    pt={"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    post={"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
    dc={"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True})))
put("load_small_split_bytelevel", 0, dump(tok(BV, BM, [add(len(BV), "<|begin|>"), add(len(BV) + 1, "<|eot|>")],
    pt={"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex":
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
        "behavior": "Isolated", "invert": False}, {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
        "use_regex": False}]},
    post={"type": "Sequence", "processors": [{"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
          "use_regex": True}, template(len(BV), "<|begin|>")]},
    dc={"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}, ignore_merges=True)))
SV = {"<unk>": 0, "<s>": 1, "</s>": 2}
for b in range(256): SV["<0x%02X>" % b] = len(SV)
for c in chars: SV.setdefault(c, len(SV))
SM = []
for a, b in (("\u2581", "t"), ("h", "e"), ("\u2581t", "he"), ("\u2581", "\u2581")):
    SV.setdefault(a + b, len(SV))
    SM.append(a + " " + b)
put("load_small_sentencepiece", 0, dump(tok(SV, SM, [add(0, "<unk>"), add(1, "<s>"), add(2, "</s>")],
    nm={"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}, post=template(1),
    dc={"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    unk_token="<unk>", fuse_unk=True, byte_fallback=True)))

# One line of each kind of the corpus (up to 600 bytes), and the edge lines
lines = [json.loads(l)["text"] for l in open(corpus, encoding="utf-8")]
cat = {}
for r in csv.DictReader(open(sources, encoding="utf-8"), delimiter="\t"):
    cat.setdefault(r["category"], []).append(int(r["line"]) - 1)
for c, ls in sorted(cat.items()):
    pick = ls if c == "edge" else [min(ls, key=lambda i: abs(len(lines[i].encode()) - 300))]
    for k, i in enumerate(pick):
        put("text_%s%s" % (c, "_%d" % k if len(pick) > 1 else ""), 1, lines[i].encode()[:600])

# Ids: the first ids, ids around the added tokens, and past the end
def ids(name, l):
    put("ids_" + name, 2, b"".join(bytes([v & 255, v >> 8 & 255, v >> 16 & 255]) for v in l))
ids("first", list(range(4, 80)))
ids("bytes", [4 + 3 + b for b in range(256)])
ids("mixed", [5, 300, 1000, 1050, 1200, 1260, 4300, 4350, 0, 1, 2, 3, 70000, 16777215])
PY
ls -l "$s/tok" "$here/tok" ;;
esac
