#!/usr/bin/env node
// Offset vectors made by the Hugging Face tokenizers library (Node binding, pinned in
// package-lock.json): for each data/NAME/tokenizer.json.gz and each line {"text": T} of
// corpus.jsonl, one line {"offsets": encode(T, add_special_tokens=true).getOffsets()} in
// vectors/NAME.offsets.jsonl.gz.  The library's offsets count characters (code points); the
// ids are those of vectors/NAME.jsonl.gz ("ids_special"), made by make_vectors.js.
//
//   cd tests/tok && npm ci && node make_offsets.js [NAME...]
//
// Also gpt2_trim: GPT-2's file with a ByteLevel post-processor that trims offsets (trim_offsets true).
// TOKENIZERS_MODULE=/path/to/node_modules/tokenizers uses another copy of the same version.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const os = require('os');

const HERE = __dirname;
const tk = require(process.env.TOKENIZERS_MODULE || path.join(HERE, 'node_modules', 'tokenizers'));
const only = process.argv.slice(2);

async function main() {
  const corpus = fs.readFileSync(path.join(HERE, 'corpus.jsonl'), 'utf8').split('\n').filter((l) => l.length)
    .map((l) => JSON.parse(l).text);
  const names = fs.readdirSync(path.join(HERE, 'data'))
    .filter((d) => fs.existsSync(path.join(HERE, 'data', d, 'tokenizer.json.gz'))).sort()
    .filter((n) => !only.length || only.includes(n));
  for (const name of names) {
    const tmp = path.join(os.tmpdir(), `tok-${name}-${process.pid}.json`);
    fs.writeFileSync(tmp, zlib.gunzipSync(fs.readFileSync(path.join(HERE, 'data', name, 'tokenizer.json.gz'))));
    const t = tk.Tokenizer.fromFile(tmp);
    fs.unlinkSync(tmp);
    await write(name, t, corpus);
    if (name === 'gpt2') { // ByteLevel's trim_offsets, which no stored file turns on
      const j = JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(HERE, 'data', name, 'tokenizer.json.gz'))));
      j.post_processor = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
      fs.writeFileSync(tmp, JSON.stringify(j));
      const tt = tk.Tokenizer.fromFile(tmp);
      fs.unlinkSync(tmp);
      await write('gpt2_trim', tt, corpus);
    }
  }
}

async function write(name, t, corpus) {
  {
    const out = [];
    let n = 0;
    for (const text of corpus) {
      const e = await t.encode(text, null, { addSpecialTokens: true });
      out.push(JSON.stringify({ offsets: e.getOffsets() }));
      n += e.getIds().length;
    }
    const file = path.join(HERE, 'vectors', `${name}.offsets.jsonl.gz`);
    fs.writeFileSync(file, zlib.gzipSync(Buffer.from(out.join('\n') + '\n'), { level: 9 }));
    console.log(`${name}: ${corpus.length} lines, ${n} offsets -> ${path.relative(HERE, file)}`);
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
