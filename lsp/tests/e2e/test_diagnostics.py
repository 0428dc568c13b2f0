"""Diagnostics and quick fixes, end to end: what the editor shows is what
`donmaic check` reports."""

import json
import os
import subprocess

from lsprotocol import types

from helpers import apply_edits, diagnostics_for, open_document, position_of, write

UNKNOWN_STEP = """\
apiVersion: workflow/v2
kind: WorkflowDefinition
metadata: {name: case, version: "1", scope: {project: api}}
requires: [{plugin: donmai@2}, {plugin: linear@1}]
triggers:
  - {id: created, kind: signal, config: {signalEventType: com.linear.AgentSessionEvent.created}}
spec:
  steps:
    - {id: start, type: trigger, config: {triggerId: created}, next: [dispach]}
    - id: dispatch
      type: action
      config: {action: "donmai@2:agent.dispatch_to_queue", workType: development, issueId: "{{ trigger.issueId }}"}
"""


async def test_diagnostics_match_donmaic_check(client):
    uri = write(client.root, "flow.yaml", UNKNOWN_STEP)
    open_document(client, uri, UNKNOWN_STEP)
    diagnostics = await diagnostics_for(client, uri, 1)

    donmaic = os.environ.get("DONMAIC", "donmaic")
    report = subprocess.run(
        [donmaic, "check", "--format", "json", str(client.root / "flow.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    expected = json.loads(report.stdout)["diagnostics"]
    assert expected, "the case must have diagnostics"
    got = [
        {
            "code": d.code,
            "severity": "error" if d.severity == types.DiagnosticSeverity.Error else "warning",
            "line": d.range.start.line + 1,
            "column": d.range.start.character + 1,
            "endLine": d.range.end.line + 1,
            "endColumn": d.range.end.character + 1,
            "message": d.message.split("\nhelp: ")[0],
        }
        for d in diagnostics
    ]
    want = [{k: d[k] for k in ("code", "severity", "line", "column", "endLine", "endColumn", "message")} for d in expected]
    assert got == want
    unknown = diagnostics[0]
    assert unknown.code == "DN0101"
    assert unknown.range.start == position_of(UNKNOWN_STEP, "dispach")
    assert unknown.source == "donmai"


async def test_quick_fix_applies_and_clears_the_diagnostic(client):
    uri = write(client.root, "flow.yaml", UNKNOWN_STEP)
    open_document(client, uri, UNKNOWN_STEP)
    diagnostics = await diagnostics_for(client, uri, 1)
    target = next(d for d in diagnostics if d.code == "DN0101")
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=target.range,
            context=types.CodeActionContext(diagnostics=[target]),
        )
    )
    fixes = [a for a in actions if a.kind == types.CodeActionKind.QuickFix]
    assert [a.title for a in fixes] == ["use `dispatch`"]
    fixed = apply_edits(UNKNOWN_STEP, fixes[0].edit.changes[uri])
    assert "next: [dispatch]" in fixed

    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=fixed)],
        )
    )
    after = await diagnostics_for(client, uri, 2)
    assert not [d for d in after if d.code == "DN0101"]


async def test_incremental_edits_are_applied_in_order(client):
    uri = write(client.root, "flow.yaml", UNKNOWN_STEP)
    open_document(client, uri, UNKNOWN_STEP)
    await diagnostics_for(client, uri, 1)
    start = position_of(UNKNOWN_STEP, "dispach", delta=5)

    def change(version, line, c0, c1, text):
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(
                            start=types.Position(line=line, character=c0),
                            end=types.Position(line=line, character=c1),
                        ),
                        text=text,
                    )
                ],
            )
        )

    # Sent back to back, as an editor does while one types: "dispa|ch" gets
    # "x", then "t" after it, then the "x" is deleted: "dispatch".
    change(2, start.line, start.character, start.character, "x")
    change(3, start.line, start.character + 1, start.character + 1, "t")
    change(4, start.line, start.character, start.character + 1, "")
    change(5, start.line, 0, 0, "")
    final = await diagnostics_for(client, uri, 5)
    assert [d.code for d in final if d.code == "DN0101"] == [], final


async def test_closing_clears_diagnostics(client):
    uri = write(client.root, "flow.yaml", UNKNOWN_STEP)
    open_document(client, uri, UNKNOWN_STEP)
    assert await diagnostics_for(client, uri, 1)
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert list(client.diagnostics[uri]) == []


async def test_utf8_positions_for_clients_that_offer_them(neovim):
    text = UNKNOWN_STEP.replace('name: case', 'name: "caf\u00e9 \U0001F600"')
    # A multi-byte character before the reported span on the same line.
    text = text.replace("next: [dispach]", "next: [\"\u00e9\U0001F600\", dispach]")
    uri = write(neovim.root, "flow.yaml", text)
    open_document(neovim, uri, text)
    diagnostics = await diagnostics_for(neovim, uri, 1)
    unknown = [d for d in diagnostics if d.code == "DN0101"]
    assert len(unknown) == 2, diagnostics
    unknown = unknown[1]
    index = text.index("dispach")
    line_start = text.rfind("\n", 0, index) + 1
    assert unknown.range.start.character == len(text[line_start:index].encode("utf-8"))


async def test_the_server_advertises_every_feature(client):
    capabilities = client.init_result.capabilities
    assert capabilities.completion_provider is not None
    assert "." in capabilities.completion_provider.trigger_characters
    assert capabilities.hover_provider
    assert capabilities.definition_provider
    assert capabilities.references_provider
    assert capabilities.document_highlight_provider
    assert capabilities.rename_provider.prepare_provider
    assert capabilities.document_symbol_provider
    assert capabilities.document_formatting_provider
    legend = capabilities.semantic_tokens_provider.legend
    assert "variable" in legend.token_types and "deprecated" in legend.token_modifiers
    kinds = capabilities.code_action_provider.code_action_kinds
    assert types.CodeActionKind.QuickFix in kinds and types.CodeActionKind.SourceFixAll in kinds
    assert capabilities.text_document_sync.change == types.TextDocumentSyncKind.Incremental
