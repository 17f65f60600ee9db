#!/usr/bin/env python3
"""Gather a pretraining corpus of real English text from Debian packages.

Sources (all text written by others, none by this project):
  wordnet  WordNet 3.0 (package wordnet-base): one document per lemma and part
           of speech, laid out as the `wn -over` command prints it (senses,
           synonyms, gloss with its examples)
  man      the English manual pages under /usr/share/man/man[1-9] of every
           installed package, decompressed, roff/mdoc markup stripped
  doc      /usr/share/doc: copyright files (licences), README, NEWS and other
           plain-text documentation, decompressed

Documents are deduplicated (whole documents by normalised text, and paragraphs
of 200+ characters seen before are dropped, so the GPL's text appears once, not
hundreds of times), cut at paragraph boundaries into pieces of at most
--max-chars characters (so no piece is truncated by the sequence length), and
split into train and held-out *by document* (a hash of the document's source
path decides; every piece of a document goes to the same side).

Output: OUT/train.jsonl and OUT/heldout.jsonl ({"text": ...} lines, the format
`iftrain prep` reads), OUT/sources.tsv (one line per document: split, source,
path, pieces, characters) and OUT/stats.json (counts and sizes per source), and
OUT/packages.txt (the packages whose files were used, with versions). Only files of
packages in Debian's archive are read (dpkg's file lists name the owner, apt's
package lists the archive): a package installed from elsewhere is left out and
counted.
The pieces are written in a seeded random order (any prefix samples every
source). Deterministic: the same installed packages give byte-identical files.

  python3 data/debian/gather_corpus.py -o runs/corpus [--heldout 0.02] [--max-chars 1800]
"""
import argparse
import gzip
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import time

import wordnet

MAN = "/usr/share/man"
DOC = "/usr/share/doc"
POS = [("noun", "noun"), ("verb", "verb"), ("adj", "adj"), ("adv", "adv")]


# ---------------------------------------------------------------- WordNet
def wordnet_documents():
    """(path, text) per lemma and part of speech, as `wn LEMMA -overX` lays it out."""
    for pos, name in POS:
        syn = wordnet.synsets(pos)
        for raw, _, offsets in wordnet.index(pos):
            lemma = raw.replace("_", " ")
            n = len(offsets)
            lines = ["Overview of %s %s" % (name, lemma), "",
                     "The %s %s has %d sense%s" % (name, lemma, n, "" if n == 1 else "s"), ""]
            for i, off in enumerate(offsets):
                lemmas, gloss = syn[off]
                lines.append("%d. %s -- (%s)" % (i + 1, ", ".join(lemmas), gloss))
            yield "wordnet:%s:%s" % (pos, raw), "\n".join(lines)


# ---------------------------------------------------------------- roff
ESCAPES = {"em": "\u2014", "en": "\u2013", "aq": "'", "dq": '"', "bu": "\u2022", "co": "\u00a9",
           "lq": "\u201c", "rq": "\u201d", "oq": "\u2018", "cq": "\u2019", "hy": "-", "mi": "-",
           "pl": "+", "eq": "=", "ga": "`", "ti": "~", "ha": "^", "rs": "\\", "sl": "/", "lh": "",
           "rh": "", "tm": "(TM)", "rg": "(R)", "de": "\u00b0", "mu": "\u00d7", "<=": "<=", ">=": ">=",
           "->": "->", "<-": "<-", "ua": "^", "da": "v", "Fo": "\u00ab", "Fc": "\u00bb", "ba": "|",
           "br": "|", "ul": "_", "ru": "_", "bv": "|", "ss": "\u00df", "ct": "\u00a2"}
INLINE = re.compile(r"\\(?:f(?:\[[^\]]*\]|\(..|.)|\((..)|\[([^\]]*)\]|\*(?:\[[^\]]*\]|\(..|.)"
                    r"|s[-+]?\d+|s\(\d\d|[nk](?:\[[^\]]*\]|\(..|.)|[hvwoNlLxDbZHSRXYz]'[^']*'"
                    r"|(.))")
# request names whose arguments are not text (definitions, registers, layout)
SKIP_REQ = set("TH Dt Dd Os Sm de am ds nr rr so if ie el ig tr ta hy nh ad na ll pl ns rs ne ps vs "
               "ss cs bp pn po mk rt lf cc c2 ec eo ev ie ftr fam hw ch wh it em rm rn als als do "
               "ab tm mso pso cu ul ss in ti ce fi nf br sp PD UC ft Pp LP PP P RS RE HP ".split())
# mdoc(7): macros callable inside a line; name -> (text before, text after the
# macro's words, enclosing until the end of the line or the closing macro)
MDOC_DROP = set("Ar Cm Nm Pa Em Sy Li Va Ev Dv Er Ic Fn Fa Ft Fo Fc Vt Tn Bx At Ms Sx Mt Lk Ad An Cd "
                "Ot Bk Ek Bf Ef Ta No Ns Pf Sm Es En Ex Rv Lb In Ap Dl D1 Nd".split())
