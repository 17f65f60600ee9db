#!/bin/sh
# Add up the individual tests of every suite log of `make check`: CUnit's
# "Run Summary" rows and the PASS:/FAIL:/SKIP: lines of the shell suites,
# and print one closing line "tests: N passed, N failed, N skipped".
# Usage: tests/summary.sh LOG...
awk '
  /^ *tests +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+/ { run += $3; pass += $4; fail += $5; next }
  /^PASS: / { pass++; next }
  /^FAIL: / { fail++; next }
  /^SKIP: / { skip++; next }
  END { printf "tests: %d passed, %d failed, %d skipped\n", pass, fail, skip }
' "$@"
