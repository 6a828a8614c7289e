"""Shared fixtures: a real wsgen server on ephemeral ports.

Every way the tests start a server lives in ``tests/servers.py``; these
fixtures are its common cases.
"""
from __future__ import annotations

import pytest

from servers import ThreadedServer, running_server


@pytest.fixture
async def server():
    """A running server (WebSocket only) on 127.0.0.1, port picked by the OS.

    Yields the :class:`wsgen.server.serve.Running`; ``server.ws_url`` is its address.
    """
    async with running_server(http_port=0) as running:
        yield running


@pytest.fixture
async def full_server():
    """A running server with both WebSocket and HTTP on ephemeral ports."""
    async with running_server() as running:
        yield running


@pytest.fixture(scope="module")
def threaded_server():
    """A server with both ports in a background thread (for synchronous
    tests), shared by the module's tests: a :class:`servers.ThreadedServer`."""
    with ThreadedServer() as srv:
        yield srv
