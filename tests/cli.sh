#!/bin/sh
# CLI contract: help and version, every subcommand's --help, exit codes of
# unknown and unimplemented subcommands, `info` under 2 ranks, the JSON
# fields of `bench gemm --json`, prep's input checks (text encoding, in-place
# refusal, argument errors: exit 2) and the data set loader's value checks.
# Every check tests the exit code of the command it runs: output is matched
# in a file (expect_msg, refused), never through `iftrain ... | grep`, whose
# status is grep's alone.
set -u
fail=0
check() { # description, command...
  desc=$1; shift
  if "$@" >/tmp/iftrain-cli.$$ 2>&1; then echo "PASS: $desc"; else echo "FAIL: $desc"; sed 's/^/    /' /tmp/iftrain-cli.$$; fail=$((fail+1)); fi
}
expect_msg() { # rc, fragment, command...: that exit code and the fragment in the output
  want=$1; frag=$2; shift 2
  "$@" >/tmp/iftrain-msg.$$ 2>&1; rc=$?
  [ "$rc" -eq "$want" ] || { echo "    exit code $rc, expected $want: $*"; sed 's/^/    /' /tmp/iftrain-msg.$$; return 1; }
  grep -q -e "$frag" /tmp/iftrain-msg.$$ || { echo "    output lacks '$frag': $*"; sed 's/^/    /' /tmp/iftrain-msg.$$; return 1; }
}
expect_rc() { # rc, command...
  want=$1; shift
  "$@" >/dev/null 2>&1; rc=$?
  [ "$rc" -eq "$want" ] || { echo "    exit code $rc, expected $want: $*"; return 1; }
}
refused() { # message fragment, command...: exit code 2 and the fragment in the output
  frag=$1; shift
  out=$("$@" 2>&1); rc=$?
  [ "$rc" -eq 2 ] || { echo "    exit code $rc, expected 2: $*"; echo "$out"; return 1; }
  printf '%s\n' "$out" | grep -qF -- "$frag" || { echo "    no '$frag' in the output of $*:"; echo "$out"; return 1; }
}
: "${IFTRAIN:?IFTRAIN must point at the binary}"
: "${MKDATA:?MKDATA must point at tests/mkdata}"
w=/tmp/iftrain-cli-e2e.$$
mkdir -p "$w"
check "iftrain --version" expect_msg 0 '^iftrain [0-9]' "$IFTRAIN" --version
check "iftrain --help lists subcommands" expect_msg 0 'bench' "$IFTRAIN" --help
check "no arguments is a usage error" expect_rc 2 "$IFTRAIN"
check "unknown subcommand is a usage error" expect_rc 2 "$IFTRAIN" frobnicate
for sub in train eval generate prep ckpt bench info; do
  check "iftrain $sub --help" expect_msg 0 "iftrain $sub" "$IFTRAIN" "$sub" --help
done
check "bench gemm --help" expect_msg 0 '--sizes' "$IFTRAIN" bench gemm --help
check "bad --threads is a usage error" expect_rc 2 "$IFTRAIN" info --threads=zero
check "bad --kernels is a usage error" expect_rc 2 "$IFTRAIN" info --kernels=zen9
check "info names kernels and parallel HDF5" sh -c "$IFTRAIN info > $w/info.log && grep -q 'parallel: yes' $w/info.log && grep -q 'kernels' $w/info.log"
check "info --kernels=generic is honoured" expect_msg 0 'kernels generic (chosen by --kernels option' "$IFTRAIN" info --kernels=generic
check "info under 2 ranks shows both ranks" sh -c "$MPIRUN_WRAP 2 $IFTRAIN info > $w/info2.log && test \$(grep -c '^  rank [01]/2' $w/info2.log) -eq 2"
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
check "bench gemm under 2 ranks reports psgemm on 1x2 and 2x1, PBLAS blocks 32 and 512" sh -c "
  $MPIRUN_WRAP 2 $IFTRAIN bench gemm --json --sizes=64 --psgemm-sizes=128 --nb=32 --reps=1 --no-default > $w/psgemm.log &&
  test \$(grep '\"bench\":\"psgemm\"' $w/psgemm.log | grep -e '\"grid\":\"1x2\"' -e '\"grid\":\"2x1\"' |
  grep -c -e '\"pblas_block\":32,' -e '\"pblas_block\":512,') -eq 4"
