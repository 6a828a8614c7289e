"""A server-side bug in the pump must not leave a silent connection."""
from __future__ import annotations

import json
import logging

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

import wsgen.protocol.session
from wsgen.engine.waveforms import Sine


# a plain subscription (the fan-out pass, wsgen.protocol.fanout) and one of the general path
@pytest.mark.parametrize("options", [{}, {"encoding": "binary"}])
async def test_failing_pump_closes_with_1011_and_is_logged(server, monkeypatch, caplog, options):
    def broken_render(self, *args, **kwargs):
        raise RuntimeError("simulated bug in sample production")

    monkeypatch.setattr(Sine, "_render", broken_render)
    caplog.set_level(logging.ERROR, logger="wsgen.server.ws")
    async with connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "s", "generator": "sine", **options}))
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


async def test_a_failure_in_a_plain_wake_up_run_as_a_loop_callback_closes_with_1011(server, monkeypatch, caplog):
    """Once streaming, a connection of plain subscriptions wakes as loop
    callbacks (Connection._plain_tick), not in the pump task: a bug there
    must still reach the pump, be logged and close with 1011."""
    caplog.set_level(logging.ERROR, logger="wsgen.server.ws")
    async with connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "s", "generator": "sine",
                                  "params": {"interval": 0.005}}))
        assert json.loads(await ws.recv())["type"] == "subscribed"
        seqs = [json.loads(await ws.recv())["seq"] for _ in range(5)]
        assert seqs == list(range(seqs[0], seqs[0] + 5))

        def broken_render(self, *args, **kwargs):
            raise RuntimeError("simulated bug in sample production")

        monkeypatch.setattr(Sine, "_render", broken_render)   # the next texts ahead (<= 64 samples) fail
        with pytest.raises(ConnectionClosedError):
            while True:
                await ws.recv()
        assert ws.close_code == 1011
    assert any("pump failed" in r.getMessage() and "simulated bug" in str(r.exc_info[1]) for r in caplog.records)


async def test_failing_message_handler_replies_internal_error_and_connection_goes_on(server, monkeypatch, caplog):
    async with connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "id": "keep", "generator": "sine", "seed": 1,
                                  "params": {"interval": 0.01}}))
        assert json.loads(await ws.recv())["type"] == "subscribed"

        def broken_update(self, msg):
            raise OverflowError("simulated bug in update")

        monkeypatch.setattr(wsgen.protocol.session.Session, "_on_update", broken_update)
        caplog.set_level(logging.ERROR, logger="wsgen.protocol.session")
        await ws.send(json.dumps({"type": "update", "id": "keep", "params": {"amplitude": 2}}))
        seqs = []
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == "error":
                assert msg["code"] == "internal_error" and msg["message"]
                break
            seqs.append(msg["seq"])
        for _ in range(3):                                   # "keep" goes on, gap-free
            msg = json.loads(await ws.recv())
            assert msg["type"] == "data" and msg["id"] == "keep"
            assert not seqs or msg["seq"] > seqs[-1]
            seqs.append(msg["seq"])
    assert any("internal error" in r.getMessage() and r.exc_info for r in caplog.records)
