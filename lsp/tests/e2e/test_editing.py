"""Completion, hover, formatting and the v1 → v2 migration, end to end."""

from lsprotocol import types

from helpers import apply_edits, diagnostics_for, opened, open_document, position_of, write
from test_navigation import FLOW

V1 = """\
apiVersion: workflow/v1
kind: WorkflowDefinition
metadata: {name: old, version: "1", scope: {project: api}}
requires: [{plugin: donmai@2}, {plugin: linear@1}]
triggers:
  - {id: created, kind: signal, config: {signalEventType: com.linear.AgentSessionEvent.created}}
spec:
  steps:
    - {id: start, type: trigger, config: {triggerId: created}, next: [dispatch]}
    - id: dispatch
      type: action
      config: {action: "donmai@2:agent.dispatch_to_queue", workType: development, issueId: "${ trigger.data.issueId }"}
"""




def change(client, uri, version, text):
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


async def complete(client, uri, position):
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position)
    )
    return result.items if isinstance(result, types.CompletionList) else result


async def test_completion_after_nodes_offers_upstream_steps_only(client):
    uri, _ = await opened(client, FLOW)
    # Type `{{ nodes.` into the note step's body, right after `queued as `.
    typed = FLOW.replace('body: "queued as {{ nodes.dispatch.output.sessionId }}"', 'body: "queued as {{ nodes. }}"')
    change(client, uri, 2, typed)
    position = position_of(typed, "{{ nodes.", delta=len("{{ nodes."))
    labels = [item.label for item in await complete(client, uri, position)]
    assert "dispatch" in labels and "start" in labels
    assert "note" not in labels  # a step never reads its own output


async def test_completion_of_output_fields_with_types(client):
    uri, _ = await opened(client, FLOW)
    position = position_of(FLOW, "nodes.dispatch.output.", delta=len("nodes.dispatch.output."))
    items = await complete(client, uri, position)
    by_label = {item.label: item for item in items}
    assert "sessionId" in by_label, list(by_label)
    assert by_label["sessionId"].detail


async def test_completion_of_verbs_in_action(client):
    uri, _ = await opened(client, FLOW)
    position = position_of(FLOW, '"linear@1:linear.comment.create"', delta=1)
    labels = [item.label for item in await complete(client, uri, position)]
    assert "linear@1:linear.comment.create" in labels
    assert all(label.startswith(("linear@1:", "donmai@2:")) for label in labels), labels


def long_chain(count):
    """A workflow whose last step has `count` steps upstream."""
    steps = ["    - {id: start, type: trigger, config: {triggerId: created}, next: [s0]}"]
    for i in range(count):
        steps.append(
            f'    - {{id: s{i}, type: action, config: {{action: "core@1:core.log", message: "step {i}"}}, next: [s{i + 1}]}}'
        )
    steps.append('    - {id: s%d, type: action, config: {action: "core@1:core.log", message: "{{ nodes. }}"}}' % count)
    return (
        "apiVersion: workflow/v2\nkind: WorkflowDefinition\nmetadata: {name: chain, version: \"1\"}\n"
        "requires: [{plugin: core@1}, {plugin: linear@1}]\n"
        "triggers:\n  - {id: created, kind: signal, config: {signalEventType: com.linear.AgentSessionEvent.created}}\n"
        "spec:\n  steps:\n" + "\n".join(steps) + "\n"
    )


async def test_a_long_list_is_cut_to_the_nearest_and_asked_again_as_typing_goes_on(client):
    text = long_chain(150)
    uri, _ = await opened(client, text)
    position = position_of(text, "{{ nodes. }}", delta=len("{{ nodes."))
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=position)
    )
    assert result.is_incomplete and len(result.items) == 100, len(result.items)
    labels = [item.label for item in result.items]
    assert "s149" in labels and "s0" not in labels  # nearest first
    # Typing narrows the list on the server, reaching the far steps.
    typed = text.replace("{{ nodes. }}", "{{ nodes.s1 }}")
    change(client, uri, 2, typed)
    far = await complete(client, uri, position_of(typed, "{{ nodes.s1", delta=len("{{ nodes.s1")))
    far_labels = [item.label for item in far]
    assert "s1" in far_labels and "s10" in far_labels, far_labels
    assert all("s" in label and "1" in label for label in far_labels), far_labels