check "bench scaling under 2 ranks: layouts, time split, CSV" sh -c "
  rm -f /tmp/iftrain-scal.$$.csv
  $MPIRUN_WRAP 2 $IFTRAIN bench scaling --json --hidden=64 --layers=1 --steps=1 --batch=4 --seq=16 --csv=/tmp/iftrain-scal.$$.csv > /tmp/iftrain-scal.$$ &&
  python3 - /tmp/iftrain-scal.$$ /tmp/iftrain-scal.$$.csv <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith('{')]
lay = {(r['mode'], r['dp'], r['tp']) for r in rows}
assert {('strong', 1, 1), ('strong', 2, 1), ('strong', 1, 2), ('weak', 2, 1)} <= lay, lay
for r in rows:
    assert r['tokens_per_s'] > 0 and abs(r['compute_seconds'] + r['comm_seconds'] + r['idle_seconds'] - r['seconds']) < 3e-5, r  # printed to 5 decimals
    assert (r['comm_seconds'] > 0) == (r['dp'] * r['tp'] > 1), r
assert len(open(sys.argv[2]).read().strip().split(chr(10))) == len(rows) + 1
PY"
rm -f /tmp/iftrain-scal.$$ /tmp/iftrain-scal.$$.csv
check "bench comm under 2 ranks: ping-pong and all-reduce sweeps" sh -c "
  $MPIRUN_WRAP 2 $IFTRAIN bench comm --json --max-bytes=65536 --reps=3 > /tmp/iftrain-comm.$$ &&
  test \$(grep -c '\"bench\":\"pingpong\"' /tmp/iftrain-comm.$$) -eq 8 && test \$(grep -c '\"bench\":\"allreduce\"' /tmp/iftrain-comm.$$) -eq 8"
