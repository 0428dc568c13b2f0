"""The project around a workflow: `donmai.toml` and group files on disk.
A change to either re-checks the open documents, as the editor's file
watcher reports it."""

from lsprotocol import types

from helpers import diagnostics_for, open_document, write

NOTIFY = """\
apiVersion: workflow/v2
kind: WorkflowDefinition
metadata: {name: notify, version: "1", scope: {project: web}}
requires: [{plugin: donmai@2}, {plugin: slack@1}]
triggers:
  - {id: nightly, kind: cron, config: {schedule: "0 3 * * *"}}
spec:
  steps:
    - {id: start, type: trigger, config: {triggerId: nightly}, next: [post]}
    - {id: post, type: action, config: {action: "slack@1:slack.send_message", channel: "#ops", text: nightly run}}
"""

GROUP = """\
apiVersion: workflow/v2
kind: WorkflowDefinition
metadata: {name: dev, version: "1"}
interface:
  inputs: {issueId: string}
  outputs: {done: "{{ trigger.issueId }}"}
spec:
  steps:
    - {id: entry, type: trigger}
"""

MAIN = """\
apiVersion: workflow/v2
kind: WorkflowDefinition
metadata: {name: main, version: "1", scope: {project: api}}
requires: [{plugin: donmai@2}, {plugin: linear@1}]
triggers:
  - {id: created, kind: signal, config: {signalEventType: com.linear.AgentSessionEvent.created}}
spec:
  steps:
    - {id: start, type: trigger, config: {triggerId: created}, next: [dev]}
    - {id: dev, type: group, config: {ref: "./groups/dev.yaml@1", issueId: "{{ trigger.issueId }}"}}
"""


def watched_change(client, uri, kind=types.FileChangeType.Changed):
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(changes=[types.FileEvent(uri=uri, type=kind)])
    )


async def wait_for_new_publish(client, uri, count_before, timeout=10.0):
    import asyncio

    async def wait():
        while len([p for p in client.published if p.uri == uri]) <= count_before:
            await asyncio.sleep(0.002)
        return [p for p in client.published if p.uri == uri][-1].diagnostics

    return await asyncio.wait_for(wait(), timeout)


async def wait_for_publish(client, uri, wanted, timeout=10.0):
    """The diagnostics of the first publication for `uri` for which
    `wanted(codes)` holds, the latest one included. Other documents' checks
    (a group re-checking its users) may publish in between: waiting for the
    next publication alone would race with them."""
    import asyncio

    async def wait():
        while True:
            latest = [p for p in client.published if p.uri == uri]
            if latest and wanted([d.code for d in latest[-1].diagnostics]):
                return latest[-1].diagnostics
            await asyncio.sleep(0.002)

    return await asyncio.wait_for(wait(), timeout)


async def test_the_server_asks_to_watch_project_files(client):
    import asyncio

    for _ in range(500):
        if client.registrations:
            break
        await asyncio.sleep(0.01)
    [registration] = client.registrations
    assert registration.method == "workspace/didChangeWatchedFiles"
    globs = [w["globPattern"] for w in registration.register_options["watchers"]]
    assert "**/donmai.toml" in globs and "**/plugin.yaml" in globs


async def test_enabling_an_integration_in_donmai_toml_rechecks(client):
    toml = write(client.root, "donmai.toml", '[integrations]\nenabled = ["linear", "github"]\n')
    uri = write(client.root, "notify.yaml", NOTIFY)
    open_document(client, uri, NOTIFY)
    before = await diagnostics_for(client, uri, 1)
    assert [d.code for d in before] == ["DN0112"], before

    count = len([p for p in client.published if p.uri == uri])
    write(client.root, "donmai.toml", '[integrations]\nenabled = ["linear", "github", "slack"]\n')
    watched_change(client, toml)
    after = await wait_for_new_publish(client, uri, count)
    assert [d.code for d in after] == []


async def test_a_group_file_changed_on_disk_rechecks_its_users(client):
    group, main = GROUP, MAIN
    group_uri = write(client.root, "groups/dev.yaml", group)
    uri = write(client.root, "main.yaml", main)
    open_document(client, uri, main)
    before = await diagnostics_for(client, uri, 1)
    assert before == [] or list(before) == [], before

    write(client.root, "groups/dev.yaml", group.replace("issueId: string", "issueId: int"))
    watched_change(client, group_uri)
    await wait_for_publish(client, uri, lambda codes: "DN0122" in codes)


