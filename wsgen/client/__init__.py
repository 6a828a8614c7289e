"""Python client for the wsgen WebSocket server (protocol v1).

Async use::

    from wsgen.client import Client

    async with Client("ws://127.0.0.1:8765") as c:
        sub = await c.subscribe("sine", {"amplitude": 2}, seed=1, speed="max")
        block = await sub.take(1000)          # exactly 1000 samples
        block.values                          # float64, shape (1000,)
        block.seqs, block.timestamps          # int64 / float64 (Unix s), shape (1000,)
        seq = await sub.update(frequency=5)   # first sample with the new value
        async for block in sub:               # blocks as they arrive
            ...

Sync use (the async client runs in a background thread with its own event
loop, an anyio blocking portal)::

    from wsgen.client import stream, to_numpy

    values, labels, seqs, timestamps = to_numpy(url, "random", 10_000, seed=7)
    for block in stream(url, "sine", {"interval": 0.1}):
        ...

Delivery
    One reader task reads the connection and puts each data block into the
    queue of its subscription. Every queue holds at most ``queue_size``
    blocks; when one is full the reader waits (the server then waits too:
    backpressure ``block``, or skips samples: backpressure ``drop``), so no
    subscription loses data because another one is read slowly. While a
    request (update, pause, list...) awaits its reply the reader keeps
    reading past the bound, so awaiting a reply never deadlocks. Consume
    every subscription of a connection concurrently (or pause/unsubscribe
    the ones you do not read): a subscription whose queue stays full stalls
    the others on the same connection.

Reconnection
    When the connection drops (not after :meth:`Client.close`), the client
    reconnects with exponential backoff and jitter: before attempt ``k``
    (1, 2, ...) it sleeps ``d/2 + uniform(0, d/2)`` with
    ``d = min(backoff_cap, backoff_base * 2**(k-1))``. It then re-subscribes
    every subscription with the same id, generator, seed, speed, encoding and
    its *current* params (after updates) from ``start_seq`` = the next seq it
    expects, re-pauses paused ones and re-sends requests still awaiting a
    reply. Samples whose seq was already received are dropped, so a consumer
    sees no gap and no repeat.

    Caveat: the server rebuilds the generator from the current params and
    jumps to ``start_seq``, so the resumed samples are those of a stream that
    had the current params from the start. They equal the uninterrupted
    stream's when no parameter changed before the drop. After an update they
    still do for changes that carry no state (a waveform's amplitude, offset,
    phase or duty cycle; a distribution's parameters; the probability and
    range of ``random``), but not for changes that move state: a waveform's
    ``frequency`` or ``sample_rate`` (its phase accumulator restarts from
    the new value) or the event and timing parameters of the other anomaly
    kinds (their events are drawn again from the start).

    The stream time ``t`` of a resumed stream is anchored at the time of the
    resumption (as after a pause), not at the original start.

Modules
    ``state`` (the protocol logic with no I/O: pending requests and reply
    matching, resume positions, de-duplication, backoff), ``connection``
    (:class:`Client` and :class:`Subscription`: the websockets I/O driving
    the state), ``sync`` (:class:`SyncClient`, :func:`stream`,
    :func:`to_numpy`), ``block`` (:class:`Block`, alias of ``ReceivedBlock``, and its decoding),
    ``errors``, ``url`` (:func:`websocket_url`). Import from
    ``wsgen.client``: these names stay there.

Errors
    :class:`ServerError` (``code``, ``message``, ``details``) is raised by the
    awaiting call when the server refuses a request, e.g. ``unknown_generator``,
    ``invalid_params`` (``details``: one dict per field: ``field``, ``value``,
    ``message``), ``duplicate_id``, ``unknown_id``, ``limit_reached``.
    :class:`ConnectionLost` is raised by pending calls and by iteration when
    the connection is gone for good (``reconnect=False``, attempts exhausted,
    or the server refused the handshake with a 4xx status).
    :class:`ClientClosed` is raised by calls made after :meth:`Client.close`.
"""
from __future__ import annotations

from wsgen.client.block import Block, ReceivedBlock
from wsgen.client.connection import Client, Subscription
from wsgen.client.errors import BadURL, ClientClosed, ConnectionLost, ServerError
from wsgen.client.sync import SyncClient, SyncSubscription, stream, to_numpy
from wsgen.client.url import DEFAULT_URL, websocket_url
from wsgen.errors import WsgenError

__all__ = ["DEFAULT_URL", "BadURL", "Block", "Client", "ClientClosed", "ConnectionLost", "ReceivedBlock",
           "ServerError", "Subscription", "SyncClient", "SyncSubscription", "WsgenError", "stream", "to_numpy",
           "websocket_url"]