MDOC_WRAP = {"Op": ("[", "]"), "Oo": ("[", None), "Oc": (None, "]"), "Dq": ("\u201c", "\u201d"),
             "Qq": ('"', '"'), "Sq": ("'", "'"), "Ql": ("'", "'"), "Pq": ("(", ")"), "Aq": ("<", ">"),
             "Bq": ("[", "]"), "Brq": ("{", "}"), "Do": ("\u201c", None), "Dc": (None, "\u201d"),
             "Po": ("(", None), "Pc": (None, ")"), "Qo": ('"', None), "Qc": (None, '"'),
             "So": ("'", None), "Sc": (None, "'")}
MDOC_NAMES = MDOC_DROP | set(MDOC_WRAP) | {"Fl", "Xr", "Ux"}


def mdoc_line(req, words, page_name):
    """Text of one mdoc line: the request and its words, callable macros expanded."""
    out, closers, glue = [], [], False
    toks = [req] + words
    i = 0
    while i < len(toks):
        t = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else None
        piece = None
        if t == "Ns":
            glue = True
        elif t == "Fl":
            if nxt is None or nxt in MDOC_NAMES:
                piece = "-"
            else:
                piece = "-" + nxt
                i += 1
        elif t == "Xr" and nxt is not None:
            sec = toks[i + 2] if i + 2 < len(toks) else ""
            piece = "%s(%s)" % (nxt, sec) if sec and sec not in MDOC_NAMES else nxt
            i += 2 if sec and sec not in MDOC_NAMES else 1
        elif t == "Nm" and (nxt is None or nxt in MDOC_NAMES):
            piece = page_name
        elif t == "Nd":
            piece = "-"
        elif t == "Ux":
            piece = "UNIX"
        elif t in MDOC_WRAP:
            before, after = MDOC_WRAP[t]
            if before:
                out.append(("", before.encode().decode("unicode_escape")))
                glue = True
            if after and before:
                closers.append(after.encode().decode("unicode_escape"))
            elif after:
                out.append(("", after.encode().decode("unicode_escape")))
        elif t in MDOC_DROP or (i == 0 and re.fullmatch(r"[A-Z][a-z][a-z]?", t)):
            pass
        else:
            piece = t
        if piece is not None:
            out.append(("" if glue else " ", piece))
            glue = False
        i += 1
    for c in reversed(closers):
        out.append(("", c))
    text = "".join(sep + w for sep, w in out).strip()
    return re.sub(r" ([,.;:)\]])", r"\1", text)


PARA_REQ = set("PP LP P Pp IP TP HP sp br SH SS Sh Ss RS RE nf fi Bl El It Bd Ed".split())


def roff_inline(s):
    def rep(m):
        if m.group(1) is not None:
            return ESCAPES.get(m.group(1), "")
        if m.group(2) is not None:
            return ESCAPES.get(m.group(2), "")
        c = m.group(3)
        if c is None:
            return ""
        return {"-": "-", "e": "\\", "\\": "\\", " ": " ", "~": " ", "0": " ", "&": "", "|": "",
                "^": "", "c": "", "%": "", "/": "", ",": "", "'": "'", "`": "`", ".": ".",
                "\n": "", "t": " ", "a": ""}.get(c, "")
    return INLINE.sub(rep, s)


def roff_args(rest):
    """The arguments of a request, quotes removed."""
    args = re.findall(r'"((?:[^"]|"")*)"|(\S+)', rest)
    return [(a or b).replace('""', '"') for a, b in args]


def strip_roff(src):
    """Plain text of a man page in man(7) or mdoc(7) markup; None for a .so link."""
    out, para = [], []
    page_name = ""

    def flush():
        if para:
            out.append(" ".join(para))
            para.clear()
    lines = src.replace("\\\n", "").split("\n")
    for i, line in enumerate(lines):
        if line.startswith((".\\\"", "'\\\"", "\\\"", ".\\#")) or line.strip() in (".", "'"):
            continue
        if line.startswith((".", "'")):
            m = re.match(r"[.']\s*(\S+)\s*(.*)", line)
            if not m:
                continue
            req, rest = m.group(1), m.group(2)
            if req == "so" and i < 5:
                return None
            if req in PARA_REQ:
                flush()
            if req in ("SH", "Sh", "SS", "Ss"):
                t = roff_inline(" ".join(roff_args(rest))).strip()
                if t:
                    out.append(t)
                continue
            if req in SKIP_REQ or req in PARA_REQ and req not in ("IP", "It", "TP", "HP"):
                continue
            words = roff_args(rest)
            if req == "Nm" and words and not page_name:
                page_name = words[0]
            if req in MDOC_NAMES or re.fullmatch(r"[A-Z][a-z][a-z]?", req) and req not in ("IP", "TP"):
                text = roff_inline(mdoc_line(req, words, page_name))
            else:
                # alternating-font requests (.BR name (1)) join their words without spaces
                sep = "" if req in ("BR", "IR", "RB", "RI", "BI", "IB") else " "
                text = roff_inline(sep.join(words)).strip()
            if text:
                para.append(text)
            continue
        t = roff_inline(line).strip()
        if t:
            para.append(t)
        else:
            flush()
    flush()
    return "\n\n".join(p for p in out if p.strip())


