"""Bad input over the wire: the server answers with LSP errors or empty
results and keeps serving; it never crashes. These tests speak raw
JSON-RPC framing, so they can send what no well-behaved client would."""

import json
import os
import select
import subprocess
import time

SERVER = os.environ.get("DONMAI_LSP", "donmai-lsp")


class Raw:
    def __init__(self):
        self.proc = subprocess.Popen(
            [SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.buffer = b""

    def send_bytes(self, body: bytes, header: bytes | None = None):
        if header is None:
            header = b"Content-Length: %d\r\n\r\n" % len(body)
        self.proc.stdin.write(header + body)
        self.proc.stdin.flush()

    def send(self, message: dict):
        self.send_bytes(json.dumps(message).encode())

    def request(self, id, method, params=None):
        message = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def notify(self, method, params=None):
        message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def _read_message(self, deadline):
        while True:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if sep:
                length = None
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                assert length is not None, head
                if len(rest) >= length:
                    self.buffer = rest[length:]
                    return json.loads(rest[:length])
            remaining = deadline - time.monotonic()
            assert remaining > 0, "timed out waiting for the server"
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                assert chunk, "the server closed its output: %r" % self.proc.stderr.read()
                self.buffer += chunk

    def response(self, id, timeout=10.0):
        """The response to request `id`, skipping notifications and
        answering the server's own requests with null."""
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") == id and "method" not in message:
                return message
            if "method" in message and "id" in message:
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})

    def notification(self, method, predicate=lambda p: True, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("method") == method and "id" not in message and predicate(message["params"]):
                return message["params"]

    def initialize(self):
        self.request(1, "initialize", {"processId": None, "rootUri": None, "capabilities": {}})
        assert "capabilities" in self.response(1)["result"]
        self.notify("initialized", {})

    def close(self):
        self.request(99999, "shutdown")
        assert self.response(99999).get("result", "missing") is None
        self.notify("exit")
        assert self.proc.wait(timeout=10) == 0
        self.proc.stdin.close()


def alive_check(raw, id):
    raw.request(id, "textDocument/hover", {
        "textDocument": {"uri": "file:///nowhere.yaml"},
        "position": {"line": 0, "character": 0},
    })
    response = raw.response(id)
    assert "error" in response or response.get("result") is None


def test_requests_before_initialize_are_refused():
    raw = Raw()
    raw.request(1, "textDocument/hover", {
        "textDocument": {"uri": "file:///a.yaml"},
        "position": {"line": 0, "character": 0},
    })
    assert raw.response(1)["error"]["code"] == -32002
    raw.initialize()
    raw.close()


def test_malformed_json_gets_a_parse_error_and_the_server_goes_on():
    raw = Raw()
    raw.initialize()
    raw.send_bytes(b'{"jsonrpc": "2.0", "id": 5, "method": ')
    error = raw.response(None)
    assert error["error"]["code"] == -32700
    raw.send_bytes(b"\xff\xfe not utf-8 \xc3\x28")
    assert raw.response(None)["error"]["code"] == -32700
    raw.send_bytes(b"[1, 2, 3]")
    assert "error" in raw.response(None)
    alive_check(raw, 7)
    raw.close()


def test_a_frame_without_a_length_costs_only_itself():
    raw = Raw()
    raw.initialize()
    # No Content-Length: its body cannot be told from the next header.
    raw.send_bytes(b"{}", header=b"Content-Type: foo\r\n\r\n")
    assert raw.response(None)["error"]["code"] == -32700
    alive_check(raw, 8)
    raw.request(9, "shutdown")
    assert raw.response(9)["result"] is None
    raw.notify("exit")
    assert raw.proc.wait(timeout=10) == 0


def test_unknown_methods():
    raw = Raw()
    raw.initialize()
    raw.request(2, "donmai/noSuchThing", {"x": 1})
    assert raw.response(2)["error"]["code"] == -32601
    raw.notify("donmai/noSuchNotification", {"x": 1})
    raw.notify("$/cancelRequest", {"id": 12345})
    alive_check(raw, 3)
    raw.close()


def test_invalid_params_are_an_error_not_a_crash():
    raw = Raw()
    raw.initialize()
    raw.request(2, "textDocument/codeAction", {"textDocument": 5})
    assert raw.response(2)["error"]["code"] == -32602
    raw.notify("textDocument/didOpen", {"textDocument": {"uri": 7}})
    raw.notify("textDocument/didChange", {"textDocument": {"uri": "file:///x.yaml", "version": 2},
                                          "contentChanges": [{"text": "x"}]})
    alive_check(raw, 3)
    raw.close()


def open_doc(raw, uri, text, version=1):
    raw.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "yaml", "version": version, "text": text}})


