#!/usr/bin/env node
// Single-thread encode throughput of the Hugging Face tokenizers library (Rust, Node binding) on
// tests/tok/corpus.jsonl, for each tokenizer of tests/tok/data: the HF side of the side-by-side
// comparison with iftrain's C tokenizer (issue 16). Needs tests/tok/node_modules (cd tests/tok && npm ci).
//
//   RAYON_NUM_THREADS=1 node bench/tok_hf.js [--secs=S] [--json] [NAME...]
//
// Two figures per tokenizer, MB = 10^6 bytes of UTF-8 input, add_special_tokens=false:
//   lines : one encode call per corpus line (3289 calls; includes the binding's per-call cost:
//           a promise, a hop to the libuv thread pool and back);
//   joined: the corpus joined with "\n" encoded in calls of about 64 KB (cut at line ends), which
//           shows the library's own speed with the per-call cost spread over many bytes.
// Each figure is the best of repeated passes over the corpus during at least S seconds (default 3).
// One call runs on one thread (the library parallelises only batches); the binding's call is
// awaited before the next, so one core does the encoding.
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
const secs = +((args.find((a) => a.startsWith('--secs=')) || '--secs=3').split('=')[1]);
const json = args.includes('--json');
const names = args.filter((a) => !a.startsWith('--'));
const corpus = fs.readFileSync(path.join(TOK, 'corpus.jsonl'), 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l).text);
const bytes = corpus.reduce((a, s) => a + Buffer.byteLength(s), 0);
const chunks = [];
{ let cur = []; let n = 0; for (const s of corpus) { cur.push(s); n += Buffer.byteLength(s) + 1; if (n >= 65536) { chunks.push(cur.join('\n')); cur = []; n = 0; } } if (cur.length) chunks.push(cur.join('\n')); }
const chunkBytes = chunks.reduce((a, s) => a + Buffer.byteLength(s), 0);

async function pass(t, inputs) {
  let ntok = 0;
  const t0 = process.hrtime.bigint();
  for (const s of inputs) ntok += (await t.encode(s, null, { addSpecialTokens: false })).getLength();
  return [Number(process.hrtime.bigint() - t0) / 1e9, ntok];
}
async function best(t, inputs, nbytes) {
  let bestS = Infinity, ntok = 0, total = 0, passes = 0;
  await pass(t, inputs.slice(0, 50)); // warm-up (BPE cache, page faults)
  while (total < secs || passes < 2) { const [s, n] = await pass(t, inputs); total += s; passes++; ntok = n; if (s < bestS) bestS = s; }
  return { mb_s: +(nbytes / 1e6 / bestS).toFixed(2), tokens_s: Math.round(ntok / bestS), passes };
}
(async () => {
  const dataDir = path.join(TOK, 'data');
  const all = fs.readdirSync(dataDir).filter((d) => fs.existsSync(path.join(dataDir, d, 'tokenizer.json.gz'))).sort();
  const rows = [];
  for (const name of names.length ? names : all) {
    const tmp = path.join(os.tmpdir(), `bench-${name}-${process.pid}.json`);
    fs.writeFileSync(tmp, zlib.gunzipSync(fs.readFileSync(path.join(dataDir, name, 'tokenizer.json.gz'))));
    const t = tk.Tokenizer.fromFile(tmp);
    fs.unlinkSync(tmp);
    const lines = await best(t, corpus, bytes);
    const joined = await best(t, chunks, chunkBytes);
    rows.push({ tokenizer: name, lines_mb_s: lines.mb_s, joined_mb_s: joined.mb_s, joined_tokens_s: joined.tokens_s });
    if (!json) console.log(`${name.padEnd(16)} lines ${String(lines.mb_s).padStart(6)} MB/s   joined ${String(joined.mb_s).padStart(6)} MB/s  (${joined.tokens_s} tokens/s)`);
  }
  const meta = { library: 'tokenizers@' + require(path.join(TOK, 'node_modules', 'tokenizers', 'package.json')).version, corpus_bytes: bytes, corpus_lines: corpus.length, cpu: os.cpus()[0].model, node: process.version };
  if (json) console.log(JSON.stringify({ ...meta, results: rows }, null, 1));
  else console.log(`(${meta.library}, corpus ${corpus.length} lines / ${bytes} bytes, ${meta.cpu})`);
})().catch((e) => { console.error(e); process.exit(1); });
