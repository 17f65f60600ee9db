#!/bin/sh
# iftrain prep --tokenizer (issue 16): JSONL in every line format prepared
# with the stored real tokenizers (tests/tok/data: Llama 3 Instruct, Qwen3,
# Mistral) and read back with h5py, token by token:
#   messages: ids and assistant-only mask equal to the "ids" and "mask" of
#     tests/tok/chat.jsonl (made by transformers / the HF tokenizers library)
#     for every conversation of the model's template the template accepts;
#   conversational prompt/completion, prompt/response and preference pairs:
#     the same conversations split before their last message, the stored ids,
#     the stored mask kept on the last assistant turn only;
#   plain prompt/completion strings and {"text"}: texts of
#     tests/tok/corpus.jsonl, whose ids (with special tokens) are the stored
#     vectors of the library (tests/tok/vectors), + the EOS; the loss mask
#     against TRL's rule (0 on the ids of the prompt alone, from `iftrain
#     tokenize --add-special`, when they are a prefix of the whole; a token
#     across the boundary is prompt);
#   the data set attributes (tokenizer, tokenizer_sha256, chat_template,
#     tokenizer_source, vocab_size);
#   refusals: a conversation the template refuses, an unrecognised template,
#     no tokenizer_config.json, train/eval with a data set of another
#     tokenizer (both named); a model without a recorded tokenizer is
#     accepted with a warning;
#   end to end: a random Hugging Face model with the Qwen3 tokenizer trained
#     two steps (ckpt.init = its directory) on prepared chat rows, loss finite.
# Env: IFTRAIN, MPIRUN_WRAP; KEEP=1 keeps the work directory.
set -u
. "$(dirname "$0")/../hf/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
REF="$PY $here/../hf/hfref.py"
sh "$here/unpack.sh" "$w/tk" || { echo "FAIL: tests/tok/unpack.sh"; exit 1; }

# the Python checks: py NAME ARGS... runs the block NAME of the heredoc
cat > $w/check.py <<'PY'
import gzip, hashlib, json, math, sys
import h5py

def tok_info(d):
    t = json.load(open(d + "/tokenizer.json", encoding="utf-8"))
    ids = dict(t["model"]["vocab"])
    for a in t.get("added_tokens", []):
        ids[a["content"]] = a["id"]
    vocab = 1 + max(ids.values())
    eos = None
    try:
        c = json.load(open(d + "/tokenizer_config.json", encoding="utf-8"))
        e = c.get("eos_token")
        if isinstance(e, dict):
            e = e.get("content")
        if e is not None:
            eos = ids[e]
    except FileNotFoundError:
        pass
    sha = hashlib.sha256(open(d + "/tokenizer.json", "rb").read()).hexdigest()
    return vocab, eos, sha

def rows(f, g=""):
    off = f[g + "/offsets"][...]
    tok = f[g + "/tokens"][...]
    m = f[g + "/loss_mask"][...]
    return [(tok[off[i]:off[i + 1]].tolist(), m[off[i]:off[i + 1]].tolist()) for i in range(len(off) - 1)]

def attrs(f, tkdir, source, template):
    vocab, eos, sha = tok_info(tkdir)
    a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    want = {"tokenizer": "hf:" + sha, "tokenizer_sha256": sha, "chat_template": template,
            "tokenizer_source": source, "vocab_size": vocab}
    bad = ["%s = %r, expected %r" % (k, a.get(k), v) for k, v in want.items() if a.get(k) != v]
    return bad

def last_run(mask):
    """the mask with only its last run of ones kept"""
    out = [0] * len(mask)
    i = len(mask) - 1
    while i >= 0 and not mask[i]:
        i -= 1
    while i >= 0 and mask[i]:
        out[i] = 1
        i -= 1
    return out

def chat_select(path, tpl):
    out = []
    for l in open(path, encoding="utf-8"):
        r = json.loads(l)
        if (r["template"] == tpl and not r["add_generation_prompt"] and r["error"] is None
                and any(m["role"] == "assistant" for m in r["messages"])):
            if isinstance(r["mask"], str):  # stored as a string of 0 and 1
                r["mask"] = [int(c) for c in r["mask"]]
            out.append(r)
    return out

