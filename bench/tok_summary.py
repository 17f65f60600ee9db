#!/usr/bin/env python3
"""The table of bench/tok.sh from its raw runs: python3 bench/tok_summary.py RAW.jsonl OUT.txt
(RAW.jsonl: the meta lines of tok.sh and the JSON lines of iftrain bench tok and bench/tok_hf.js).
Per corpus, tokenizer and mode: best MB/s over all runs (median of the runs' medians), MB per CPU
second, the ratios iftrain/HF; load averages; token counts of both sides compared."""
import json, os, statistics, sys
raw, txt = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(raw)]
meta = [r for r in rows if 'meta' in r]
start, end = meta[0], meta[-1]
loads = [float(r['loadavg'].split()[0]) for r in meta]
res = {}
lib = '?'
for r in rows:
    if r.get('bench') not in ('tok', 'tok_hf'):
        continue
    lib = r.get('library', lib)
    corpus = os.path.basename(r['corpus']).replace('.jsonl', '')
    key = (corpus, os.path.basename(r['tokenizer'].rstrip('/')), 'C' if r['bench'] == 'tok' else 'HF', r['mode'])
    res.setdefault(key, []).append(r)
def best(k, f='mb_per_s'):
    v = res.get(k)
    return max(x[f] for x in v) if v else None
def med(k):
    v = res.get(k)
    return statistics.median(x['median_mb_per_s'] for x in v) if v else None
def fmt(x, w=7):
    return ' ' * (w - 1) + '-' if x is None else f'{x:{w}.2f}'
def ratio(a, b):
    return '     -' if a is None or b is None else f'{a / b:6.2f}'
L = []
L.append(f"# Tokenizer encode throughput, iftrain (C, src/tok) vs Hugging Face tokenizers, one core: bench/tok.sh")
L.append(f"# bench/tok.sh {start.get('args', '')}".rstrip())
L.append(f"# {start['date']} .. {end['date']}; host {start['host']}: {start['cpu']}, {start['nproc']} cores (shared)"
         + (f", pinned to CPU {start['pinned']}" if start['pinned'] else ", not pinned"))
L.append(f"# iftrain {start['iftrain']}; HF {lib} via node {start['node']}, TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1")
L.append(f"# load average (1 min) before the runs: start {start['loadavg']}, end {end['loadavg']}; over the {len(loads) - 2} runs "
         f"min {min(loads[1:-1] or [0]):.2f} median {statistics.median(loads[1:-1] or [0]):.2f} max {max(loads[1:-1] or [0]):.2f}")
L.append(f"# corpus: {start['rounds']} rounds x {start['passes']} passes after a warm-up pass; repeated corpus: "
         f"{start['big_rounds']} rounds x {start['big_passes']} passes, no warm-up; rounds alternate which side runs first")
L.append("# MB/s = 10^6 input bytes per wall second, best pass over all rounds (median of the per-run medians in brackets);")
L.append("# cpu: MB per CPU second of the pass with the least CPU time (robust to descheduling); HF cpu of a lines row is the")
L.append("# better of HF lines and HF batch; cpu C/HF is their ratio.")
L.append("# C lines = one tok_encode per line; HF lines = one await encode() per line (binding per-call cost included);")
L.append("# HF batch = encodeBatch() of 1000 lines per call, serial; chunks = lines joined by \\n, cut at >= 64 KB, one call each.")
for corpus in sorted({k[0] for k in res}, key=lambda c: (c != 'corpus', c)):
    toks = sorted({k[1] for k in res if k[0] == corpus})
    lines = [v[0] for k, v in res.items() if k[0] == corpus and k[3] == 'lines']
    L.append('')
    L.append(f"## {corpus}" + (f": {lines[0]['calls']} lines, {lines[0]['bytes']} bytes" if lines else ''))
    L.append(f"{'tokenizer':<16} {'mode':<6} {'C MB/s':>16} {'HF MB/s':>16} {'HF batch':>16} {'C/HF':>6} {'C/HFbat':>7} {'C cpu':>7} {'HF cpu':>7} {'cpu C/HF':>8}")
    for t in toks:
        for mode in ('lines', 'chunks'):
            c, h, b = (corpus, t, 'C', mode), (corpus, t, 'HF', mode), (corpus, t, 'HF', 'batch')
            if c not in res and h not in res:
                continue
            cb, hb, bb = best(c), best(h), best(b) if mode == 'lines' else None
            cc, hc = best(c, 'cpu_mb_per_s'), best(h, 'cpu_mb_per_s')
            if mode == 'lines' and best(b, 'cpu_mb_per_s') is not None:
                hc = max(hc or 0, best(b, 'cpu_mb_per_s'))
            cell = lambda k, x: f"{fmt(x)} ({fmt(med(k), 6).strip():>6})" if x is not None else ' ' * 15 + '-'
            L.append(f"{t:<16} {mode:<6} {cell(c, cb)} {cell(h, hb)} {cell(b, bb) if mode == 'lines' else ' ' * 15 + '-'} "
                     f"{ratio(cb, hb)} {ratio(cb, bb) if mode == 'lines' else '      -':>7} {fmt(cc)} {fmt(hc)} {ratio(cc, hc):>8}")
    L.append("load s: " + ', '.join(f"{t} C {min(x['load_s'] for x in res[(corpus, t, 'C', 'lines')]):.2f} HF "
                                    f"{min(x['load_s'] for x in res[(corpus, t, 'HF', 'lines')]):.2f}"
                                    for t in toks if (corpus, t, 'C', 'lines') in res and (corpus, t, 'HF', 'lines') in res))
    cold = [(t, [x['cold_mb_per_s'] for x in res.get((corpus, t, s, 'lines'), []) if x.get('cold_mb_per_s') is not None]) for t in toks for s in ('C', 'HF')]
    if any(v for _, v in cold):
        L.append("cold first lines pass MB/s (best): " + ', '.join(
            f"{t} C {max(a):.2f} HF {max(b):.2f}" for t in toks
            for a, b in [([x['cold_mb_per_s'] for x in res.get((corpus, t, 'C', 'lines'), []) if x.get('cold_mb_per_s') is not None],
                          [x['cold_mb_per_s'] for x in res.get((corpus, t, 'HF', 'lines'), []) if x.get('cold_mb_per_s') is not None])] if a and b))
    mism = [f"{t} {m}" for t in toks for m in ('lines', 'chunks') if (corpus, t, 'C', m) in res and (corpus, t, 'HF', m) in res
            and {x['tokens'] for x in res[(corpus, t, 'C', m)]} != {x['tokens'] for x in res[(corpus, t, 'HF', m)]}]
    L.append("token counts C = HF (lines and chunks modes, every run): " + ('all equal' if not mism else 'DIFFER for ' + ', '.join(mism)))
open(txt, 'w').write('\n'.join(L) + '\n')
print('\n'.join(L))
