"""Faults of real streams, each optional, each labelled and reported as events.

Every fault is a part with a placement (as the anomaly injectors: ``random``,
``gaps``, ``periodic``, ``count``, ``indices``) and event lengths
``min_length .. max_length`` samples (default 1); events of one fault never
overlap each other, and faults ignore anomalies and each other (a sample may
be anomalous and null, or a duplicate and late). Within an event:

* ``gaps``:         the samples are never sent: the seqs of the delivered
  samples jump over them (event kind ``gap``);
* ``nulls``:        the value is NaN in ``values`` (JSON ``null`` on the
  wire), label True (kind ``null``);
* ``duplicates``:   each sample is delivered twice in a row, same seq, value,
  label and offset (kind ``duplicate``);
* ``jitter``:       the sample's time offset is ``t + max_jitter * (2u - 1)``
  (``u`` uniform per sample), so it differs from its due stream time by less
  than ``max_jitter`` seconds (kind ``jitter``);
* ``out_of_order``: each sample is held back ``d = 1 + floor(u * max_delay)``
  sample slots (``u`` uniform per sample): it is delivered right after the
  sample due ``d`` slots later (kind ``out-of-order``). A consumer sees the
  seq go down, never by more than ``max_delay`` below the highest seq seen.

Delivery: the generator's block ``[n, n+m)`` covers *slots* ``n .. n+m-1``;
sample ``k`` is due in slot ``k + d`` (``d`` = 0 unless held back), gap
samples in none. A block delivers the samples due in its slots ordered by
(slot, held back, seq), duplicates repeated in place; samples due after the
block wait for a later one. Everything is a function of the sample index, so
the concatenated deliveries do not depend on the block sizes.

Labels of a delivered sample: True when it lies in an anomaly event or in a
fault event other than a gap. Fault event ids are ``first * 32 + slot`` with
slots 16 (gaps), 17 (nulls), 18 (duplicates), 19 (jitter), 20 (out_of_order).

Live updates (``{"faults": {"nulls": {...partial}, "gaps": null}}``): each
fault given is merged with its current spec and applies from the next sample
``at``: its events that started before ``at`` stay; later ones are drawn
under the new placement and lengths; ``max_jitter`` and ``max_delay`` apply
to samples from ``at`` on (held-back samples keep their slot). ``null``
removes a fault: its events in progress run to their end.
"""
from __future__ import annotations

from typing import Annotated, Any, Optional

import numpy as np
from pydantic import Field

from wsgen.engine.injectors import Length, Model, Placement, RandomPlacement, StreamKey
from wsgen.engine.parts import Part
from wsgen.engine.placement import count_between, symmetric

#: Most slots a sample may be held back by ``out_of_order``.
MAX_DELAY = 1000


class Fault(Model):
    """Fields every fault has."""

    placement: Placement = Field(default_factory=lambda: RandomPlacement(probability=0.01))
    min_length: Length(1, "Shortest fault event, in samples (>= 1)")
    max_length: Length(1, "Longest fault event, in samples (>= min_length)")
    stream: StreamKey

    @property
    def length_bounds(self) -> tuple[int, int]:
        return self.min_length, self.max_length


class GapFault(Fault):
    """Samples never sent: the seq jumps over them."""


class NullFault(Fault):
    """Samples whose value is NaN (JSON null)."""


class DuplicateFault(Fault):
    """Samples delivered twice in a row."""


class JitterFault(Fault):
    """Sample times off by less than ``max_jitter`` seconds."""

    max_jitter: Annotated[float, Field(0.1, gt=0, le=86_400, description="Largest timestamp error in seconds",
                                       json_schema_extra={"unit": "s"})]


class ReorderFault(Fault):
    """Samples held back by 1 .. ``max_delay`` slots."""

    max_delay: Annotated[int, Field(3, ge=1, le=MAX_DELAY, description="Most slots a sample is held back (1 .. 1000)",
                                    json_schema_extra={"unit": "samples"})]


class Faults(Model):
    """The faults of the stream; each absent (null) unless given."""

    gaps: Optional[GapFault] = None
    nulls: Optional[NullFault] = None
    duplicates: Optional[DuplicateFault] = None
    jitter: Optional[JitterFault] = None
    out_of_order: Optional[ReorderFault] = None

    @property
    def any(self) -> bool:
        """True when at least one fault is configured."""
        return any(getattr(self, name) is not None for name in type(self).model_fields)


#: fault field -> (event kind, slot)
FAULTS: dict[str, tuple[str, int]] = {"gaps": ("gap", 16), "nulls": ("null", 17), "duplicates": ("duplicate", 18),
                                      "jitter": ("jitter", 19), "out_of_order": ("out-of-order", 20)}


