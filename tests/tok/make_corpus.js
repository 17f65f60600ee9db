#!/usr/bin/env node
// Builds tests/tok/corpus.jsonl: real text taken from the files of a Debian 12 machine, never text
// written for the test. Deterministic for a given set of installed files: sorted file lists and a
// seeded PRNG (SEED below). Needs only Node (no npm packages) and man-db/groff for the man pages.
//
//   node make_corpus.js            writes corpus.jsonl and corpus.sources.tsv next to this script
//
// corpus.jsonl: one {"text": STRING} per line. corpus.sources.tsv: line number (1-based), category,
// source file, and how the text was taken ("as is", "NFD of", "token inserted", ...).
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const cp = require('child_process');

const SEED = 20261201;
const OUT = path.join(__dirname, 'corpus.jsonl');
const SRC = path.join(__dirname, 'corpus.sources.tsv');
const TOKDATA = path.join(__dirname, 'data');

// ---------------------------------------------------------------- deterministic helpers
let rngState = SEED >>> 0;
function rnd() { // mulberry32
  rngState = (rngState + 0x6d2b79f5) >>> 0;
  let t = rngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const randint = (n) => Math.floor(rnd() * n);
function shuffle(a) {
  a = a.slice();
  for (let i = a.length - 1; i > 0; i--) { const j = randint(i + 1); [a[i], a[j]] = [a[j], a[i]]; }
  return a;
}
const pickN = (a, n) => shuffle(a).slice(0, n);

const utf8 = new TextDecoder('utf-8', { fatal: true });
function readText(p) {
  try {
    let b = fs.readFileSync(p);
    if (p.endsWith('.gz')) b = zlib.gunzipSync(b);
    if (b.includes(0)) return null;               // binary
    return utf8.decode(b);
  } catch (e) { return null; }
}
function walk(dir, pred, out = [], seen = new Set()) {
  let ents;
  try { ents = fs.readdirSync(dir, { withFileTypes: true }); } catch (e) { return out; }
  ents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of ents) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, pred, out, seen);
    else if (e.isFile() && pred(p)) out.push(p);
  }
  return out;
}
const ls = (dir) => { try { return fs.readdirSync(dir).sort(); } catch (e) { return []; } };
const exists = (p) => { try { fs.statSync(p); return true; } catch (e) { return false; } };

// paragraphs: blocks separated by blank lines, kept as written (indentation, inner newlines)
function paragraphs(text, maxChars = 1500) {
  const out = [];
  for (const para of text.split(/\n[ \t]*\n/)) {
    if (!para.trim()) continue;
    let p = para.replace(/^\n+/, '');
    if (p.length > maxChars) {                       // cut at a line boundary
      const lines = p.split('\n'); let acc = [];
      for (const l of lines) { if (acc.join('\n').length + l.length + 1 > maxChars) break; acc.push(l); }
      if (!acc.length) continue;
      p = acc.join('\n');
    }
    out.push(p);
  }
  return out;
}
function chunk(text, maxLines) {                   // a run of consecutive lines of a file
  const lines = text.split('\n');
  if (lines.length < 2) return null;
  const n = 1 + randint(maxLines);
  const start = randint(Math.max(1, lines.length - n));
  let c = lines.slice(start, start + n).join('\n');
  if (n > 1 && rnd() < 0.5 && start + n < lines.length) c += '\n';
  return c;
}

// ---------------------------------------------------------------- output
const items = [];
const seen = new Set();
const counts = {};
function add(cat, text, src, how = 'as is') {
  if (typeof text !== 'string' || seen.has(text)) return false;
  if (/[\uD800-\uDFFF]/.test(text.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, ''))) return false;
  if (text.length > 40000) return false;
  seen.add(text);
  items.push({ text, cat, src, how });
  counts[cat] = (counts[cat] || 0) + 1;
  return true;
}
function fill(cat, n, gen, maxTries = n * 50) {   // gen() -> [text, src, how] or null
  let got = 0;
  for (let t = 0; got < n && t < maxTries; t++) {
    const r = gen();
    if (r && r[0] && add(cat, r[0], r[1], r[2])) got++;
  }
  return got;
}

