#!/bin/sh
# make fuzz: build the libFuzzer targets with clang and run each for a bounded
# time.  Called by the Makefile (see "fuzzing" in Makefile.am) with
#   fuzz.sh SRCDIR OUTDIR
# and FUZZ_CC, MPICC, FUZZ_CPPFLAGS, FUZZ_PKGDATADIR, FUZZ_LIBS, FUZZ_SOURCES, FUZZ_SECONDS,
# FUZZ_TARGETS in the environment (the targets find files of the source tree
# through IFT_FUZZ_SRCDIR).  Objects go to OUTDIR/build (rebuilt when a
# source or header is newer), the growing corpus to OUTDIR/corpus/TARGET,
# crash inputs to OUTDIR/crashes/TARGET/ (with a .report each).  Extra
# libFuzzer flags: FUZZ_FLAGS.  Exit status: 0 when no crash input fails in
# iftrain code (crashes inside the HDF5 library are counted and reported;
# FUZZ_STRICT=1 fails on them too).
set -eu
srcdir=$1 out=$2
: "${FUZZ_SECONDS:=60}" "${FUZZ_TARGETS:=prep config dataset ckpt hf tok}" "${FUZZ_FLAGS:=}"
IFT_FUZZ_SRCDIR=$(cd "$srcdir" && pwd)
export IFT_FUZZ_SRCDIR
if [ -z "${FUZZ_CC:-}" ] || ! command -v "$FUZZ_CC" >/dev/null 2>&1; then
  echo "make fuzz: needs clang with libFuzzer (apt-get install clang libclang-rt-dev; FUZZ_CC=clang-14)" >&2
  exit 1
fi
# The MPI wrapper with clang underneath (Open MPI: OMPI_CC, MPICH: MPICH_CC).
export OMPI_CC="$FUZZ_CC" MPICH_CC="$FUZZ_CC"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CFL="-std=c11 -g -O1 $SAN"
mkdir -p "$out/build" "$out/corpus" "$out/crashes"
# the preprocessor flags of Makefile.am's AM_CPPFLAGS, as separate words
set -- $FUZZ_CPPFLAGS "-DIFT_PKGDATADIR=\"${FUZZ_PKGDATADIR:-/usr/local/share/iftrain}\""
# the public headers and the private ones listed among the sources
# shellcheck disable=SC2046  # one word per header path (source paths have no blanks)
newest_header=$(ls -t "$srcdir"/include/iftrain/*.h $(for s in $FUZZ_SOURCES; do case $s in *.h) echo "$srcdir/$s" ;; esac; done) | head -n 1)
objs=
for s in $FUZZ_SOURCES; do
  case $s in *.c) ;; *) continue ;; esac # the headers listed for the tarball
  o="$out/build/$(echo "$s" | tr / _ | sed 's/\.c$/.o/')"
  # shellcheck disable=SC3013  # -nt: dash, bash and busybox sh all have it
  if [ ! -f "$o" ] || [ "$srcdir/$s" -nt "$o" ] || [ "$newest_header" -nt "$o" ] || [ "$0" -nt "$o" ]; then
    echo "  FUZZCC   $s"
    $MPICC $CFL -fsanitize=fuzzer-no-link "$@" -c "$srcdir/$s" -o "$o"
  fi
  objs="$objs $o"
done
for t in $FUZZ_TARGETS; do
  echo "  FUZZLD   fuzz_$t"
  $MPICC $CFL -fsanitize=fuzzer "$@" -I"$srcdir/tests/fuzz" \
    "$srcdir/tests/fuzz/fuzz_$t.c" $objs $FUZZ_LIBS -lm -o "$out/build/fuzz_$t"
done
# the crash inputs of a target, one name a line (libFuzzer's crash-<sha1>, ...), without the reports
crash_files() {
  for f in "$out/crashes/$1"/*; do
    [ -f "$f" ] || continue
    case $f in *.report) ;; *) basename "$f" ;; esac
  done | sort
}
dict_of() { case $1 in prep) echo prep.dict ;; hf) echo hf.dict ;; config) echo config.dict ;; tok) echo tok.dict ;; *) echo hdf5.dict ;; esac; }
# Open MPI's own allocations in MPI_Init are never freed: no leak checks.
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# Where a crash input fails: "hdf5" when the first frame outside the
# sanitizer and libFuzzer runtime is inside the HDF5 library (damaged-file
# bugs of HDF5 itself, reported but not failing unless FUZZ_STRICT=1),
# "no-repro" when it does not crash alone, else "iftrain".
classify() { # target input
  rep=$("$out/build/fuzz_$1" -rss_limit_mb=4096 -timeout=20 "$2" 2>&1) && { echo no-repro; return; }
  echo "$rep" > "$2.report"
  first=$(echo "$rep" | grep -E '^ +#[0-9]+ ' |
    grep -vE '__interceptor_|__asan|__sanitizer|__ubsan|fuzzer::|libFuzzer| in (malloc|calloc|realloc|free|memcpy|memmove|memset|__mem[a-z_0-9]*) |/libc\.so|sysdeps/' |
    head -n 1)
  case "$first" in
    *libhdf5*|*" in H5"*) echo hdf5 ;;
    "") echo iftrain ;;
    *) echo iftrain ;;
  esac
}
failed=
for t in $FUZZ_TARGETS; do
  mkdir -p "$out/corpus/$t" "$out/crashes/$t"
  echo "== fuzz_$t: $FUZZ_SECONDS s"
  log="$out/fuzz_$t.log"
  before=$(crash_files "$t")
  # fork mode keeps fuzzing after a crash; the inputs are classified below
  "$out/build/fuzz_$t" -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
    -max_total_time="$FUZZ_SECONDS" -timeout=20 -rss_limit_mb=4096 \
    -dict="$srcdir/tests/fuzz/$(dict_of "$t")" -artifact_prefix="$out/crashes/$t/" \
    $FUZZ_FLAGS "$out/corpus/$t" "$srcdir/tests/fuzz/seeds/$t" > "$log" 2>&1 || true
  last=$(grep -E '^#[0-9]+: cov: ' "$log" | tail -n 1)
  echo "   $last"
  n_ours=0 n_hdf5=0 n_norepro=0
  for f in $(crash_files "$t"); do
    echo "$before" | grep -qx "$f" && continue
    kind=$(classify "$t" "$out/crashes/$t/$f")
    case $kind in
      hdf5) n_hdf5=$((n_hdf5 + 1)) ;;
      no-repro) n_norepro=$((n_norepro + 1)) ;;
      *) n_ours=$((n_ours + 1)); echo "   CRASH in iftrain: $out/crashes/$t/$f (report: $f.report)" ;;
    esac
  done
  echo "   new crash inputs: $n_ours in iftrain, $n_hdf5 inside the HDF5 library, $n_norepro not reproducible alone"
  if [ "$n_ours" -gt 0 ] || { [ "${FUZZ_STRICT:-0}" = 1 ] && [ "$n_hdf5" -gt 0 ]; }; then
    failed="$failed $t"
  fi
done
[ -z "$failed" ] || { echo "make fuzz: crashes in:$failed (see $out/crashes/)" >&2; exit 1; }
echo "make fuzz: no crash in iftrain code in $FUZZ_TARGETS ($FUZZ_SECONDS s each)"
