#!/usr/bin/env python3
"""The base model's card (data/debian/run.sh card): shape, tokenizer, corpus,
pretraining run and held-out loss, from what the pipeline wrote.

    python3 data/debian/base_card.py RUN [-o OUT_DIR]

reads RUN/base-hf/config.json (the exported model), RUN/tokenizer/tokenizer.json,
RUN/corpus/stats.json, RUN/base/metrics.jsonl (the pretraining run's records, read by
bench/metrics_log.py: each step counts once, its last attempt), data/debian/base.ini and
RUN/base-heldout.json (iftrain eval of the final checkpoint on the held-out
corpus), and writes OUT_DIR/base-card.md and OUT_DIR/base-loss.dat (step,
training loss averaged over 25 steps, held-out loss at the evaluations) for
data/debian/plot_base.gp. OUT_DIR defaults to RUN. Standard library only (h5py,
when installed, counts the corpus's tokens in RUN/corpus_train.h5)."""
import argparse
import configparser
import hashlib
import json
import math
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from metrics_log import records  # noqa: E402  (bench/metrics_log.py)


def die(msg):
    sys.exit(f"base_card: {msg}")


def load_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        die(f"{path}: {e.strerror} ({what})")
    except ValueError as e:
        die(f"{path}: not JSON ({e}); {what}")


def run_records(path):
    try:
        return records(path)
    except OSError as e:
        die(f"{path}: {e.strerror} (run 'run.sh base' first)")
    except ValueError as e:
        die(f"{path}: a line is not JSON ({e})")


def train_tokens(path, chars):
    """(tokens of the prepared training corpus, "" or "≈"): counted in the
    file with h5py when it is installed, else 3.3 characters a token."""
    try:
        import h5py
        with h5py.File(path, "r") as f:
            return int(f["tokens"].shape[0]), ""
    except (ImportError, OSError, KeyError):
        return chars / 3.3, "≈"