def cmd_chatin(chat, tpl, out, outsplit):
    rs = chat_select(chat, tpl)
    with open(out, "w", encoding="utf-8") as f:
        for r in rs:
            f.write(json.dumps({"messages": r["messages"]}) + "\n")
    # conversational prompt/completion: split before the last message, an assistant one
    n = 0
    with open(outsplit, "w", encoding="utf-8") as f:
        for r in rs:
            ms = r["messages"]
            if len(ms) >= 2 and ms[-1]["role"] == "assistant":
                f.write(json.dumps({"prompt": ms[:-1], "completion": ms[-1:]}) + "\n")
                n += 1
    print("    %d conversations, %d split for prompt/completion" % (len(rs), n))

def cmd_chatcheck(chat, tpl, h5, tkdir, source, template):
    rs = chat_select(chat, tpl)
    f = h5py.File(h5, "r")
    got = rows(f)
    bad = attrs(f, tkdir, source, template)
    if len(got) != len(rs):
        bad.append("%d rows for %d conversations" % (len(got), len(rs)))
    for r, (t, m) in zip(rs, got):
        if t != r["ids"]:
            k = next((i for i in range(min(len(t), len(r["ids"]))) if t[i] != r["ids"][i]), None)
            bad.append("%s: ids differ at %s (%d vs %d ids)" % (r["conv"], k, len(t), len(r["ids"])))
        elif m != r["mask"]:
            k = next(i for i in range(len(m)) if m[i] != r["mask"][i])
            bad.append("%s: mask differs at token %d: %s, library %s" % (r["conv"], k, m[k:k + 8], r["mask"][k:k + 8]))
    ones = sum(sum(m) for _, m in got)
    print("    %d rows, %d tokens, %d in the loss" % (len(got), sum(len(t) for t, _ in got), ones))
    return bad

def cmd_splitcheck(chat, tpl, h5, kind):
    """prompt/completion (kind main) or pairs (/chosen = main; /rejected shares the prompt)"""
    rs = [r for r in chat_select(chat, tpl) if len(r["messages"]) >= 2 and r["messages"][-1]["role"] == "assistant"]
    f = h5py.File(h5, "r")
    got = rows(f)
    bad = []
    if len(got) != len(rs):
        bad.append("%d rows for %d conversations" % (len(got), len(rs)))
    for r, (t, m) in zip(rs, got):
        want = last_run(r["mask"])
        if t != r["ids"]:
            bad.append("%s: ids differ" % r["conv"])
        elif m != want:
            k = next(i for i in range(len(m)) if m[i] != want[i])
            bad.append("%s: mask differs at token %d: %s, expected %s" % (r["conv"], k, m[k:k + 8], want[k:k + 8]))
    if kind == "pairs":
        ch, rj = rows(f, "/chosen"), rows(f, "/rejected")
        if ch != got:
            bad.append("/chosen differs from the main rows")
        for r, (t, m), (rt, rm) in zip(rs, ch, rj):
            # the rejected row: the chosen row's prompt (up to a token merged
            # with the answer's first characters; Qwen3 moves a <think> block
            # of the answer before it), then one answer run
            a, b = m.index(1), rm.index(1)
            lcp = next((j for j in range(min(len(t), len(rt))) if t[j] != rt[j]), min(len(t), len(rt)))
            if (lcp < min(a, b) - 1 and "<think>" not in r["messages"][-1]["content"]) or rm != last_run(rm) or sum(rm) == 0:
                bad.append("%s: the rejected row does not share its chosen row's prompt or has no single answer run" % r["conv"])
    print("    %d rows" % len(got))
    return bad

