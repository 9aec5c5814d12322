// Tests src/extension.js without VS Code: `vscode` and `vscode-languageclient/node` are
// replaced by recording stand-ins, and `peft.server.path` points at a script that behaves like
// `peftc lsp --help` (or at nothing). It checks what the client is told to start, not LSP itself.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const Module = require('node:module');

function load(settings) {
  const calls = { clients: [], errors: [] };
  const vscode = {
    workspace: {
      workspaceFolders: [{ uri: { fsPath: '/ws' } }],
      getConfiguration: () => ({ get: (key, dflt) => (key in settings ? settings[key] : dflt) }),
      createFileSystemWatcher: (glob) => ({ glob }),
      onDidChangeConfiguration: () => ({ dispose() {} }),
    },
    window: {
      createOutputChannel: (name) => ({ name, dispose() {} }),
      showErrorMessage: async (msg) => { calls.errors.push(msg); return undefined; },
    },
    commands: { registerCommand: () => ({ dispose() {} }), executeCommand: async () => {} },
  };
  class LanguageClient {
    constructor(id, name, serverOptions, clientOptions) {
      calls.clients.push({ id, name, serverOptions, clientOptions, started: false });
    }
    async start() { calls.clients[calls.clients.length - 1].started = true; }
    async stop() {}
    dispose() {}
  }
  const stubs = { vscode, 'vscode-languageclient/node': { LanguageClient, TransportKind: { stdio: 0 } } };
  const original = Module._load;
  Module._load = function (request, ...rest) {
    return request in stubs ? stubs[request] : original.call(this, request, ...rest);
  };
  const file = require.resolve('../../src/extension.js');
  delete require.cache[file];
  try {
    return { extension: require(file), calls };
  } finally {
    Module._load = original;
  }
}

function fakePeftc() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peftc-'));
  const bin = path.join(dir, 'peftc');
  fs.writeFileSync(bin, '#!/bin/sh\n[ "$1" = lsp ] && exit 0\nexit 3\n', { mode: 0o755 });
  return bin;
}

test('starts `<peft.server.path> lsp` over stdio for peft documents', async () => {
  const bin = fakePeftc();
  const { extension, calls } = load({ 'server.path': bin, 'server.extraArgs': ['--log', 'x'] });
  await extension.activate({ subscriptions: [] });
  assert.strictEqual(calls.errors.length, 0);
  assert.strictEqual(calls.clients.length, 1);
  const c = calls.clients[0];
  assert.strictEqual(c.id, 'peft');
  assert.strictEqual(c.started, true);
  assert.deepStrictEqual(c.serverOptions.run, { command: bin, args: ['lsp', '--log', 'x'], transport: 0 });
  assert.deepStrictEqual(c.clientOptions.documentSelector.map((d) => d.language), ['peft', 'peft']);
  assert.strictEqual(c.clientOptions.synchronize.fileEvents.glob, '**/{*.peft,peftc.toml}');
});

test('resolves ${workspaceFolder} in the server path', async () => {
  const { extension, calls } = load({ 'server.path': '${workspaceFolder}/target/debug/peftc' });
  await extension.activate({ subscriptions: [] });
  assert.strictEqual(calls.clients.length, 0);
  assert.match(calls.errors[0], /could not run `\/ws\/target\/debug\/peftc lsp`/);
});

test('a missing binary gives one actionable error and no client', async () => {
  const { extension, calls } = load({ 'server.path': '/nonexistent/peftc' });
  await extension.activate({ subscriptions: [] });
  assert.strictEqual(calls.clients.length, 0);
  assert.strictEqual(calls.errors.length, 1);
  assert.match(calls.errors[0], /peft\.server\.path/);
});

test('peft.server.enable = false starts nothing', async () => {
  const { extension, calls } = load({ 'server.enable': false, 'server.path': fakePeftc() });
  await extension.activate({ subscriptions: [] });
  assert.strictEqual(calls.clients.length, 0);
  assert.strictEqual(calls.errors.length, 0);
});
