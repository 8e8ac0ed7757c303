// Starts `graphc lsp` for .graph files: every feature is the server's.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("graphc").get("path", "graphc");
  const server = { command, args: ["lsp"] };
  client = new LanguageClient(
    "graphc",
    "graphc",
    { run: server, debug: server },
    { documentSelector: [{ scheme: "file", language: "graph" }] }
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