class FaultedSamples:
    """Samples after the faults, as delivered (or waiting for their slot):
    parallel arrays of equal length ``m`` -- ``seqs`` (int64, the sample's
    seq), ``slots`` (int64, the slot it is delivered in), ``values``
    (float64, NaN where a null hit), ``labels`` (bool), ``offsets`` (float64,
    seconds: its time stamp) and ``copies`` (int64, times it is sent)."""

    FIELDS = ("seqs", "slots", "values", "labels", "offsets", "copies")

    def __init__(self, seqs, slots, values, labels, offsets, copies) -> None:
        self.seqs, self.slots, self.values, self.labels, self.offsets, self.copies = (
            seqs, slots, values, labels, offsets, copies)

    @classmethod
    def empty(cls) -> "FaultedSamples":
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0), np.empty(0, bool), np.empty(0),
                   np.empty(0, np.int64))

    def __len__(self) -> int:
        return len(self.seqs)

    def select(self, which) -> "FaultedSamples":
        return FaultedSamples(*(getattr(self, f)[which] for f in self.FIELDS))

    @staticmethod
    def concat(a: "FaultedSamples", b: "FaultedSamples") -> "FaultedSamples":
        return FaultedSamples(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in FaultedSamples.FIELDS))


class FaultSet:
    """The faults of a running composition and the samples they hold back."""

    def __init__(self, seed: int, spec: Faults, clock, at: int = 0) -> None:
        self.seed = seed
        self.parts: dict[str, Part] = {}
        self.retired: list[Part] = []
        self.pending = FaultedSamples.empty()  # held-back samples, due in a later slot
        self.update(spec, clock, at)

    def update(self, spec: Faults, clock, at: int) -> None:
        """Apply ``spec`` from sample ``at`` (see the module doc)."""
        for name, (kind, slot) in FAULTS.items():
            new, part = getattr(spec, name), self.parts.get(name)
            if part is not None:
                if new is None:
                    part.schedule.truncate(at)
                    self.retired.append(self.parts.pop(name))
                else:
                    part.respec(new, clock, at)
            elif new is not None:
                self.parts[name] = Part(self.seed, slot, new, clock, at, kind=kind)

    @property
    def _all(self) -> list[Part]:
        """Retired parts (events in progress) then the active ones."""
        return [*self.retired, *self.parts.values()]

    def decide(self, until: int) -> None:
        for part in self.parts.values():
            part.schedule.decide(until, None, False)

    def skip(self, until: int) -> None:
        """Seek: leave the events before ``until`` of one-sample faults
        undecided (they cannot reach ``until``)."""
        for part in self.parts.values():
            if part.max_length <= 1:
                part.schedule.skip(until)

    def forget(self, before: int) -> None:
        for part in self._all:
            part.schedule.forget(before)
        self.retired = [p for p in self.retired if len(p.schedule.starts)]

    def drop_pending(self, before: int) -> None:
        """Forget held-back samples due before slot ``before`` (seek)."""
        self.pending = self.pending.select(self.pending.slots >= before)

    @property
    def longest_delay(self) -> int:
        """Most slots a sample may be held back, now or in the pending ones."""
        delays = [p.spec.max_delay for p in self._all if p.kind == "out-of-order"]
        late = int((self.pending.slots - self.pending.seqs).max()) if len(self.pending) else 0
        return max([late, *delays])

    def render(self, n: int, m: int, values: np.ndarray, labels: np.ndarray,
               times: np.ndarray) -> tuple[FaultedSamples, list[dict[str, Any]]]:
        """Apply the faults to samples ``[n, n+m)`` (values and labels are
        modified in place) and return what slots ``n .. n+m-1`` deliver, with
        the fault events overlapping the samples."""
        events: list[dict[str, Any]] = []
        if not self.parts and not self.retired and not len(self.pending):
            seqs = np.arange(n, n + m, dtype=np.int64)
            return FaultedSamples(seqs, seqs, values, labels, times, np.ones(m, np.int64)), events
        gap = np.zeros(m, bool)
        delay = np.zeros(m, np.int64)
        copies = np.ones(m, np.int64)
        offsets = times.copy()
        for part in self._all:
            kind = part.kind
            idx, pos, ev = part.positions(n, m)
            events += part.events(idx)
            if not len(idx):
                continue
            if kind == "gap":
                gap[pos] = True
                continue
            labels[pos] = True
            if kind == "null":
                values[pos] = np.nan
            elif kind == "duplicate":
                copies[pos] = 2
            elif kind == "jitter":
                u = part._samples.uniforms(n, m)
                offsets[pos] += symmetric(part.spec.max_jitter, u[pos])
            elif kind == "out-of-order":
                u = part._samples.uniforms(n, m)
                delay[pos] = np.maximum(delay[pos], count_between(1, part.spec.max_delay, u[pos]))
        seqs = np.arange(n, n + m, dtype=np.int64)
        keep = ~gap
        fresh = FaultedSamples(seqs, seqs + delay, values, labels, offsets, copies).select(keep)
        if not len(self.pending) and not delay.any():
            return self._expand(fresh), events
        both = FaultedSamples.concat(self.pending, fresh)
        due = both.slots < n + m
        self.pending = both.select(~due)
        out = both.select(due)
        order = np.lexsort((out.seqs, out.slots > out.seqs, out.slots))
        return self._expand(out.select(order)), events

    @staticmethod
    def _expand(d: FaultedSamples) -> FaultedSamples:
        if len(d) and (d.copies > 1).any():
            return d.select(np.repeat(np.arange(len(d)), d.copies))
        return d
