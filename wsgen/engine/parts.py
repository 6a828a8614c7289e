"""A composition's parts at work: their events, and what injectors do to a block.

:class:`Part` is an injector or a fault with its kept events
(:class:`~wsgen.engine.schedule.Schedule`); :class:`InjectorPart` applies an
anomaly injector's effect (kinds in :mod:`wsgen.engine.injectors`) to the
samples of its events in a block, marks their labels and reports them.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from wsgen.engine.base import RandomStream
from wsgen.engine.injectors import heights
from wsgen.engine.placement import symmetric
from wsgen.engine.schedule import Schedule, event_dicts, expand
from wsgen.engine.sources import Source, make_source
from wsgen.engine.waveforms import Waveform


class Part:
    """A part of a composition that owns events (an injector or a fault):
    its spec (``placement``, ``length_bounds``, ``stream``), its kept events
    (:class:`Schedule`) and its per-sample stream ``(K+1,)``.

    ``slot`` is its place (0..15 injectors, 16.. faults): event ids are
    ``first * 32 + slot``, and the default stream key is ``1000 + 8 * slot``.
    """

    def __init__(self, seed: int, slot: int, spec, clock, at: int, kind: str | None = None) -> None:
        self.seed, self.slot, self.kind = seed, slot, kind or spec.kind
        #: values of the last rendered sample before and after this part
        #: (None: not rendered yet; the composite hands it the stage before's)
        self.input_last: float | None = None
        self.output_last = math.nan
        self.spec = spec
        self.schedule = Schedule(self._source(spec, clock, at), at)
        self._samples = self._sample_stream()

    @property
    def key(self) -> int:
        return default_key(self.spec.stream, 1000 + 8 * self.slot)

    def _source(self, spec, clock, at: int) -> Source:
        return make_source(self.seed, default_key(spec.stream, 1000 + 8 * self.slot), spec.placement,
                           spec.length_bounds, clock, at)

    def _sample_stream(self) -> RandomStream:
        return RandomStream(self.seed, (self.key + 1,))

    def respec(self, spec, clock, at: int) -> None:
        """Apply ``spec`` (same kind) from sample ``at``: events started
        before ``at`` stay; later ones are re-decided (see the module doc)."""
        old, self.spec = self.spec, spec
        self.schedule.truncate(at)
        if (old.placement.mode, old.stream) != (spec.placement.mode, spec.stream):
            self.schedule.source = self._source(spec, clock, at)
            self._samples = self._sample_stream()
        else:
            self.schedule.source.rewind(at, spec.placement, spec.length_bounds, clock)

    @property
    def max_length(self) -> int:
        """Longest event this part may have (its bound, or a longer kept one)."""
        return max(self.spec.length_bounds[1], self.schedule.longest)

    def positions(self, n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(event indices, sample positions relative to ``n``, event of each
        position) of the events overlapping ``[n, n+m)``."""
        sched = self.schedule
        idx = sched.overlapping(n, n + m)
        pos, ev = expand(sched.starts[idx], sched.ends[idx], n, m)
        return idx, pos, ev

    def events(self, idx: np.ndarray) -> list[dict[str, Any]]:
        return event_dicts(self.schedule, idx, self.slot, self.kind)


class InjectorPart(Part):
    """An anomaly injector at work."""

    def _sample_stream(self) -> RandomStream:
        return RandomStream(self.seed, (self.key + 1,), draws=2 if self.spec.kind == "variance-change" else 1)

    def apply(self, x: np.ndarray, labels: np.ndarray, ctx: BlockContext) -> list[dict[str, Any]]:
        """Inject the events overlapping the block into ``x`` (in place), mark
        their samples in ``labels``; return their ground-truth records."""
        idx, pos, ev = self.positions(ctx.n, ctx.m)
        last_in = float(x[-1]) if ctx.m else self.input_last
        if len(idx):
            labels[pos] = True
            _EFFECTS[self.spec.kind](self, x, ctx, idx, pos, ev)
        if ctx.m:
            self.input_last, self.output_last = last_in, float(x[-1])
        return self.events(idx)

    def _add(self, x: np.ndarray, pos: np.ndarray, values: np.ndarray) -> None:
        if self.spec.allow_overlap:
            np.add.at(x, pos, values)
        else:
            x[pos] += values

    def _capture(self, idx: np.ndarray, value_at) -> np.ndarray:
        """The per-event state, captured when first needed."""
        state = self.schedule.state
        for i in idx.tolist():
            if math.isnan(state[i]):
                state[i] = value_at(int(self.schedule.starts[i]))
        return state[idx]