rm -f /tmp/iftrain-comm.$$
# end to end: generate, prep, train on 2 ranks, eval, generate, step-0 checkpoint
tiny="--model.hidden_size=32 --model.intermediate_size=64 --model.num_hidden_layers=1 --train.batch_size=8 --train.micro_batch=4"
check "prep --generate writes a data set" expect_msg 0 '64 rows written' "$IFTRAIN" prep --generate arith --seed 3 -n 64 -o "$w/a.h5"
printf '{"prompt":"a","response":"b"}\n{oops}\n' > "$w/bad.jsonl"
check "prep of a malformed line names the line, exit 2" expect_msg 2 'bad.jsonl:2:' "$IFTRAIN" prep "$w/bad.jsonl" -o "$w/bad.h5"
# prep: text encoding (exit 2 naming FILE:LINE:COLUMN), BOM, --replace-invalid
printf '{"prompt":"a","response":"b"}\n{"prompt":"a","response":"x\377"}\n' > $w/utf.jsonl
check "prep: invalid UTF-8 names line and byte column, exit 2" expect_msg 2 'utf.jsonl:2:28: invalid UTF-8' "$IFTRAIN" prep "$w/utf.jsonl" -o "$w/utf.h5"
printf '{"prompt":"a","response":"\\ud83d!"}\n' > $w/sur.jsonl
check "prep: lone surrogate escape is refused, exit 2" expect_msg 2 'sur.jsonl:1:27: lone surrogate .uD83D' "$IFTRAIN" prep "$w/sur.jsonl" -o "$w/sur.h5"
printf '{"prompt":"a","response":"\\u0000"}\n' > $w/nul.jsonl
check "prep: NUL (\\u0000) is refused, exit 2" expect_msg 2 'nul.jsonl:1:27: NUL' "$IFTRAIN" prep "$w/nul.jsonl" -o "$w/nul.h5"
printf '{"prompt":"a","response":"x\000y"}\n' > $w/nul2.jsonl
check "prep: raw NUL byte is refused, exit 2" expect_msg 2 'nul2.jsonl:1:28: NUL byte' "$IFTRAIN" prep "$w/nul2.jsonl" -o "$w/nul2.h5"
printf '\357\273\277{"prompt":"a","response":"\\ud83d\\ude00"}\n' > $w/bom.jsonl
check "prep: a UTF-8 BOM and a surrogate pair are accepted" expect_msg 0 '1 rows written' "$IFTRAIN" prep "$w/bom.jsonl" -o "$w/bom.h5"
check "prep --replace-invalid reports the count" expect_msg 0 ' 1 invalid UTF-8 sequences' "$IFTRAIN" prep "$w/utf.jsonl" --replace-invalid -o "$w/utf.h5"
check "prep --max-len leaving no answer token: nothing to train on, exit 2" expect_msg 2 'nothing to train on' "$IFTRAIN" prep "$w/bom.jsonl" --max-len 3 -o "$w/short.h5"
check "prep --verify accepts an intact data set" expect_msg 0 'content_sha256 [0-9a-f]* OK' "$IFTRAIN" prep --verify "$w/bom.h5"
# prep never destroys its input or an old output
inplace() {
  cp $w/bom.jsonl $w/in.jsonl && cp $w/bom.jsonl $w/in.orig || return 1
  expect_msg 2 'is the input' "$IFTRAIN" prep "$w/in.jsonl" -o "$w/in.jsonl" || return 1
  expect_msg 2 'is the input' "$IFTRAIN" prep "$w/in.jsonl" -o "$w/../$(basename "$w")/./in.jsonl" || return 1
  ln -sf $w/in.jsonl $w/link.h5
  expect_msg 2 'is the input' "$IFTRAIN" prep "$w/in.jsonl" -o "$w/link.h5" || return 1
  expect_msg 2 'is not an iftrain data set' "$IFTRAIN" prep "$w/in.jsonl" -o "$w/utf.jsonl" || return 1
  if ! { cmp -s "$w/in.jsonl" "$w/in.orig" && test -L "$w/link.h5"; }; then echo "    the input was changed"; return 1; fi
  cp $w/bom.h5 $w/old.h5
  expect_msg 2 'utf.jsonl:2:28:' "$IFTRAIN" prep "$w/utf.jsonl" -o "$w/old.h5" || return 1
  if ! cmp -s "$w/bom.h5" "$w/old.h5" || test -e "$w/old.h5.tmp"; then echo "    a failed prep changed the old output"; return 1; fi
}
check "prep refuses to overwrite its input (any path, link) or a foreign file; a failed prep keeps the old output" inplace
check "prep --generate with --jsonl naming the output is refused, exit 2" sh -c "
  cp $w/bom.h5 $w/gen-same.h5 && $IFTRAIN prep --generate arith -n 4 --jsonl $w/gen-same.h5 -o $w/gen-same.h5 > $w/gs.log 2>&1
  rc=\$?; test \$rc -eq 2 && grep -q 'are the same file' $w/gs.log && cmp -s $w/bom.h5 $w/gen-same.h5"
