#!/bin/sh
# Replays every fuzz target over its seeds and the inputs of the crashes found
# and fixed (tests/fuzz/seeds/TARGET/): each input must run to the end without
# a crash (and, with --enable-sanitizers, without an ASan/UBSan report).
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin=${FUZZ_BUILDDIR:-$here}
# --enable-sanitizers (make check): LeakSanitizer on, Open MPI's leaks
# suppressed (Makefile.am, tests/lsan-mpi.supp)
# shellcheck disable=SC2163,SC2086  # IFT_LSAN_MPI holds NAME=VALUE words to export
[ -z "${IFT_LSAN_MPI:-}" ] || export $IFT_LSAN_MPI
# the source tree, where fuzz_tok finds its tokenizers
IFT_FUZZ_SRCDIR=$(cd "$here/../.." && pwd)
export IFT_FUZZ_SRCDIR
fail=0
for t in prep config dataset ckpt hf tok; do
  if "$bin/replay_$t" "$here/seeds/$t" > "${TMPDIR:-/tmp}/iftrain-replay.$$" 2>&1; then
    echo "PASS: fuzz replay $t ($(tail -n 1 "${TMPDIR:-/tmp}/iftrain-replay.$$"))"
  else
    echo "FAIL: fuzz replay $t"; sed 's/^/    /' "${TMPDIR:-/tmp}/iftrain-replay.$$" | tail -n 40
    fail=$((fail + 1))
  fi
done
rm -f "${TMPDIR:-/tmp}/iftrain-replay.$$"
exit $fail
