"""Definition, references, rename, outline and semantic tokens, end to end."""

from lsprotocol import types

from helpers import apply_edits, diagnostics_for, opened, open_document, position_of, write

FLOW = """\
apiVersion: workflow/v2
kind: WorkflowDefinition
metadata: {name: review, version: "1", scope: {project: api}}
requires: [{plugin: donmai@2}, {plugin: linear@1}]
triggers:
  - {id: created, kind: signal, config: {signalEventType: com.linear.AgentSessionEvent.created}}
spec:
  steps:
    - {id: start, type: trigger, config: {triggerId: created}, next: [dispatch]}
    - id: dispatch
      type: action
      config: {action: "donmai@2:agent.dispatch_to_queue", workType: development, issueId: "{{ trigger.issueId }}"}
      next: [note]
    - id: note
      type: action
      config:
        action: "linear@1:linear.comment.create"
        issueId: "{{ trigger.issueId }}"
        body: "queued as {{ nodes.dispatch.output.sessionId }}"
"""


def tdp(uri, position):
    return types.TextDocumentPositionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position)




async def test_the_fixture_is_clean(client):
    _, diagnostics = await opened(client, FLOW)
    assert list(diagnostics) == []


async def test_definition_from_an_expression_and_from_next(client):
    uri, _ = await opened(client, FLOW)
    definition = position_of(FLOW, "id: dispatch")
    target = types.Range(
        start=types.Position(line=definition.line, character=definition.character + 4),
        end=types.Position(line=definition.line, character=definition.character + 12),
    )
    for needle, nth in (("nodes.dispatch", 0), ("[dispatch]", 0)):
        delta = 6 if needle.startswith("nodes") else 1
        result = await client.text_document_definition_async(
            types.DefinitionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=position_of(FLOW, needle, nth, delta + 2),
            )
        )
        location = result if isinstance(result, types.Location) else result[0]
        assert location.uri == uri
        assert location.range == target


async def test_references_include_expressions(client):
    uri, _ = await opened(client, FLOW)
    result = await client.text_document_references_async(
        types.ReferenceParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position_of(FLOW, "id: dispatch", delta=5),
            context=types.ReferenceContext(include_declaration=True),
        )
    )
    lines = sorted(location.range.start.line for location in result)
    assert lines == [8, 9, 18]


async def test_rename_rewrites_every_reference_and_stays_clean(client):
    uri, _ = await opened(client, FLOW)
    position = position_of(FLOW, "nodes.dispatch", delta=8)
    prepared = await client.text_document_prepare_rename_async(
        types.PrepareRenameParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position)
    )
    assert prepared.placeholder == "dispatch"
    edit = await client.text_document_rename_async(
        types.RenameParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position, new_name="queue")
    )
    renamed = apply_edits(FLOW, edit.changes[uri])
    assert "dispatch]" not in renamed and "nodes.dispatch" not in renamed
    assert renamed == FLOW.replace("[dispatch]", "[queue]").replace("id: dispatch", "id: queue").replace(
        "nodes.dispatch", "nodes.queue"
    )
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=renamed)],
        )
    )
    assert list(await diagnostics_for(client, uri, 2)) == []


async def test_rename_to_a_taken_name_is_refused_with_a_reason(client):
    uri, _ = await opened(client, FLOW)
    try:
        await client.text_document_rename_async(
            types.RenameParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=position_of(FLOW, "id: dispatch", delta=5),
                new_name="note",
            )
        )
    except Exception as error:  # pygls raises the JSON-RPC error
        assert "note" in str(error)
    else:
        raise AssertionError("renaming onto an existing id must fail")


async def test_document_symbols_outline_the_steps(client):
    uri, _ = await opened(client, FLOW)
    symbols = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    names = [s.name for s in symbols]
    for expected in ("review", "created", "start", "dispatch", "note"):
        assert any(expected in name for name in names), names


async def test_semantic_tokens_cover_expressions(client):
    uri, _ = await opened(client, FLOW)
    tokens = await client.text_document_semantic_tokens_full_async(
        types.SemanticTokensParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    data = tokens.data
    assert len(data) % 5 == 0 and data
    # Decode to absolute positions and check one token is `dispatch` in
    # `nodes.dispatch`, typed as a variable.
    line = column = 0
    decoded = []
    for i in range(0, len(data), 5):
        delta_line, delta_start, length, token_type, _ = data[i : i + 5]
        line += delta_line
        column = column + delta_start if delta_line == 0 else delta_start
        decoded.append((line, column, length, token_type))
    text_lines = FLOW.split("\n")
    words = [text_lines[l][c : c + n] for l, c, n, _ in decoded]
    assert "dispatch" in words and "nodes" in words and "trigger" in words, words


async def test_navigation_on_a_document_that_is_not_a_workflow_is_empty(client):
    uri = write(client.root, "other.yaml", "on: push\n")
    open_document(client, uri, "on: push\n")
    await diagnostics_for(client, uri, 1)
    result = await client.text_document_definition_async(
        types.DefinitionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=0, character=1))
    )
    assert result is None
    symbols = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert symbols is None