// ---------------------------------------------------------------- sources
function filesWithText(list) {
  const out = [];
  const hashes = new Set();
  for (const p of list) {
    const t = readText(p);
    if (t === null || !t.trim()) continue;
    const h = require('crypto').createHash('sha1').update(t).digest('hex');
    if (hashes.has(h)) continue;                  // identical copies (symlinks, shared copyrights)
    hashes.add(h);
    out.push([p, t]);
  }
  return out;
}
const licenses = filesWithText(ls('/usr/share/common-licenses').map((f) => '/usr/share/common-licenses/' + f));
const copyrights = filesWithText(ls('/usr/share/doc').map((d) => `/usr/share/doc/${d}/copyright`).filter(exists));
const changelogs = filesWithText(pickN(ls('/usr/share/doc').map((d) => `/usr/share/doc/${d}/changelog.Debian.gz`).filter(exists), 200).sort());
const headers = walk('/usr/include', (p) => p.endsWith('.h'));
const pyfiles = walk('/usr/lib/python3.11', (p) => p.endsWith('.py') && !p.includes('/site-packages/'));
const makefiles = walk('/usr/share/doc', (p) => /\/Makefile[^/]*$/.test(p) && !p.endsWith('.gz'))
  .concat(['/usr/lib/python3.11/config-3.11-x86_64-linux-gnu/Makefile'].filter(exists));
const perlmods = walk('/usr/share/perl5', (p) => p.endsWith('.pm'));

