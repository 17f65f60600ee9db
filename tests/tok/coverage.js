#!/usr/bin/env node
// How much of each tokenizer's machinery the corpus exercises: the number of corpus lines whose ids
// change when one component is switched off (the tokenizers library on an edited copy of the file),
// and the lines that use byte-fallback tokens or added tokens. Writes vectors/coverage.json.
'use strict';
const fs = require('fs'), path = require('path'), zlib = require('zlib'), os = require('os');
const HERE = __dirname;
const tk = require(path.join(HERE, 'node_modules', 'tokenizers'));
const corpus = fs.readFileSync(path.join(HERE, 'corpus.jsonl'), 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l).text);
const load = (name) => JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(HERE, 'data', name, 'tokenizer.json.gz'))).toString('utf8'));
function mk(j) { const tmp = path.join(os.tmpdir(), `cov-${process.pid}.json`); fs.writeFileSync(tmp, JSON.stringify(j)); const t = tk.Tokenizer.fromFile(tmp); fs.unlinkSync(tmp); return t; }
async function ids(t) { const out = []; for (const s of corpus) out.push((await t.encode(s, null, { addSpecialTokens: false })).getIds()); return out; }
const vec = (name) => zlib.gunzipSync(fs.readFileSync(path.join(HERE, 'vectors', name + '.jsonl.gz'))).toString().split('\n').filter((l) => l).map((l) => JSON.parse(l).ids);
const nDiff = (a, b) => a.filter((x, i) => JSON.stringify(x) !== JSON.stringify(b[i])).length;
(async () => {
  const cov = {};
  const variants = [
    ['llama3', 'model.ignore_merges=false', (j) => { j.model.ignore_merges = false; }],
    ['qwen3', 'normalizer=null (no NFC)', (j) => { j.normalizer = null; }],
    ['qwen3', 'Split regex \\p{N} -> \\p{N}{1,3} (Llama 3 digits)', (j) => { j.pre_tokenizer.pretokenizers[0].pattern.Regex = j.pre_tokenizer.pretokenizers[0].pattern.Regex.replace('|\\p{N}|', '|\\p{N}{1,3}|'); }],
    ['llama3', 'Split regex without (?i:) (contractions case-sensitive)', (j) => { j.pre_tokenizer.pretokenizers[0].pattern.Regex = j.pre_tokenizer.pretokenizers[0].pattern.Regex.replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)", "(?:'s|'t|'re|'ve|'m|'ll|'d)"); }],
    ['gpt2', 'no added tokens', (j) => { j.added_tokens = []; }],
    ['mistral', 'no added tokens', (j) => { j.added_tokens = []; }],
    ['qwen3', 'no added tokens', (j) => { j.added_tokens = []; }],
    ['llama3', 'no added tokens', (j) => { j.added_tokens = []; }],
  ];
  for (const [name, what, edit] of variants) {
    const j = load(name); edit(j);
    const n = nDiff(await ids(mk(j)), vec(name));
    (cov[name] = cov[name] || {})[what] = n;
    console.log(`${name}: ${what}: ${n} lines change`);
  }
  const m = vec('mistral');
  cov.mistral['lines with byte-fallback tokens <0xNN> (ids 3..258)'] = m.filter((x) => x.some((i) => i >= 3 && i <= 258)).length;
  cov.mistral['lines with <unk> (id 0)'] = m.filter((x) => x.includes(0)).length;
  console.log(JSON.stringify(cov.mistral));
  fs.writeFileSync(path.join(HERE, 'vectors', 'coverage.json'), JSON.stringify(cov, null, 1) + '\n');
})().catch((e) => { console.error(e); process.exit(1); });