def man_documents():
    for sec in sorted(os.listdir(MAN)):
        if not re.fullmatch(r"man[1-9]", sec):
            continue
        d = os.path.join(MAN, sec)
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            text = read_text(path)
            if text is None:
                continue
            plain = strip_roff(text)
            if plain:
                yield "man:%s/%s" % (sec, name), plain


# ---------------------------------------------------------------- /usr/share/doc
DOC_NAME = re.compile(r"(copyright|README[^/]*|NEWS[^/]*|[^/]*\.txt|[^/]*\.md|FAQ[^/]*|AUTHORS|THANKS)"
                      r"(\.gz)?$", re.I)


def doc_documents():
    for root, dirs, files in os.walk(DOC):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            if os.path.islink(path) or not DOC_NAME.fullmatch(name) or "changelog" in name.lower():
                continue
            text = read_text(path)
            if text is None or "\x00" in text:
                continue
            text = "\n".join(line.rstrip() for line in text.split("\n")).strip()
            if len(text) >= 200:
                yield "doc:" + os.path.relpath(path, DOC), text


# ---------------------------------------------------------------- packages
def file_owners():
    """installed file path -> package, from dpkg's file lists."""
    owner = {}
    info = "/var/lib/dpkg/info"
    for name in sorted(os.listdir(info)):
        if name.endswith(".list"):
            pkg = name[:-5].split(":")[0]
            with open(os.path.join(info, name), encoding="utf-8", errors="replace") as f:
                for line in f:
                    owner[line.rstrip("\n")] = pkg
    return owner


def debian_archive_packages():
    """Names of the packages in the Debian archives apt knows (its package lists,
    decompressed by apt-helper): files of packages from elsewhere are left out."""
    names = set()
    lists = "/var/lib/apt/lists"
    for name in sorted(os.listdir(lists)):
        if "debian.org_debian" not in name or "_Packages" not in name:
            continue
        r = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", os.path.join(lists, name)],
                           capture_output=True, text=True)
        names.update(m.group(1) for m in re.finditer(r"^Package: (\S+)", r.stdout, re.M))
    return names


