"""Write deadline: connections whose peer takes no bytes are dropped.

A client that vanished (no FIN, no RST) or stopped reading leaves the
server's data waiting, in the kernel's send queue and then in the asyncio
transport's buffer. Keepalive pings cannot tell: a ping queued behind a full
buffer is never sent, so its timer never starts; HTTP streams have no pings
at all. :class:`WriteDeadline` watches every connection of both ports: when
data has been waiting for ``timeout_s`` seconds and the peer has taken none
of it, the connection is aborted (its generator stops with it), logged once
and counted (``wsgen_write_timeouts_total{path}``). A client that reads
slowly keeps taking bytes and is never dropped.

"Taken" is what the peer's TCP acknowledged: Linux's ``TCP_INFO``
(``tcpi_bytes_acked``; data waits while ``tcpi_unacked`` or
``tcpi_notsent_bytes`` or the transport's buffer is not empty). Elsewhere,
the transport's buffer shrinking counts as progress. Acknowledged bytes may
still sit unread in the peer's receive buffer; a reader that frees less
than one segment's worth of it (64 KiB on loopback) per ``timeout_s``
counts as stalled.

The kernel helps where it can: each watched socket gets ``TCP_USER_TIMEOUT``
(``timeout_s`` plus one check interval plus 1 s, so this module normally
acts first and logs), after which Linux itself drops a connection whose
sent data stays unacknowledged, even if the event loop is too busy to look.

One timer serves every connection: a sweep every :attr:`WriteDeadline.every_s`
(``timeout_s / 5``, between 50 ms and 1 s) reads one ``getsockopt`` per
connection (1.8 ms per 1000 connections), yielding to the event loop after
every :data:`SWEEP_SLICE` of them.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["WriteDeadline", "tcp_progress"]

log = logging.getLogger("wsgen.server.liveness")

_TCP_INFO = getattr(socket, "TCP_INFO", None)
_TCP_USER_TIMEOUT = getattr(socket, "TCP_USER_TIMEOUT", None)
# struct tcp_info (linux/tcp.h): u32 tcpi_unacked at 24, u64 tcpi_bytes_acked
# at 120 (Linux 4.1), u32 tcpi_notsent_bytes at 144 (Linux 4.6)
_INFO_LEN = 148
#: Connections looked at between two yields to the event loop.
SWEEP_SLICE = 500


def tcp_progress(sock) -> tuple[int, bool] | None:
    """``(bytes the peer acknowledged, whether sent or unsent data waits in
    the kernel)`` of a connected TCP socket, from ``TCP_INFO``; None where
    unavailable (not Linux, an old kernel, not TCP, closed)."""
    if _TCP_INFO is None or sock is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _INFO_LEN)
    except (OSError, ValueError):
        return None
    if len(raw) < _INFO_LEN:
        return None
    unacked, = struct.unpack_from("I", raw, 24)
    acked, = struct.unpack_from("Q", raw, 120)
    notsent, = struct.unpack_from("I", raw, 144)
    return acked, bool(unacked or notsent)


@dataclass(eq=False)
class _Watch:
    transport: asyncio.Transport
    on_timeout: Callable[[float], None]
    path: str
    progress: int = -1        # bytes acknowledged at the last sweep (TCP_INFO)
    buffered: int = 0         # the transport's buffer at the last sweep
    stalled_since: float | None = None
    fired: bool = False
    sock: object = field(default=None)


class WriteDeadline:
    """Drop connections whose peer took no bytes for ``timeout_s`` seconds.

    ``watch(transport, on_timeout, path)`` from the connection's start;
    ``on_timeout(waited_s)`` runs once when the deadline passes, after the
    line is logged and counted, and should abort the connection (the default
    aborts the transport). Closed transports leave the watch list by
    themselves. ``metrics``: a :class:`wsgen.server.metrics.Metrics` (counts
    ``write_timeouts`` by ``path``) or None. ``timeout_s`` > 0.
    """

    def __init__(self, timeout_s: float, metrics=None, clock: Callable[[], float] = time.monotonic) -> None:
        if not timeout_s > 0:
            raise ValueError(f"write timeout must be > 0 seconds, got {timeout_s!r}")
        self.timeout_s = timeout_s
        self.every_s = min(1.0, max(0.05, timeout_s / 5))
        self.metrics = metrics
        self.clock = clock
        self._watches: dict[asyncio.Transport, _Watch] = {}
        self._task: asyncio.Task | None = None

    # -- registration -------------------------------------------------------------
    def watch(self, transport: asyncio.Transport, on_timeout: Callable[[float], None] | None = None,
              path: str = "ws") -> None:
        """Watch ``transport`` (again: its callback and path are replaced,
        its progress kept). Starts the sweep if it is not running."""
        w = self._watches.get(transport)
        callback = on_timeout or (lambda waited: transport.abort())
        if w is not None:
            w.on_timeout, w.path = callback, path
            return
        sock = transport.get_extra_info("socket")
        self._watches[transport] = _Watch(transport, callback, path, sock=sock)
        if _TCP_USER_TIMEOUT is not None and sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_USER_TIMEOUT,
                                int((self.timeout_s + self.every_s + 1.0) * 1000))
            except (OSError, ValueError):
                pass   # not TCP (a Unix socket), or already closed
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._sweep_forever())

    def unwatch(self, transport: asyncio.Transport) -> None:
        self._watches.pop(transport, None)

    def __len__(self) -> int:
        return len(self._watches)

    def close(self) -> None:
        """Stop the sweep (server shutdown)."""
        if self._task is not None:
            self._task.cancel()
        self._watches.clear()

    # -- the sweep --------------------------------------------------------------------
    async def _sweep_forever(self) -> None:
        while self._watches:
            await asyncio.sleep(self.every_s)
            watched = list(self._watches.items())
            for i in range(0, len(watched), SWEEP_SLICE):    # (1.8 ms per 1000 connections: in slices)
                if i:
                    await asyncio.sleep(0)
                self.sweep(watched[i:i + SWEEP_SLICE])

    def sweep(self, watched: list | None = None) -> None:
        """Look once at every watched connection (or at the ``(transport,
        watch)`` pairs given)."""
        now = self.clock()
        for transport, w in (list(self._watches.items()) if watched is None else watched):
            if self._watches.get(transport) is not w:
                continue                                     # gone (or watched anew) meanwhile
            if transport.is_closing():
                del self._watches[transport]
                continue
            buffered = transport.get_write_buffer_size()
            tcp = tcp_progress(w.sock)
            if tcp is not None:
                moved, waiting = tcp[0] != w.progress, tcp[1] or buffered > 0
                w.progress = tcp[0]
            else:                                  # the buffer shrinking is progress
                moved, waiting = buffered < w.buffered, buffered > 0
            w.buffered = buffered
            if moved or not waiting or w.stalled_since is None:
                w.stalled_since = now      # a stall counts from the last sweep that saw progress
                continue
            if now - w.stalled_since >= self.timeout_s and not w.fired:
                w.fired = True
                del self._watches[transport]
                self._expire(w, now - w.stalled_since, buffered)

    def _expire(self, w: _Watch, waited: float, buffered: int) -> None:
        peer = w.transport.get_extra_info("peername")
        addr = (f"[{peer[0]}]:{peer[1]}" if ":" in str(peer[0]) else f"{peer[0]}:{peer[1]}") if peer else "?"
        log.info("%s write timeout %s: the client took no bytes for %.1f s (%d bytes waiting in the server); "
                 "dropping the connection", w.path, addr, waited, buffered)
        if self.metrics is not None:
            self.metrics.write_timeouts.labels(w.path).inc()
        try:
            w.on_timeout(waited)
        except Exception:     # a bug of ours: the connection must still go
            log.exception("write timeout handler failed; aborting %s", addr)
            w.transport.abort()


def http_protocol_class(base: type, deadline: WriteDeadline) -> type:
    """``base`` (a uvicorn HTTP/1.1 protocol class) with every connection
    watched by ``deadline`` (``path="http"``) from its start."""

    class WriteDeadlineHTTPProtocol(base):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            deadline.watch(transport, None, "http")

        def connection_lost(self, exc) -> None:
            deadline.unwatch(self.transport)
            super().connection_lost(exc)

    return WriteDeadlineHTTPProtocol
