"""How many samples one step of the event loop may render.

No stream may hold the event loop for long: every render on the loop (a
WebSocket data message, an HTTP chunk, a ``drop`` subscription's skip) is
sized by time, not by a fixed count of samples. A :class:`RenderBudget`
learns what a stream's samples cost (seconds per sample, measured around
each render with ``time.perf_counter``) and caps the next render at
:data:`RENDER_BUDGET_S` worth of them:

* the first render of a composition is at most :data:`FIRST_RENDER`
  samples (its cost is unknown and may be high), and its cap grows at most
  twofold per render (slow start); the named kinds cost at most about a
  microsecond a sample, so their first render is whatever is asked;
* the estimate moves halfway to each new measure (``per = (per + new) /
  2``): a render slowed by the machine's load (a preemption) does not
  shrink the next ones for long, and a real rise in cost is followed
  within a few renders;
* a composition's render is at most :data:`COMPOSITION_MAX_RENDER` samples
  whatever its history: its samples may cost a hundred times more where its
  events are dense (16 injectors with an event on every sample: about 26 us
  a sample) than where they are sparse.

Wall-clock time is the measure (a CPU clock costs 1.3 us a read, ten times
more): on a loaded machine renders come out smaller, never larger.
"""
from __future__ import annotations

import time

__all__ = ["COMPOSITION_BUDGET_S", "COMPOSITION_MAX_RENDER", "FIRST_RENDER", "RENDER_BUDGET_S", "UNLIMITED", "RenderBudget"]

#: Seconds of the loop one render may take (with its encoding, on HTTP).
RENDER_BUDGET_S = 0.003
#: Seconds one render of a composition may take on the WebSocket path, where
#: only the render is measured: encoding its events (up to 21 a sample) as
#: JSON costs a few times more.
COMPOSITION_BUDGET_S = 0.001
#: Samples in a stream's first render, before its cost is known (16 injectors
#: drawing a window a sample each: 0.35 ms a sample).
FIRST_RENDER = 16
#: Most samples in one render of a composition.
COMPOSITION_MAX_RENDER = 256


class RenderBudget:
    """The sample cap of one stream's renders (see the module doc).

    Use: ``m = budget.size(m)``, render ``m`` samples (or fewer) between
    ``t = budget.clock()`` and ``budget.spent(m, budget.clock() - t)``.

    Args:
        limit: most samples per render whatever the cost (e.g.
            :data:`COMPOSITION_MAX_RENDER`); None: no limit.
        first: samples of the first render (None: ``limit``, or no limit).
        budget_s: seconds a render may take (default :data:`RENDER_BUDGET_S`).
    """

    __slots__ = ("cap", "limit", "budget_s", "_per", "_full")

    clock = staticmethod(time.perf_counter)

    def __init__(self, limit: int | None = None, first: int | None = None,
                 budget_s: float = RENDER_BUDGET_S) -> None:
        self.limit = limit
        self.budget_s = budget_s
        cap = first if first is not None else limit
        self.cap = 1 << 62 if cap is None else max(1, cap)
        self._per = 0.0     # seconds per sample, smoothed
        self._full = False  # whether the last size() was cut to the cap

    def size(self, m: int, share: int = 1) -> int:
        """``m`` capped to what fits the budget (divided by ``share``: the
        streams that split the loop's time, e.g. unpaced ones), at least 1."""
        cap = self.cap if share <= 1 else max(1, self.cap // share)
        self._full = m >= cap
        return m if m < cap else cap

    def spent(self, m: int, seconds: float) -> None:
        """Record that rendering ``m`` samples took ``seconds``."""
        if m <= 0:
            return
        per = seconds / m
        self._per = per if not self._per else 0.5 * (self._per + per)
        cap = 2 * self.cap if self._full else self.cap    # cut to the cap: it may grow
        if self._per > 0:
            fit = int(self.budget_s / self._per)
            if fit < cap:
                cap = fit
        if self.limit is not None and cap > self.limit:
            cap = self.limit
        self.cap = cap if cap > 1 else 1

    @property
    def per_sample_s(self) -> float:
        """The current estimate of one sample's cost, in seconds."""
        return self._per


class _Unlimited(RenderBudget):
    """A budget that caps nothing and learns nothing."""

    __slots__ = ()

    def spent(self, m: int, seconds: float) -> None:
        pass


#: The budget of streams whose renders are cheap by design (shared: it has no state).
UNLIMITED = _Unlimited()