def corpus_pick(corpus, vec, n):
    texts = [json.loads(l)["text"] for l in open(corpus, encoding="utf-8")]
    vs = [json.loads(l) for l in gzip.open(vec, "rt", encoding="utf-8")]
    out = []
    for i, (t, v) in enumerate(zip(texts, vs)):
        if "\x00" in t or len(t) > 3000 or len(t) < 8:
            continue
        k = t.find(" ", len(t) // 2)
        if k <= 0 or k >= len(t) - 1:
            continue
        out.append((i, t, k, v))
        if len(out) == n:
            break
    return out

def cmd_plainin(corpus, vec, dirout):
    picks = corpus_pick(corpus, vec, 40)
    with open(dirout + "/pc.jsonl", "w", encoding="utf-8") as f, \
         open(dirout + "/pr.jsonl", "w", encoding="utf-8") as g, \
         open(dirout + "/text.jsonl", "w", encoding="utf-8") as h, \
         open(dirout + "/prompts.jsonl", "w", encoding="utf-8") as p:
        for j, (i, t, k, v) in enumerate(picks):
            f.write(json.dumps({"prompt": t[:k], "completion": t[k:]}) + "\n")
            g.write(json.dumps({"prompt": t[:k], "response": t[k:]}) + "\n")
            h.write(json.dumps({"text": t}) + "\n")
            p.write(json.dumps({"text": t[:k]}) + "\n")

def cmd_plaincheck(corpus, vec, dirout, h5, tkdir, kind, with_eos):
    vocab, eos, sha = tok_info(tkdir)
    if with_eos == "0":
        eos = None
    picks = corpus_pick(corpus, vec, 40)
    got = rows(h5py.File(h5, "r"))
    pids = [json.loads(l)["ids"] for l in open(dirout + "/prompts.out", encoding="utf-8")]
    bad = []
    straddle = 0
    if len(got) != len(picks):
        return ["%d rows for %d texts" % (len(got), len(picks))]
    for (i, t, k, v), (gt, gm), p in zip(picks, got, pids):
        full = list(v["ids_special"])
        want = full + ([eos] if eos is not None and (not full or full[-1] != eos) else [])
        if gt != want:
            bad.append("corpus line %d: ids differ from the library's (+ EOS)" % (i + 1))
            continue
        if kind == "text":
            lead = len(v["ids_special"]) - len(v["ids"])  # what the post-processor adds (BOS) before the text
            if v["ids_special"][lead:lead + len(v["ids"])] != v["ids"]:
                lead = 0
            wm = [0] * lead + [1] * (len(want) - lead)
            if gm != wm:
                bad.append("corpus line %d: text mask %s..., expected %s..." % (i + 1, gm[:6], wm[:6]))
            continue
        if full[:len(p)] == p:
            wm = [0] * len(p) + [1] * (len(want) - len(p))
            if gm != wm:
                bad.append("corpus line %d: mask differs from TRL's (prompt of %d ids)" % (i + 1, len(p)))
        else:
            # a token across the boundary: prompt; the rest after it is answer
            straddle += 1
            a = gm.index(1) if 1 in gm else len(gm)
            lcp = next(j for j in range(len(p)) if j >= len(full) or full[j] != p[j])
            if gm != [0] * a + [1] * (len(gm) - a) or a < lcp or a >= len(gm):
                bad.append("corpus line %d: mask %s around the boundary" % (i + 1, gm[max(0, lcp - 2):lcp + 4]))
    print("    %d rows, %d with a token across the boundary" % (len(got), straddle))
    return bad

def cmd_finite(path):
    ls = [json.loads(l) for l in open(path, encoding="utf-8")]
    losses = [r["loss"] for r in ls if "loss" in r]
    print("    losses %s" % losses)
    return [] if losses and all(math.isfinite(x) for x in losses) else ["no finite loss in %s" % path]

if __name__ == "__main__":
    bad = globals()["cmd_" + sys.argv[1]](*sys.argv[2:])
    for b in bad or []:
        print("    " + b)
    sys.exit(1 if bad else 0)
PY
PYC="/usr/bin/python3 $w/check.py"
py() { $PYC "$@"; }
# $EXPECT RC PATTERN CMD...: exit code RC and PATTERN in the output
cat > $w/expect.sh <<'SH'
rc_want=$1; pat=$2; shift 2
out=$(mktemp)
"$@" > $out 2>&1; rc=$?
[ $rc -eq $rc_want ] || { echo "    exit $rc, expected $rc_want"; sed 's/^/    /' $out; rm -f $out; exit 1; }
grep -q -e "$pat" $out || { echo "    '$pat' not in:"; sed 's/^/    /' $out; rm -f $out; exit 1; }
rm -f $out
SH
EXPECT="sh $w/expect.sh"

# ---- messages and conversational splits, per template
for spec in llama3_instruct:llama3_instruct::llama3-instruct qwen3:qwen3::qwen3 mistral_instruct:mistral:mistral:mistral; do
  tpl=${spec%%:*}; rest=${spec#*:}; tk=${rest%%:*}; rest=${rest#*:}; force=${rest%%:*}; name=${rest#*:}
  opt=; [ -n "$force" ] && opt="--chat-template $force"
  check "$tpl: messages ids and assistant mask equal the library's, attributes" sh -c "
    $PYC chatin $here/chat.jsonl $tpl $w/$tpl.m.jsonl $w/$tpl.pc.jsonl &&
    $IFTRAIN prep $w/$tpl.m.jsonl --tokenizer $w/tk/$tk $opt -o $w/$tpl.m.h5 --quiet &&
    $PYC chatcheck $here/chat.jsonl $tpl $w/$tpl.m.h5 $w/tk/$tk $w/tk/$tk $name"
  check "$tpl: conversational prompt/completion and prompt/response: loss on the completion's assistant turn" sh -c "
    $IFTRAIN prep $w/$tpl.pc.jsonl --tokenizer $w/tk/$tk $opt -o $w/$tpl.pc.h5 --quiet > /dev/null &&
    $PYC splitcheck $here/chat.jsonl $tpl $w/$tpl.pc.h5 main &&
    sed 's/\"completion\":/\"response\":/' $w/$tpl.pc.jsonl > $w/$tpl.pr.jsonl &&
    $IFTRAIN prep $w/$tpl.pr.jsonl --tokenizer $w/tk/$tk $opt -o $w/$tpl.pr.h5 --quiet > /dev/null &&
    $PYC splitcheck $here/chat.jsonl $tpl $w/$tpl.pr.h5 main"
  check "$tpl: conversational preference pairs (prompt messages + chosen / rejected)" sh -c "
    /usr/bin/python3 -c '
import json, sys
for l in open(sys.argv[1], encoding=\"utf-8\"):
    r = json.loads(l)
    print(json.dumps({\"prompt\": r[\"prompt\"], \"chosen\": r[\"completion\"],
                      \"rejected\": [{\"role\": \"assistant\", \"content\": \"No, I will not.\"}]}))' $w/$tpl.pc.jsonl > $w/$tpl.pp.jsonl &&
    $IFTRAIN prep $w/$tpl.pp.jsonl --tokenizer $w/tk/$tk $opt -o $w/$tpl.pp.h5 --quiet > /dev/null &&
    $PYC splitcheck $here/chat.jsonl $tpl $w/$tpl.pp.h5 pairs"
done

# ---- plain strings and text, per tokenizer (ids: the stored vectors)
for tk in llama3_instruct qwen3 mistral; do
  mkdir -p $w/p_$tk
  $PYC plainin $here/corpus.jsonl $here/vectors/$tk.jsonl.gz $w/p_$tk
  "$IFTRAIN" tokenize --tokenizer $w/tk/$tk --add-special < $w/p_$tk/prompts.jsonl > $w/p_$tk/prompts.out
  check "$tk: plain prompt/completion: the library's ids + EOS, loss from the prompt's end" sh -c "
    $IFTRAIN prep $w/p_$tk/pc.jsonl --tokenizer $w/tk/$tk -o $w/p_$tk/pc.h5 --quiet > /dev/null &&
    $PYC plaincheck $here/corpus.jsonl $here/vectors/$tk.jsonl.gz $w/p_$tk $w/p_$tk/pc.h5 $w/tk/$tk pc 1 &&
    $IFTRAIN prep $w/p_$tk/pr.jsonl --tokenizer $w/tk/$tk -o $w/p_$tk/pr.h5 --quiet > /dev/null &&
    $PYC plaincheck $here/corpus.jsonl $here/vectors/$tk.jsonl.gz $w/p_$tk $w/p_$tk/pr.h5 $w/tk/$tk pc 1 &&
    true"
  check "$tk: text: the library's ids + EOS, loss on all but the BOS" sh -c "
    $IFTRAIN prep $w/p_$tk/text.jsonl --tokenizer $w/tk/$tk -o $w/p_$tk/text.h5 --quiet > /dev/null &&
    $PYC plaincheck $here/corpus.jsonl $here/vectors/$tk.jsonl.gz $w/p_$tk $w/p_$tk/text.h5 $w/tk/$tk text 1"
done
check "attributes of a plain set: chat_template none" sh -c "
  /usr/bin/python3 -c '
import h5py, sys
a = h5py.File(sys.argv[1], \"r\").attrs
assert a[\"chat_template\"] in (b\"none\", \"none\"), a[\"chat_template\"]
assert a[\"tokenizer\"].startswith(b\"hf:\" if isinstance(a[\"tokenizer\"], bytes) else \"hf:\")' $w/p_qwen3/pc.h5"

# a token across the boundary (Llama 3: 'Hello' is one token): prompt, reported
printf '{"prompt":"Hel","completion":"lo world"}\n{"prompt":"Hello","completion":" world"}\n' > $w/straddle.jsonl
check "a BPE token across the prompt/completion boundary is prompt (no loss) and counted" sh -c "
  $IFTRAIN prep $w/straddle.jsonl --tokenizer $w/tk/llama3_instruct -o $w/straddle.h5 > $w/straddle.log 2>&1 &&
  grep -q '1 rows have a token across the prompt/completion boundary' $w/straddle.log &&
  /usr/bin/python3 -c '
import h5py, sys
f = h5py.File(sys.argv[1], \"r\")
o, t, m = f[\"offsets\"][...], f[\"tokens\"][...].tolist(), f[\"loss_mask\"][...].tolist()
r0, r1 = (t[o[0]:o[1]], m[o[0]:o[1]]), (t[o[1]:o[2]], m[o[1]:o[2]])
assert r0[0] == r1[0], (r0, r1)          # the same ids: BOS Hello \" world\" EOS
assert r0[1] == [0, 0, 1, 1], r0[1]      # Hello straddles: prompt
assert r1[1] == [0, 0, 1, 1], r1[1]
print(\"    ids\", r0[0])' $w/straddle.h5"

# ---- refusals
/usr/bin/python3 - "$here/chat.jsonl" > $w/refused.jsonl <<'PY'
import json, sys
rs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
bad = next(r for r in rs if r["template"] == "mistral_instruct" and r["error"] and not r["add_generation_prompt"])
good = next(r for r in rs if r["template"] == "mistral_instruct" and not r["error"] and not r["add_generation_prompt"])
print(json.dumps({"messages": good["messages"]}))
print(json.dumps({"messages": bad["messages"]}))
PY
check "a conversation the template refuses is a bad line (FILE:LINE: the template's message); --skip-bad skips it" sh -c "
  $EXPECT 2 'refused.jsonl:2: the chat template (mistral) refuses the conversation' \
    $IFTRAIN prep $w/refused.jsonl --tokenizer $w/tk/mistral --chat-template mistral -o $w/refused.h5 &&
  $EXPECT 0 '1 malformed skipped' $IFTRAIN prep $w/refused.jsonl --tokenizer $w/tk/mistral --chat-template mistral --skip-bad -o $w/refused.h5"
mkdir -p $w/odd && cp $w/tk/qwen3/tokenizer.json $w/odd/ &&
/usr/bin/python3 -c "import json, sys; c = json.load(open(sys.argv[1])); c['chat_template'] = c['chat_template'].replace('<|im_start|>', '<|im_start|> '); json.dump(c, open(sys.argv[2], 'w'))" \
  "$w/tk/qwen3/tokenizer_config.json" "$w/odd/tokenizer_config.json"
check "an unrecognised chat template is an error naming --chat-template; plain lines need none" sh -c "
  $EXPECT 2 'chat-template' $IFTRAIN prep $w/qwen3.m.jsonl --tokenizer $w/odd -o $w/odd.h5 &&
  $EXPECT 0 'chat template none' $IFTRAIN prep $w/p_qwen3/pc.jsonl --tokenizer $w/odd -o $w/odd.h5 &&
  $EXPECT 0 'chat template chatml (--chat-template)' $IFTRAIN prep $w/qwen3.m.jsonl --tokenizer $w/odd --chat-template chatml -o $w/odd.h5 &&
  $EXPECT 2 \"unknown chat template 'nope'\" $IFTRAIN prep $w/qwen3.m.jsonl --tokenizer $w/odd --chat-template nope -o $w/odd.h5"
mkdir -p $w/bare && cp $w/tk/qwen3/tokenizer.json $w/bare/
check "a bare tokenizer.json: text lines without EOS, conversations refused" sh -c "
  $EXPECT 0 'rows written' $IFTRAIN prep $w/p_qwen3/text.jsonl --tokenizer $w/bare/tokenizer.json -o $w/bare.h5 &&
  $PYC plaincheck $here/corpus.jsonl $here/vectors/qwen3.jsonl.gz $w/p_qwen3 $w/bare.h5 $w/bare text 0 &&
  $EXPECT 2 'no tokenizer_config.json' $IFTRAIN prep $w/qwen3.m.jsonl --tokenizer $w/bare/tokenizer.json -o $w/bare.h5"
check "preference and other lines mixed, and the implicit-prompt form, are refused" sh -c "
  head -1 $w/qwen3.pp.jsonl > $w/mix.jsonl && head -1 $w/qwen3.m.jsonl >> $w/mix.jsonl &&
  $EXPECT 2 'mix.jsonl:2: preference lines' $IFTRAIN prep $w/mix.jsonl --tokenizer $w/tk/qwen3 -o $w/mix.h5 &&
  echo '{\"chosen\": [{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"a\"}], \"rejected\": [{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"b\"}]}' > $w/impl.jsonl &&
  $EXPECT 2 'without \"prompt\"' $IFTRAIN prep $w/impl.jsonl --tokenizer $w/tk/qwen3 -o $w/impl.h5"
check "the byte tokenizer also reads {text} and {prompt, completion}" sh -c "
  printf '{\"text\":\"ab\"}\n{\"prompt\":\"p\",\"completion\":\"c\"}\n' > $w/b.jsonl &&
  $IFTRAIN prep $w/b.jsonl -o $w/b.h5 --quiet > /dev/null &&
  /usr/bin/python3 -c '
import h5py, sys
f = h5py.File(sys.argv[1], \"r\")
assert f.attrs[\"tokenizer\"] in (b\"bytes-v1\", \"bytes-v1\")
assert f[\"tokens\"][...].tolist() == [257, 97, 98, 258, 257, 112, 261, 99, 258]
assert f[\"loss_mask\"][...].tolist() == [0, 1, 1, 1, 0, 0, 0, 1, 1]' $w/b.h5"

# ---- many ranks: each converts its share of the lines, the rows are written together
cat > $w/same.sh <<'SH'
# same.sh A.h5 B.h5 [other-source]: the same rows and attributes (content_sha256, the
# source hash unless the sources differ, tokenizer)
/usr/bin/python3 - "$@" <<'PY'
import h5py, sys
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
for k in ("content_sha256", "tokenizer", "chat_template", "vocab_size") + (("sha256",) if len(sys.argv) < 4 else ()):
    assert (a.attrs.get(k) == b.attrs.get(k)), (k, a.attrs.get(k), b.attrs.get(k))
for d in ("tokens", "offsets", "loss_mask"):
    assert (a[d][...] == b[d][...]).all(), d
print("FIG %s: %d rows, content_sha256 %s" % (sys.argv[2].rsplit("/", 1)[-1], a["offsets"].shape[0] - 1, str(a.attrs["content_sha256"])[:18]))
PY
SH
check "2 and 3 ranks write the data set 1 rank writes (Qwen3 chat, preference pairs)" sh -c "
  for f in qwen3.m qwen3.pp; do
    for i in 1 2 3 4 5 6; do cat $w/\$f.jsonl; done > $w/\$f.x6.jsonl &&
    $IFTRAIN prep $w/\$f.x6.jsonl --tokenizer $w/tk/qwen3 -o $w/\$f.r1.h5 --quiet > /dev/null &&
    for P in 2 3; do
      $MPIRUN_WRAP \$P $IFTRAIN prep $w/\$f.x6.jsonl --tokenizer $w/tk/qwen3 -o $w/\$f.r\$P.h5 --quiet > /dev/null &&
      sh $w/same.sh $w/\$f.r1.h5 $w/\$f.r\$P.h5 || exit 1
    done
  done"
check "on 2 ranks the file's first bad line is the one reported; --skip-bad skips the same lines" sh -c "
  n=\$(wc -l < $w/qwen3.m.x6.jsonl) &&
  awk -v n=\$n '{print} NR==5{print \"{not json\"} NR==n-3{print \"[1]\"}' $w/qwen3.m.x6.jsonl > $w/bad2.jsonl &&
  $EXPECT 2 'bad2.jsonl:6:2: ' $MPIRUN_WRAP 2 $IFTRAIN prep $w/bad2.jsonl --tokenizer $w/tk/qwen3 -o $w/bad2.h5 &&
  awk -v n=\$n '{print} NR==n-3{print \"[1]\"}' $w/qwen3.m.x6.jsonl > $w/bad3.jsonl &&
  $EXPECT 2 \"bad3.jsonl:\$((n-2)): each line must be a JSON object\" $MPIRUN_WRAP 2 $IFTRAIN prep $w/bad3.jsonl --tokenizer $w/tk/qwen3 -o $w/bad3.h5 &&
  test ! -e $w/bad2.h5 && test ! -e $w/bad3.h5 &&
  $MPIRUN_WRAP 2 $IFTRAIN prep $w/bad2.jsonl --tokenizer $w/tk/qwen3 -o $w/skip2.h5 --skip-bad --quiet | grep -q ', 2 malformed skipped' &&
  sh $w/same.sh $w/qwen3.m.r1.h5 $w/skip2.h5 other-source"

# ---- train and eval: the tokenizer must be the model's; end to end
V=$(/usr/bin/python3 -c "import sys; sys.path.insert(0, '$w'); import check; print(check.tok_info('$w/tk/qwen3')[0])")
$REF make $w/hfq --seed 5 --vocab $V --hidden 16 --layers 1 --heads 2 --intermediate 32 --max-pos 128 > /dev/null &&
  cp $w/tk/qwen3/tokenizer.json $w/tk/qwen3/tokenizer_config.json $w/hfq/
head -4 $w/qwen3.m.jsonl > $w/q4.jsonl
tr1="--train.steps=2 --train.batch_size=2 --train.micro_batch=1 --train.seq_len=64 --data.eval= --quiet"
check "end to end: prep --tokenizer (Qwen3 chat) -> train --ckpt.init=HF_DIR 2 steps, loss finite" sh -c "
  $IFTRAIN prep $w/q4.jsonl --tokenizer $w/hfq --max-len 64 -o $w/q4.h5 --quiet > /dev/null &&
  $MPIRUN_WRAP 1 $IFTRAIN train $tr1 --ckpt.init=$w/hfq --data.train=$w/q4.h5 --ckpt.dir=$w/run1 --metrics.path=$w/run1.jsonl > $w/run1.log 2>&1 &&
  $PYC finite $w/run1.jsonl"
$IFTRAIN prep --generate arith -n 16 -o $w/arith.h5 > /dev/null
$IFTRAIN prep $w/llama3_instruct.m.jsonl --tokenizer $w/tk/llama3_instruct --max-len 64 -o $w/l3.h5 --quiet > /dev/null
SQ=$(sha256sum < $w/tk/qwen3/tokenizer.json | cut -c1-64); SL=$(sha256sum < $w/tk/llama3_instruct/tokenizer.json | cut -c1-64)
check "train refuses hf data for a model iftrain built (bytes-v1)" \
  $EXPECT 2 "holds ids of the Hugging Face tokenizer hf:$SQ (prepared with --tokenizer $w/hfq), but the model built from the model.\* settings uses iftrain's byte tokenizer" \
  $IFTRAIN train $tr1 --data.train=$w/q4.h5 --ckpt.dir=
check "train refuses bytes-v1 data for a Hugging Face model" \
  $EXPECT 2 "holds ids of iftrain's byte tokenizer bytes-v1, but the model $w/hfq uses the Hugging Face tokenizer hf:$SQ" \
  $IFTRAIN train $tr1 --ckpt.init=$w/hfq --data.train=$w/arith.h5 --ckpt.dir=
check "train refuses data of another Hugging Face tokenizer, naming both hashes and sources" sh -c "
  $EXPECT 2 'data set tokenizer.json sha256 $SL (tokenizer_source $w/tk/llama3_instruct), model $w/hfq tokenizer.json sha256 $SQ (source directory $w/hfq)' \
    $IFTRAIN train $tr1 --ckpt.init=$w/hfq --data.train=$w/l3.h5 --ckpt.dir="
check "eval refuses a data set of another tokenizer" \
  $EXPECT 2 "holds ids of iftrain's byte tokenizer" $IFTRAIN eval --ckpt $w/hfq --data $w/arith.h5 --max-samples 2 --max-new-tokens 2
check "a model without a recorded tokenizer accepts hf data whose vocab fits, with a warning" sh -c "
  cp -r $w/hfq $w/hfn && rm $w/hfn/tokenizer.json &&
  $EXPECT 0 'records no tokenizer' $MPIRUN_WRAP 1 $IFTRAIN train $tr1 --ckpt.init=$w/hfn --data.train=$w/q4.h5 --ckpt.dir="
finish "prep --tokenizer"
