#!/usr/bin/env bash
# The real-data pipeline of data/debian/README.md, one stage at a time:
#   data/debian/run.sh corpus     gather the corpus, tokenise it (prep)
#   data/debian/run.sh instruct   WordNet conversations and preference pairs, tokenised
#   data/debian/run.sh base       pretrain (slurm/train.sbatch: sbatch when Slurm answers,
#                                 else run in place; resumable: run it again after a stop)
#   data/debian/run.sh export     export the base model (HF directory) + held-out perplexity
#   data/debian/run.sh card       the base model's card (CARD_DIR/base-card.md, base-loss.png)
#   data/debian/run.sh check      the export against the float64 PyTorch reference (CHECK_SAMPLES
#                                 held-out pieces, default 40; python3-torch, python3-h5py)
#   data/debian/run.sh compare    the comparison of data/debian/recipes/ from the base model:
#                                 slurm/sweep.sh (job arrays; in place without Slurm)
#   data/debian/run.sh report     held-out evaluation of every run and of the base
#                                 model (INIT), table and plot
# Environment: RUN (output root, default runs/debian), IFTRAIN (the binary, default
# ./iftrain), NTASKS (ranks, default 2), THREADS (per rank, default 1), MAX_CHARS
# (longest corpus piece, default 1200), BASE_ARGS (extra `iftrain train` options),
# CARD_DIR (where card writes, default RUN);
# compare/report: SEEDS (default "1 2 3"), INIT (default RUN/base-hf), SWEEP_DIR
# (default RUN/compare), RECIPE_ARGS (extra `iftrain train` options of every run),
# QA_SAMPLES (held-out questions report scores, default 1000; 0: all 3,923),
# EVAL_SAMPLES (held-out conversations, default 0: all), PAIR_SAMPLES (held-out
# pairs, default 2000; 0: all).
# Every stage skips work whose output is complete; outputs are written under a
# temporary name and renamed, so a stopped stage leaves nothing half-made.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
RUN=${RUN:-runs/debian}
IFTRAIN=${IFTRAIN:-$root/iftrain}
NTASKS=${NTASKS:-2}
THREADS=${THREADS:-1}
MAX_CHARS=${MAX_CHARS:-1200}
MAX_LEN=512
tok="$RUN/tokenizer"

die() { echo "run.sh: $*" >&2; exit 2; }
[ -x "$IFTRAIN" ] || die "no iftrain binary at $IFTRAIN (build it: ./bootstrap.sh, or set IFTRAIN)"
mkdir -p "$RUN"

tokenizer() {
  [ -f "$tok/tokenizer.json" ] && return
  mkdir -p "$tok.tmp"
  gzip -dc "$root/tests/tok/data/mistral/tokenizer.json.gz" > "$tok.tmp/tokenizer.json"
  cp "$root/tests/tok/data/mistral/tokenizer_config.json" "$root/tests/tok/data/mistral/LICENSE" "$tok.tmp/"
  mv "$tok.tmp" "$tok"
}

prep() {   # prep IN.jsonl OUT.h5 [options]: skipped when OUT is newer than IN
  local in=$1 out=$2; shift 2
  if [ -f "$out" ] && [ "$out" -nt "$in" ]; then echo "run.sh: $out is up to date"; return; fi
  mpirun --allow-run-as-root --oversubscribe -n "$NTASKS" "$IFTRAIN" prep "$in" -o "$out" \
    --tokenizer "$tok" --quiet "$@"
}

