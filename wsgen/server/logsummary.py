"""Repeated log lines of one connection, summarised.

A client that sends 10,000 bad messages must not write 10,000 log lines.
:class:`Summary` lets the first :attr:`Summary.burst` lines of its kind
through as they are, then at most one line per :attr:`Summary.period_s`
(default 60 s) that says how many were left out since the last line, and
:meth:`Summary.close` logs what is left when the connection ends.

Plain Python: the clock is injected, nothing here knows about sockets.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

__all__ = ["Summary"]


class Summary:
    """Rate-limited logging of one kind of repeated event of one connection.

    Args:
        logger: where the lines go (at INFO).
        what: the kind, in the summary lines (``"ws error 127.0.0.1:5000"``).
        burst: lines logged in full before summarising (>= 0).
        period_s: seconds between two summary lines, at least.
        clock: monotonic seconds (default ``time.monotonic``).
    """

    def __init__(self, logger: logging.Logger, what: str, burst: int = 5, period_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.what = what
        self.burst = burst
        self.period_s = period_s
        self.clock = clock
        self.seen = 0            # events in total
        self.held = 0            # events not logged since the last line
        self._last = None        # clock() of the last summary line
        self._codes: dict[str, int] = {}   # held events by code, for the summary line

    def log(self, code: str, msg: str, *args) -> None:
        """One event (``code``: its kind, e.g. the error code); ``msg % args``
        is its full line, logged only while within the burst."""
        self.seen += 1
        if self.seen <= self.burst:
            self.logger.info(msg, *args)
            return
        self.held += 1
        self._codes[code] = self._codes.get(code, 0) + 1
        now = self.clock()
        if self._last is None:
            self._last = now    # the first line past the burst waits a period
            self.logger.info("%s: more than %d; from now on one line a minute with the count", self.what,
                             self.burst)
        elif now - self._last >= self.period_s:
            self._emit(now)

    def close(self) -> None:
        """Log the events held since the last line, if any (at the
        connection's end)."""
        if self.held:
            self._emit(self.clock())

    def _emit(self, now: float) -> None:
        codes = ", ".join(f"{c}={n}" for c, n in sorted(self._codes.items()))
        self.logger.info("%s: %d more not logged (%s); %d in total", self.what, self.held, codes, self.seen)
        self.held = 0
        self._codes.clear()
        self._last = now
