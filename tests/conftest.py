"""Shared fixtures: a real wsgen server on ephemeral ports."""
from __future__ import annotations

import pytest

from wsgen.config import Settings
from wsgen.serve import start


@pytest.fixture
async def server():
    """A running server (WebSocket only) on 127.0.0.1, port picked by the OS.

    Yields the :class:`wsgen.serve.Running`; ``server.ws_url`` is its address.
    """
    running = await start(Settings(host="127.0.0.1", port=0, http_port=0, graceful_timeout_s=2))
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def full_server():
    """A running server with both WebSocket and HTTP on ephemeral ports."""
    running = await start(Settings(host="127.0.0.1", port=0, http_port=None, graceful_timeout_s=2))
    try:
        yield running
    finally:
        await running.stop()
