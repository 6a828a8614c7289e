"""Read receipts: how long the oldest data not known to be read has waited.

Backpressure ``drop`` bounds *latency*: a subscription skips samples rather
than deliver them more than ``max_lag`` seconds late. Data the server has
already written can sit unread in socket buffers for as long as the client
pauses (hundreds of KiB, many seconds at 1 kHz), and TCP does not say what
the client's application has read. A WebSocket ping does: the client's
library answers it when it reaches it, after everything sent before it. So
a connection with ``drop`` subscriptions sends a ping after its data (at
most one per :attr:`ReadReceipts.every_s`); a pong confirms everything sent
before its ping. :meth:`ReadReceipts.age` is how long the oldest
unconfirmed data has waited; past ``max_lag`` the client holds data at
least that old unread, and its ``drop`` subscriptions skip what falls due
instead of adding to it. The stale data already in flight is then at most
about ``max_lag`` of stream time; once the client reads it and answers, the
stream goes on from fresh samples, with ``skipped`` saying how many were
left out. Until a client has answered one ping the rule is not applied (a
raw client may never answer; it is then held to the output buffer's rule).

Plain Python, no I/O: the WebSocket adapter sends the pings (payloads from
:meth:`ReadReceipts.next_token`) and reports the pongs.
"""
from __future__ import annotations

import struct
from collections import deque

__all__ = ["ReadReceipts"]


class ReadReceipts:
    """Which data the client has confirmed reading, on one connection.

    Times are seconds on one monotonic clock, passed in by the caller.
    """

    def __init__(self) -> None:
        self.unread_since: float | None = None   # when the oldest unconfirmed data was sent
        self.last_data: float | None = None       # when data was last sent
        self.last_ping: float = float("-inf")     # when the last ping was sent
        self._pings: deque[list] = deque()        # [token, sent_at, first data sent after it or None]
        self._count = 0
        self.answered = False   # a pong came: this client answers pings (raw clients may not)

    def data_sent(self, at: float) -> None:
        """Data went out at time ``at``."""
        self.last_data = at
        if self.unread_since is None:
            self.unread_since = at
        if self._pings and self._pings[-1][2] is None:
            self._pings[-1][2] = at

    def want_ping(self, now: float, every_s: float) -> bool:
        """Whether to send a ping now: unconfirmed data was sent after the
        last ping, and that ping is at least ``every_s`` old."""
        if self.unread_since is None or now - self.last_ping < every_s:
            return False
        return not self._pings or self._pings[-1][2] is not None

    def next_token(self) -> bytes:
        """A ping payload no other ping of this connection carries."""
        self._count += 1
        return b"wsgen-read-" + struct.pack("!Q", self._count)

    def ping_sent(self, token: bytes, at: float) -> None:
        self._pings.append([token, at, None])
        self.last_ping = at

    def acked(self, token: bytes) -> None:
        """The pong of ``token`` arrived: everything sent before that ping
        was read (a pong also stands for every earlier ping)."""
        if not any(p[0] == token for p in self._pings):
            return                          # not ours, or already confirmed by a later pong
        while self._pings:
            sent_token, _sent_at, after = self._pings.popleft()
            if sent_token == token:
                self.unread_since = after
                self.answered = True
                return

    def age(self, now: float) -> float:
        """Seconds the oldest data not confirmed read has waited (0 when all
        is confirmed, and 0 until the client has answered a ping: one that
        never does, which RFC 6455 does not allow, is left to the output
        buffer's rule)."""
        return 0.0 if self.unread_since is None or not self.answered else now - self.unread_since