async def test_verb_documentation_is_sent_when_an_item_is_resolved(client):
    uri, _ = await opened(client, FLOW)
    position = position_of(FLOW, '"linear@1:linear.comment.create"', delta=1)
    items = {item.label: item for item in await complete(client, uri, position)}
    item = items["linear@1:linear.comment.create"]
    # The list stays small: the full text waits for the item shown.
    assert item.documentation is None and item.data is not None
    resolved = await client.completion_item_resolve_async(item)
    assert "**Inputs**" in resolved.documentation.value, resolved.documentation
    assert "linear@1:linear.comment.create" in resolved.documentation.value
    # An item of a verb that no longer exists resolves to itself.
    gone = types.CompletionItem(label="x", data={"uri": uri, "verb": "linear@1:linear.nope"})
    assert (await client.completion_item_resolve_async(gone)).documentation is None


async def test_hover_on_a_verb_and_on_an_expression(client):
    uri, _ = await opened(client, FLOW)
    verb = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position_of(FLOW, "linear.comment.create", delta=3),
        )
    )
    assert verb is not None and "comment" in verb.contents.value.lower()
    expression = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position_of(FLOW, "sessionId }}", delta=2),
        )
    )
    assert expression is not None and "string" in expression.contents.value


async def test_formatting_is_donmaic_fmt(client):
    messy = FLOW.replace("    - id: note\n", "    - id:   note\n\n\n").replace("scope: {project: api}", "scope: {project:   api}")
    uri, _ = await opened(client, messy)
    edits = await client.text_document_formatting_async(
        types.DocumentFormattingParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            options=types.FormattingOptions(tab_size=2, insert_spaces=True),
        )
    )
    formatted = apply_edits(messy, edits)
    import os
    import subprocess

    path = client.root / "messy.yaml"
    path.write_text(messy, encoding="utf-8")
    cli = subprocess.run([os.environ.get("DONMAIC", "donmaic"), "fmt", "-"], input=messy, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert formatted == cli.stdout
    # Idempotent: formatting the result changes nothing.
    change(client, uri, 2, formatted)
    await diagnostics_for(client, uri, 2)
    again = await client.text_document_formatting_async(
        types.DocumentFormattingParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            options=types.FormattingOptions(tab_size=2, insert_spaces=True),
        )
    )
    assert not again


async def test_formatting_a_broken_file_is_refused_not_mangled(client):
    broken = FLOW + "  - [unclosed\n"
    uri, _ = await opened(client, broken)
    try:
        edits = await client.text_document_formatting_async(
            types.DocumentFormattingParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                options=types.FormattingOptions(tab_size=2, insert_spaces=True),
            )
        )
    except Exception as error:
        assert "cannot format" in str(error)
    else:
        assert not edits


async def test_migrate_v1_code_action(client):
    uri, diagnostics = await opened(client, V1)
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    migrate = [a for a in actions if a.kind == "refactor.rewrite.migrate"]
    assert len(migrate) == 1, [a.title for a in actions]
    migrated = apply_edits(V1, migrate[0].edit.changes[uri])
    assert "apiVersion: workflow/v2" in migrated
    assert "{{ trigger.issueId }}" in migrated
    change(client, uri, 2, migrated)
    assert list(await diagnostics_for(client, uri, 2)) == []


async def test_fix_all_source_action(client):
    broken = FLOW.replace("next: [dispatch]", "next: [dispach]").replace("next: [note]", "next: [nots]")
    uri, diagnostics = await opened(client, broken)
    assert len([d for d in diagnostics if d.code == "DN0101"]) == 2
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)),
            context=types.CodeActionContext(diagnostics=[], only=[types.CodeActionKind.SourceFixAll]),
        )
    )
    assert [a.kind for a in actions] == [types.CodeActionKind.SourceFixAll]
    assert apply_edits(broken, actions[0].edit.changes[uri]) == FLOW


async def test_add_missing_required_input_action(client):
    missing = FLOW.replace("workType: development, ", "")
    uri, diagnostics = await opened(client, missing)
    target = next(d for d in diagnostics if d.code == "DN0121")
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=target.range,
            context=types.CodeActionContext(diagnostics=[target]),
        )
    )
    add = [a for a in actions if a.title.startswith("add input")]
    assert len(add) == 1 and not add[0].is_preferred
    fixed = apply_edits(missing, add[0].edit.changes[uri])
    assert fixed.count("workType: ") == 1 and "workType" not in missing
    change(client, uri, 2, fixed)
    assert "DN0121" not in [d.code for d in await diagnostics_for(client, uri, 2)]
