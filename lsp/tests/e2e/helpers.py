"""Small helpers for the end-to-end tests: open a document, wait for its
diagnostics, apply edits the way an editor would."""

import asyncio
import pathlib

from lsprotocol import types
from pytest_lsp import LanguageClient


def write(root: pathlib.Path, name: str, text: str) -> str:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path.as_uri()


async def diagnostics_for(client: LanguageClient, uri: str, version: int, timeout: float = 10.0):
    """Waits until the server has published diagnostics for `version`."""

    async def wait():
        while client.diagnostic_versions.get(uri) != version:
            await asyncio.sleep(0.002)
        return client.diagnostics[uri]

    return await asyncio.wait_for(wait(), timeout)


def open_document(client: LanguageClient, uri: str, text: str, version: int = 1):
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="yaml", version=version, text=text)
        )
    )


def apply_edits(text: str, edits) -> str:
    """Applies LSP text edits (UTF-16 positions) to `text`, last first."""
    lines = text.split("\n")

    def offset(position: types.Position) -> int:
        before = sum(len(line) + 1 for line in lines[: position.line])
        line = lines[position.line] if position.line < len(lines) else ""
        units = 0
        for i, ch in enumerate(line):
            if units >= position.character:
                return before + i
            units += 2 if ord(ch) > 0xFFFF else 1
        return before + len(line)

    ordered = sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True)
    for edit in ordered:
        start, end = offset(edit.range.start), offset(edit.range.end)
        text = text[:start] + edit.new_text + text[end:]
        lines = text.split("\n")
    return text


def position_of(text: str, needle: str, nth: int = 0, delta: int = 0) -> types.Position:
    """The UTF-16 position of the `nth` occurrence of `needle`, plus `delta`."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)
    index += delta
    line = text.count("\n", 0, index)
    start = text.rfind("\n", 0, index) + 1
    column = sum(2 if ord(ch) > 0xFFFF else 1 for ch in text[start:index])
    return types.Position(line=line, character=column)


async def opened(client, text, name="flow.yaml"):
    """Writes `text` as `name` in the client's project, opens it and
    returns its uri and first diagnostics."""
    uri = write(client.root, name, text)
    open_document(client, uri, text)
    diagnostics = await diagnostics_for(client, uri, 1)
    return uri, diagnostics