// man pages rendered as a reader sees them (80 columns, UTF-8, no formatting codes)
function renderMan(p) {
  try {
    return cp.execFileSync('man', ['-P', 'cat', '-l', p], {
      env: { PATH: process.env.PATH, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', MANWIDTH: '80' },
      stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20,
    }).toString('utf8');
  } catch (e) { return null; }
}
const manList = [];
for (const sec of ['man1', 'man5', 'man7', 'man8']) for (const f of ls('/usr/share/man/' + sec)) if (f.endsWith('.gz') && !f.startsWith('gcloud')) manList.push(`/usr/share/man/${sec}/${f}`);
const manpages = [];
for (const p of pickN(manList, 60).sort()) { const t = renderMan(p); if (t && t.length > 500) manpages.push([p, t]); }

// gettext catalogs (.mo), parsed directly
function readMo(p) {
  let b;
  try { b = fs.readFileSync(p); } catch (e) { return []; }
  if (b.length < 28) return [];
  const magic = b.readUInt32LE(0);
  const rd = magic === 0x950412de ? (o) => b.readUInt32LE(o) : magic === 0xde120495 ? (o) => b.readUInt32BE(o) : null;
  if (!rd) return [];
  const n = rd(8), oo = rd(12), to = rd(16);
  const out = [];
  for (let i = 0; i < n; i++) {
    const ol = rd(oo + 8 * i), oof = rd(oo + 8 * i + 4), tl = rd(to + 8 * i), tof = rd(to + 8 * i + 4);
    if (ol === 0) continue;                        // header
    let id, str;
    try { id = utf8.decode(b.subarray(oof, oof + ol)); str = utf8.decode(b.subarray(tof, tof + tl)); } catch (e) { continue; }
    for (const form of str.split('\0')) if (form.trim()) out.push([id.split('\x04').pop().split('\0')[0], form]);
  }
  return out;
}
const locDirs = ls('/usr/share/locale').filter((l) => exists(`/usr/share/locale/${l}/LC_MESSAGES`));

// ---------------------------------------------------------------- categories
const pickFile = (list) => list[randint(list.length)];
function paraGen(list) {
  const cache = new Map();
  return () => {
    const [p, t] = pickFile(list);
    if (!cache.has(p)) cache.set(p, paragraphs(t));
    const ps = cache.get(p);
    if (!ps.length) return null;
    return [ps[randint(ps.length)], p];
  };
}

fill('prose_license', 220, paraGen(licenses));
fill('prose_copyright', 150, paraGen(copyrights));
fill('prose_man', 220, paraGen(manpages));
fill('prose_changelog', 150, paraGen(changelogs));

// all single lines of prose and code, for the selective categories below
const lineSources = [];
for (const [p, t] of [...licenses, ...copyrights, ...changelogs, ...manpages]) lineSources.push([p, t.split('\n')]);
const codeFiles = [...pickN(headers, 400).sort(), ...pickN(pyfiles, 250).sort(), ...makefiles, ...pickN(perlmods, 60).sort()];
const codeTexts = filesWithText(codeFiles);
for (const [p, t] of codeTexts) lineSources.push([p, t.split('\n')]);
function linesMatching(re) {
  const out = [];
  for (const [p, ls_] of lineSources) for (const l of ls_) if (re.test(l)) out.push([l, p]);
  return out;
}
// rare features (long digit runs, form feeds, vertical tabs): every header, Python and Perl file
const rareLines = [];
for (const p of [...headers, ...pyfiles, ...perlmods]) {
  const t = readText(p); if (!t) continue;
  for (const l of t.split('\n')) if (l.length <= 300 && (/\d{12}|[\f\v]/.test(l))) rareLines.push([l, p]);
}

// contractions: each form, lower and upper case, ASCII and typographic apostrophe
const contractionForms = [
  ["n't", /[A-Za-z]n't\b/], ["'s", /[A-Za-z]'s\b/], ["'re", /[A-Za-z]'re\b/], ["'ll", /[A-Za-z]'ll\b/],
  ["'ve", /[A-Za-z]'ve\b/], ["'d", /[A-Za-z]'d\b/], ["'m", /[A-Za-z]'m\b/],
  ['upper', /[A-Z](N'T|'S|'RE|'LL|'VE|'D|'M)\b/], ['mixed', /[a-z]'(S|T|Re|RE|Ll|LL|Ve|VE|D|M)\b/],
  ['curly', /[A-Za-z]\u2019(s|t|re|ll|ve|d|m)\b/i],
];
for (const [name, re] of contractionForms) {
  const pool = linesMatching(re);
  const q = ['upper', 'mixed', 'curly'].includes(name) ? 20 : 30;
  let k = 0;
  for (const [l, p] of pickN(pool, pool.length)) { if (k >= q) break; if (add('contractions', l, p, `line with ${name}`)) k++; }
}

// code: runs of 1..12 consecutive lines
function codeGen(list, maxLines) {
  const files = filesWithText(list);
  return () => { const [p, t] = pickFile(files); const c = chunk(t, maxLines); return c && c.trim() ? [c, p] : null; };
}
fill('code_c', 280, codeGen(pickN(headers, 300).sort(), 12));
fill('code_python', 250, codeGen(pickN(pyfiles, 200).sort(), 12));
fill('code_other', 120, codeGen([...makefiles, ...pickN(perlmods, 40).sort()], 12));

// whitespace: lines or runs of lines chosen for their whitespace
const wsFeatures = [
  ['trailing space or tab', /[^\s][ \t]+$/, 30], ['whitespace-only line', /^[ \t]+$/, 15],
  ['tab inside a line', /\S\t+\S/, 25], ['leading tabs', /^\t\t+\S/, 20],
  ['run of 3+ spaces inside', /\S {3,}\S/, 30], ['leading 8+ spaces', /^ {8,}\S/, 20],
  ['form feed', /\f/, 8], ['carriage return', /\r/, 12], ['vertical tab', /\v/, 4],
  ['space before tab', / \t/, 10], ['tab before space', /\t /, 10],
];
for (const [name, re, q] of wsFeatures) {
  const pool = linesMatching(re);
  let k = 0;
  for (const [l, p] of pickN(pool, pool.length)) { if (k >= q) break; if (add('whitespace', l, p, `line with ${name}`)) k++; }
}
{ // runs of lines holding blank-line runs and whitespace-only lines (code and text)
  const allTexts = [...codeTexts, ...licenses, ...manpages];
  const pool = [];
  for (const [p, t] of allTexts) {
    const re = /(?:[^\n]*\n){0,3}(?:[ \t]*\n){2,}(?:[^\n]*\n?){0,2}/g;
    let m; while ((m = re.exec(t))) { if (m[0].length > 3 && m[0].length < 800) pool.push([m[0], p]); if (m[0].length === 0) re.lastIndex++; }
  }
  let k = 0;
  for (const [c, p] of pickN(pool, pool.length)) { if (k >= 50) break; if (add('whitespace', c, p, 'lines around a blank-line run')) k++; }
  // CRLF text: several lines of a file written with CRLF line ends
  const crlfFiles = ['/usr/share/doc/nodejs/LICENSE', '/usr/share/doc/libxv1/copyright', '/usr/share/doc/gdal-data/NOTICE',
    '/usr/lib/python3.11/venv/scripts/common/Activate.ps1'].filter(exists);
  for (const p of crlfFiles) {
    const t = readText(p); if (!t) continue;
    const ls_ = t.split('\n');
    for (let r = 0; r < 4; r++) { const s = randint(Math.max(1, ls_.length - 6)); add('whitespace', ls_.slice(s, s + 2 + randint(5)).join('\n'), p, 'CRLF lines'); }
  }
}

// numbers: lines whose longest digit run has each length 1..40
{
  const numSources = [...codeTexts, ...changelogs, ...manpages];
  for (const f of ['/usr/share/zoneinfo/zone.tab', '/usr/share/zoneinfo/zone1970.tab', '/usr/share/zoneinfo/iso3166.tab']) {
    const t = readText(f); if (t) numSources.push([f, t]);
  }
  for (const p of pickN(headers.filter((h) => /limits|float|math|stdint|inttypes|values|unistd|errno|ioctl|socket/.test(h)), 80).sort()) {
    const t = readText(p); if (t) numSources.push([p, t]);
  }
  const byLen = new Map();
  for (const [l, p] of rareLines) numSources.push([p, l]);
  for (const [p, t] of numSources) {
    for (const l of t.split('\n')) {
      const runs = l.match(/\d+/g); if (!runs || l.length > 300) continue;
      const L = Math.max(...runs.map((r) => r.length));
      if (L > 64) continue;
      if (!byLen.has(L)) byLen.set(L, []);
      byLen.get(L).push([l, p]);
    }
  }
  for (let L = 1; L <= 64; L++) {
    const pool = byLen.get(L) || [];
    const q = L <= 4 ? 14 : L <= 12 ? 10 : 6;
    let k = 0;
    for (const [l, p] of pickN(pool, pool.length)) { if (k >= q) break; if (add('numbers', l, p, `longest digit run ${L}`)) k++; }
  }
  // zone.tab lines: coordinates like +4230+00131 and -334520+0181440
  const zt = readText('/usr/share/zoneinfo/zone1970.tab') || '';
  let k = 0;
  for (const l of pickN(zt.split('\n').filter((l) => /^[A-Z]/.test(l)), 40)) { if (k >= 20) break; if (add('numbers', l, '/usr/share/zoneinfo/zone1970.tab')) k++; }
}

// non-ASCII scripts: gettext translations of every language present
const scriptsPerLang = [];
{
  const langs = locDirs;
  for (const lang of langs) {
    const dir = `/usr/share/locale/${lang}/LC_MESSAGES`;
    const mos = ls(dir).filter((f) => f.endsWith('.mo'));
    if (!mos.length) continue;
    const iso = mos.filter((f) => /^iso_(3166-1|639-2|15924|4217)\.mo$/.test(f));
    const msgs = mos.filter((f) => !/^iso_/.test(f));
    const want = [];
    for (const f of pickN(iso, 2)) want.push([f, 1, 60]);
    for (const f of pickN(msgs, 3)) want.push([f, 1, 400]);
    let got = 0;
    for (const [f, n, maxLen] of want) {
      const p = `${dir}/${f}`;
      const entries = readMo(p).filter(([id, s]) => s !== id && /[^\x00-\x7f]/.test(s) && s.length <= maxLen && s.length > 1);
      for (const [, s] of pickN(entries, n)) if (add('scripts', s, p, 'msgstr')) got++;
    }
    scriptsPerLang.push([lang, got]);
  }
}

// tricky Unicode: combining marks, joiners, Unicode spaces, bidi marks, compatibility forms; NFD forms
{
  const pool = [];
  for (const lang of locDirs) {
    const dir = `/usr/share/locale/${lang}/LC_MESSAGES`;
    for (const f of pickN(ls(dir).filter((f) => f.endsWith('.mo')), 4)) for (const [, s] of readMo(`${dir}/${f}`)) if (s.length <= 300) pool.push([s, `${dir}/${f}`]);
  }
  for (const f of ls('/usr/share/X11/locale')) {
    const p = `/usr/share/X11/locale/${f}/Compose`;
    const t = exists(p) && readText(p); if (t) for (const l of t.split('\n')) if (/[^\x00-\x7f]/.test(l)) pool.push([l, p]);
  }
  for (const [p, t] of copyrights) for (const l of t.split('\n')) if (/[\ufeff\u0085\u2028\u2029]/.test(l)) pool.push([l, p]);
  for (const p of walk('/usr/share/vim/vim90/keymap', (p) => p.endsWith('utf-8.vim'))) { const t = readText(p); if (t) for (const l of t.split('\n')) if (/[^\x00-\x7f]/.test(l)) pool.push([l, p]); }
  const feats = [
    ['combining mark', /\p{Mn}/u, 40], ['ZWJ', /\u200d/, 12], ['ZWNJ', /\u200c/, 12], ['no-break space', /\u00a0/, 15],
    ['narrow no-break space', /\u202f/, 12], ['ideographic space', /\u3000/, 10], ['other Unicode space', /[\u2000-\u200a\u205f]/, 8],
    ['bidi mark', /[\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]/, 10], ['zero-width space', /\u200b/, 6], ['BOM/ZWNBSP', /\ufeff/, 4],
    ['compatibility character (NFKC differs)', /[\ufb00-\ufb4f\uff01-\uff5e\u2460-\u24ff\u3300-\u33ff]/u, 20],
    ['supplementary plane', /[\u{10000}-\u{10ffff}]/u, 20], ['Hangul', /[\uac00-\ud7a3]/, 8], ['line/paragraph separator', /[\u2028\u2029\u0085]/, 4],
  ];
  for (const [name, re, q] of feats) {
    const m = pool.filter(([s]) => re.test(s));
    let k = 0;
    for (const [s, p] of pickN(m, m.length)) { if (k >= q) break; if (add('unicode', s, p, `has ${name}`)) k++; }
  }
  // NFD forms of real lines whose NFD differs (Qwen's NFC normalizer recomposes them), and NFC of lines with decomposed text
  const dec = pool.filter(([s]) => s.normalize('NFD') !== s);
  let k = 0;
  for (const [s, p] of pickN(dec, dec.length)) { if (k >= 50) break; if (add('unicode', s.normalize('NFD'), p, 'NFD of msgstr')) k++; }
  const nonNfc = pool.filter(([s]) => s.normalize('NFC') !== s);
  k = 0;
  for (const [s, p] of pickN(nonNfc, nonNfc.length)) { if (k >= 15) break; if (add('unicode', s, p, 'not in NFC as written')) k++; }
}

// emoji: rich's emoji table (Python string escapes evaluated), X11 Compose, Node's docs
{
  const pool = [];
  const rich = '/usr/lib/python3/dist-packages/pip/_vendor/rich/_emoji_codes.py';
  const rt = readText(rich);
  if (rt) for (const l of rt.split('\n')) {
    const m = l.match(/^(\s*)("[^"]*": )("(?:[^"\\]|\\.)*")(,?)$/);
    if (m) { try { pool.push([m[1] + m[2] + '"' + JSON.parse(m[3]) + '"' + m[4], rich, 'line, Python escapes evaluated']); } catch (e) { /* skip */ } }
  }
  const emo = /\p{Extended_Pictographic}/u;
  for (const f of ls('/usr/share/X11/locale')) {
    const p = `/usr/share/X11/locale/${f}/Compose`; const t = exists(p) && readText(p);
    if (t) for (const l of t.split('\n')) if (emo.test(l)) pool.push([l, p, 'as is']);
  }
  for (const p of walk('/usr/share/doc/nodejs', (p) => p.endsWith('.md'))) { const t = readText(p); if (t) for (const l of t.split('\n')) if (emo.test(l) && /[\u{1F000}-\u{1FAFF}]/u.test(l)) pool.push([l, p, 'as is']); }
  const kinds = [
    ['ZWJ sequence', /\u200d/, 50], ['skin tone', /[\u{1F3FB}-\u{1F3FF}]/u, 30], ['flag', /[\u{1F1E6}-\u{1F1FF}]{2}/u, 30],
    ['variation selector', /\ufe0f/, 25], ['keycap', /\u20e3/, 6], ['tag sequence', /[\u{E0020}-\u{E007F}]/u, 4], ['any', /./, 70],
  ];
  for (const [name, re, q] of kinds) {
    const m = pool.filter(([s]) => re.test(s));
    let k = 0;
    for (const [s, p, how] of pickN(m, m.length)) { if (k >= q) break; if (add('emoji', s, p, `${how}; ${name}`)) k++; }
  }
}

// special-token strings of each tokenizer (taken from the tokenizer files) inside real lines
{
  const specials = new Set();
  const nonSpecial = new Set();
  for (const d of ls(TOKDATA)) {
    const p = `${TOKDATA}/${d}/tokenizer.json.gz`;
    if (!exists(p)) continue;
    const j = JSON.parse(zlib.gunzipSync(fs.readFileSync(p)).toString('utf8'));
    for (const t of j.added_tokens) {
      if (/reserved_special_token_(\d+)/.test(t.content) && !/_(0|1|2|10|100|247)\|/.test(t.content)) continue;
      (t.special ? specials : nonSpecial).add(t.content);
    }
  }
  const toks = [...specials].sort();
  const ntoks = [...nonSpecial].sort();
  const all = [...toks, ...ntoks];
  const prose = [];
  for (const [p, t] of [...licenses, ...manpages, ...copyrights]) for (const l of t.split('\n')) if (l.trim().length > 20 && l.length < 200) prose.push([l, p]);
  const proseP = () => prose[randint(prose.length)];
  const tok = () => all[randint(all.length)];
  function insertAtWord(l, s, glue) {              // at a word boundary; glue=true: no space around
    const ws = [...l.matchAll(/ /g)].map((m) => m.index);
    if (!ws.length) return l + s;
    const i = ws[randint(ws.length)];
    return glue ? l.slice(0, i) + s + l.slice(i + 1) : l.slice(0, i + 1) + s + ' ' + l.slice(i + 1);
  }
  // every token at least twice: spaced and glued
  for (const t of all) {
    const [l1, p1] = proseP(); add('special', insertAtWord(l1, t, false), p1, 'token inserted between words');
    const [l2, p2] = proseP(); add('special', insertAtWord(l2, t, true), p2, 'token inserted in place of a space');
  }
  const shapes = [
    ['token at start', (l) => tok() + l], ['token at end', (l) => l + tok()], ['token then newline', (l) => tok() + '\n' + l],
    ['two tokens adjacent', (l) => insertAtWord(l, tok() + tok(), false)], ['token repeated', (l) => { const t = tok(); return t + t + t + ' ' + l; }],
    ['token between newlines', (l) => l + '\n' + tok() + '\n'], ['leading spaces before token', (l) => '   ' + tok() + '  ' + l],
    ['near miss: token missing last char', (l) => { const t = tok(); return insertAtWord(l, t.slice(0, -1), false); }],
    ['near miss: token missing first char', (l) => { const t = tok(); return insertAtWord(l, t.slice(1), true); }],
    ['near miss: upper-cased token', (l) => insertAtWord(l, tok().toUpperCase(), false)],
    ['token inside brackets', (l) => insertAtWord(l, '(' + tok() + ')', false)],
    ['Llama-3 header layout', (l) => `<|start_header_id|>user<|end_header_id|>\n\n${l}<|eot_id|>`],
    ['ChatML layout', (l) => `<|im_start|>assistant\n${l}<|im_end|>\n`],
    ['Qwen think block', (l) => `<think>\n${l}\n</think>\n\n${proseP()[0]}`],
    ['[INST] layout', (l) => `<s>[INST] ${l} [/INST]`],
    ['GPT-2 document separator', (l) => `${l}<|endoftext|>${proseP()[0]}`],
  ];
  for (const [name, f] of shapes) fill('special', 8, () => { const [l, p] = proseP(); return [f(l), p, name]; });
}

// long texts: whole files or large parts (at most ~16 KB, cut at a line end)
{
  const cands = [['/usr/share/common-licenses/GPL-3', licenses], ['/usr/share/common-licenses/Apache-2.0', licenses]];
  for (const [p] of cands) { const t = readText(p); if (t) add('long', t.length > 16000 ? t.slice(0, t.lastIndexOf('\n', 16000) + 1) : t, p, 'first 16 KB'); }
  for (const [p, t] of [pickFile(manpages), pickFile(codeTexts), filesWithText(pickN(pyfiles, 1))[0], filesWithText(pickN(headers, 1))[0]]) {
    if (!t) continue;
    add('long', t.length > 16000 ? t.slice(0, t.lastIndexOf('\n', 16000) + 1) : t, p, 'first 16 KB');
  }
  // a page of translations in one language after another (mixed scripts in one input)
  const mixed = items.filter((it) => it.cat === 'scripts').slice(0, 120).map((it) => it.text).join('\n');
  add('long', mixed, '/usr/share/locale/*/LC_MESSAGES/*.mo', 'scripts lines joined');
}

// edge cases: the smallest inputs (empty, lone whitespace characters), as they occur in files
for (const s of ['', ' ', '\n', '\t', '  ', '\n\n', '\n\n\n', ' \n', '\r\n', '\t\t', ' \t ', '\u00a0', '\u3000', "'", "'s", '0', '1234567890']) add('edge', s, '(substring of many files)', 'edge');

// ---------------------------------------------------------------- write
fs.writeFileSync(OUT, items.map((it) => JSON.stringify({ text: it.text })).join('\n') + '\n');
fs.writeFileSync(SRC, 'line\tcategory\tsource\thow\n' + items.map((it, i) => `${i + 1}\t${it.cat}\t${it.src}\t${it.how}`).join('\n') + '\n');
const bytes = items.reduce((a, it) => a + Buffer.byteLength(it.text), 0);
console.log(`corpus: ${items.length} lines, ${bytes} bytes of text (${fs.statSync(OUT).size} bytes of JSONL)`);
for (const [c, n] of Object.entries(counts)) {
  const b = items.filter((it) => it.cat === c).reduce((a, it) => a + Buffer.byteLength(it.text), 0);
  console.log(`  ${c.padEnd(16)} ${String(n).padStart(5)} lines ${String(b).padStart(8)} bytes`);
}
console.log(`  languages with translations: ${scriptsPerLang.filter(([, g]) => g > 0).length}`);