case ${1:-} in
  corpus)
    tokenizer
    if [ ! -f "$RUN/corpus/stats.json" ]; then
      python3 "$here/gather_corpus.py" -o "$RUN/corpus" --max-chars "$MAX_CHARS"
    fi
    prep "$RUN/corpus/train.jsonl" "$RUN/corpus_train.h5" --max-len "$MAX_LEN"
    prep "$RUN/corpus/heldout.jsonl" "$RUN/corpus_heldout.h5" --max-len "$MAX_LEN"
    ;;
  instruct)
    tokenizer
    [ -f "$RUN/instruct/stats.json" ] || python3 "$here/make_instruct.py" -o "$RUN/instruct"
    # the Mistral tokenizer_config.json carries no chat template: name it
    for n in sft_train sft_test pref_train pref_test qa_test; do
      prep "$RUN/instruct/$n.jsonl" "$RUN/$n.h5" --chat-template=mistral
    done
    ;;
  base)
    tokenizer
    # a new model (base.ini's shape) with the Mistral tokenizer: every
    # checkpoint records it, export copies its files and BOS/EOS ids
    args=(--config "$here/base.ini" --model.tokenizer="$tok"
          --data.train="$RUN/corpus_train.h5" --data.eval="$RUN/corpus_heldout.h5")
    # shellcheck disable=SC2206  # BASE_ARGS is a list of options
    args+=(${BASE_ARGS:-})
    if sinfo -h > /dev/null 2>&1; then
      RUN_DIR="$RUN/base" sbatch --job-name=debian-base --ntasks="$NTASKS" \
        --cpus-per-task="$THREADS" --time=12:00:00 "$root/slurm/train.sbatch" "${args[@]}"
    else
      echo "run.sh: no Slurm here: running slurm/train.sbatch in place (rerun to resume)"
      RUN_DIR="$RUN/base" NTASKS="$NTASKS" bash "$root/slurm/train.sbatch" "${args[@]}"
    fi
    ;;
  export)
    [ -d "$RUN/base/ckpt" ] || die "no $RUN/base/ckpt: run 'base' first"
    if [ ! -d "$RUN/base-hf" ]; then
      rm -rf "$RUN/base-hf.tmp"
      "$IFTRAIN" export "$RUN/base/ckpt" -o "$RUN/base-hf.tmp"
      # export copies the licence the origin recorded; a run begun by an older
      # iftrain recorded the tokenizer's files without it
      [ -e "$RUN/base-hf.tmp/LICENSE" ] || cp "$tok/LICENSE" "$RUN/base-hf.tmp/"
      mv "$RUN/base-hf.tmp" "$RUN/base-hf"
    fi
    mpirun --allow-run-as-root --oversubscribe -n "$NTASKS" "$IFTRAIN" eval --ckpt "$RUN/base/ckpt" \
      --data "$RUN/corpus_heldout.h5" --max-new-tokens 1 --json | tee "$RUN/base-heldout.json"
    ;;
  card)
    # data/debian/base_card.py: shape, tokenizer, corpus, run, held-out loss
    out=${CARD_DIR:-$RUN}
    mkdir -p "$out"
    python3 "$here/base_card.py" "$RUN" -o "$out"
    if command -v gnuplot > /dev/null; then
      gnuplot -e "dat='$out/base-loss.dat'; out='$out/base-loss.png'" "$here/plot_base.gp"
      echo "run.sh: card $out/base-card.md, plot $out/base-loss.png"
    fi
    ;;
  check)
    # data/debian/check_base.py: tests/hf/hfref.py (float64) on base-hf against
    # iftrain eval of the checkpoint, the first CHECK_SAMPLES held-out pieces
    [ -d "$RUN/base-hf" ] || die "no $RUN/base-hf: run 'export' first"
    mpirun --allow-run-as-root --oversubscribe -n "$NTASKS" "$IFTRAIN" eval --ckpt "$RUN/base/ckpt" \
      --data "$RUN/corpus_heldout.h5" --max-samples "${CHECK_SAMPLES:-40}" --max-new-tokens 1 \
      --json --quiet > "$RUN/base-check-eval.json"
    /usr/bin/python3 "$here/check_base.py" "$RUN" "$RUN/base-check-eval.json"
    ;;
  compare)
    # data/debian/README.md, "The comparison": slurm/sweep.sh with the recipes
    # of data/debian/recipes/ on the WordNet data, every stage-A run starting
    # from the base model; sbatch job arrays when Slurm answers, else in place
    INIT=${INIT:-$RUN/base-hf}
    [ -e "$INIT" ] || die "no base model $INIT: run 'export' first (or set INIT)"
    for n in sft_train pref_train qa_test; do
      [ -f "$RUN/$n.h5" ] || die "no $RUN/$n.h5: run 'instruct' first"
    done
    # DPO's pairs: every 28th training pair, so that the reference cache fits
    # the compute budget (data/debian/recipes/dpo.ini has the arithmetic)
    dpo_in="$RUN/instruct/pref_train.jsonl"
    if [ ! -f "$RUN/pref_dpo.jsonl" ] || [ "$RUN/pref_dpo.jsonl" -ot "$dpo_in" ]; then
      awk 'NR % 28 == 1' "$dpo_in" > "$RUN/pref_dpo.jsonl.tmp"
      mv "$RUN/pref_dpo.jsonl.tmp" "$RUN/pref_dpo.jsonl"
    fi
    tokenizer
    prep "$RUN/pref_dpo.jsonl" "$RUN/pref_dpo.h5" --chat-template=mistral
    export NTASKS   # train.sbatch's ranks when it runs in place
    # shellcheck disable=SC2086  # SEEDS is a list
    RECIPE_DIR="$here/recipes" TRAIN_DATA="$RUN/sft_train.h5" PREF_DATA="$RUN/pref_train.h5" \
      REF_DATA="$RUN/pref_dpo.h5" EVAL_DATA="$RUN/qa_test.h5" INIT="$INIT" \
      SWEEP_DIR="${SWEEP_DIR:-$RUN/compare}" \
      SBATCH_ARGS="--ntasks=$NTASKS --cpus-per-task=$THREADS --time=02:00:00 ${SBATCH_ARGS:-}" \
      bash "$root/slurm/sweep.sh" ${SEEDS:-1 2 3}
    ;;
  report)
    # every finished run of every seed (sft_stage1 only feeds dpo and simpo):
    # iftrain eval of its last checkpoint on the held-out questions (exact
    # match, ROUGE-L, answer NLL), conversations (NLL of every answer) and
    # pairs (preference accuracy), the base model's too (SWEEP_DIR/base), then
    # the table and the plot
    sweep=${SWEEP_DIR:-$RUN/compare}
    [ -d "$sweep" ] || die "no $sweep: run 'compare' first"
    compgen -G "$sweep/seed*/*/" > /dev/null || die "no runs in $sweep/seed*/: run 'compare' first"
    ev() {  # OUT_DIR CKPT STAMP NAME DATA [options]: OUT_DIR/eval_NAME.json of CKPT,
            # redone when STAMP (the checkpoint's latest, the model directory) is newer
      local d=$1 ckpt=$2 stamp=$3 data=$5 out="$1/eval_$4.json"; shift 5
      [ -f "$out" ] && [ "$out" -nt "$stamp" ] && return
      mpirun --allow-run-as-root --oversubscribe -n "$NTASKS" "$IFTRAIN" eval --ckpt "$ckpt" \
        --data "$data" --json --quiet "$@" > "$out.tmp"
      mv "$out.tmp" "$out"
      echo "run.sh: $out: $(cat "$out")"
    }
    evals() {  # OUT_DIR CKPT STAMP: the three held-out evaluations
      # greedy answers of up to 48 tokens (99.5 % of the reference answers are
      # shorter); generation is most of the report's cost
      ev "$@" qa "$RUN/qa_test.h5" --max-new-tokens 48 --max-samples "${QA_SAMPLES:-1000}"
      ev "$@" sft "$RUN/sft_test.h5" --max-new-tokens 1 --max-samples "${EVAL_SAMPLES:-0}"
      ev "$@" pref "$RUN/pref_test.h5" --max-new-tokens 1 --max-samples "${PAIR_SAMPLES:-2000}"
    }
    # the starting point, scored the same way: the table's "base model" row
    INIT=${INIT:-$RUN/base-hf}
    if [ -d "$INIT" ]; then
      mkdir -p "$sweep/base"
      evals "$sweep/base" "$INIT" "$INIT"
    else
      echo "run.sh: no base model $INIT (INIT): the table has no base row"
    fi
    for d in "$sweep"/seed*/*/; do
      d=${d%/}
      [ "$(basename "$d")" != sft_stage1 ] || continue
      [ "$(cut -d' ' -f1 "$d/ckpt/exit_status" 2>/dev/null)" = 0 ] ||
        { echo "run.sh: $d did not finish: not evaluated"; continue; }
      evals "$d" "$d/ckpt" "$d/ckpt/latest"
    done
    # the curves: held-out answer NLL (exact match stays near 0 for a model this small)
    COMPARE_CURVE=eval_loss python3 "$root/bench/compare_report.py" "$sweep"
    if command -v gnuplot > /dev/null; then
      gnuplot -e "dat='$sweep/curves.dat'; out='$sweep/compare.png'" \
        -e "title='WordNet questions (held-out words): answer NLL vs training compute'" \
        -e "ylab='answer NLL (nats/token), 200 held-out questions'; yauto=1" \
        "$root/bench/plot_compare.gp"
      echo "run.sh: table $sweep/compare.md, plot $sweep/compare.png"
    else
      echo "run.sh: table $sweep/compare.md (no gnuplot: no plot)"
    fi
    ;;
  *) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
