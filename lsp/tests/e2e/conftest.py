"""Fixtures shared by the end-to-end tests of donmai-lsp.

The server under test is the real binary, named by $DONMAI_LSP; the client
is pygls through pytest-lsp, which shares no code with the server.
"""

import os
import pathlib

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

SERVER = os.environ.get("DONMAI_LSP", "donmai-lsp")


def _track_publishes(client: LanguageClient):
    """Records the version of every publishDiagnostics, which pytest-lsp
    drops, so a test can wait for the result of one particular edit."""
    client.diagnostic_versions = {}
    client.published = []
    original = client.protocol._handle_notification

    def handle(method, params):
        if method == types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS:
            client.diagnostic_versions[params.uri] = params.version
            client.published.append(params)
        original(method, params)

    client.protocol._handle_notification = handle

    # pytest-lsp answers no registration request; an editor does.
    client.registrations = []

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register(params: types.RegistrationParams):
        client.registrations.extend(params.registrations)


async def _start(lsp_client: LanguageClient, root: pathlib.Path, spec: str):
    _track_publishes(lsp_client)
    lsp_client.init_result = await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities(spec),
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="w")],
        )
    )


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[SERVER]))
async def client(lsp_client: LanguageClient, tmp_path: pathlib.Path):
    """A VS Code-like client (UTF-16 positions) with a fresh project folder."""
    await _start(lsp_client, tmp_path, "visual-studio-code")
    lsp_client.root = tmp_path
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[SERVER]))
async def neovim(lsp_client: LanguageClient, tmp_path: pathlib.Path):
    """A Neovim-like client, which offers UTF-8 positions."""
    await _start(lsp_client, tmp_path, "neovim")
    lsp_client.root = tmp_path
    yield
    await lsp_client.shutdown_session()