class BlockContext:
    """What effects read besides the values: the block's range, the base
    signal alone, the stream time of each sample and the base generator."""

    def __init__(self, n: int, m: int, base: np.ndarray, times: np.ndarray, base_gen, clock) -> None:
        self.n, self.m, self.base, self.times, self.base_gen, self.clock = n, m, base, times, base_gen, clock


def _spike(part, x, ctx, idx, pos, ev):
    part._add(x, pos, heights(part.spec.height, part.schedule.u[idx])[ev])


def _cluster(part, x, ctx, idx, pos, ev):
    u = part._samples.uniforms(ctx.n, ctx.m)
    part._add(x, pos, symmetric(part.spec.amplitude, u[pos]))


def _variance(part, x, ctx, idx, pos, ev):
    part._add(x, pos, part.spec.std_dev * part._samples.normals(ctx.n, ctx.m)[pos])


def _trend(part, x, ctx, idx, pos, ev):
    def start_time(s):
        return float(ctx.times[s - ctx.n]) if s >= ctx.n else ctx.clock.time_of(s)
    t0 = part._capture(idx, start_time)
    part._add(x, pos, part.spec.slope * (ctx.times[pos] - t0[ev]))


def _frequency(part, x, ctx, idx, pos, ev):
    n, m, base_gen, base, gain = ctx.n, ctx.m, ctx.base_gen, ctx.base, None
    if hasattr(base_gen, "waveform_part"):  # a channel's base, gain * waveform + noise (wsgen.engine.channels)
        base_gen, base, gain = base_gen.waveform_part()
    if not isinstance(base_gen, Waveform):  # base changed kind while an event runs out: labels only
        return
    for s, e in zip(part.schedule.starts[idx].tolist(), part.schedule.ends[idx].tolist()):
        lo, hi = max(s, n), min(e, n + m)
        delta = warped_waveform(base_gen, s, part.spec.factor, lo, hi - lo) - base[lo - n:hi - n]
        x[lo - n:hi - n] += delta if gain is None or gain == 1 else gain * delta


def _flatline(part, x, ctx, idx, pos, ev):
    n, m = ctx.n, ctx.m
    sched, x_in = part.schedule, x.copy()
    for i in idx.tolist():
        s, e = int(sched.starts[i]), int(sched.ends[i])
        if n <= s < n + m:
            sched.state[i] = x_in[s - 1 - n] if s > n else (part.input_last if s > 0 else x_in[0])
        x[max(s, n) - n:min(e, n + m) - n] = sched.state[i]


def _dropout(part, x, ctx, idx, pos, ev):
    x[pos] = math.nan if part.spec.fill is None else part.spec.fill


_EFFECTS = {"spike": _spike, "level-shift": _spike, "noisy-cluster": _cluster, "variance-change": _variance,
            "trend-change": _trend, "frequency-change": _frequency, "flatline": _flatline, "dropout": _dropout}


def warped_waveform(base_gen, start: int, factor: float, n: int, m: int) -> np.ndarray:
    """Samples n..n+m-1 of the waveform ``base_gen`` run at ``factor`` times
    its frequency from sample ``start`` on, phase-continuous there.

    Uses the phase accumulator of :class:`~wsgen.engine.waveforms.Waveform`
    (``_cycles``, ``_anchor``, ``_anchor_cycles``, ``_render``) on a copy.
    """
    c = float(base_gen._cycles(start, 1)[0])
    g = copy.copy(base_gen)
    g._anchor, g._anchor_cycles = start, c - math.floor(c)
    g.params = base_gen.params.model_copy(update={"frequency": base_gen.params.frequency * factor})
    values, _ = g._render(n, m)
    return values


def default_key(stream: int | None, default: int) -> int:
    """A part's stream key: its ``stream`` field, else ``default``."""
    return default if stream is None else stream
