#!/bin/sh
# The README's first lines give two commands: the main job and the tests. CI
# (.ci/run) must run the second verbatim, and both must name what exists:
# bootstrap.sh and its options, and the make targets.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
readme=$top/README.md ci=$top/.ci/run
[ -f "$readme" ] && [ -f "$ci" ] || { echo "SKIP: no README.md or .ci/run"; exit 77; }
fail=0
# the code block that opens the README: its first two command lines
cmds=$(awk '/^```sh$/ { on = 1; next } on && /^```$/ { exit } on' "$readme" | head -n 2)
main=$(printf '%s\n' "$cmds" | sed -n 1p | sed 's/ *#.*//')
test_cmd=$(printf '%s\n' "$cmds" | sed -n 2p | sed 's/ *#.*//')
[ -n "$main" ] && [ -n "$test_cmd" ] || { echo "FAIL: README.md does not open with a block of two commands"; exit 1; }
grep -qxF -- "$test_cmd" "$ci" ||
  { echo "FAIL: .ci/run does not run the README's test command verbatim: $test_cmd"; fail=1; }
for c in "$main" "$test_cmd"; do
  # every ./bootstrap.sh option the command uses is one bootstrap.sh takes
  for o in $(printf '%s\n' "$c" | grep -o -- '--[a-z-]*'); do
    grep -q -- "$o)" "$top/bootstrap.sh" || grep -q -- "$o\*)" "$top/bootstrap.sh" ||
      grep -q -- "$o" "$top/configure.ac" || { echo "FAIL: '$c': bootstrap.sh takes no $o"; fail=1; }
  done
  # every make target it names is a target of Makefile.am (check is automake's)
  for t in $(printf '%s\n' "$c" | grep -o 'make [a-z-]*' | cut -d' ' -f2); do
    [ "$t" = check ] || grep -q "^$t:" "$top/Makefile.am" || { echo "FAIL: '$c': no make target $t in Makefile.am"; fail=1; }
  done
done
[ $fail -eq 0 ] && echo "PASS: README's two commands: '$main' and '$test_cmd' (run verbatim by .ci/run)"
exit $fail