# ---------------------------------------------------------------- common
def read_text(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if path.endswith(".gz"):
            raw = gzip.decompress(raw)
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return None


def normalise(s):
    return re.sub(r"\s+", " ", s).strip().lower()


def paragraphs(text):
    return [p.strip("\n") for p in re.split(r"\n\s*\n", text) if p.strip()]


def pieces(paras, max_chars):
    """Paragraphs joined into pieces of at most max_chars (a longer paragraph is
    cut at whitespace)."""
    out, cur = [], ""
    for p in paras:
        while len(p) > max_chars:
            cut = p.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            if cur:
                out.append(cur)
                cur = ""
            out.append(p[:cut].rstrip())
            p = p[cut:].lstrip()
        if cur and len(cur) + 2 + len(p) > max_chars:
            out.append(cur)
            cur = ""
        cur = cur + "\n\n" + p if cur else p
    if cur:
        out.append(cur)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", required=True, help="output directory")
    ap.add_argument("--heldout", type=float, default=0.02, help="fraction of documents held out")
    ap.add_argument("--max-chars", type=int, default=1800, help="longest piece in characters")
    ap.add_argument("--sources", default="wordnet,man,doc", help="comma-separated subset")
    a = ap.parse_args()
    if not 0 < a.heldout < 1:
        ap.error(f"--heldout {a.heldout}: a fraction of the documents, between 0 and 1 (e.g. 0.02)")
    if a.max_chars < 200:
        ap.error(f"--max-chars {a.max_chars}: pieces are cut at paragraphs; give 200 or more (e.g. 1200)")
    unknown = [s for s in a.sources.split(",") if s not in ("wordnet", "man", "doc")]
    if unknown or not a.sources:
        ap.error(f"--sources {a.sources!r}: unknown source {', '.join(unknown) or '(empty)'}; "
                 "choose from wordnet, man, doc (comma-separated)")
    if not wordnet.available() and "wordnet" in a.sources:
        sys.exit("gather_corpus: %s/data.noun not found\n  hint: apt-get install wordnet-base" % wordnet.WORDNET)
    os.makedirs(a.out, exist_ok=True)
    owner = file_owners()
    debian = debian_archive_packages()
    if not debian:
        sys.exit("gather_corpus: no Debian package lists under /var/lib/apt/lists\n  hint: apt-get update")
    used, foreign = set(), {}
    gens = {"wordnet": wordnet_documents, "man": man_documents, "doc": doc_documents}
    seen_docs, seen_paras = set(), set()
    stats = {}
    lines = {"train": [], "heldout": []}
    tsv = open(os.path.join(a.out, "sources.tsv.tmp"), "w", encoding="utf-8")
    tsv.write("split\tsource\tpath\tpieces\tchars\n")
    t0 = time.time()
    for src in a.sources.split(","):
        st = stats.setdefault(src, {"documents": 0, "duplicates": 0, "paragraphs_dropped": 0,
                                    "pieces": {"train": 0, "heldout": 0},
                                    "chars": {"train": 0, "heldout": 0}})
        for path, text in gens[src]():
            if src != "wordnet":
                real = os.path.join(MAN if src == "man" else DOC, path.split(":", 1)[1])
                pkg = owner.get(real)
                if pkg not in debian:
                    foreign[pkg or "(no package)"] = foreign.get(pkg or "(no package)", 0) + 1
                    continue
            else:
                pkg = "wordnet-base"
            key = hashlib.sha256(normalise(text).encode()).digest()
            if key in seen_docs:
                st["duplicates"] += 1
                continue
            seen_docs.add(key)
            kept = []
            for p in paragraphs(text):
                if len(p) >= 200:
                    h = hashlib.sha256(normalise(p).encode()).digest()
                    if h in seen_paras:
                        st["paragraphs_dropped"] += 1
                        continue
                    seen_paras.add(h)
                kept.append(p)
            if sum(len(p) for p in kept) < 100:
                st["duplicates"] += 1
                continue
            h = int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big") / 2.0 ** 64
            split = "heldout" if h < a.heldout else "train"
            ps = pieces(kept, a.max_chars)
            for p in ps:
                lines[split].append(json.dumps({"text": p}, ensure_ascii=False) + "\n")
            n = sum(len(p) for p in ps)
            st["documents"] += 1
            st["pieces"][split] += len(ps)
            st["chars"][split] += n
            tsv.write("%s\t%s\t%s\t%d\t%d\n" % (split, src, path, len(ps), n))
            used.add(pkg)
        print("gather_corpus: %-8s %7d documents (%d duplicates dropped, %d repeated paragraphs "
              "dropped), %.1f MB train, %.1f MB held out  [%.0f s]"
              % (src, st["documents"], st["duplicates"], st["paragraphs_dropped"],
                 st["chars"]["train"] / 1e6, st["chars"]["heldout"] / 1e6, time.time() - t0),
              file=sys.stderr)
    tsv.close()
    # pieces in a seeded random order, so that any prefix (an evaluation's
    # max_samples) is a sample of every source
    for split, ls in lines.items():
        random.Random(1).shuffle(ls)
        with open(os.path.join(a.out, split + ".jsonl.tmp"), "w", encoding="utf-8") as f:
            f.writelines(ls)
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Package}=${Version}\\n"] + sorted(used),
                       capture_output=True, text=True)
    pkgs = r.stdout.split()
    if foreign:
        print("gather_corpus: left out %d files of packages not in Debian's archive: %s"
              % (sum(foreign.values()), ", ".join("%s (%d)" % kv for kv in sorted(foreign.items()))),
              file=sys.stderr)
    with open(os.path.join(a.out, "packages.txt"), "w") as f:
        f.write("\n".join(sorted(set(pkgs))) + "\n")
    total = {k: sum(s["chars"][k] for s in stats.values()) for k in ("train", "heldout")}
    with open(os.path.join(a.out, "stats.json"), "w") as f:
        json.dump({"sources": stats, "chars": total, "packages": len(set(pkgs)),
                   "left_out_not_debian": foreign, "heldout_fraction": a.heldout, "max_chars": a.max_chars}, f, indent=1)
        f.write("\n")
    for s in ("train", "heldout"):
        os.replace(os.path.join(a.out, s + ".jsonl.tmp"), os.path.join(a.out, s + ".jsonl"))
    os.replace(os.path.join(a.out, "sources.tsv.tmp"), os.path.join(a.out, "sources.tsv"))
    print("gather_corpus: %.1f MB train, %.1f MB held out, from %d packages -> %s"
          % (total["train"] / 1e6, total["heldout"] / 1e6, len(set(pkgs)), a.out), file=sys.stderr)


if __name__ == "__main__":
    main()
