"""A server-side bug in the pump must not leave a silent connection."""
from __future__ import annotations

import json
import logging

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

import wsgen.session


async def test_failing_pump_closes_with_1011_and_is_logged(server, monkeypatch, caplog):
    def broken_take(self, *args, **kwargs):
        raise RuntimeError("simulated bug in sample production")

    monkeypatch.setattr(wsgen.session.Subscription, "take", broken_take)
    caplog.set_level(logging.ERROR, logger="wsgen.ws")
    async with connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "s", "generator": "sine"}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        with pytest.raises(ConnectionClosedError):
            while True:
                await ws.recv()
        assert ws.close_code == 1011
    assert any("pump failed" in r.getMessage() and r.exc_info for r in caplog.records)
    monkeypatch.undo()
    async with connect(server.ws_url) as ws:          # the server goes on serving
        await ws.send(json.dumps({"type": "subscribe", "id": "s", "generator": "sine"}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        assert json.loads(await ws.recv())["type"] == "data"
