#!/bin/sh
# Faults a cluster user meets (issue 14): a full disk while ranks write a
# checkpoint, one rank's read failing, a checkpoint directory of another run,
# damaged or inconsistent checkpoints, changed schedules on resume, SIGTERM
# to mpirun.  Each case checks the exit code, the message, that nothing hung
# (every job runs under `timeout`) and that nothing was lost.
set -u
fail=0
check() { # description, command...
  desc=$1; shift
  if "$@" >/tmp/iftrain-faults.$$ 2>&1; then echo "PASS: $desc"; else echo "FAIL: $desc"; sed 's/^/    /' /tmp/iftrain-faults.$$; fail=$((fail+1)); fi
}
: "${IFTRAIN:?IFTRAIN must point at the binary}"
: "${MPIRUN_WRAP:?MPIRUN_WRAP must point at tests/mpirun.sh}"
# Hold the MPI test lock for the whole script (as tests/slurm_scripts.sh
# does), so the timeouts below measure iftrain, not the wait for other tests'
# jobs; the jobs inside then run without taking it again.
if [ -z "${IFT_LOCKED:-}" ] && command -v flock >/dev/null; then
  exec env IFT_LOCKED=1 flock "${TMPDIR:-/tmp}/iftrain-mpi-tests.lock" sh "$0" "$@"
fi
IFT_NO_LOCK=1; export IFT_NO_LOCK
# Debian's python3 (with python3-h5py) even when another python3 comes first in PATH
PY=
for p in /usr/bin/python3 python3; do "$p" -c 'import h5py' 2>/dev/null && { PY=$p; break; }; done
[ -n "$PY" ] || { echo "FAIL: python3-h5py is needed to damage checkpoints (apt-get install python3-h5py)"; exit 1; }
w=/tmp/iftrain-faults.$$.d
mkdir -p $w
# a constant learning rate: resuming with more train.steps continues the same run
tiny="--model.hidden_size=32 --model.intermediate_size=64 --model.num_hidden_layers=1 --train.batch_size=8 --train.micro_batch=4 --data.eval= --optim.schedule=constant --optim.warmup=0"
T="timeout 120"
# run: expected exit code, log file, command...; fails on a hang (timeout's 124)
run() {
  want=$1; log=$2; shift 2
  $T "$@" > "$log" 2>&1; rc=$?
  [ $rc -ne 124 ] || { echo "    HUNG (killed after 120 s): $*"; tail -5 "$log"; return 1; }
  [ $rc -eq "$want" ] || { echo "    exit code $rc, expected $want: $*"; tail -8 "$log"; return 1; }
}
has() { grep -q -e "$1" "$2" || { echo "    '$1' not in $2:"; tail -8 "$2"; return 1; }; }
$IFTRAIN prep --generate arith --seed 3 -n 64 -o $w/a.h5 >/dev/null || { echo "FAIL: prep"; exit 1; }
D="--data.train=$w/a.h5"

