"""wsgen.server.frames: several messages in one write give the bytes websockets'
own framing gives, at every length boundary; over a real connection the
client reads them as separate messages, in order."""
from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.frames import Frame, Opcode

from wsgen.server.frames import _header, _text_frames, send_frames


@pytest.mark.parametrize("n", [0, 1, 125, 126, 127, 65535, 65536, 70000])
@pytest.mark.parametrize("is_text", [True, False])
def test_header_is_rfc6455_framing_as_websockets_writes_it(n, is_text):
    payload = b"x" * n
    expected = Frame(Opcode.TEXT if is_text else Opcode.BINARY, payload).serialize(mask=False)
    assert _header(is_text, n) + payload == expected


def test_text_frames_from_the_header_table_are_websockets_framing():
    payloads = [b"y" * n for n in (0, 1, 125, 126, 127, 4095, 4096, 65535, 65536)]
    assert _text_frames(payloads) == [Frame(Opcode.TEXT, p).serialize(mask=False) for p in payloads]


@pytest.mark.parametrize("texts", [0, 12])     # messages given as ready JSON texts, sent first
@pytest.mark.parametrize("compression", [None, "deflate"])     # hand framing, and websockets' own
async def test_messages_of_one_write_arrive_separately_in_order(compression, texts):
    messages = [(True, json.dumps({"n": i, "pad": "y" * (i * 997 % 70000)}).encode()) for i in range(40)]
    messages += [(False, bytes(range(256)) * 3), (True, b"{}")]

    async def handler(ws):
        await send_frames(ws, messages[texts:], [p for _, p in messages[:texts]])
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=compression) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", compression=compression, max_size=None) as ws:
            got = [await asyncio.wait_for(ws.recv(), 10) for _ in messages]
    assert [isinstance(m, str) for m in got] == [t for t, _ in messages]
    assert [m.encode() if isinstance(m, str) else m for m in got] == [p for _, p in messages]
