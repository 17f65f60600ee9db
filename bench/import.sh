#!/usr/bin/env bash
# Import bandwidth and memory: `iftrain import HF_DIR -o X.h5` on 1 rank and
# on 2 tensor-parallel ranks, beside `dd` of the same safetensors files.
#
#   bench/import.sh [--dir DIR] [--reuse] [--reps N] [--dtypes f32,bf16]
#                   [--layouts 1,tp2[,tp2sep,dp2,dp2sep]] [--no-cold] [--keep] [--out FILE]
#                   [--bin LABEL=PATH]...  (compare binaries, interleaved)
#                   [--shape "HFREF MAKE ARGS"]  (another model, e.g. a small one to test)
#
# Makes (or with --reuse keeps) random Llama-shaped HF directories with
# tests/hf/hfref.py make: hidden 2048, intermediate 5632, 16 heads, 4 KV heads,
# 4 layers, vocabulary 32000, untied, 4 shards = 311 M parameters (1.25 GB in
# F32; 0.62 GB in BF16, which converts to the same 1.25 GB of fp32).
# Then, repeated --reps times (default 3) and interleaved -- every repetition
# runs every measurement once, in a rotating order -- with the page cache warm
# and (when /proc/sys/vm/drop_caches is writable, i.e. as root) cold:
#   dd     dd if=FILE of=/dev/null bs=16M over the safetensors files, in turn
#   1      mpirun -n 1 iftrain import DIR -o X.h5
#   tp2    mpirun -n 2 iftrain import DIR -o X.h5 --tp 2  (each rank reads its half)
#   dp2    mpirun -n 2 iftrain import DIR -o X.h5         (each rank a full replica)
#   tp2sep, dp2sep  the same with rank 1 reading its own copy of DIR (bind-
#          mounted over DIR in a private mount namespace; root only): the
#          ranks share no page cache, so each rank's cold storage reads are
#          what it would read on a node of its own (measured cold only)
# --bin LABEL=PATH, given several times, runs every import with each binary,
# interleaved (A/B of a change); default: the one binary $IFTRAIN.
# Every rank runs under a small wrapper that forks it, polls /proc/PID/status
# every 10 ms (the peak RSS when X.h5.tmp appears = the end of the load,
# before the write) and reaps it with wait4 (peak RSS, blocks read from storage).
# Reported: wall time (best, median), GB/s of the source bytes (= what dd
# reads) and of the fp32 bytes, the load alone (import's own "read in" time:
# model allocation + reading the shards), peak RSS per rank and its ratio to
# the model's fp32 size (the requirement: <= 1.10) and to the rank's own
# fp32 shard, storage reads per rank (cold).  MPI jobs hold
# /tmp/iftrain-mpi-tests.lock (one measurement at a time) like the test
# suites.  Results: bench/results/import-DATE.txt (or --out).
# Environment: IFTRAIN (binary, default ./iftrain), MPIRUN (mpirun),
# PY (a python3 with torch for the generator, default /usr/bin/python3).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
IFTRAIN=${IFTRAIN:-$top/iftrain}
MPIRUN=${MPIRUN:-mpirun}
PY=${PY:-/usr/bin/python3}
bins=() dir=/tmp/iftrain-bench-import shape_args='' reuse=0 reps=3 dtypes=f32,bf16 layouts=1,tp2 cold=1 keep=0
out=$top/bench/results/import-$(date +%F).txt
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift ;;
    --reuse) reuse=1 ;;
    --reps) reps=$2; shift ;;
    --dtypes) dtypes=$2; shift ;;
    --layouts) layouts=$2; shift ;;
    --shape) shape_args=$2; shift ;;
    --bin) bins+=("$2"); shift ;;
    --no-cold) cold=0 ;;
    --keep) keep=1 ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/import.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ ${#bins[@]} -gt 0 ] || bins=("iftrain=$IFTRAIN")
for b in "${bins[@]}"; do
  [ -x "${b#*=}" ] && [ "${b%%=*}" != "$b" ] ||
    { echo "bench/import.sh: --bin LABEL=PATH: no executable in '$b' (run make)" >&2; exit 2; }
done
IFTRAIN=${bins[0]#*=}
mkdir -p "$dir" "$(dirname "$out")"
shape_args=${shape_args:---vocab 32000 --hidden 2048 --intermediate 5632 --layers 4 --heads 16 --kv-heads 4 --tied 0 --shards 4 --seed 1}
read -r -a shape <<< "$shape_args"
for dt in ${dtypes//,/ }; do
  stamp="hfref.py make ${shape[*]} --dtype $dt"
  if [ $reuse = 1 ] && [ "$(cat "$dir/$dt/.bench-stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "reusing $dir/$dt" >&2
  else
    echo "making $dir/$dt ($stamp)" >&2
    rm -rf "${dir:?}/$dt" "${dir:?}/$dt.copy"
    "$PY" "$top/tests/hf/hfref.py" make "$dir/$dt" "${shape[@]}" --dtype "$dt"
    echo "$stamp" > "$dir/$dt/.bench-stamp"
  fi
done

# A tiny model: after dropping the caches, its import brings the program and
# its libraries back, so that "cold" means the model's files only.
[ -f "$dir/tiny/config.json" ] || "$PY" "$top/tests/hf/hfref.py" make "$dir/tiny" --seed 1

# The per-rank wrapper: fork + exec the rank, poll its /proc status, wait4.
cat > "$dir/rankwrap.py" <<'PY'
import json, os, sys, time
out, h5, sep, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5:]
rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0")))
if sep and rank == 1:  # "COPY:DIR": this rank sees COPY at DIR, in its own mount namespace
    copy, _, mdir = sep.partition(":")
    cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
           'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh", copy, mdir] + cmd
t0 = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
peak = {"VmHWM": 0, "RssAnon": 0, "RssFile": 0, "RssShmem": 0}
load_hwm = load_t = None
while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
    try:
        for line in open("/proc/%d/status" % pid):
            k, _, v = line.partition(":")
            if k in peak:
                peak[k] = max(peak[k], int(v.split()[0]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    if load_hwm is None and (os.path.exists(h5 + ".tmp") or os.path.exists(h5)):
        load_hwm, load_t = peak["VmHWM"], time.monotonic() - t0
    time.sleep(0.01)
_, status, ru = os.wait4(pid, 0)
rec = {"rank": rank,
       "wall": time.monotonic() - t0, "exit": os.waitstatus_to_exitcode(status),
       "maxrss": ru.ru_maxrss * 1024, "inblock_bytes": ru.ru_inblock * 512,
       "load_hwm": load_hwm, "load_t": load_t, "peak_anon": peak["RssAnon"],
       "peak_file": peak["RssFile"], "peak_shmem": peak["RssShmem"]}
with open(out, "a") as f:
    f.write(json.dumps(rec) + "\n")
sys.exit(max(rec["exit"], 0))
PY

"$PY" - "$top" "$IFTRAIN" "$MPIRUN" "$dir" "$reps" "$dtypes" "$layouts" "$cold" "$out" "$shape_args" \
    "${bins[@]}" <<'PY'
import fcntl, json, os, re, statistics, subprocess, sys, time
top, iftrain, mpirun, d, reps, dtypes, layouts, cold, out, shape_args = sys.argv[1:11]
BINS = dict(b.split("=", 1) for b in sys.argv[11:])  # label -> path, in the given order
reps, cold = int(reps), cold == "1"
dtypes, layouts = dtypes.split(","), layouts.split(",")
LOCK = "/tmp/iftrain-mpi-tests.lock"
wrap = os.path.join(d, "rankwrap.py")
mpiflags = ["--oversubscribe"] + (["--allow-run-as-root"] if os.getuid() == 0 else [])
LAYOUT = {"1": (1, []), "tp2": (2, ["--tp", "2"]), "dp2": (2, []), "tp2sep": (2, ["--tp", "2"]),
          "dp2sep": (2, [])}
for l in layouts:
    if l not in LAYOUT:
        sys.exit("bench/import.sh: unknown layout %r (1, tp2, dp2, tp2sep, dp2sep)" % l)
    if l.endswith("sep") and os.getuid() != 0:
        sys.exit("bench/import.sh: layout %s needs root (a bind mount)" % l)
can_drop = cold and os.access("/proc/sys/vm/drop_caches", os.W_OK)
caches = ["warm"] + (["cold"] if can_drop else [])

def model_info(dt):
    md = os.path.join(d, dt)
    cfg = json.load(open(os.path.join(md, "config.json")))
    files = sorted(os.path.join(md, f) for f in os.listdir(md) if f.endswith(".safetensors"))
    C, F, V, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    H, K = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    kv = C // H * K
    split = V * C * (1 if cfg["tie_word_embeddings"] else 2) + L * (2 * C * C + 2 * C * kv + 3 * C * F)
    norms = (2 * L + 1) * C
    return {"files": files, "src": sum(os.path.getsize(f) for f in files),
            "nparams": split + norms, "split": split, "norms": norms}

def shard_fp32(info, layout):  # fp32 bytes of one rank's own parameters
    return 4 * (info["split"] // 2 + info["norms"]) if layout.startswith("tp2") else 4 * info["nparams"]

def drop_caches():  # the caller holds the MPI lock
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
    t = os.path.join(d, "tiny.h5")
    subprocess.run([mpirun] + mpiflags + ["-n", "1", iftrain, "import", os.path.join(d, "tiny"), "-o", t],
                   check=True, stdout=subprocess.DEVNULL)
    os.remove(t)

def run_dd(info, cache):
    if cache == "cold":
        with open(LOCK, "a") as lk:
            fcntl.flock(lk, fcntl.LOCK_EX)
            drop_caches()
    t0 = time.monotonic()
    for f in info["files"]:
        subprocess.run(["dd", "if=" + f, "of=/dev/null", "bs=16M"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"wall": time.monotonic() - t0}

def run_import(dt, info, w, cache):
    layout, label = w.split("@")
    np_, extra = LAYOUT[layout]
    h5 = os.path.join(d, "bench-%s-%s-%s.h5" % (dt, layout, label))
    jl = h5 + ".ranks.jsonl"
    for f in (h5, jl):
        if os.path.exists(f):
            os.remove(f)
    sep = ""
    if layout.endswith("sep"):  # rank 1 reads its own copy of the files: no shared page cache
        src, copy = os.path.join(d, dt), os.path.join(d, dt + ".copy")
        if not os.path.isdir(copy):
            subprocess.run(["cp", "-a", src, copy], check=True)
        sep = copy + ":" + src
    cmd = [mpirun] + mpiflags + ["-n", str(np_), sys.executable, wrap, jl, h5, sep, "--",
                                 BINS[label], "import", os.path.join(d, dt), "-o", h5] + extra
    with open(LOCK, "a") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)  # held for this one measurement only
        if cache == "cold":
            drop_caches()
        t0 = time.monotonic()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        t1 = time.monotonic()
    if p.returncode != 0:
        sys.exit("bench/import.sh: failed (%d): %s\n%s" % (p.returncode, " ".join(cmd), p.stdout))
    m = re.search(r"read in ([0-9.]+) s, written in ([0-9.]+) s", p.stdout)
    ranks = sorted((json.loads(l) for l in open(jl)), key=lambda r: r["rank"])
    os.remove(jl)
    return {"cmd": cmd, "h5": h5, "mpirun_wall": t1 - t0, "wall": max(r["wall"] for r in ranks),
            "load": float(m.group(1)), "write": float(m.group(2)), "ranks": ranks}

def cmdline(dt, layout):
    np_, extra = LAYOUT[layout]
    return " ".join(["mpirun", "-n", str(np_), "iftrain", "import", os.path.join(d, dt), "-o", "X.h5"] + extra)

infos = {dt: model_info(dt) for dt in dtypes}
what = ["dd"] + ["%s@%s" % (l, b) for l in layouts for b in BINS]
runs = {}  # (dt, cache, what) -> [result]
verified = {}
for rep in range(reps):
    for cache in caches:
        for dt in dtypes:
            order = what[rep % len(what):] + what[:rep % len(what)]  # rotate: no fixed position
            if cache == "warm":  # after a cold block or the other dtype: read the files once, untimed
                run_dd(infos[dt], "warm")
            for w in order:
                if w.split("@")[0].endswith("sep") and cache == "warm":
                    continue  # the copy is not warm; and the layout is about storage reads
                r = run_dd(infos[dt], cache) if w == "dd" else run_import(dt, infos[dt], w, cache)
                if w != "dd":
                    if (dt, w) not in verified:  # once: the output is a valid checkpoint
                        v = subprocess.run([BINS[w.split("@")[1]], "ckpt", "verify", r["h5"]], stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT, text=True)
                        verified[(dt, w)] = (v.returncode, v.stdout.strip().splitlines()[-1:])
                    os.remove(r["h5"])
                runs.setdefault((dt, cache, w), []).append(r)
                print("rep %d %-4s %-4s %-12s %6.2f s" % (rep + 1, cache, dt, w, r["wall"]), file=sys.stderr,
                      flush=True)

GB, MB = 1e9, 1e6
def lscpu(key):
    for l in subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout.splitlines():
        if l.startswith(key + ":"):
            return l.split(":", 1)[1].strip()
    return "?"
mem = next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))
fs = subprocess.run(["df", "-hT", d], stdout=subprocess.PIPE, text=True).stdout.splitlines()[-1].split()
commit = subprocess.run(["git", "-C", top, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                        text=True).stdout.strip()
L = []
L.append("# iftrain import vs dd, %s" % time.strftime("%Y-%m-%d %H:%M"))
L.append("")
L.append("machine: %s, %s CPU(s), %.1f GB RAM, kernel %s; files on %s (%s %s)" % (
    lscpu("Model name"), lscpu("CPU(s)"), int(mem) / 1e6, os.uname().release, fs[0], fs[1], fs[-1]))
L.append("binaries: %s (worktree at git %s); %s" % (", ".join("%s = %s" % kv for kv in BINS.items()), commit,
         subprocess.run([mpirun, "--version"], stdout=subprocess.PIPE, text=True).stdout.splitlines()[0]))
L.append("2 cores shared with other engineers' builds and tests: every figure is the best and the "
         "median of %d interleaved repetitions." % reps)
L.append("")
L.append("models: tests/hf/hfref.py make DIR %s --dtype DT" % shape_args)
for dt in dtypes:
    i = infos[dt]
    L.append("  %s: %d parameters, %d safetensors files, source %.3f GB, fp32 %.3f GB" % (
        dt, i["nparams"], len(i["files"]), i["src"] / GB, 4 * i["nparams"] / GB))
L.append("")
L.append("commands (each rank under a wrapper that polls /proc/PID/status and reaps it with wait4):")
L.append("  dd:   for F in DIR/*.safetensors; do dd if=$F of=/dev/null bs=16M; done")
for l in layouts:
    L.append("  %-7s %s%s" % (l + ":", cmdline("DT", l) + (" (cold only)" if l.endswith("sep") else ""), " (rank 1 sees a copy of DIR bind-mounted over "
             "it in its own mount namespace: the ranks share no page cache, as on 2 nodes)"
             if l.endswith("sep") else ""))
L.append("  warm: the files in the page cache (read once, untimed, before each block);"
         + (" cold: sync; echo 3 > /proc/sys/vm/drop_caches before each measurement, then an untimed"
               " import of a tiny model (the program and its libraries back in the cache: only the"
               " model's files are cold)" if can_drop
            else " cold: not measured (drop_caches not writable)"))
L.append("  wall: the slowest rank's process, fork to exit (MPI_Init to MPI_Finalize included; "
         "mpirun's own start-up and the lock wait excluded)")
L.append("  load: import's own \"read in\" time (grid, model allocation, reading every shard); "
         "write: its \"written in\" (HDF5 collective write, page cache)")
L.append("")

NAME = {"dd": "dd", "1": "import, 1 rank", "tp2": "import, 2 ranks TP", "dp2": "import, 2 ranks DP",
        "tp2sep": "import, 2 ranks TP, rank 1 on a copy", "dp2sep": "import, 2 ranks DP, rank 1 on a copy"}

def name(w):
    if w == "dd":
        return "dd"
    l, b = w.split("@")
    return NAME[l] + (" [%s]" % b if len(BINS) > 1 else "")

def bm(v):
    return min(v), statistics.median(v)

L.append("## Bandwidth (GB = 1e9 bytes; best / median)")
L.append("")
L.append("| dtype | cache | what | wall s | source GB/s | fp32 GB/s | load s | load source GB/s | load fp32 GB/s | write s |")
L.append("|---|---|---|---|---|---|---|---|---|---|")
for dt in dtypes:
    i = infos[dt]
    for cache in caches:
        for w in what:
            if (dt, cache, w) not in runs:
                continue
            rs = runs[(dt, cache, w)]
            wb, wm = bm([r["wall"] for r in rs])
            row = "| %s | %s | %s | %.2f / %.2f | %.2f / %.2f | " % (dt, cache, name(w), wb, wm, i["src"] / wb / GB, i["src"] / wm / GB)
            if w == "dd":
                row += "– | – | – | – | – |"
            else:
                lb, lm = bm([r["load"] for r in rs])
                xb, xm = bm([r["write"] for r in rs])
                row += "%.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f | %.2f / %.2f |" % (
                    4 * i["nparams"] / wb / GB, 4 * i["nparams"] / wm / GB, lb, lm,
                    i["src"] / lb / GB, i["src"] / lm / GB, 4 * i["nparams"] / lb / GB,
                    4 * i["nparams"] / lm / GB, xb, xm)
            L.append(row)
L.append("")
L.append("## Memory and reads per rank (max over the repetitions)")
L.append("")
L.append("peak = VmHWM (wait4 ru_maxrss); at load end = VmHWM when the checkpoint's X.h5.tmp appears (10 ms polling); "
         "anon / file = the largest RssAnon / RssFile seen; ratio = peak / the model's fp32 size "
         "(requirement <= 1.10) and peak / the rank's own fp32 shard; reads = wait4 ru_inblock x 512 "
         "(storage reads; the page cache is shared, so under 2 ranks a page read by one rank is "
         "not read again by the other).")
L.append("")
L.append("| dtype | cache | layout%s | rank | peak MB | at load end MB | anon MB | file MB | peak / fp32 model | peak / own shard | reads MB | reads / source |" % (
    " [binary]" if len(BINS) > 1 else ""))
L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
for dt in dtypes:
    i = infos[dt]
    fp32 = 4 * i["nparams"]
    for cache in caches:
        for w in what[1:]:
            if (dt, cache, w) not in runs:
                continue
            rs = runs[(dt, cache, w)]
            for k in range(len(rs[0]["ranks"])):
                rk = [r["ranks"][k] for r in rs]
                pk = max(x["maxrss"] for x in rk)
                lh = [x["load_hwm"] for x in rk if x["load_hwm"] is not None]
                rd = max(x["inblock_bytes"] for x in rk)
                L.append("| %s | %s | %s | %d | %.0f | %s | %.0f | %.0f | %.2f | %.2f | %.0f | %.2f |" % (
                    dt, cache, w.split("@")[0] + (" [%s]" % w.split("@")[1] if len(BINS) > 1 else ""), k, pk / MB, "%.0f" % (max(lh) / MB) if lh else "–",
                    max(x["peak_anon"] for x in rk) / MB, max(x["peak_file"] for x in rk) / MB,
                    pk / fp32, pk / shard_fp32(i, w.split("@")[0]), rd / MB, rd / i["src"]))
L.append("")
L.append("outputs checked once per dtype and layout with `iftrain ckpt verify`: " + "; ".join(
    "%s %s: %s" % (dt, name(w), "ok" if rc == 0 else "FAILED (%d) %s" % (rc, tail)) for (dt, w), (rc, tail)
    in sorted(verified.items())))
L.append("")
L.append("## Raw runs (JSON, one per measurement)")
L.append("")
for (dt, cache, w), rs in runs.items():
    for r in rs:
        r = {k: v for k, v in r.items() if k not in ("cmd", "h5")}
        L.append(json.dumps({"dtype": dt, "cache": cache, "what": w, **r}, sort_keys=True))
open(out, "w").write("\n".join(L) + "\n")
print("\n".join(L[:L.index("## Raw runs (JSON, one per measurement)")]))
print("written: " + out, file=sys.stderr)
PY

rm -f "$dir/rankwrap.py"
if [ $keep = 0 ]; then
  for dt in ${dtypes//,/ }; do rm -rf "${dir:?}/$dt" "${dir:?}/$dt.copy"; done
  rm -rf "${dir:?}/tiny"
  rmdir "$dir" 2>/dev/null || true
else
  echo "kept the model directories in $dir (--reuse next time; remove them when done)" >&2
fi