# ---- a full disk on 2 and 4 ranks: every rank stops with the same error
fullrun() { # np
  np=$1; d=$w/small$np
  mkdir -p $d
  mount -t tmpfs -o size=2m tmpfs $d || return 1
  run 1 $w/full$np.log $MPIRUN_WRAP $np $IFTRAIN train $tiny --model.num_hidden_layers=4 --model.hidden_size=64 \
      --model.intermediate_size=128 --train.steps=3 $D --ckpt.every=1 --ckpt.dir=$d/ck
  r=$?
  ls $d/ck > $w/full$np.ls 2>&1
  umount $d
  [ $r -eq 0 ] && has 'ckpt.dir cannot take the' $w/full$np.log && ! grep -q 'step_.*h5' $w/full$np.ls &&
    ! grep -q 'MPI_ABORT' $w/full$np.log
}
if [ "$(id -u)" = 0 ] && mkdir -p $w/probe && mount -t tmpfs -o size=1m tmpfs $w/probe 2>/dev/null; then
  umount $w/probe
  check "disk full during a checkpoint on 2 ranks: both stop, exit 1, no hang" fullrun 2
  check "disk full during a checkpoint on 4 ranks: all stop, exit 1, no hang" fullrun 4
  unreserved() { # the disk fills during HDF5's writes (space not reserved): the close watchdog ends the job
    d=$w/small9; mkdir -p $d; mount -t tmpfs -o size=2m tmpfs $d || return 1
    IFT_FAULT=ckpt_no_reserve CKPT_CLOSE_TIMEOUT=5 run 1 $w/full9.log $MPIRUN_WRAP 2 $IFTRAIN train $tiny \
      --model.num_hidden_layers=4 --model.hidden_size=64 --model.intermediate_size=128 --train.steps=3 $D \
      --ckpt.every=1 --ckpt.dir=$d/ck
    r=$?; ls $d/ck > $w/full9.ls 2>&1
    # whatever fitted stays valid: latest names a complete, verifying checkpoint
    v=0; [ ! -f $d/ck/latest ] || $IFTRAIN ckpt verify $d/ck >/dev/null 2>&1 || v=1
    umount $d
    [ $r -eq 0 ] && [ $v -eq 0 ] && grep -q -e 'did not finish closing' -e 'could not be written' $w/full9.log &&
      ! grep -q 'step_3.h5' $w/full9.ls
  }
  check "disk full inside HDF5's writes (no reservation): exit 1 within the close timeout" unreserved
else
  echo "FAIL: the full-disk tests need root to mount a small tmpfs"; fail=$((fail+1))
fi
check "one rank's checkpoint write fails: the others do not hang" sh -c "
  IFT_FAULT=ckpt_write@1 $T $MPIRUN_WRAP 2 $IFTRAIN train $tiny --train.steps=2 $D --ckpt.dir=$w/wf > $w/wf.log 2>&1; rc=\$?
  test \$rc -eq 1 && grep -q 'rank 1/2.*writing' $w/wf.log && test ! -f $w/wf/latest"

# ---- one rank fails alone before training or between steps (review h-review)
check "one rank's setup read fails (train_setup@1): no hang, exit 2" sh -c "
  IFT_FAULT=train_setup@1 $T $MPIRUN_WRAP 2 $IFTRAIN train $tiny --train.steps=2 $D --ckpt.dir=$w/ts > $w/ts.log 2>&1
  rc=\$?; test \$rc -eq 2 && grep -q 'rank 1/2.*setup failed' $w/ts.log"
check "one rank's optimizer allocation fails (train_alloc@1): no hang, exit 1, no MPI_ABORT" sh -c "
  IFT_FAULT=train_alloc@1 $T $MPIRUN_WRAP 2 $IFTRAIN train $tiny --train.steps=2 $D --ckpt.dir=$w/ta > $w/ta.log 2>&1
  rc=\$?; test \$rc -eq 1 && grep -q 'rank 1/2.*optimizer state' $w/ta.log && ! grep -q MPI_ABORT $w/ta.log"
check "ZeRO: one rank cannot gather the checkpoint's optimizer state: no hang, exit 1, exit_status" sh -c "
  IFT_FAULT=zero_view@1 $T $MPIRUN_WRAP 2 $IFTRAIN train $tiny --optim.zero=1 --train.steps=2 $D --ckpt.dir=$w/zv > $w/zv.log 2>&1
  rc=\$?; test \$rc -eq 1 && ! grep -q MPI_ABORT $w/zv.log && grep -q '^1 failed' $w/zv/exit_status"
check "latest cannot be replaced (rank 0 alone fails): exit 1 on 2 ranks, no MPI_ABORT, exit_status" sh -c "
  mkdir -p $w/lt/latest.tmp
  $T $MPIRUN_WRAP 2 $IFTRAIN train $tiny --train.steps=2 $D --ckpt.dir=$w/lt > $w/lt.log 2>&1
  rc=\$?; test \$rc -eq 1 && ! grep -q MPI_ABORT $w/lt.log && grep -q 'latest to step 2 could not be written' $w/lt.log &&
  grep -q '^1 failed' $w/lt/exit_status"
