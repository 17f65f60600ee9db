#!/bin/sh
# Issue 16's tokenizer benchmark: single-core encode MB/s of iftrain's C tokenizer (iftrain bench
# tok) and of the Hugging Face tokenizers library (bench/tok_hf.js, one thread), side by side and
# interleaved, per tokenizer, on tests/tok/corpus.jsonl and on the corpus repeated to about
# --big-mb MB. Writes bench/results/tok-DATE.txt (the table, with the ratio iftrain/HF) and
# bench/results/tok-DATE.jsonl (every run's JSON line and the load average before it).
#
#   bench/tok.sh [--rounds=R] [--passes=N] [--big-mb=M] [--big-rounds=R] [--big-passes=N]
#                [--out=PREFIX] [NAME...]
#
#   NAME        tokenizers of tests/tok/data (default all: gpt2 llama3 llama3_instruct mistral qwen3)
#   --rounds    rounds on the corpus (default 3); each round runs, per tokenizer, iftrain then HF
#               (odd rounds) or HF then iftrain (even rounds), each with --passes timed passes
#               (default 5) after one warm-up pass per mode
#   --big-mb    size of the repeated corpus (default 20; 0 skips it); --big-rounds (default 1)
#               rounds of --big-passes (default 1) passes, no warm-up pass (the BPE cache is warm
#               after the first copy of the corpus)
#   --out       output prefix (default bench/results/tok-YYYY-MM-DD)
# Environment: IFTRAIN (default ./iftrain), NODE (default node), TOK_BENCH_CPU=N pins both to
# CPU N with taskset (default: not pinned; the cpu/wall column shows descheduling).
# Needs: a built iftrain, tests/tok/node_modules (cd tests/tok && npm ci), python3.
set -eu
cd "$(dirname "$0")/.."
args="$*"
rounds=3 passes=5 big_mb=20 big_rounds=1 big_passes=1 out=bench/results/tok-$(date +%F) names=
for a in "$@"; do
    case $a in
    --rounds=*) rounds=${a#*=} ;;
    --passes=*) passes=${a#*=} ;;
    --big-mb=*) big_mb=${a#*=} ;;
    --big-rounds=*) big_rounds=${a#*=} ;;
    --big-passes=*) big_passes=${a#*=} ;;
    --out=*) out=${a#*=} ;;
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --*) echo "bench/tok.sh: unknown option $a" >&2; exit 2 ;;
    *) names="$names $a" ;;
    esac
done
for v in "$rounds" "$passes" "$big_mb" "$big_rounds" "$big_passes"; do
    case $v in '' | *[!0-9]*) echo "bench/tok.sh: counts are non-negative integers" >&2; exit 2 ;; esac
done
IFTRAIN=${IFTRAIN:-./iftrain}
NODE=${NODE:-node}
[ -x "$IFTRAIN" ] || { echo "bench/tok.sh: $IFTRAIN missing: build first (make) or set IFTRAIN" >&2; exit 2; }
[ -d tests/tok/node_modules/tokenizers ] || { echo "bench/tok.sh: run (cd tests/tok && npm ci) first" >&2; exit 2; }
pin=
[ -n "${TOK_BENCH_CPU:-}" ] && pin="taskset -c $TOK_BENCH_CPU"
export TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tokbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
sh tests/tok/unpack.sh "$tmp/tk" > /dev/null
[ -n "$names" ] || names=$(cd "$tmp/tk" && ls)
corpora=tests/tok/corpus.jsonl
if [ "$big_mb" -gt 0 ]; then
    size=$(wc -c < tests/tok/corpus.jsonl)
    copies=$(( (big_mb * 1000000 + size - 1) / size ))
    big=$tmp/corpus_x$copies.jsonl
    i=0
    while [ $i -lt $copies ]; do cat tests/tok/corpus.jsonl; i=$((i + 1)); done > "$big"
    corpora="$corpora $big"
fi
mkdir -p "$(dirname "$out")"
raw=$out.jsonl
: > "$raw"
meta() { # one JSON line: what ran, where, the load
    printf '{"meta":"%s","date":"%s","loadavg":"%s"%s}\n' "$1" "$(date -Iseconds)" "$(cut -d' ' -f1-3 /proc/loadavg)" "${2:-}" >> "$raw"
}
meta start ",\"host\":\"$(uname -n)\",\"cpu\":\"$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)\",\"nproc\":$(nproc),\"iftrain\":\"$($IFTRAIN --version | cut -d' ' -f2) $(git describe --always --dirty 2>/dev/null || echo ?)\",\"node\":\"$($NODE --version)\",\"pinned\":\"${TOK_BENCH_CPU:-}\",\"rounds\":$rounds,\"passes\":$passes,\"big_rounds\":$big_rounds,\"big_passes\":$big_passes,\"args\":\"$args\""

run_c() { # tokenizer corpus passes warmup
    meta run
    $pin "$IFTRAIN" bench tok --no-mpi --json --tokenizer "$tmp/tk/$1" --corpus "$2" --repeat "$3" --warmup "$4" >> "$raw"
}
run_hf() {
    meta run
    $pin "$NODE" bench/tok_hf.js --json --tokenizer="$tmp/tk/$1" --corpus="$2" --passes="$3" --warmup="$4" >> "$raw"
}
for corpus in $corpora; do
    if [ "$corpus" = tests/tok/corpus.jsonl ]; then R=$rounds P=$passes W=1; else R=$big_rounds P=$big_passes W=0; fi
    r=1
    while [ $r -le "$R" ]; do
        for name in $names; do
            echo "bench/tok.sh: $(basename "$corpus") round $r/$R $name (load $(cut -d' ' -f1 /proc/loadavg))" >&2
            if [ $((r % 2)) -eq 1 ]; then run_c "$name" "$corpus" $P $W; run_hf "$name" "$corpus" $P $W
            else run_hf "$name" "$corpus" $P $W; run_c "$name" "$corpus" $P $W; fi
        done
        r=$((r + 1))
    done
done
meta end
python3 - "$raw" "$out.txt" <<'PY'
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
    mism = [t for t in toks if (corpus, t, 'C', 'lines') in res and (corpus, t, 'HF', 'lines') in res
            and res[(corpus, t, 'C', 'lines')][0]['tokens'] != res[(corpus, t, 'HF', 'lines')][0]['tokens']]
    L.append("token counts C = HF (lines mode): " + ('all equal' if not mism else 'DIFFER for ' + ', '.join(mism)))
open(txt, 'w').write('\n'.join(L) + '\n')
print('\n'.join(L))
PY
echo "bench/tok.sh: wrote $out.txt and $raw" >&2
