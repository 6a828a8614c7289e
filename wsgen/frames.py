"""Several WebSocket messages in one transport write.

A fan-out wake-up owes one connection up to one data message per
subscription. ``websockets``' ``send`` writes each message with its own
``transport.write`` (one ``send`` system call each when the socket buffer is
empty) and its own pass through the connection's send machinery. That was
most of the cost of a data message without ``batch``.

:func:`send_frames` frames the messages with the connection's own sans-I/O
protocol object (``ServerProtocol.send_text`` / ``send_binary``: the
protocol state and framing stay websockets' own) and writes the frames of
all of them with one ``transport.write``, inside the connection's public
``send_context()`` (which checks the connection is open, and afterwards
waits while the transport's buffer is above its high-water mark: the
``block`` backpressure, as ``send`` does). The client receives the same
frames as from as many ``send`` calls, in the same order; no protocol
change.
"""
from __future__ import annotations

from typing import Iterable

from websockets.asyncio.connection import Connection

__all__ = ["send_frames"]


async def send_frames(ws: Connection, frames: Iterable[tuple[bool, bytes]]) -> None:
    """Send messages on ``ws`` as one write: ``frames`` holds
    ``(is_text, payload)`` pairs, a text frame (UTF-8 JSON) for True, a
    binary frame for False. Raises ``websockets.exceptions.ConnectionClosed``
    as ``send`` does."""
    async with ws.send_context():
        protocol = ws.protocol
        send_text, send_binary = protocol.send_text, protocol.send_binary
        for is_text, payload in frames:
            if is_text:
                send_text(payload)
            else:
                send_binary(payload)
        data = protocol.data_to_send()
        if all(data):
            ws.transport.write(b"".join(data))
        else:   # an end-of-stream marker (b""): not while open, but leave it to websockets' own writer
            for chunk in data:
                if chunk:
                    ws.transport.write(chunk)
                elif ws.transport.can_write_eof():
                    ws.transport.write_eof()