check "a diverging run on 2 ranks: every rank stops at the step, exit 1, no MPI_ABORT" sh -c "
  $T $MPIRUN_WRAP 2 $IFTRAIN train $tiny --train.steps=60 --optim.name=sgd --optim.lr=1e38 --optim.clip=0 $D --ckpt.dir=$w/nan --ckpt.every=1 > $w/nan.log 2>&1
  rc=\$?; test \$rc -eq 1 && ! grep -q MPI_ABORT $w/nan.log && grep -q 'step [0-9]*: .* is \\(NaN\\|Inf\\)' $w/nan.log &&
  grep -q '^1 failed' $w/nan/exit_status"
check "eval and generate of a missing checkpoint: exit 2, no crash (1 and 2 ranks)" sh -c "
  $T $IFTRAIN eval --ckpt $w/none.h5 --data $w/a.h5 > $w/em.log 2>&1; test \$? -eq 2 &&
  $T $IFTRAIN generate --ckpt $w/none.h5 --prompt 1+1= >> $w/em.log 2>&1; test \$? -eq 2 &&
  $T $MPIRUN_WRAP 2 $IFTRAIN eval --ckpt $w/none.h5 --data $w/a.h5 >> $w/em.log 2>&1; test \$? -eq 2 &&
  grep -q 'does not exist' $w/em.log && ! grep -q -e 'Segmentation' -e MPI_ABORT $w/em.log"

# ---- one rank's read fails (checkpoint on resume, data during training)
check "train 2 steps on 2 ranks (a run to resume)" run 0 $w/base.log $MPIRUN_WRAP 2 $IFTRAIN train $tiny --train.steps=2 $D --ckpt.dir=$w/base
check "one rank's checkpoint read fails on resume: both stop with its error" sh -c "
  cp -r $w/base $w/rf
  IFT_FAULT=ckpt_read@1 $T $MPIRUN_WRAP 2 $IFTRAIN train $tiny --train.steps=4 $D --ckpt.dir=$w/rf --ckpt.resume=auto > $w/rf.log 2>&1
  rc=\$?; test \$rc -eq 2 && grep -q 'rank 1/2.*reading' $w/rf.log && grep -q step_2.h5 $w/rf/latest"
check "one rank's batch-plan allocation fails: both stop, exit 1, no hang" sh -c "
  IFT_FAULT=sched_alloc@1 $T $MPIRUN_WRAP 2 $IFTRAIN train $tiny --train.steps=2 $D --ckpt.dir=$w/sa > $w/sa.log 2>&1
  rc=\$?; test \$rc -eq 1 && grep -q 'rank 1/2.*batch plan' $w/sa.log && ! grep -q MPI_ABORT $w/sa.log"
check "one rank's data read fails mid-run on 2 ranks (TP 2): no hang, exit 2" sh -c "
  IFT_FAULT=data_read@0 $T $MPIRUN_WRAP 2 $IFTRAIN train $tiny --dist.tp=2 --train.steps=2 $D --ckpt.dir=$w/dr > $w/dr.log 2>&1
  rc=\$?; test \$rc -eq 2 && grep -q 'reading row' $w/dr.log"
check "one rank's packed loss scratch fails (TP 2, packing): no hang, exit 1" sh -c "
  IFT_FAULT=step_scratch@1 $T $MPIRUN_WRAP 2 $IFTRAIN train $tiny --dist.tp=2 --train.packing=1 --train.steps=2 $D --ckpt.dir=$w/ss > $w/ss.log 2>&1
  rc=\$?; test \$rc -eq 1 && grep -q 'rank 1/2.*packed documents' $w/ss.log && ! grep -q MPI_ABORT $w/ss.log"