def params(c):
    """Parameters of a Llama config (tied or untied head)."""
    h, f, L, V = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    d = c.get("head_dim") or h // c["num_attention_heads"]
    attn = h * d * c["num_attention_heads"] * 2 + h * d * c["num_key_value_heads"] * 2
    layer = attn + 3 * h * f + 2 * h
    return V * h * (1 if c.get("tie_word_embeddings") else 2) + L * layer + h, V * h


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="the pipeline's output directory (runs/debian)")
    ap.add_argument("-o", "--out", help="where the card goes (default: RUN)")
    a = ap.parse_args()
    run, out = a.run, a.out or a.run
    here = os.path.dirname(os.path.abspath(__file__))
    cfg = load_json(os.path.join(run, "base-hf", "config.json"), "run 'run.sh export' first")
    held = load_json(os.path.join(run, "base-heldout.json"), "run 'run.sh export' first")
    stats = load_json(os.path.join(run, "corpus", "stats.json"), "run 'run.sh corpus' first")
    tok_path = os.path.join(run, "tokenizer", "tokenizer.json")
    try:
        with open(tok_path, "rb") as f:
            tok_sha = hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        die(f"{tok_path}: {e.strerror} (run 'run.sh corpus' first)")
    ini = configparser.ConfigParser(inline_comment_prefixes=("#", ";"))
    ini.read(os.path.join(here, "base.ini"))
    steps, evals = run_records(os.path.join(run, "base", "metrics.jsonl"))
    if not steps:
        die("no training step in base/metrics.jsonl")
    n, emb = params(cfg)
    tokens = sum(r.get("tokens", 0) for r in steps)
    seconds = sum(r.get("seconds", 0.0) for r in steps)
    flops = steps[-1]["flops"]
    last = steps[-25:]
    train_loss = sum(r["loss"] for r in last) / len(last)
    chars = {k: sum(v["chars"][k] for v in stats["sources"].values()) for k in ("train", "heldout")}
    pieces = {k: sum(v["pieces"][k] for v in stats["sources"].values()) for k in ("train", "heldout")}
    ppl = math.exp(held["token_nll"])
    corpus_tokens, approx = train_tokens(os.path.join(run, "corpus_train.h5"), chars["train"])
    best = min(evals, key=lambda r: r["eval_loss"]) if evals else None
    L = []
    L.append("# Base model card: `runs/debian/base-hf`\n")
    L.append("| | |\n|---|---|")
    L.append(f"| architecture | {cfg['architectures'][0]}: {cfg['num_hidden_layers']} layers, hidden "
             f"{cfg['hidden_size']}, {cfg['num_attention_heads']} query heads of "
             f"{cfg.get('head_dim') or cfg['hidden_size'] // cfg['num_attention_heads']}, "
             f"{cfg['num_key_value_heads']} key/value heads (GQA), SwiGLU {cfg['intermediate_size']}, "
             f"RMSNorm, RoPE θ = {cfg['rope_theta']:g}, "
             f"{'tied' if cfg.get('tie_word_embeddings') else 'untied'} head, "
             f"{cfg['max_position_embeddings']} positions, {cfg['torch_dtype']} |")
    L.append(f"| parameters | {n / 1e6:.1f} M ({emb / 1e6:.1f} M of them the embedding) |")
    L.append(f"| tokenizer | Mistral-7B's (`tests/tok/data/mistral`, Apache-2.0): {cfg['vocab_size']:,} ids, "
             f"BOS {cfg['bos_token_id']}, EOS {cfg['eos_token_id']}; tokenizer.json sha256 {tok_sha[:16]}… |")
    L.append(f"| corpus | Debian packages (`gather_corpus.py`): {pieces['train']:,} training pieces, "
             f"{chars['train'] / 1e6:.1f} M characters; {pieces['heldout']:,} held-out pieces, "
             f"{chars['heldout'] / 1e6:.1f} M characters (held out by document) |")
    tr = ini["train"] if ini.has_section("train") else {}
    op = ini["optim"] if ini.has_section("optim") else {}
    L.append(f"| pretraining | {steps[-1]['step']} steps of {tr.get('batch_size', '?')} documents packed into "
             f"{tr.get('seq_len', '?')}-token sequences: {tokens / 1e6:.1f} M tokens "
             f"({tokens / corpus_tokens * 100:.0f} % of the corpus's {approx}{corpus_tokens / 1e6:.1f} M); "
             f"AdamW lr {op.get('lr', '?')}, {op.get('schedule', '?')} with warm-up {op.get('warmup', '?')}, "
             f"weight decay {op.get('weight_decay', '?')}, clip {op.get('clip', '?')} |")
    L.append(f"| compute | {flops:.3g} training FLOPs; {seconds / 3600:.1f} h of steps on 2 ranks (the last "
             f"attempt of each step) |")
    L.append(f"| training loss | {steps[0]['loss']:.2f} at step 1 → {train_loss:.3f} (mean of the last "
             f"{len(last)} steps) |")
    L.append(f"| held-out loss | token NLL {held['token_nll']:.4f} nats = **perplexity {ppl:.1f}** per Mistral "
             f"token ({held['samples']:,} held-out pieces; mean of the pieces' NLL {held['eval_loss']:.4f}) |")
    if best:
        curve = ", ".join("%.3f (%d)" % (r["eval_loss"], r["step"]) for r in evals)
        L.append(f"| held-out loss during training (step) | {curve}: evaluations of 600 pieces, the "
                 f"mean of their NLL; lowest {best['eval_loss']:.3f} at step {best['step']} |")
    L.append("")
    with open(os.path.join(out, "base-card.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(L) + "\n")
    with open(os.path.join(out, "base-loss.dat"), "w", encoding="utf-8") as f:
        f.write("# step  training loss (mean over 25 steps)\n")
        for i in range(24, len(steps), 5):
            w = steps[i - 24:i + 1]
            f.write(f"{steps[i]['step']} {sum(r['loss'] for r in w) / len(w):.4f}\n")
        f.write("\n\n# step  held-out loss\n")
        for r in evals:
            f.write(f"{r['step']} {r['eval_loss']:.4f}\n")
    print("\n".join(L))


if __name__ == "__main__":
    main()