def test_documents_that_are_not_workflows_get_no_diagnostics():
    raw = Raw()
    raw.initialize()
    uri = "untitled:Untitled-1"
    open_doc(raw, uri, "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n")
    params = raw.notification("textDocument/publishDiagnostics", lambda p: p["uri"] == uri)
    assert params["diagnostics"] == []
    raw.request(2, "textDocument/codeAction", {
        "textDocument": {"uri": uri},
        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 1}},
        "context": {"diagnostics": []},
    })
    assert raw.response(2)["result"] in (None, [])
    raw.close()


def test_positions_past_the_end_get_empty_answers():
    raw = Raw()
    raw.initialize()
    uri = "untitled:flow"
    open_doc(raw, uri, "apiVersion: workflow/v2\nkind: WorkflowDefinition\n")
    raw.notification("textDocument/publishDiagnostics", lambda p: p["uri"] == uri)
    raw.request(2, "textDocument/codeAction", {
        "textDocument": {"uri": uri},
        "range": {"start": {"line": 900, "character": 4}, "end": {"line": 4000000000, "character": 4000000000}},
        "context": {"diagnostics": []},
    })
    assert raw.response(2)["result"] in (None, [])
    # An edit whose range lies past the end appends instead of failing.
    raw.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [
        {"range": {"start": {"line": 90, "character": 0}, "end": {"line": 99, "character": 0}}, "text": "x"}]})
    params = raw.notification("textDocument/publishDiagnostics", lambda p: p.get("version") == 2)
    assert params["uri"] == uri
    raw.close()


def test_a_huge_document_is_answered_and_the_server_stays_responsive():
    raw = Raw()
    raw.initialize()
    uri = "untitled:huge"
    # 8 MB in one line and many lines: beyond any real workflow.
    text = "apiVersion: workflow/v2\nkind: WorkflowDefinition\nmetadata: {name: \"" + "x" * 4_000_000 + "\"}\n"
    text += "".join("# %d\n" % i for i in range(400_000))
    open_doc(raw, uri, text)
    params = raw.notification("textDocument/publishDiagnostics", lambda p: p["uri"] == uri, timeout=60)
    assert isinstance(params["diagnostics"], list)
    alive_check(raw, 5)
    raw.close()


def test_invalid_utf8_inside_a_document_text():
    raw = Raw()
    raw.initialize()
    body = (b'{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":'
            b'{"uri":"untitled:bad","languageId":"yaml","version":1,"text":"apiVersion: \xff\xfe"}}}')
    raw.send_bytes(body)
    assert raw.response(None)["error"]["code"] == -32700
    alive_check(raw, 3)
    raw.close()


def test_exit_without_shutdown_ends_the_process():
    raw = Raw()
    raw.initialize()
    raw.notify("exit")
    assert raw.proc.wait(timeout=10) == 1


def test_the_server_ends_with_its_input_even_while_it_waits_for_the_client():
    """After `initialized` the server asks the client to register file
    watchers and waits for the answer; if the client goes away first, the
    server must not outlive it."""
    raw = Raw()
    raw.request(1, "initialize", {"processId": None, "rootUri": None, "capabilities": {
        "workspace": {"didChangeWatchedFiles": {"dynamicRegistration": True}}}})
    raw.response(1)
    raw.notify("initialized", {})
    raw.proc.stdin.close()
    assert raw.proc.wait(timeout=10) == 1