check "one rank's key/value cache for the held-out evaluation fails (TP 2): no hang, exit 1" sh -c "
  IFT_FAULT=kv_alloc@1 $T $MPIRUN_WRAP 2 $IFTRAIN train $tiny --dist.tp=2 --train.steps=2 $D --data.eval=$w/a.h5 --eval.every=1 --eval.max_samples=8 --ckpt.dir=$w/kv > $w/kv.log 2>&1
  rc=\$?; test \$rc -eq 1 && grep -q 'rank 1/2.*key/value cache' $w/kv.log && ! grep -q MPI_ABORT $w/kv.log"
check "one rank's data read fails mid-run on 4 ranks (DP 2 x TP 2): no hang" sh -c "
  IFT_FAULT=data_read@3 $T $MPIRUN_WRAP 4 $IFTRAIN train $tiny --dist.tp=2 --train.steps=2 $D --ckpt.dir=$w/dr4 > $w/dr4.log 2>&1
  rc=\$?; test \$rc -eq 2 && grep -q 'rank 3/4.*reading row' $w/dr4.log"

# ---- a checkpoint directory belongs to one run
check "a new run refuses a directory of another run, nothing deleted" sh -c "
  cp -r $w/base $w/own; (cd $w/own && md5sum step_*.h5 latest RUN) > $w/own.before
  $T $IFTRAIN train $tiny --train.steps=3 $D --ckpt.dir=$w/own > $w/own.log 2>&1; rc=\$?
  (cd $w/own && md5sum step_*.h5 latest RUN) > $w/own.after
  test \$rc -eq 2 && grep -q 'belongs to another run' $w/own.log && grep -q 'ckpt.resume=auto' $w/own.log &&
    cmp -s $w/own.before $w/own.after"
check "no latest + resume=auto: resumes from the newest step_N.h5, never restarts beside it" sh -c "
  cp -r $w/base $w/nolatest; rm $w/nolatest/latest
  $T $IFTRAIN train $tiny --train.steps=4 $D --ckpt.dir=$w/nolatest --ckpt.resume=auto > $w/nl.log 2>&1 &&
  grep -q 'resumed from .*step_2.h5 at step 2' $w/nl.log && test -f $w/nolatest/step_4.h5"
check "a step_N.h5 of another run inside the run's directory is never overwritten" sh -c "
  $T $IFTRAIN train $tiny --train.steps=2 $D --ckpt.dir=$w/ow --ckpt.every=1 > /dev/null 2>&1 &&
  cp $w/base/step_2.h5 $w/ow/step_3.h5 && md5sum $w/ow/step_3.h5 > $w/ow.before
  $T $IFTRAIN train $tiny --train.steps=4 $D --ckpt.dir=$w/ow --ckpt.every=1 --ckpt.resume=auto > $w/ow.log 2>&1
  test \$? -eq 2 && grep -q 'is not a checkpoint of this run: not overwriting it' $w/ow.log &&
  md5sum -c $w/ow.before > /dev/null && grep -q step_2.h5 $w/ow/latest"
check "a directory of pre-run-id checkpoints without RUN is refused to a fresh run" sh -c "
  cp -r $w/base $w/norun; rm $w/norun/RUN
  $T $IFTRAIN train $tiny --train.steps=3 $D --ckpt.dir=$w/norun > $w/norun.log 2>&1; test \$? -eq 2 &&
  grep -q 'holds checkpoints of another run (newest: step_2.h5)' $w/norun.log && test -f $w/norun/step_2.h5"
