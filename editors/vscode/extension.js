// The whole VS Code client for donmai-lsp: start the server over stdio for
// YAML files; the server itself ignores YAML that is not a workflow.
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const command = vscode.workspace.getConfiguration("donmai").get("server.path", "donmai-lsp");
  const server = { command, args: ["--stdio"], transport: TransportKind.stdio };
  client = new LanguageClient(
    "donmai",
    "donmai",
    { run: server, debug: server },
    {
      documentSelector: [
        { scheme: "file", language: "yaml" },
        { scheme: "untitled", language: "yaml" },
      ],
    },
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
