// VS Code client for `peftc lsp`: starts the language server over stdio for `.peft` files.
//
// It only launches and restarts the server and reports a missing binary; every language
// feature (diagnostics, hover, completion, formatting, ...) lives in `peftc lsp`. It must not
// parse or check `.peft` files itself: highlighting comes from syntaxes/peft.tmLanguage.json.
'use strict';

const { execFile } = require('node:child_process');
const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');

/** @type {LanguageClient | undefined} */
let client;
/** @type {vscode.OutputChannel | undefined} */
let output;

/** Reads the `peft.server.*` settings, resolving `${workspaceFolder}` in the path. */
function serverSettings() {
  const config = vscode.workspace.getConfiguration('peft');
  let command = config.get('server.path', 'peftc') || 'peftc';
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  if (folder) {
    command = command.replace(/\$\{workspaceFolder\}/g, folder);
  }
  return {
    enabled: config.get('server.enable', true),
    command,
    extraArgs: config.get('server.extraArgs', []),
  };
}

/** Resolves to true when `<command> lsp --help` runs, within five seconds. */
function serverRuns(command) {
  return new Promise((resolve) => {
    execFile(command, ['lsp', '--help'], { timeout: 5000 }, (error) => resolve(!error));
  });
}

async function startClient(context) {
  const settings = serverSettings();
  if (!settings.enabled) {
    return;
  }
  if (!(await serverRuns(settings.command))) {
    const choice = await vscode.window.showErrorMessage(
      `peft: could not run \`${settings.command} lsp\`. Install peftc (cargo install --path . in the peftc repository) ` +
        'or set "peft.server.path" to the peftc binary.',
      'Open settings',
    );
    if (choice === 'Open settings') {
      await vscode.commands.executeCommand('workbench.action.openSettings', 'peft.server.path');
    }
    return;
  }
  const executable = {
    command: settings.command,
    args: ['lsp', ...settings.extraArgs],
    transport: TransportKind.stdio,
  };
  const serverOptions = { run: executable, debug: executable };
  const clientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'peft' },
      { scheme: 'untitled', language: 'peft' },
    ],
    synchronize: {
      fileEvents: vscode.workspace.createFileSystemWatcher('**/{*.peft,peftc.toml}'),
    },
    outputChannel: output,
    traceOutputChannel: output,
  };
  client = new LanguageClient('peft', 'peft language server', serverOptions, clientOptions);
  context.subscriptions.push(client);
  await client.start();
}

async function stopClient() {
  if (client) {
    const running = client;
    client = undefined;
    await running.stop();
  }
}

/** @param {vscode.ExtensionContext} context */
async function activate(context) {
  output = vscode.window.createOutputChannel('peft language server');
  context.subscriptions.push(output);
  context.subscriptions.push(
    vscode.commands.registerCommand('peft.restartServer', async () => {
      await stopClient();
      await startClient(context);
    }),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration('peft.server')) {
        await stopClient();
        await startClient(context);
      }
    }),
  );
  await startClient(context);
}

async function deactivate() {
  await stopClient();
}

module.exports = { activate, deactivate };