check "rotation never deletes another run's checkpoint" sh -c "
  mkdir -p $w/rot && cp $w/base/step_2.h5 $w/rot/step_1.h5 &&
  $T $IFTRAIN train $tiny --train.steps=3 $D --ckpt.dir=$w/rot2 --ckpt.every=1 --ckpt.keep=1 >/dev/null 2>&1 &&
  cp $w/rot/step_1.h5 $w/rot2/step_0.h5 &&
  $T $IFTRAIN train $tiny --train.steps=5 $D --ckpt.dir=$w/rot2 --ckpt.every=1 --ckpt.keep=1 --ckpt.resume=auto >/dev/null 2>&1 &&
  test -f $w/rot2/step_0.h5 && test -f $w/rot2/step_5.h5 && test ! -f $w/rot2/step_3.h5 && test ! -f $w/rot2/step_4.h5"

# ---- resumes and loads verify
# damage FILE TENSOR: flip 4 bytes inside the tensor's stored data
cat > $w/damage.py <<'PY'
import h5py, sys
f = h5py.File(sys.argv[1], 'r'); off = f[sys.argv[2]].id.get_offset(); f.close()
with open(sys.argv[1], 'r+b') as g:
    g.seek(off + 8); b = bytearray(g.read(4)); g.seek(off + 8)
    g.write(bytes(x ^ 0x5a for x in b))
PY
# attr FILE GROUP NAME VALUE: set an integer attribute
cat > $w/attr.py <<'PY'
import h5py, sys
f = h5py.File(sys.argv[1], 'r+'); g = f[sys.argv[2]]
g.attrs.modify(sys.argv[3], type(g.attrs[sys.argv[3]])(int(sys.argv[4])))
f.close()
PY
damage="$PY $w/damage.py"; attr="$PY $w/attr.py"
W=model.layers.0.mlp.up_proj.weight
check "4 flipped bytes in a weight: resume refuses, naming the tensor (2 ranks)" sh -c "
  cp -r $w/base $w/dmg; $damage $w/dmg/step_2.h5 /model/$W
  $T $MPIRUN_WRAP 2 $IFTRAIN train $tiny --train.steps=4 $D --ckpt.dir=$w/dmg --ckpt.resume=auto > $w/dmg.log 2>&1
  test \$? -eq 2 && grep -q '/model/$W does not match its stored checksum' $w/dmg.log && test ! -f $w/dmg/step_4.h5"
check "... and so do ckpt.init, eval, generate, convert and ckpt verify" sh -c "
  f=$w/dmg/step_2.h5
  $T $IFTRAIN train $tiny --train.steps=1 $D --ckpt.dir=$w/dmginit --ckpt.init=\$f > $w/di.log 2>&1; test \$? -eq 2 &&
  $T $IFTRAIN eval --ckpt \$f --data $w/a.h5 > $w/de.log 2>&1; test \$? -eq 2 &&
  $T $IFTRAIN generate --ckpt \$f --prompt 1+1= > $w/dg.log 2>&1; test \$? -eq 2 &&
  $T $IFTRAIN ckpt convert \$f -o $w/dc.h5 --model-only > $w/dc.log 2>&1; test \$? -eq 2 && test ! -f $w/dc.h5 &&
  $T $IFTRAIN ckpt verify \$f > $w/dv.log 2>&1; test \$? -eq 2 &&
  grep -q 'does not match' $w/di.log && grep -q 'does not match' $w/de.log && grep -q 'does not match' $w/dg.log"
check "--ckpt.verify=0 loads a damaged checkpoint on purpose (and says so)" sh -c "
  $T $IFTRAIN train $tiny --train.steps=3 $D --ckpt.dir=$w/dmg --ckpt.resume=auto --ckpt.verify=0 > $w/nv.log 2>&1 &&
  grep -q 'NOT verified' $w/nv.log"
check "resume with another rope_theta is refused, naming it" sh -c "
  $T $IFTRAIN train $tiny --model.rope_theta=500000 --train.steps=4 $D --ckpt.dir=$w/base --ckpt.resume=auto > $w/rt.log 2>&1
  test \$? -eq 2 && grep -q 'rope_theta = 10000 (configured 500000)' $w/rt.log"
