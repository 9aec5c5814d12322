#!/usr/bin/env node
// Derives the editor-specific query copies from queries/*.scm, or checks that they are current.
//
//   node scripts/derive-queries.js          write ../nvim/queries/peft/* and ../helix/queries/peft/*
//   node scripts/derive-queries.js --check  exit 1 when a copy differs from what would be written
//
// Neovim reads the queries unchanged. Helix wants its own scope names (like Neovim and the
// tree-sitter CLI it lets the last matching pattern win, so the order is kept), and its
// locals.scm names the highlight a reference inherits (`@local.definition.type`). This script
// must not invent patterns: every query change is made in queries/*.scm.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const editors = path.resolve(root, '..');
const read = (name) => fs.readFileSync(path.join(root, 'queries', name), 'utf8');

// nvim-treesitter capture -> Helix scope (prefixes not listed are kept as they are).
const HELIX_NAMES = [
  ['comment.documentation', 'comment.block.documentation'],
  ['comment', 'comment.line'],
  ['type.definition', 'type'],
  ['function.call', 'function'],
  ['module', 'namespace'],
  ['property', 'variable.other.member'],
  ['variable.member', 'variable.other.member'],
  ['boolean', 'constant.builtin.boolean'],
  ['number.float', 'constant.numeric.float'],
  ['number', 'constant.numeric.integer'],
  ['string.escape', 'constant.character.escape'],
  ['keyword.import', 'keyword.control.import'],
  ['keyword.conditional', 'keyword.control.conditional'],
  ['keyword.repeat', 'keyword.control.repeat'],
];

function helixName(capture) {
  for (const [from, to] of HELIX_NAMES) {
    if (capture === from) return to;
  }
  return capture;
}

/** Splits a query file into its header comment and its top-level patterns (each with the comments above it). */
function splitPatterns(text) {
  const lines = text.split('\n');
  let i = 0;
  const header = [];
  while (i < lines.length && lines[i].startsWith(';')) header.push(lines[i++]);
  const patterns = [];
  let pending = [];
  let current = null;
  let depth = 0;
  for (; i < lines.length; i++) {
    const line = lines[i];
    if (current === null) {
      if (line.trim() === '' || line.startsWith(';')) {
        if (line.trim() !== '') pending.push(line);
        continue;
      }
      current = [...pending, line];
      pending = [];
    } else {
      current.push(line);
    }
    const code = line.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/;.*$/, '');
    for (const ch of code) {
      if (ch === '(' || ch === '[') depth++;
      if (ch === ')' || ch === ']') depth--;
    }
    if (depth === 0) {
      patterns.push(current.join('\n'));
      current = null;
    }
  }
  return { header, patterns };
}

function helixHighlights(text) {
  const { patterns } = splitPatterns(text);
  const body = patterns
    .map((p) => p.replace(/@([a-z][a-z.]*)/g, (_, name) => '@' + helixName(name)))
    .join('\n\n');
  return (
    '; Highlights for .peft in Helix\'s scope names. GENERATED from\n' +
    '; editors/tree-sitter-peft/queries/highlights.scm by scripts/derive-queries.js: edit that file.\n' +
    '; The last matching pattern wins, as in Neovim.\n\n' +
    body +
    '\n'
  );
}

// Which highlight a reference to each kind of definition inherits in Helix.
const HELIX_DEFINITION = [
  [/^\((model|quant|adapter|dataset|device)_declaration /, 'type'],
  [/^\((train|eval|merge)_declaration /, 'function'],
  [/^\(let_declaration /, 'constant'],
  [/^\(use_declaration /, 'namespace'],
  [/^\(import_item /, 'variable'],
];

function helixLocals(text) {
  const lines = text.split('\n').map((line) => {
    if (!line.includes('@local.definition')) return line;
    const kind = HELIX_DEFINITION.find(([re]) => re.test(line));
    if (!kind) throw new Error(`derive-queries: no Helix highlight for definition: ${line}`);
    return line.replace('@local.definition', `@local.definition.${kind[1]}`);
  });
  return (
    '; Locals for .peft in Helix. GENERATED from editors/tree-sitter-peft/queries/locals.scm by\n' +
    '; scripts/derive-queries.js: edit that file. A reference inherits its definition\'s highlight.\n' +
    lines.join('\n')
  );
}

function outputs() {
  const out = new Map();
  for (const name of ['highlights.scm', 'locals.scm', 'folds.scm', 'indents.scm']) {
    out.set(path.join(editors, 'nvim', 'queries', 'peft', name), read(name));
  }
  out.set(path.join(editors, 'helix', 'queries', 'peft', 'highlights.scm'), helixHighlights(read('highlights.scm')));
  out.set(path.join(editors, 'helix', 'queries', 'peft', 'locals.scm'), helixLocals(read('locals.scm')));
  return out;
}

function main() {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const [file, text] of outputs()) {
    const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
    if (current === text) continue;
    if (check) {
      console.error(`stale: ${path.relative(editors, file)} (run node editors/tree-sitter-peft/scripts/derive-queries.js)`);
      stale++;
    } else {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, text);
      console.log(`wrote ${path.relative(editors, file)}`);
    }
  }
  if (stale > 0) process.exit(1);
}

main();
