#!/bin/sh
# Chat templates against transformers (issue 16): every conversation of
# tests/tok/chat.jsonl rendered by `iftrain tokenize --chat` with each
# template (recognised from the stored tokenizer_config.json where the model
# ships one, named otherwise) must equal the rendering of Python jinja2 in
# transformers' settings, stored by tests/tok/make_chat.js, byte for byte,
# with the same assistant content and end-of-turn byte ranges, and the same
# ids and assistant-only loss mask token by token as the tokenizers library
# and transformers' return_assistant_tokens_mask computation give (stored by
# make_chat.js); a conversation the template refuses must be refused with
# its message.
# Env: IFTRAIN; KEEP=1 keeps the work directory.
set -u
: "${IFTRAIN:?IFTRAIN must point at the binary}"
here=$(cd "$(dirname "$0")" && pwd)
PY=${PYTHON:-python3}
w=${TMPDIR:-/tmp}/iftrain-chat.$$
rm -rf "$w"; mkdir -p "$w"
sh "$here/unpack.sh" "$w/tk" || { echo "FAIL: tests/tok/unpack.sh"; exit 1; }
fail=0
# template (chat.jsonl name) -> tokenizer directory and how the template is chosen
for spec in llama3:llama3: llama3_instruct:llama3_instruct: qwen3:qwen3: \
            llama3_1:llama3_instruct:llama3.1 chatml_smollm2:qwen3:chatml \
            mistral_instruct:mistral:mistral llama2_chat:mistral:llama2 mixtral_instruct:mistral:mixtral; do
  tpl=${spec%%:*}; rest=${spec#*:}; tk=${rest%%:*}; force=${rest#*:}
  opt=; [ -n "$force" ] && opt="--chat-template $force"
  for gen in 0 1; do
    g=; [ $gen = 1 ] && g=--add-generation-prompt
    $PY - "$here/chat.jsonl" "$tpl" $gen > "$w/$tpl.$gen.in" <<'PY'
import json, sys
for l in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(l)
    if r["template"] == sys.argv[2] and int(r["add_generation_prompt"]) == int(sys.argv[3]):
        print(json.dumps({"messages": r["messages"]}))
PY
    "$IFTRAIN" tokenize --tokenizer "$w/tk/$tk" --chat $opt $g < "$w/$tpl.$gen.in" > "$w/$tpl.$gen.out" || {
      echo "FAIL: $tpl (add_generation_prompt $gen): iftrain tokenize exit $?"; fail=$((fail+1)); continue; }
    if $PY - "$here/chat.jsonl" "$tpl" $gen "$w/$tpl.$gen.out" <<'PY'
import json, sys
want = [r for r in map(json.loads, open(sys.argv[1], encoding="utf-8"))
        if r["template"] == sys.argv[2] and int(r["add_generation_prompt"]) == int(sys.argv[3])]
got = [json.loads(l) for l in open(sys.argv[4], encoding="utf-8")]
assert len(want) == len(got), (len(want), len(got))
bad = ntok = nmask = 0
for w, g in zip(want, got):
    if w["error"]:
        if "error" not in g or w["error"] not in g["error"]:
            bad += 1; print("  %s: expected the refusal %r, got %r" % (w["conv"], w["error"], g.get("error", g.get("text", "")[:80])))
        continue
    if "error" in g:
        bad += 1; print("  %s: refused: %s" % (w["conv"], g["error"])); continue
    if g["text"] != w["rendered"]:
        bad += 1
        t, r = g["text"], w["rendered"]
        k = next((i for i in range(min(len(t), len(r))) if t[i] != r[i]), min(len(t), len(r)))
        print("  %s: rendering differs at char %d:\n    want %r\n    got  %r" % (w["conv"], k, r[max(0, k - 30):k + 40], t[max(0, k - 30):k + 40]))
        continue
    spans = [[a["content_bytes"][0], a["content_bytes"][1], a["eot_bytes"][0], a["eot_bytes"][1]] for a in w["assistant"]]
    if spans != g["assistant"]:
        bad += 1; print("  %s: assistant spans %s, expected %s" % (w["conv"], g["assistant"], spans)); continue
    ids = w["ids"] if isinstance(w["ids"], list) else json.loads(w["ids"])
    if g["ids"] != ids:
        k = next((i for i in range(min(len(ids), len(g["ids"]))) if ids[i] != g["ids"][i]), min(len(ids), len(g["ids"])))
        bad += 1; print("  %s: ids differ at token %d" % (w["conv"], k)); continue
    if g["mask"] != w["mask"]:
        d = [i for i in range(len(ids)) if g["mask"][i] != w["mask"][i]]
        bad += 1; print("  %s: assistant-only mask differs at tokens %s" % (w["conv"], d[:8]))
    ntok += len(ids); nmask += w["mask"].count("1")
print("    %d conversations, %d tokens (%d in the assistant mask)%s" % (len(want), ntok, nmask, ", all equal" if not bad else ", %d differ" % bad))
sys.exit(1 if bad else 0)
PY
    then echo "PASS: $tpl (add_generation_prompt $gen)"; else echo "FAIL: $tpl (add_generation_prompt $gen)"; fail=$((fail+1)); fi
  done
done
# an unrecognised template is refused, naming the choices (exit 2)
mkdir -p "$w/odd" && cp "$w/tk/qwen3/tokenizer.json" "$w/odd/" &&
$PY -c "import json, sys; c = json.load(open(sys.argv[1])); c['chat_template'] = c['chat_template'].replace('<|im_start|>', '<|im_start|> '); json.dump(c, open(sys.argv[2], 'w'))" \
  "$w/tk/qwen3/tokenizer_config.json" "$w/odd/tokenizer_config.json"
echo '{"messages": [{"role": "user", "content": "hi"}]}' | "$IFTRAIN" tokenize --tokenizer "$w/odd" --chat > /dev/null 2> "$w/odd.log"
if [ $? -eq 2 ] && grep -q 'not one this build renders (it looks like ChatML)' "$w/odd.log" && grep -q -- '--chat-template=NAME' "$w/odd.log"; then
  echo "PASS: an unrecognised chat_template is refused with the names to choose from"
else echo "FAIL: unrecognised chat_template"; cat "$w/odd.log"; fail=$((fail+1)); fi
[ "${KEEP:-0}" = 1 ] || rm -rf "$w"
[ "$fail" -eq 0 ] || { echo "$fail chat template check(s) failed"; exit 1; }