check "resume without /train is refused (it would restart at step 0)" sh -c "
  cp -r $w/base $w/notrain; $PY -c \"import h5py; f=h5py.File('$w/notrain/step_2.h5','r+'); del f['/train']; f.close()\"
  $T $IFTRAIN train $tiny --train.steps=4 $D --ckpt.dir=$w/notrain --ckpt.resume=auto > $w/nt.log 2>&1
  test \$? -eq 2 && grep -q 'has no /train group' $w/nt.log && test ! -f $w/notrain/step_4.h5"
for bad in 1000 -3; do
  check "a /train step of $bad is not believed" sh -c "
    rm -rf $w/st; cp -r $w/base $w/st; $attr $w/st/step_2.h5 /train step $bad
    $T $IFTRAIN train $tiny --train.steps=4 $D --ckpt.dir=$w/st --ckpt.resume=auto > $w/st.log 2>&1
    test \$? -eq 2 && grep -q -e 'optimizer has taken 2 steps but /train step is $bad' -e 'step = $bad is negative' $w/st.log"
done
check "a /train cursor beyond the data set is refused" sh -c "
  rm -rf $w/cu; cp -r $w/base $w/cu; $attr $w/cu/step_2.h5 /train cursor 99999
  $T $IFTRAIN train $tiny --train.steps=4 $D --ckpt.dir=$w/cu --ckpt.resume=auto > $w/cu.log 2>&1
  test \$? -eq 2 && grep -q 'cursor = 99999 lies beyond the 64 rows' $w/cu.log"
check "a changed train.steps or schedule on resume is refused, then allowed and reported" sh -c "
  cos='--optim.schedule=cosine --optim.warmup=0.1'
  $T $IFTRAIN train $tiny \$cos --train.steps=2 $D --ckpt.dir=$w/ch > /dev/null 2>&1 &&
  $T $IFTRAIN train $tiny \$cos --train.steps=6 --optim.lr=1e-3 $D --ckpt.dir=$w/ch --ckpt.resume=auto > $w/ch.log 2>&1
  test \$? -eq 2 && grep -q 'train.steps 2 -> 6' $w/ch.log && grep -q 'optim.lr 0.003.* -> 0.001' $w/ch.log &&
  $T $IFTRAIN train $tiny \$cos --train.steps=6 --optim.lr=1e-3 $D --ckpt.dir=$w/ch --ckpt.resume=auto --ckpt.allow_changes=1 > $w/ch2.log 2>&1 &&
  grep -q 'warning: resuming with changes' $w/ch2.log && test -f $w/ch/step_6.h5"
check "resume on a data set whose contents changed is refused, naming it" sh -c "
  rm -rf $w/dc; cp -r $w/base $w/dc; $IFTRAIN prep --generate arith --seed 4 -n 64 -o $w/a2.h5 >/dev/null &&
  $T $IFTRAIN train $tiny --train.steps=4 --data.train=$w/a2.h5 --ckpt.dir=$w/dc --ckpt.resume=auto > $w/dch.log 2>&1
  test \$? -eq 2 && grep -q 'data.train contents' $w/dch.log"
check "garbage in latest is reported escaped, exit 2" sh -c "
  rm -rf $w/gl; cp -r $w/base $w/gl; printf 'step_\\033[31mX\\001\\n' > $w/gl/latest
  $T $IFTRAIN train $tiny --train.steps=4 $D --ckpt.dir=$w/gl --ckpt.resume=auto > $w/gl.log 2>&1
  test \$? -eq 2 && grep -q 'does not name a checkpoint (it holds \"step_\\\\x1b\\[31mX\\\\x01\"' $w/gl.log &&
  ! grep -q \"\$(printf '\\033')\" $w/gl.log"
check "ckpt info and verify accept a directory and a latest file" sh -c "
  $IFTRAIN ckpt info $w/base | grep -q 'run id' && $IFTRAIN ckpt verify $w/base/latest | grep -q 'step_2.h5: OK'"
