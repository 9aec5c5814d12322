#!/usr/bin/env python3
"""A stand-in for `peftc lsp` used to test the Neovim harness before the real server exists.

`fake_peftc.py lsp` speaks just enough LSP over stdio: it answers initialize and shutdown and,
on didOpen, publishes one error diagnostic on the first line that contains "r = 0". It must not
grow features: the real server's behaviour is tested against the real binary.
"""
import json
import sys


def read_message():
    length = 0
    while True:
        line = sys.stdin.buffer.readline()
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value.strip())
    return json.loads(sys.stdin.buffer.read(length))


def send(payload):
    body = json.dumps(payload).encode()
    sys.stdout.buffer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    sys.stdout.buffer.flush()


def diagnostics(uri, text):
    found = []
    for number, line in enumerate(text.splitlines()):
        col = line.find("r = 0")
        if col >= 0:
            found.append({
                "range": {"start": {"line": number, "character": col},
                          "end": {"line": number, "character": col + 5}},
                "severity": 1, "code": "E0000", "source": "peftc",
                "message": "rank must be at least 1",
            })
    return {"uri": uri, "diagnostics": found}


def main():
    if sys.argv[1:2] != ["lsp"]:
        print("usage: fake_peftc.py lsp", file=sys.stderr)
        return 2
    if "--help" in sys.argv:
        print("fake peftc lsp")
        return 0
    while True:
        msg = read_message()
        if msg is None:
            return 0
        method = msg.get("method")
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": msg["id"],
                  "result": {"capabilities": {"textDocumentSync": 1}}})
        elif method == "textDocument/didOpen":
            doc = msg["params"]["textDocument"]
            send({"jsonrpc": "2.0", "method": "textDocument/publishDiagnostics",
                  "params": diagnostics(doc["uri"], doc["text"])})
        elif method == "shutdown":
            send({"jsonrpc": "2.0", "id": msg["id"], "result": None})
        elif method == "exit":
            return 0


if __name__ == "__main__":
    sys.exit(main())
