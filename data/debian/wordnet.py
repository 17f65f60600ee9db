"""WordNet 3.0's database files (package wordnet-base), read for
gather_corpus.py and make_instruct.py: the synsets of a part of speech and
its index of lemmas. Lines that start with two spaces are the licence header."""
import os
import re

# WORDNET_DIR: another copy of the database (tests point it at an empty directory)
WORDNET = os.environ.get("WORDNET_DIR") or "/usr/share/wordnet"


def available():
    return os.path.isfile(os.path.join(WORDNET, "data.noun"))


def _lines(name):
    with open(os.path.join(WORDNET, name), encoding="latin-1") as f:
        for line in f:
            if not line.startswith("  "):
                yield line


def synsets(pos):
    """offset -> (lemmas, gloss) of data.POS (pos: noun, verb, adj, adv);
    lemmas with spaces for underscores and without adjective markers."""
    out = {}
    for line in _lines("data." + pos):
        head, _, gloss = line.partition(" | ")
        t = head.split()
        n = int(t[3], 16)
        lemmas = [re.sub(r"\(\w+\)$", "", t[4 + 2 * i]).replace("_", " ") for i in range(n)]
        out[t[0]] = (lemmas, gloss.strip())
    return out


def index(pos):
    """(lemma as in the file, tagsense_cnt, synset offsets most frequent
    sense first) of every lemma of index.POS."""
    out = []
    for line in _lines("index." + pos):
        t = line.split()
        nsyn, p_cnt = int(t[2]), int(t[3])
        out.append((t[0], int(t[5 + p_cnt]), t[-nsyn:]))
    return out