check "prep --generate with -n x exits 2" expect_msg 2 "-n = 'x' is not a whole number" "$IFTRAIN" prep --generate arith -n x -o "$w/g.h5"
check "prep --generate with -n 0 exits 2" expect_msg 2 "-n = 0 is out of range" "$IFTRAIN" prep --generate arith -n 0 -o "$w/g.h5"
check "prep --generate of an unknown task exits 2" expect_msg 2 "unknown generator 'nope'" "$IFTRAIN" prep --generate nope -o "$w/g.h5"
check "prep --generate with a bad --seed exits 2" expect_msg 2 "--seed = 'one' is not a whole number" "$IFTRAIN" prep --generate arith --seed one -o "$w/g.h5"
check "prep --max-len with a non-number exits 2" expect_msg 2 "--max-len = 'ten' is not a whole number" "$IFTRAIN" prep "$w/bom.jsonl" --max-len ten -o "$w/g.h5"
# the loader's value checks (data sets prep would not write: tests/mkdata)
check "train on 2 ranks: loss mask value 7 (rank 1's rows) fails both ranks, exit 2" sh -c "
  $MKDATA $w/m7.h5 mask7 && $MPIRUN_WRAP 2 $IFTRAIN train $tiny --train.steps=1 --data.train=$w/m7.h5 --data.eval= --ckpt.dir= > $w/m7.log 2>&1
  rc=\$?; test \$rc -eq 2 || { echo \"    exit code \$rc\"; cat $w/m7.log; exit 1; }
  grep -q 'row 5: /loss_mask\[23\] = 7; loss mask values must be 0 or 1' $w/m7.log"
check "train: all-zero loss masks are nothing to train on, exit 2" sh -c "
  $MKDATA $w/zero.h5 zero && $MPIRUN_WRAP 2 $IFTRAIN train $tiny --train.steps=1 --data.train=$w/zero.h5 --data.eval= --ckpt.dir= > $w/zero.log 2>&1
  rc=\$?; test \$rc -eq 2 || { echo \"    exit code \$rc\"; cat $w/zero.log; exit 1; }
  grep -q 'nothing to train on' $w/zero.log"
check "train: unknown key gets a did-you-mean, exit 2" refused "did you mean 'optim.lr'" "$IFTRAIN" train --optim.learning_rate=1
check "train: missing data set names the file, exit 2" expect_msg 2 'none.h5.*cannot be read' "$IFTRAIN" train --data.train="$w/none.h5"
# garbage in the configuration or in a numeric option: exit 2, the key or option named
check "train: negative train.steps is refused" refused "train.steps = -5 is out of range (allowed: >= -1)" "$IFTRAIN" train --train.steps=-5
check "train: optim.beta2 outside [0, 1) is refused" refused "optim.beta2 = 1.5 is out of range (allowed: [0, 1))" "$IFTRAIN" train --optim.beta2=1.5
check "train: trailing garbage in a number is refused" refused "optim.lr = '1e-3abc' is not a number" "$IFTRAIN" train --optim.lr=1e-3abc
check "train: an int that overflows is refused" refused "model.hidden_size = 99999999999 does not fit" "$IFTRAIN" train --model.hidden_size=99999999999
check "train: --config of a directory is refused" refused "'/tmp' is a directory, not a regular file" "$IFTRAIN" train --config /tmp
check "train: --config of a missing file is refused" refused "cannot open config file '$w/none.ini'" "$IFTRAIN" train --config=$w/none.ini
printf '[train]\nsteps = 3\nsteps = 4\n' > $w/dup.ini
check "train: a key twice in the config file names both lines" refused "dup.ini:3: train.steps is set twice, on lines 2 and 3" "$IFTRAIN" train --config $w/dup.ini
printf '[optim]\nlr = nan\n' > $w/nan.ini
check "train: NaN in the config file names file:line and key" refused "nan.ini:2: optim.lr = 'nan' is not a finite number" "$IFTRAIN" train --config $w/nan.ini
check "prep: --max-len abc is refused" refused "--max-len = 'abc' is not a whole number" "$IFTRAIN" prep --generate arith -n 8 -o $w/x.h5 --max-len abc
check "prep: -n 0 is refused" refused "-n = 0 is out of range (allowed: >= 1)" "$IFTRAIN" prep --generate arith -n 0 -o $w/x.h5
check "eval: --max-new-tokens 5x is refused" refused "--max-new-tokens = '5x'" "$IFTRAIN" eval --ckpt $w/none.h5 --data $w/none.h5 --max-new-tokens 5x
check "generate: --temperature nan is refused" refused "--temperature = 'nan' is not a finite number" "$IFTRAIN" generate --ckpt $w/none.h5 --prompt x --temperature nan
check "bench gemm: --reps=0 is refused" refused "--reps = 0 is out of range" "$IFTRAIN" bench gemm --reps=0
check "bench scaling: a layout beyond int is refused" refused "bad option '--layouts=1x99999999999'" "$IFTRAIN" bench scaling --layouts=1x99999999999
here=$(cd "$(dirname "$0")" && pwd)
gzip -dc "$here/tok/data/gpt2/tokenizer.json.gz" > $w/gpt2-tokenizer.json
printf '{"text": "Hello, world!"}\n{"text": "caf\\u00e9 42 <|endoftext|>"}\n{"text": ""}\n' > $w/tok.jsonl
check "bench tok --json has the contract fields, both modes" sh -c "
  $IFTRAIN bench tok --no-mpi --json --tokenizer $w/gpt2-tokenizer.json --corpus $w/tok.jsonl --repeat 2 --chunk 30 > /tmp/iftrain-bench.$$ &&
  python3 - /tmp/iftrain-bench.$$ <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert [r['mode'] for r in rows] == ['lines', 'chunks'], rows
for r in rows:
    for k in ('bench', 'tokenizer', 'sha256', 'corpus', 'calls', 'bytes', 'tokens', 'passes', 'load_s', 'mb_per_s',
              'median_mb_per_s', 'tokens_per_s', 'cpu_mb_per_s', 'cpu_over_wall', 'cold_mb_per_s'):
        assert k in r, (k, r)
    assert r['bench'] == 'tok' and r['mb_per_s'] > 0 and r['tokens'] > 0 and r['passes'] == 2, r
l, c = rows
assert l['calls'] == 3 and l['bytes'] == 13 + 22 and c['calls'] == 2 and c['bytes'] == l['bytes'] + 1, rows
assert l['cold_mb_per_s'] is not None and c['cold_mb_per_s'] is None, rows
PY"
check "bench tok: --repeat=0 is refused" refused "--repeat = 0 is out of range" "$IFTRAIN" bench tok --tokenizer $w/gpt2-tokenizer.json --repeat=0
check "bench tok: an unknown mode is refused" refused "'words' is not lines or chunks" "$IFTRAIN" bench tok --tokenizer $w/gpt2-tokenizer.json --modes=lines,words
check "bench tok: a corpus line without text is refused" refused "no \"text\" string" "$IFTRAIN" bench tok --no-mpi --tokenizer $w/gpt2-tokenizer.json --corpus $w/bad.jsonl
check "train.steps = 0 writes the initial checkpoint" sh -c "$IFTRAIN train $tiny --train.steps=0 --data.train=$w/a.h5 --data.eval= --ckpt.dir=$w/c0 && test -f $w/c0/step_0.h5 && grep -q step_0.h5 $w/c0/latest"
printf '\357\273\277[train]\r\nsteps = 0\r\n' > $w/bom.ini
check "train: a config file with a UTF-8 BOM and CRLF lines is read" sh -c "$IFTRAIN train $tiny --config=$w/bom.ini --data.train=$w/a.h5 --data.eval= --ckpt.dir=$w/bom && test -f $w/bom/step_0.h5"
check "train on 2 ranks writes metrics and a checkpoint" sh -c "$MPIRUN_WRAP 2 $IFTRAIN train $tiny --train.steps=4 --data.train=$w/a.h5 --data.eval=$w/a.h5 --eval.max_samples=8 --eval.max_new_tokens=8 --ckpt.dir=$w/c1 --metrics.path=$w/c1/m.jsonl > $w/train.log 2>&1 && test -f $w/c1/step_4.h5 && grep -q '\"step\":4,' $w/c1/m.jsonl && grep -q 'exact_match' $w/c1/m.jsonl && grep -q 'final exact match' $w/train.log"
check "train.packing = 1 on 2 ranks: fill in the metrics and the progress line" sh -c "$MPIRUN_WRAP 2 $IFTRAIN train $tiny --train.steps=2 --train.packing=1 --train.seq_len=96 --model.max_position_embeddings=96 --data.train=$w/a.h5 --data.eval= --ckpt.dir= --metrics.path=$w/pk.jsonl > $w/pk.log 2>&1 && grep -q '\"fill\":0\.[0-9]' $w/pk.jsonl && grep -q 'fill 0\.[0-9]' $w/pk.log"
# shellcheck disable=SC2086 # $tiny is a list of options, split on purpose
# an evaluation in the middle of a packed run (it decodes with the key/value
# cache, which packed micro-batches refuse: the cache must be gone after it)
check "train.packing = 1 with evaluations between the steps" sh -c "$MPIRUN_WRAP 2 $IFTRAIN train $tiny --train.steps=4 --train.packing=1 --train.seq_len=96 --model.max_position_embeddings=96 --data.train=$w/a.h5 --data.eval=$w/a.h5 --eval.every=2 --eval.max_samples=8 --eval.max_new_tokens=4 --ckpt.dir= --metrics.path=$w/pke.jsonl > $w/pke.log 2>&1 && test \$(grep -c rouge_l $w/pke.jsonl) = 2"
check "train.packing = 1 with ift.reduce = microbatch is refused" refused "use ift.reduce = global with train.packing = 1" "$IFTRAIN" train $tiny --train.packing=1 --ift.reduce=microbatch --data.train="$w/a.h5" --data.eval=
check "bench step --steps=0: one step, memory figures" expect_msg 0 'activations .* bytes per token), peak RSS' "$IFTRAIN" bench step --steps=0 --loss=ift --train.seq_len=32 --train.micro_batch=2 --model.hidden_size=64 --model.intermediate_size=128 --model.num_hidden_layers=1 --model.num_attention_heads=2 --model.num_key_value_heads=2
check "eval of that checkpoint" expect_msg 0 '"exact_match"' "$IFTRAIN" eval --ckpt "$w/c1/step_4.h5" --data "$w/a.h5" --max-samples 8 --max-new-tokens 8 --json
check "generate from that checkpoint" expect_msg 0 '^12+34=' "$IFTRAIN" generate --ckpt "$w/c1/step_4.h5" --prompt '12+34=' --max-new-tokens 4
check "eval of a missing checkpoint fails clearly, exit 2" expect_msg 2 'does not exist' "$IFTRAIN" eval --ckpt "$w/none.h5" --data "$w/a.h5"
# shellcheck disable=SC2086 # $launcher ("" or "mpirun.sh 2") and $tiny are word lists, split on purpose
preempt() { # SIGUSR1 mid-run -> checkpoint + exit 75 -> resume=auto finishes the run
  launcher=$1
  IFT_NO_LOCK=1; export IFT_NO_LOCK # the signal must reach mpirun itself
  rm -rf $w/p; mkdir -p $w/p
  $launcher "$IFTRAIN" train $tiny --train.steps=400 --data.train="$w/a.h5" --data.eval= --ckpt.dir="$w/p" --metrics.path="$w/p/m.jsonl" > "$w/p/log" 2>&1 &
  pid=$!
  n=0; while [ "$(cat $w/p/m.jsonl 2>/dev/null | wc -l)" -lt 3 ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done
  kill -USR1 $pid
  wait $pid; rc=$?
  [ $rc -eq 75 ] || { echo "    exit code $rc, expected 75"; cat $w/p/log; return 1; }
  ls $w/p/step_*.h5 >/dev/null 2>&1 || { echo "    no checkpoint written"; return 1; }
  s=$(sed 's/step_\([0-9]*\).h5/\1/' $w/p/latest)
  if [ "$s" -le 0 ] || [ "$s" -ge 400 ]; then echo "    latest is step $s"; return 1; fi
  $launcher "$IFTRAIN" train $tiny --train.steps=400 --data.train="$w/a.h5" --data.eval= --ckpt.dir="$w/p" --ckpt.resume=auto > "$w/p/log2" 2>&1 || return 1
  grep -q "resumed from .*step_$s.h5 at step $s" $w/p/log2 && test -f $w/p/step_400.h5
}
check "SIGUSR1: checkpoint, exit 75, resume finishes (1 process)" preempt ""
check "SIGUSR1 forwarded by mpirun: checkpoint, exit 75, resume finishes (2 ranks)" preempt "$MPIRUN_WRAP 2"
check "a diverging run stops naming the step and keeps its checkpoint" sh -c "$IFTRAIN train $tiny --train.steps=60 --optim.name=sgd --optim.lr=1e38 --optim.clip=0 --optim.warmup=0 --data.train=$w/a.h5 --data.eval= --ckpt.dir=$w/nan --ckpt.every=1 > $w/nan.log 2>&1; test \$? -ne 0 && grep -q 'step [0-9]*: .* is \(NaN\|Inf\)' $w/nan.log && $IFTRAIN ckpt verify $w/nan/\$(cat $w/nan/latest) > /dev/null"
killwrite() { # kill -9 at several moments of a run that checkpoints every step
  for k in 2 4 7; do
    rm -rf $w/kw
    $IFTRAIN train --train.steps=200 --train.batch_size=8 --data.train=$w/a.h5 --data.eval= --ckpt.dir=$w/kw --ckpt.every=1 --metrics.path=$w/kw/m.jsonl > /dev/null 2>&1 &
    pid=$!
    n=0; while [ "$(cat $w/kw/m.jsonl 2>/dev/null | wc -l)" -lt $k ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done
    kill -9 $pid; wait $pid 2>/dev/null
    "$IFTRAIN" ckpt verify "$w/kw/$(cat "$w/kw/latest")" > /dev/null || { echo "    latest after kill at $k steps does not verify"; return 1; }
  done
}
check "kill -9 during checkpointing leaves latest loadable" killwrite
rankdeath() { # one rank killed: the job ends (not hangs) within 60 s
  IFT_NO_LOCK=1; export IFT_NO_LOCK
  rm -rf $w/rd
  "$MPIRUN_WRAP" 2 "$IFTRAIN" train --train.steps=100000 --data.train="$w/a.h5" --data.eval= --ckpt.dir= --metrics.path="$w/rd/m.jsonl" > "$w/rd.log" 2>&1 &
  pid=$!
  n=0; while [ "$(cat $w/rd/m.jsonl 2>/dev/null | wc -l)" -lt 2 ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done
  victim=$(pgrep -P $pid -f iftrain | head -1)
  [ -n "$victim" ] || { echo "    no rank found"; kill $pid; return 1; }
  kill -9 "$victim"
  n=0; while kill -0 $pid 2>/dev/null && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done
  if kill -0 $pid 2>/dev/null; then echo "    job still running 60 s after a rank died"; kill -9 $pid; return 1; fi
  wait $pid; rc=$?
  unset IFT_NO_LOCK
  [ $rc -ne 0 ]
}
check "a rank that dies ends the whole job" rankdeath
# checkpoint tools and bad checkpoints
ck=$w/c1/step_4.h5
check "ckpt info shows step and layout" expect_msg 0 'layout (dp x tp) *2 x 1' "$IFTRAIN" ckpt info "$ck"
check "ckpt verify passes a good checkpoint" expect_msg 0 'OK, [0-9]* tensors verified' "$IFTRAIN" ckpt verify "$ck"
check "ckpt convert --model-only exports a verifiable file" sh -c "$IFTRAIN ckpt convert $ck -o $w/m.h5 --model-only && $IFTRAIN ckpt verify $w/m.h5 > $w/mv.log && grep -q OK $w/mv.log"
convert_inplace() {
  cp $ck $w/conv.h5 && cp $ck $w/conv.orig || return 1
  expect_msg 2 'is the input checkpoint' "$IFTRAIN" ckpt convert "$w/conv.h5" -o "$w/conv.h5" --model-only || return 1
  ln -sf $w/conv.h5 $w/conv-link.h5
  expect_msg 2 'is the input checkpoint' "$IFTRAIN" ckpt convert "$w/conv.h5" -o "$w/conv"-link.h5 --model-only || return 1
  cmp -s $w/conv.h5 $w/conv.orig || { echo "    the checkpoint was changed"; return 1; }
}
check "ckpt convert refuses to overwrite its input (same file, link), exit 2" convert_inplace
damage() {
  cp $ck $w/bad.h5
  size=$(stat -c %s $w/bad.h5)
  # overwrite 64 bytes inside the raw tensor data (the bulk of the file)
  printf 'DAMAGEDDAMAGEDDAMAGEDDAMAGEDDAMAGEDDAMAGEDDAMAGEDDAMAGEDDAMAGED!' | dd of=$w/bad.h5 bs=1 seek=$((size * 6 / 10)) conv=notrunc 2>/dev/null
  ! $IFTRAIN ckpt verify $w/bad.h5 > $w/verify.log 2>&1 && grep -q -e 'does not match its checksum' -e 'failed' $w/verify.log
}
check "ckpt verify names a damaged tensor and exits non-zero" damage
truncated() {
  head -c 100000 "$ck" > "$w/trunc.h5" || return 1
  "$IFTRAIN" ckpt verify "$w/trunc.h5" > "$w/trunc.log" 2>&1
  rc=$?
  [ "$rc" -eq 2 ] || { echo "    ckpt verify: exit code $rc, expected 2"; cat "$w/trunc.log"; return 1; }
  if grep -q OK "$w/trunc.log"; then echo "    ckpt verify says OK"; return 1; fi
  expect_msg 2 'not HDF5\|truncated' "$IFTRAIN" eval --ckpt "$w/trunc.h5" --data "$w/a.h5"
}
check "a truncated checkpoint is refused clearly, exit 2" truncated
check "a checkpoint of another model config is refused, exit 2" expect_msg 2 'hidden_size = 32 (configured 64)' "$IFTRAIN" train --model.hidden_size=64 --model.intermediate_size=64 --model.num_hidden_layers=1 --train.batch_size=8 --train.micro_batch=4 --data.train="$w/a.h5" --data.eval= --ckpt.dir="$w/other" --ckpt.resume="$ck"
check "an impossible ckpt.dir is reported, exit 2" sh -c "$IFTRAIN train $tiny --train.steps=1 --data.train=$w/a.h5 --data.eval= --ckpt.dir=/etc/passwd/x > $w/imp.log 2>&1; test \$? -eq 2 && grep -q 'cannot create checkpoint directory' $w/imp.log"
# shellcheck disable=SC2086 # $mid is a list of options, split on purpose
diskfull() { # a full file system makes the checkpoint write fail: the previous one stays valid
  mid="--model.num_hidden_layers=2 --train.batch_size=8 --train.micro_batch=4"
  "$IFTRAIN" train $mid --train.steps=2 --data.train="$w/a.h5" --data.eval= --ckpt.dir="$w/small/df" --quiet >/dev/null 2>&1 || return 1
  "$IFTRAIN" train $mid --train.steps=4 --data.train="$w/a.h5" --data.eval= --ckpt.dir="$w/small/df" --ckpt.resume=auto --ckpt.allow_changes=1 > "$w/df.log" 2>&1 && return 1
  grep -q 'ckpt.dir cannot take the .* of .*step_4.h5.tmp' $w/df.log && grep -q step_2.h5 $w/small/df/latest &&
    ! ls $w/small/df/step_4.h5* >/dev/null 2>&1 && $IFTRAIN ckpt verify $w/small/df/step_2.h5 >/dev/null
}
# memory errors of issue 14 (found with --enable-sanitizers): a missing
# checkpoint freed an uninitialised context; more than 1022 micro-batches per
# step overflowed a fixed array of micro-batch starts
check "eval with a missing checkpoint is a usage error, no crash" sh -c "$IFTRAIN eval --ckpt $w/none.h5 --data $w/a.h5 > $w/ev.log 2>&1; test \$? -eq 2 && grep -q 'none.h5' $w/ev.log"
check "generate with a missing checkpoint is a usage error, no crash" sh -c "$IFTRAIN generate --ckpt $w/none.h5 --prompt hi > $w/gen.log 2>&1; test \$? -eq 2 && grep -q 'none.h5' $w/gen.log"
check "2048 micro-batches of 1 per step train" sh -c "$IFTRAIN train --model.hidden_size=16 --model.intermediate_size=16 --model.num_hidden_layers=1 --model.num_attention_heads=2 --model.num_key_value_heads=1 --train.seq_len=16 --model.max_position_embeddings=16 --train.batch_size=2048 --train.micro_batch=1 --train.steps=1 --data.train=$w/a.h5 --data.eval= --ckpt.dir= --quiet > $w/mb.log 2>&1"
# needs a 7 MiB tmpfs (root); reported as skipped where it cannot be mounted
mkdir -p $w/small
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=7m tmpfs $w/small 2>/dev/null; then
  check "disk full during a write keeps the previous checkpoint" diskfull
  umount $w/small
else
  echo "SKIP: disk full during a write (cannot mount a small tmpfs here)"
fi
[ "${KEEP:-0}" = 1 ] || rm -rf $w
rm -f /tmp/iftrain-cli.$$ /tmp/iftrain-bench.$$ /tmp/iftrain-msg.$$
[ "$fail" -eq 0 ] || { echo "$fail CLI check(s) failed"; exit 1; }
