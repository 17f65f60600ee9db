#!/bin/sh
# CLI contract: help and version, every subcommand's --help, exit codes of
# unknown and unimplemented subcommands, `info` under 2 ranks, and the JSON
# fields of `bench gemm --json`.
set -u
fail=0
check() { # description, command...
  desc=$1; shift
  if "$@" >/tmp/iftrain-cli.$$ 2>&1; then echo "PASS: $desc"; else echo "FAIL: $desc"; sed 's/^/    /' /tmp/iftrain-cli.$$; fail=$((fail+1)); fi
}
expect_rc() { # rc, command...
  want=$1; shift
  "$@" >/dev/null 2>&1; rc=$?
  [ "$rc" -eq "$want" ] || { echo "    exit code $rc, expected $want: $*"; return 1; }
}
: "${IFTRAIN:?IFTRAIN must point at the binary}"
check "iftrain --version" sh -c "$IFTRAIN --version | grep -q '^iftrain [0-9]'"
check "iftrain --help lists subcommands" sh -c "$IFTRAIN --help | grep -q 'bench'"
check "no arguments is a usage error" expect_rc 2 "$IFTRAIN"
check "unknown subcommand is a usage error" expect_rc 2 "$IFTRAIN" frobnicate
for sub in train eval generate prep ckpt bench info; do
  check "iftrain $sub --help" sh -c "$IFTRAIN $sub --help | grep -q 'iftrain $sub'"
done
check "bench gemm --help" sh -c "$IFTRAIN bench gemm --help | grep -q -- '--sizes'"
check "bad --threads is a usage error" expect_rc 2 "$IFTRAIN" info --threads=zero
check "bad --kernels is a usage error" expect_rc 2 "$IFTRAIN" info --kernels=zen9
check "info names kernels and parallel HDF5" sh -c "$IFTRAIN info | grep -q 'parallel: yes' && $IFTRAIN info | grep -q 'kernels'"
check "info --kernels=generic is honoured" sh -c "$IFTRAIN info --kernels=generic | grep -q 'kernels generic (chosen by --kernels option'"
check "info under 2 ranks shows both ranks" sh -c "$MPIRUN_WRAP 2 $IFTRAIN info | grep -c '^  rank [01]/2' | grep -q '^2$'"
check "bench gemm --json has the contract fields" sh -c "
  $IFTRAIN bench gemm --json --sizes=64,128 --threads-list=1 --reps=1 > /tmp/iftrain-bench.$$ &&
  python3 - /tmp/iftrain-bench.$$ <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(rows) >= 2, rows
for r in rows:
    for k in ('bench', 'kernels', 'threads', 'm', 'n', 'k', 'gflops'):
        assert k in r, (k, r)
    assert r['bench'] == 'gemm' and r['gflops'] > 0, r
assert len({r['kernels'] for r in rows}) >= 1
PY"
check "bench gemm under 2 ranks reports psgemm on 1x2 and 2x1" sh -c "
  $MPIRUN_WRAP 2 $IFTRAIN bench gemm --json --sizes=64 --psgemm-sizes=128 --nb=32 --reps=1 --no-default |
  grep '\"bench\":\"psgemm\"' | grep -c -e '\"grid\":\"1x2\"' -e '\"grid\":\"2x1\"' | grep -q '^2$'"
rm -f /tmp/iftrain-cli.$$ /tmp/iftrain-bench.$$
[ "$fail" -eq 0 ] || { echo "$fail CLI check(s) failed"; exit 1; }