async def test_an_unsaved_group_buffer_is_what_its_users_see(client):
    group, main = GROUP, MAIN
    from lsprotocol import types as t

    group_uri = write(client.root, "groups/dev.yaml", group)
    uri = write(client.root, "main.yaml", main)
    open_document(client, uri, main)
    assert list(await diagnostics_for(client, uri, 1)) == []
    open_document(client, group_uri, group)
    await diagnostics_for(client, group_uri, 1)

    # Edit the group in the editor without saving: its input becomes an int.
    client.text_document_did_change(
        t.DidChangeTextDocumentParams(
            text_document=t.VersionedTextDocumentIdentifier(uri=group_uri, version=2),
            content_changes=[t.TextDocumentContentChangeWholeDocument(text=group.replace("issueId: string", "issueId: int"))],
        )
    )
    await wait_for_publish(client, uri, lambda codes: "DN0122" in codes)

    # Closing the buffer without saving: the file on disk counts again.
    client.text_document_did_close(t.DidCloseTextDocumentParams(text_document=t.TextDocumentIdentifier(uri=group_uri)))
    await wait_for_publish(client, uri, lambda codes: codes == [])


async def test_problems_in_donmai_toml_are_published_for_it(client):
    """`donmaic check` reports problems in donmai.toml at their place; so
    does the server, as diagnostics of that file, cleared once fixed."""
    toml = write(client.root, "donmai.toml", '[integrations]\nenabeld = ["linear"]\n')
    uri = write(client.root, "notify.yaml", NOTIFY)
    open_document(client, uri, NOTIFY)
    found = await wait_for_publish(client, toml, lambda codes: "DN0014" in codes)
    [problem] = [d for d in found if d.code == "DN0014"]
    assert problem.range.start.line == 1, problem

    write(client.root, "donmai.toml", '[integrations]\nenabled = ["slack", "donmai"]\n')
    watched_change(client, toml)
    await wait_for_publish(client, toml, lambda codes: codes == [])


ACME_GOOD = """\
apiVersion: donmai.dev/v1
kind: Plugin
metadata: {name: acme, version: "1.0.0"}
verbs:
  - id: acme.deploy
    kind: action
    sideEffectClass: external-write
    idempotencyKey: "deploy:${input.target}"
    description: Deploys a target.
    inputSchema:
      type: object
      required: [target]
      properties: {target: {type: string, description: What to deploy.}}
"""

DEPLOY = """\
apiVersion: workflow/v2
kind: WorkflowDefinition
metadata: {name: deploy, version: "1"}
requires: [{plugin: acme@1}]
triggers:
  - {id: nightly, kind: cron, config: {schedule: "0 3 * * *"}}
spec:
  steps:
    - {id: start, type: trigger, config: {triggerId: nightly}, next: [ship]}
    - {id: ship, type: action, config: {action: "acme@1:acme.deploy", target: web}}
"""


async def test_a_plugin_manifest_change_rechecks_and_is_reported(client):
    """A third-party manifest is a project file too: a change to it
    re-checks the open workflows, and its own problems are published for
    it, as `donmaic check` reports them."""
    manifest = write(client.root, ".donmai/plugins/acme/plugin.yaml", ACME_GOOD)
    uri = write(client.root, "deploy.yaml", DEPLOY)
    open_document(client, uri, DEPLOY)
    assert list(await diagnostics_for(client, uri, 1)) == []

    # The verb loses its kind's meaning: the manifest is refused.
    write(client.root, ".donmai/plugins/acme/plugin.yaml", ACME_GOOD.replace("kind: action", "kind: deploy"))
    watched_change(client, manifest)
    await wait_for_publish(client, manifest, lambda codes: "DN0013" in codes)
    await wait_for_publish(client, uri, lambda codes: codes != [])

    write(client.root, ".donmai/plugins/acme/plugin.yaml", ACME_GOOD)
    watched_change(client, manifest)
    await wait_for_publish(client, manifest, lambda codes: codes == [])
    await wait_for_publish(client, uri, lambda codes: codes == [])
