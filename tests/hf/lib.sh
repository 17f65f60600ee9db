# shellcheck shell=sh
# tests/hf/lib.sh -- sourced by the Hugging Face test scripts (import.sh,
# grads.sh, export.sh): the environment they need, check(), the Python with
# torch, the MPI test lock and the work directory.
#   . "$(dirname "$0")/lib.sh"      (after `set -u`; sets fail, here, PY, REF, w)
# check DESCRIPTION COMMAND...: runs COMMAND, prints PASS or FAIL (with its
# output indented); lines of the output starting "FIG " are figures, printed
# under a PASS too.  finish NAME: removes the work directory (KEEP=1 keeps
# it) and exits 1 when a check failed.
# Sanitizer builds (--enable-sanitizers): every ASan/UBSan/LSan report of any
# process -- also those whose exit code a check does not look at, and MPI
# ranks -- goes to $w/san.PID and fails the check it happened in; Open MPI's
# own leaks are suppressed (IFT_LSAN_MPI from Makefile.am, tests/lsan-mpi.supp).
fail=0
hf_log=/tmp/iftrain-hf-check.$$
san_reports() { ls "$w"/san.* >/dev/null 2>&1; }
san_print() { for f in "$w"/san.*; do echo "    sanitizer report $f:"; head -n 60 "$f" | sed 's/^/      /'; rm -f "$f"; done; }
check() {
  desc=$1; shift
  if "$@" >$hf_log 2>&1 && ! san_reports; then echo "PASS: $desc"; sed -n 's/^FIG /    /p' $hf_log
  else echo "FAIL: $desc"; sed 's/^/    /' $hf_log; san_reports && san_print; fail=$((fail+1)); fi
}
: "${IFTRAIN:?IFTRAIN must point at the binary}"
: "${MPIRUN_WRAP:?MPIRUN_WRAP must point at tests/mpirun.sh}"
here=$(cd "$(dirname "$0")" && pwd)
# Debian's python3 with python3-torch, even when another python3 comes first in PATH
PY=
for p in ${PYTHON:-} /usr/bin/python3 python3; do "$p" -c 'import torch' 2>/dev/null && { PY=$p; break; }; done
[ -n "$PY" ] || { echo "FAIL: python3-torch is needed for the reference (apt-get install python3-torch)"; exit 1; }
# the whole script holds the MPI test lock (its jobs are serialised with the other MPI suites)
if [ -z "${IFT_LOCKED:-}" ] && command -v flock >/dev/null; then
  exec env IFT_LOCKED=1 flock "${TMPDIR:-/tmp}/iftrain-mpi-tests.lock" sh "$0" "$@"
fi
IFT_NO_LOCK=1; export IFT_NO_LOCK
# shellcheck disable=SC2034  # used by the scripts that source this file
REF="$PY $here/hfref.py"
w=/tmp/iftrain-hf-$(basename "$0" .sh).$$.d
rm -rf $w; mkdir -p $w
# shellcheck disable=SC2163,SC2086  # IFT_LSAN_MPI holds NAME=VALUE words to export
[ -z "${IFT_LSAN_MPI:-}" ] || export $IFT_LSAN_MPI
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$w/san"
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:log_path=$w/san"
export ASAN_OPTIONS UBSAN_OPTIONS
finish() {
  check "no sanitizer report outside the checks above" true
  [ "${KEEP:-0}" = 1 ] || rm -rf $w
  rm -f $hf_log
  [ "$fail" -eq 0 ] || { echo "$fail $1 check(s) failed"; exit 1; }
  exit 0
}
# hf_tokenizer NAME DIR: the stored tokenizer NAME of tests/tok/data (gpt2,
# llama3, llama3_instruct, mistral, qwen3) into DIR -- tokenizer.json and,
# where stored, tokenizer_config.json -- each checked against
# tests/tok/data/SHA256SUMS (tests/tok/unpack.sh does all five at once).
hf_tokenizer() {
  td=$here/../tok/data
  mkdir -p "$2" && gzip -dc "$td/$1/tokenizer.json.gz" > "$2/tokenizer.json" || return 1
  for f in tokenizer_config.json LICENSE; do
    if [ -f "$td/$1/$f" ]; then cp "$td/$1/$f" "$2/" || return 1; fi
  done
  for f in tokenizer.json tokenizer_config.json; do
    [ -f "$2/$f" ] || continue
    want=$(grep " $1/$f\$" "$td/SHA256SUMS" | cut -c1-64)
    [ -n "$want" ] && [ "$(sha256sum < "$2/$f" | cut -c1-64)" = "$want" ] ||
      { echo "$2/$f: not the file of tests/tok/data/SHA256SUMS"; return 1; }
  done
}
