# tests/hf/lib.sh -- sourced by the Hugging Face test scripts (import.sh,
# grads.sh, export.sh): the environment they need, check(), the Python with
# torch, the MPI test lock and the work directory.
#   . "$(dirname "$0")/lib.sh"      (after `set -u`; sets fail, here, PY, REF, w)
# check DESCRIPTION COMMAND...: runs COMMAND, prints PASS or FAIL (with its
# output indented); lines of the output starting "FIG " are figures, printed
# under a PASS too.  finish NAME: removes the work directory (KEEP=1 keeps
# it) and exits 1 when a check failed.
fail=0
hf_log=/tmp/iftrain-hf-check.$$
check() {
  desc=$1; shift
  if "$@" >$hf_log 2>&1; then echo "PASS: $desc"; sed -n 's/^FIG /    /p' $hf_log
  else echo "FAIL: $desc"; sed 's/^/    /' $hf_log; fail=$((fail+1)); fi
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
REF="$PY $here/hfref.py"
w=/tmp/iftrain-hf-$(basename "$0" .sh).$$.d
rm -rf $w; mkdir -p $w
finish() {
  [ "${KEEP:-0}" = 1 ] || rm -rf $w
  rm -f $hf_log
  [ "$fail" -eq 0 ] || { echo "$fail $1 check(s) failed"; exit 1; }
  exit 0
}
