#!/usr/bin/env node
// Single-thread encode throughput of the Hugging Face tokenizers library (Rust, Node binding):
// the HF side of the side-by-side comparison with iftrain's C tokenizer (issue 16; bench/tok.sh
// runs both, interleaved). Needs tests/tok/node_modules (cd tests/tok && npm ci).
//
//   node bench/tok_hf.js [--corpus=FILE.jsonl] [--passes=N] [--warmup=0|1] [--chunk=BYTES] [--batch=N]
//                        [--modes=lines,batch,chunks] [--add-special] [--json]
//                        [--tokenizer=PATH | NAME...]
//
// PATH is an HF directory or a tokenizer.json; NAMEs (default: all) are tests/tok/data/NAME.
// MB = 10^6 bytes of UTF-8 input. Modes, one figure each:
//   lines : one await tokenizer.encode(line) per corpus line -- includes the binding's per-call
//           cost (a promise, a hop to a libuv worker thread and back, an Encoding object with
//           tokens, offsets and masks); the same calls as iftrain bench tok's lines mode;
//   batch : await tokenizer.encodeBatch(lines) on groups of --batch lines (default 1000): the
//           per-call cost spread over many lines; the library runs a batch on its rayon pool
//           unless TOKENIZERS_PARALLELISM is false -- set here, so the batch runs serially on the
//           one worker thread that runs the call;
//   chunks: the lines joined with "\n", cut at the first line end at or after --chunk bytes
//           (default 65536), one encode call per chunk; iftrain bench tok cuts them the same way.
// Single thread: TOKENIZERS_PARALLELISM=false (read by the library at each encodeBatch: false =
// serial iterator) and RAYON_NUM_THREADS=1 (its global pool, should anything still use it) are
// set before the library loads. A single encode never uses more than one thread; each call is
// awaited before the next, so one core does the encoding while the main thread waits. cpu/wall
// (the process's user + system CPU seconds over wall seconds of the best pass) checks it: about
// 1.0 means one busy thread; below 1 the process was descheduled (other load).
// Passes: one warm-up pass per mode unless --warmup=0 (the first mode's runs with an empty BPE
// cache and is reported as cold), then --passes timed passes (default 5), the modes interleaved
// (lines, batch, chunks, lines, ...). Per mode: best and median wall MB/s, tokens/s of the best
// pass, MB per CPU second of the pass with the least CPU time (less sensitive to other load),
// cpu/wall of the best pass. Output and JSON fields as iftrain bench tok's.
'use strict';
process.env.RAYON_NUM_THREADS = process.env.RAYON_NUM_THREADS || '1';
process.env.TOKENIZERS_PARALLELISM = 'false';
const fs = require('fs'), path = require('path'), zlib = require('zlib'), os = require('os');
const TOK = path.join(__dirname, '..', 'tests', 'tok');
let tk;
try { tk = require(path.join(TOK, 'node_modules', 'tokenizers')); } catch (e) {
  console.error('tests/tok/node_modules/tokenizers missing: run (cd tests/tok && npm ci) first'); process.exit(2);
}
const args = process.argv.slice(2);
const opt = (k, d) => { const a = args.find((x) => x.startsWith(`--${k}=`)); return a ? a.slice(k.length + 3) : d; };
for (const a of args)
  if (a.startsWith('--') && !/^--(corpus|passes|chunk|batch|modes|tokenizer|warmup)=/.test(a) && a !== '--json' && a !== '--add-special') {
    console.error(`tok_hf.js: unknown option ${a}`); process.exit(2);
  }
const json = args.includes('--json'), addSpecial = args.includes('--add-special');
const corpusPath = opt('corpus', path.join(TOK, 'corpus.jsonl'));
const passes = +opt('passes', '5'), warmup = +opt('warmup', '1'), chunkSize = +opt('chunk', '65536'), batchSize = +opt('batch', '1000');
const modes = opt('modes', 'lines,batch,chunks').split(',');
if (warmup !== 0 && warmup !== 1) { console.error('tok_hf.js: --warmup is 0 or 1'); process.exit(2); }
for (const [k, v] of [['passes', passes], ['chunk', chunkSize], ['batch', batchSize]])
  if (!(Number.isInteger(v) && v >= 1)) { console.error(`tok_hf.js: --${k} must be a positive integer`); process.exit(2); }
if (!modes.every((m) => ['lines', 'batch', 'chunks'].includes(m))) { console.error('tok_hf.js: --modes: lines, batch, chunks'); process.exit(2); }

const corpus = fs.readFileSync(corpusPath, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l).text);
const nbytes = (a) => a.reduce((s, x) => s + Buffer.byteLength(x), 0);
const chunks = [];
{ let cur = [], n = 0; for (const s of corpus) { cur.push(s); n += Buffer.byteLength(s) + 1; if (n >= chunkSize) { chunks.push(cur.join('\n')); cur = []; n = 0; } } if (cur.length) chunks.push(cur.join('\n')); }
const batches = [];
for (let i = 0; i < corpus.length; i += batchSize) batches.push(corpus.slice(i, i + batchSize));
const input = { lines: [corpus, nbytes(corpus)], batch: [batches, nbytes(corpus)], chunks: [chunks, nbytes(chunks)] };