# ---- before training: unwritable ckpt.dir and metrics.path
check "an unwritable ckpt.dir is found before training (ckpt.every = 0)" sh -c "
  touch $w/afile
  $T $IFTRAIN train $tiny --train.steps=50 $D --ckpt.every=0 --ckpt.dir=$w/afile/ck --metrics.path=$w/ud.jsonl > $w/ud.log 2>&1
  test \$? -eq 2 && grep -q 'cannot create checkpoint directory' $w/ud.log && test ! -s $w/ud.jsonl"
check "an unwritable metrics.path is an error before training" sh -c "
  $T $IFTRAIN train $tiny --train.steps=50 $D --ckpt.dir=$w/um --metrics.path=$w/afile/m.jsonl > $w/um.log 2>&1
  test \$? -eq 2 && grep -q 'cannot open metrics.path' $w/um.log && test ! -f $w/um/step_50.h5"
check "a full disk under metrics.path is reported, the run goes on" sh -c "
  test -w /dev/full || exit 0
  $T $IFTRAIN train $tiny --train.steps=3 $D --ckpt.dir=$w/mfull --metrics.path=/dev/full > $w/mf.log 2>&1 &&
  grep -q 'metrics.path.*could not be written' $w/mf.log && test -f $w/mfull/step_3.h5"

# ---- exit codes a batch system can use
check "bad input through mpirun: exit 2 on both ranks, no MPI_ABORT banner" sh -c "
  $T $MPIRUN_WRAP 2 $IFTRAIN train $tiny --train.steps=1 --data.train=$w/none.h5 > $w/bi.log 2>&1
  test \$? -eq 2 && ! grep -q MPI_ABORT $w/bi.log"
check "eval of a file that is not HDF5: exit 2, no MPI_ABORT banner" sh -c "
  printf 'not a checkpoint' > $w/text.h5; $IFTRAIN eval --ckpt $w/text.h5 --data $w/a.h5 > $w/nh.log 2>&1
  test \$? -eq 2 && grep -q 'not HDF5' $w/nh.log && ! grep -q MPI_ABORT $w/nh.log"
check "a serial tool's failure has no MPI_ABORT banner" sh -c "
  $IFTRAIN ckpt verify $w/none.h5 > $w/sv.log 2>&1; test \$? -eq 2 && ! grep -q MPI_ABORT $w/sv.log"
sigterm() { # SIGTERM to mpirun: mpirun says 1, exit_status says 75, resume finishes
  rm -rf $w/tm
  $MPIRUN_WRAP 2 $IFTRAIN train $tiny --train.steps=3000 $D --ckpt.dir=$w/tm --metrics.path=$w/tm.jsonl > $w/tm.log 2>&1 &
  pid=$!
  n=0; while [ "$(cat $w/tm.jsonl 2>/dev/null | wc -l)" -lt 3 ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done
  kill -TERM $pid; wait $pid; rc=$?
  read -r code word rest < $w/tm/exit_status || { echo "    no exit_status (mpirun rc $rc)"; cat $w/tm.log; return 1; }
  [ "$code" = 75 ] && [ "$word" = preempted ] || { echo "    exit_status: $code $word $rest"; return 1; }
  s=$(sed 's/step_\([0-9]*\).h5/\1/' $w/tm/latest)
  run 0 $w/tm2.log $IFTRAIN train $tiny --train.steps=$((s + 2)) $D --ckpt.dir=$w/tm --ckpt.resume=auto --ckpt.allow_changes=1 &&
    read -r code word rest < $w/tm/exit_status && [ "$code" = 0 ] && [ "$word" = "done" ]
}
check "SIGTERM to mpirun: exit_status says 75 (requeue), resume finishes" sigterm

[ "${KEEP:-0}" = 1 ] || rm -rf $w
rm -f /tmp/iftrain-faults.$$
[ "$fail" -eq 0 ] || { echo "$fail fault check(s) failed"; exit 1; }
