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
# bench/tok_summary.py RAW.jsonl OUT.txt rewrites the table from the raw runs.
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
python3 bench/tok_summary.py "$raw" "$out.txt"
echo "bench/tok.sh: wrote $out.txt and $raw" >&2
