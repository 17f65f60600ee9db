#!/usr/bin/env python3
"""Instruction and preference data from WordNet 3.0 (package wordnet-base).

For each selected word a multi-turn conversation of up to three questions, in
the order asked:
  What does "W" mean?        -> the definition of W's most frequent sense
  Use "W" in a sentence.     -> WordNet's first example sentence that contains W
  Give a synonym of "W".     -> the first other lemma of W's most frequent sense
                                that has one
(a turn is left out when WordNet has no answer for it). Every assistant turn
also gives a preference pair: the conversation so far as the prompt, the right
answer as chosen and a plausible wrong one as rejected — the definition of
another sense of W (or, for a word with one sense, of its neighbour in the
word list), the neighbour's example sentence, the neighbour's synonym.

Words: single lower-case alphabetic lemmas of 3+ letters that occur in
WordNet's sense-tagged corpus (tagsense_cnt >= 1), so the questions are about
ordinary words. The split is *by word* (a hash of the word): held-out questions
are about words no training conversation mentions as the asked word.

Output in OUT: sft_train.jsonl / sft_test.jsonl ({"messages": [...]}),
pref_train.jsonl / pref_test.jsonl ({"prompt": [...], "chosen": [...],
"rejected": [...]}, message lists), qa_test.jsonl (every held-out turn as its
own row: {"prompt": [the conversation so far], "completion": [the answer]},
for exact match and ROUGE-L of the one answer), words_test.txt and stats.json.
Deterministic.

  python3 data/debian/make_instruct.py -o runs/wn/instruct [--test 0.1]
"""
import argparse
import hashlib
import json
import os
import re
import sys

import wordnet

POS = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}


def split_gloss(gloss):
    """(definition, [examples]) of a WordNet gloss: quoted parts are examples."""
    parts = re.findall(r'"[^"]*"|[^;]+', gloss)
    defs, ex = [], []
    for p in parts:
        p = p.strip()
        if not p:
            continue
        if p.startswith('"'):
            e = p.strip('"').strip()
            if e:
                ex.append(e)
        else:
            defs.append(p)
    return "; ".join(defs).strip(), ex


def load(pos):
    syn = {off: (lemmas,) + split_gloss(gloss) for off, (lemmas, gloss) in wordnet.synsets(pos).items()}
    return syn, wordnet.index(pos)


def contains_word(sentence, w):
    return re.search(r"\b%s\b" % re.escape(w), sentence, re.I) is not None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", required=True)
    ap.add_argument("--test", type=float, default=0.1, help="fraction of words held out")
    a = ap.parse_args()
    if not 0 < a.test < 1:
        ap.error(f"--test {a.test}: a fraction of the words, between 0 and 1 (e.g. 0.1)")
    if not wordnet.available():
        sys.exit("make_instruct: %s/data.noun not found\n  hint: apt-get install wordnet-base" % wordnet.WORDNET)
    # word -> its senses over all parts of speech, most frequent part of speech first
    senses = {}
    for pos in POS:
        syn, index = load(pos)
        for lemma, tagged, offsets in index:
            if not re.fullmatch(r"[a-z]{3,}", lemma):
                continue
            senses.setdefault(lemma, []).append((tagged, [syn[o] for o in offsets]))
    words = {}
    for w, per_pos in senses.items():
        if max(t for t, _ in per_pos) < 1:
            continue
        per_pos.sort(key=lambda x: -x[0])
        words[w] = [s for _, ss in per_pos for s in ss if s[1]]
    order = sorted(words)

    def answers(w):
        ss = words[w]
        meaning = ss[0][1] + "."
        example = next((e for _, _, ex in ss for e in ex if contains_word(e, w)), None)
        synonym = next((l for ls, _, _ in ss for l in ls if l.lower() != w), None)
        return meaning, example, synonym

    ans = {w: answers(w) for w in order}
    os.makedirs(a.out, exist_ok=True)
    outs = {n: open(os.path.join(a.out, n + ".jsonl.tmp"), "w", encoding="utf-8")
            for n in ("sft_train", "sft_test", "pref_train", "pref_test", "qa_test")}
    stats = {"words": {"train": 0, "test": 0}, "turns": {"train": 0, "test": 0},
             "pairs": {"train": 0, "test": 0}, "rejected_from": {"other_sense": 0, "neighbour": 0}}
    test_words = []
    for i, w in enumerate(order):
        h = int.from_bytes(hashlib.sha256(w.encode()).digest()[:8], "big") / 2.0 ** 64
        split = "test" if h < a.test else "train"
        meaning, example, synonym = ans[w]
        # the neighbour: the next word in the list with the answer needed (wrapping)
        def neighbour(k):
            for j in range(1, len(order)):
                v = order[(i + j) % len(order)]
                if ans[v][k] and ans[v][k] != ans[w][k]:
                    return ans[v][k]
            return None
        other = next((d + "." for _, d, _ in words[w][1:] if d + "." != meaning), None)
        if other:
            stats["rejected_from"]["other_sense"] += 1
        else:
            other = neighbour(0)
            stats["rejected_from"]["neighbour"] += 1
        turns = [('What does "%s" mean?' % w, meaning, other)]
        if example:
            turns.append(('Use "%s" in a sentence.' % w, example, neighbour(1)))
        if synonym:
            turns.append(('Give a synonym of "%s".' % w, synonym, neighbour(2)))
        msgs = []
        for q, right, wrong in turns:
            msgs.append({"role": "user", "content": q})
            if split == "test":
                outs["qa_test"].write(json.dumps(
                    {"prompt": list(msgs), "completion": [{"role": "assistant", "content": right}]},
                    ensure_ascii=False) + "\n")
            if wrong:
                outs["pref_" + split].write(json.dumps(
                    {"prompt": list(msgs), "chosen": [{"role": "assistant", "content": right}],
                     "rejected": [{"role": "assistant", "content": wrong}]}, ensure_ascii=False) + "\n")
                stats["pairs"][split] += 1
            msgs.append({"role": "assistant", "content": right})
        outs["sft_" + split].write(json.dumps({"messages": msgs}, ensure_ascii=False) + "\n")
        stats["words"][split] += 1
        stats["turns"][split] += len(turns)
        if split == "test":
            test_words.append(w)
    for f in outs.values():
        f.close()
    for n in outs:
        os.replace(os.path.join(a.out, n + ".jsonl.tmp"), os.path.join(a.out, n + ".jsonl"))
    with open(os.path.join(a.out, "words_test.txt"), "w") as f:
        f.write("\n".join(test_words) + "\n")
    with open(os.path.join(a.out, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1)
        f.write("\n")
    print("make_instruct: %d train words (%d turns, %d pairs), %d held-out words (%d turns, %d pairs) -> %s"
          % (stats["words"]["train"], stats["turns"]["train"], stats["pairs"]["train"],
             stats["words"]["test"], stats["turns"]["test"], stats["pairs"]["test"], a.out),
          file=sys.stderr)


if __name__ == "__main__":
    main()