async function pass(t, mode) {
  let ntok = 0;
  const o = { addSpecialTokens: addSpecial };
  const c0 = process.cpuUsage(), t0 = process.hrtime.bigint();
  if (mode === 'batch') for (const b of input.batch[0]) for (const e of await t.encodeBatch(b, o)) ntok += e.getLength();
  else for (const s of input[mode][0]) ntok += (await t.encode(s, null, o)).getLength();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9, c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1e6, ntok };
}
const r3 = (x) => Math.round(x * 1000) / 1000;
async function bench(name, file) {
  const t0 = process.hrtime.bigint();
  const t = tk.Tokenizer.fromFile(file);
  const load = Number(process.hrtime.bigint() - t0) / 1e9;
  const res = {};
  let cold = null;
  for (const m of modes) { res[m] = []; if (warmup) { const p = await pass(t, m); if (!cold) cold = { mode: m, mb_s: input[m][1] / 1e6 / p.wall }; } }
  for (let r = 0; r < passes; r++) for (const m of modes) res[m].push(await pass(t, m));
  const rows = [];
  for (const m of modes) {
    const ps = res[m].slice().sort((a, b) => a.wall - b.wall), best = ps[0];
    const med = ps.length % 2 ? ps[(ps.length - 1) / 2].wall : (ps[ps.length / 2 - 1].wall + ps[ps.length / 2].wall) / 2;
    const bytes = input[m][1];
    rows.push({ bench: 'tok_hf', tokenizer: name, corpus: corpusPath, mode: m, calls: input[m][0].length, bytes, tokens: best.ntok,
      passes, add_special: addSpecial, load_s: r3(load), cold_mb_per_s: cold && cold.mode === m ? r3(cold.mb_s) : null,
      mb_per_s: r3(bytes / 1e6 / best.wall), median_mb_per_s: r3(bytes / 1e6 / med),
      tokens_per_s: Math.round(best.ntok / best.wall), cpu_mb_per_s: r3(bytes / 1e6 / Math.min(...ps.map((p) => p.cpu))),
      cpu_over_wall: r3(best.cpu / best.wall) });
  }
  return rows;
}
(async () => {
  const meta = { library: 'tokenizers@' + require(path.join(TOK, 'node_modules', 'tokenizers', 'package.json')).version,
    node: process.version, cpu: os.cpus()[0].model, TOKENIZERS_PARALLELISM: process.env.TOKENIZERS_PARALLELISM,
    RAYON_NUM_THREADS: process.env.RAYON_NUM_THREADS, corpus: corpusPath, lines: corpus.length };
  const jobs = [];
  const tpath = opt('tokenizer', null);
  if (tpath) {
    const f = fs.statSync(tpath).isDirectory() ? path.join(tpath, 'tokenizer.json') : tpath;
    jobs.push([tpath, f, false]);
  } else {
    const dataDir = path.join(TOK, 'data');
    const names = args.filter((a) => !a.startsWith('--'));
    const all = fs.readdirSync(dataDir).filter((d) => fs.existsSync(path.join(dataDir, d, 'tokenizer.json.gz'))).sort();
    for (const name of names.length ? names : all) {
      const tmp = path.join(os.tmpdir(), `bench-${name}-${process.pid}.json`);
      fs.writeFileSync(tmp, zlib.gunzipSync(fs.readFileSync(path.join(dataDir, name, 'tokenizer.json.gz'))));
      jobs.push([name, tmp, true]);
    }
  }
  if (!json) console.log(`# ${meta.library}, node ${meta.node}, TOKENIZERS_PARALLELISM=${meta.TOKENIZERS_PARALLELISM}, RAYON_NUM_THREADS=${meta.RAYON_NUM_THREADS}; corpus ${corpusPath}: ${corpus.length} lines, ${input.lines[1]} bytes; ${chunks.length} chunks; ${passes} passes`);
  for (const [name, file, tmp] of jobs) {
    let rows;
    try { rows = await bench(name, file); } finally { if (tmp) fs.unlinkSync(file); }
    if (json) for (const r of rows) console.log(JSON.stringify({ ...r, library: meta.library }));
    else {
      console.log(`${name}: load ${rows[0].load_s} s` + (rows[0].cold_mb_per_s !== null ? `, cold first ${rows[0].mode} pass ${rows[0].cold_mb_per_s} MB/s` : ''));
      for (const r of rows)
        console.log(`  ${r.mode.padEnd(7)} ${String(r.calls).padStart(7)} calls ${String(r.mb_per_s).padStart(8)} MB/s (median ${r.median_mb_per_s})  ${r.tokens_per_s} tokens/s  ${r.cpu_mb_per_s} MB/cpu-s  cpu/wall ${r.cpu_over_wall}`);
    }
  }
})().catch((e) => { console.error(e); process.exit(1); });
