"""Requests at the edges of what validation allows, to find the costly ones.

No request may hold the server's event loop for long (docs/protocol.md,
"Cost of a request"). Rather than naming one bad request, this module walks
the parameter space at its extremes: every generator kind with each numeric
parameter at its lowest and highest allowed value, and every anomaly
injector (and every fault) in every placement mode, with the longest and
shortest events, ``allow_overlap`` on and off and the most injectors a
composition may hold, each resumed at the largest ``start_seq`` it accepts.

:func:`cases` yields :class:`Case` objects (a ``subscribe`` message's
``generator``, ``params`` and ``start_seq``); :func:`measure` builds one as
the server would and times, in CPU seconds of the calling thread
(``time.thread_time``: independent of the machine's load), its creation and
its ``take`` calls. ``wsgen bench stall`` and ``tests/test_stall.py`` use
them.
"""
from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from wsgen.engine import GENERATORS, InvalidParams, create
from wsgen.engine.anomalies import MAX_SEEK_EVENTS
from wsgen.engine.composite import BASE_KINDS, MAX_START_SEQ, WAVEFORM_KINDS, create_composite
from wsgen.engine.faults import FAULTS, MAX_DELAY
from wsgen.engine.fields import MAX_COUNT, MIN_INTERVAL_S
from wsgen.engine.injectors import INJECTORS, MAX_INDEX, MAX_INJECTORS
from wsgen.engine.placement import MAX_ANOMALIES_PER_WINDOW
from wsgen.engine.schedule import MAX_BLOCKED_LENGTH

#: Largest ``start_seq`` of the protocol (integers JavaScript holds exactly).
MAX_SEQ = 2**53


@dataclass
class Case:
    """One request: ``generator`` is a registry name or a composition."""

    name: str
    generator: str | dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    start_seq: int = 0

    @property
    def composition(self) -> bool:
        return isinstance(self.generator, dict)

    def subscribe(self, id: str, seed: int = 1, **options: Any) -> dict[str, Any]:
        """The ``subscribe`` message of this case."""
        msg = {"type": "subscribe", "id": id, "generator": self.generator, "seed": seed,
               "start_seq": self.start_seq, **options}
        if not self.composition:
            msg["params"] = self.params
        return msg

    def create(self, seed: int = 1):
        """The generator, built as the server builds it (raises InvalidParams)."""
        if self.composition:
            return create_composite(self.generator, seed=seed, start_seq=self.start_seq)
        return create(self.generator, self.params, seed=seed, start_seq=self.start_seq)


def _bounds(prop: dict[str, Any]) -> list[Any]:
    """The extreme values a JSON Schema property allows (numbers only)."""
    kinds = {prop.get("type")} | {p.get("type") for p in prop.get("anyOf", ())}
    if not kinds & {"number", "integer"}:
        return []
    lo = prop.get("minimum", prop.get("exclusiveMinimum"))
    hi = prop.get("maximum", prop.get("exclusiveMaximum"))
    out = []
    if lo is not None:
        # an exclusive minimum of 0 (std_dev > 0): the smallest double above it is as extreme
        out.append(lo if "minimum" in prop else (lo + 1e-9 if lo == 0 else lo * (1 + 1e-12)))
    if hi is not None:
        out.append(hi)
    return out


def registry_cases(combos: int = 6, rng: random.Random | None = None) -> Iterator[Case]:
    """Each registry kind at all-lowest, all-highest and ``combos`` random
    mixes of lowest and highest values, with interval 0 (unpaced) and the
    largest ``start_seq`` it accepts."""
    rng = rng or random.Random(0)
    for name, spec in GENERATORS.items():
        props = spec.schema().get("properties", {})
        fields = {k: _bounds(p) for k, p in props.items() if k != spec.interval_field}
        fields = {k: v for k, v in fields.items() if v}
        picks = [{k: v[0] for k, v in fields.items()}, {k: v[-1] for k, v in fields.items()}]
        picks += [{k: rng.choice(v) for k, v in fields.items()} for _ in range(combos)]
        seen = set()
        for i, params in enumerate(picks):
            for interval in (0, MIN_INTERVAL_S):    # unpaced, or the shortest (kinds placing in time)
                params = {**params, spec.interval_field: interval}
                try:
                    create(name, params, seed=1)
                except InvalidParams:
                    continue
                break
            else:
                continue
            key = tuple(sorted(params.items()))
            if key in seen:
                continue
            seen.add(key)
            yield Case(f"{name}#{i}", name, params, _largest_start(name, params))
    # extremes that need two fields together (a window of one sample, or the most events in one)
    for i, params in enumerate([{"interval": MIN_INTERVAL_S, "duration": MIN_INTERVAL_S, "num_anomalies": 1},
                                {"interval": MIN_INTERVAL_S, "duration": MAX_ANOMALIES_PER_WINDOW * MIN_INTERVAL_S,
                                 "num_anomalies": MAX_ANOMALIES_PER_WINDOW}]):
        yield Case(f"count-per-duration#window{i}", "count-per-duration", params, MAX_SEQ)


def _largest_start(name: str, params: dict[str, Any]) -> int:
    """The largest ``start_seq`` a registry kind accepts with ``params``
    (the protocol's largest, or the kind's own limit, found by bisection)."""
    model = GENERATORS[name].params_model.model_validate(params)
    if name in ("random-square", "clustered"):
        lo_gap, _, lo_len, _ = model.bounds()
        return min(MAX_SEQ, MAX_SEEK_EVENTS * (lo_gap + lo_len))

    def accepted(n: int) -> bool:
        try:
            create(name, params, seed=1, start_seq=n)
        except InvalidParams:
            return False
        return True

    if accepted(MAX_SEQ):
        return MAX_SEQ
    lo, hi = 0, MAX_SEQ          # accepted(lo), not accepted(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if accepted(mid) else (lo, mid)
    return lo


#: Placements at their extremes (events as dense as allowed, or far apart).
def _placements(interval: float) -> list[dict[str, Any]]:
    window = MAX_ANOMALIES_PER_WINDOW   # samples in a count window: count may equal it (every sample)
    # indices: as many as a 64 KiB WebSocket message holds for 16 injectors
    indices = 200
    return [
        {"mode": "random", "probability": 1.0},
        {"mode": "random", "probability": 0.5},
        {"mode": "gaps", "min_gap": 1, "max_gap": 1},
        {"mode": "gaps", "min_gap": 1, "max_gap": MAX_COUNT},
        {"mode": "periodic", "every": interval},
        {"mode": "count", "count": window, "duration": window * interval},
        {"mode": "indices", "indices": list(range(MAX_START_SEQ - indices + 1, MAX_START_SEQ + 1))},
        {"mode": "indices", "indices": [MAX_INDEX - k for k in range(indices)]},
        {"mode": "count", "count": 1, "duration": interval},
    ]


#: Event lengths at their extremes: (min_length, max_length).
LENGTHS = [(1, 1), (1, MAX_COUNT), (MAX_COUNT, MAX_COUNT), (2, 17)]

_EFFECT_EXTREMES: dict[str, dict[str, Any]] = {
    "spike": {"height": {"low": -1e12, "high": 1e12}},
    "level-shift": {"height": {"range": 1e12}},
    "noisy-cluster": {"amplitude": 1e12},
    "variance-change": {"std_dev": 1e12},
    "trend-change": {"slope": 1e9},
    "frequency-change": {"factor": 1000},
    "flatline": {},
    "dropout": {"fill": None},
}

_FAULT_EXTREMES: dict[str, dict[str, Any]] = {"jitter": {"max_jitter": 86_400}, "out_of_order": {"max_delay": MAX_DELAY}}


def _injector(kind: str, placement: dict[str, Any], lengths: tuple[int, int], overlap: bool) -> dict[str, Any]:
    inj = {"kind": kind, "placement": placement, "allow_overlap": overlap, **_EFFECT_EXTREMES[kind]}
    if kind != "spike":
        inj["min_length"], inj["max_length"] = lengths
    return inj


def composition_cases(interval: float = 1e-6, sample: int | None = None,
                      rng: random.Random | None = None) -> Iterator[Case]:
    """Compositions at their extremes, each at ``start_seq`` =
    :data:`~wsgen.engine.composite.MAX_START_SEQ`:

    * every injector kind x placement x lengths x ``allow_overlap``, the
      most injectors a composition may hold (a non-overlapping injector
      after the first keeps the longest length allowed there, which
      validation reports), on a sine base with noise;
    * every base kind with noise and every fault at its extremes;
    * every fault x placement x lengths;
    * the mix of issue 13 (a trend change and 15 frequency changes).

    ``sample``: yield a random subset of that many of the injector cases
    (``rng``) besides all the others.
    """
    rng = rng or random.Random(0)
    base = {"kind": "sine", "params": {"frequency": 1e9, "sample_rate": 1e-6, "amplitude": 1e12}}
    noise = {"kind": "normal", "std_dev": 1e12}
    combos = list(itertools.product(INJECTORS, range(len(_placements(interval))), LENGTHS, (True, False)))
    if sample is not None:
        combos = rng.sample(combos, min(sample, len(combos)))
    for kind, p, lengths, overlap in combos:
        if kind == "spike" and lengths != (1, 1):
            continue
        placement = _placements(interval)[p]
        first = _injector(kind, placement, lengths, overlap)
        rest = dict(first)
        if not overlap and kind != "spike":
            # the later non-overlapping injectors may last MAX_BLOCKED_LENGTH samples in all
            rest["max_length"] = min(lengths[1], 1 + (MAX_BLOCKED_LENGTH - 1) // (MAX_INJECTORS - 1))
            rest["min_length"] = min(lengths[0], rest["max_length"])
        spec = {"interval": interval, "base": base, "noise": noise,
                "anomalies": [first] + [rest] * (MAX_INJECTORS - 1)}
        yield Case(f"{kind}/{placement['mode']}{p}/len{lengths[0]}-{lengths[1]}/{'overlap' if overlap else 'apart'}",
                   spec, start_seq=MAX_START_SEQ)
    faults = {name: {"placement": {"mode": "random", "probability": 0.5}, "min_length": 1, "max_length": 3,
                     **_FAULT_EXTREMES.get(name, {})} for name in FAULTS}
    for kind in BASE_KINDS:
        spec = {"interval": interval, "base": {"kind": kind}, "noise": noise, "faults": faults,
                "anomalies": [_injector("level-shift", {"mode": "random", "probability": 1.0}, (2, 17), True)]}
        yield Case(f"base-{kind}", spec, start_seq=MAX_START_SEQ)
    for name in FAULTS:
        for p, placement in enumerate(_placements(interval)):
            for lengths in LENGTHS:
                fault = {"placement": placement, "min_length": lengths[0], "max_length": lengths[1],
                         **_FAULT_EXTREMES.get(name, {})}
                yield Case(f"fault-{name}/{placement['mode']}{p}/len{lengths[0]}-{lengths[1]}",
                           {"interval": interval, "base": base, "faults": {name: fault}}, start_seq=MAX_START_SEQ)
    common = {"placement": {"mode": "random", "probability": 1.0}, "allow_overlap": True,
              "min_length": 1, "max_length": MAX_COUNT}
    yield Case("issue-13", {"interval": 0.01, "base": {"kind": "sine"},
                            "anomalies": [{**common, "kind": "trend-change", "slope": 1e9}]
                            + [{**common, "kind": "frequency-change", "factor": 1000}] * 15},
               start_seq=MAX_START_SEQ - 1)
    assert WAVEFORM_KINDS  # the injector cases use a sine base


def cases(sample: int | None = None, seed: int = 0) -> Iterator[Case]:
    """Every registry case, then the composition cases (see there)."""
    rng = random.Random(seed)
    yield from registry_cases(rng=rng)
    yield from composition_cases(sample=sample, rng=rng)


@dataclass
class Cost:
    """CPU seconds (of the measuring thread) a case cost."""

    case: Case
    create_s: float = 0.0      # building the generator, seek included
    take_s: float = 0.0        # the costliest single take measured
    take_m: int = 0            # its size in samples
    refused: str | None = None  # validation's message when the case is refused


def measure(case: Case, sizes: tuple[int, ...] = (1, 64, 8192, 8192)) -> Cost:
    """Build ``case`` and take blocks of ``sizes``, timing each in CPU seconds."""
    cost = Cost(case)
    t = time.thread_time()
    try:
        gen = case.create()
    except InvalidParams as exc:
        cost.refused = str(exc)
        return cost
    cost.create_s = time.thread_time() - t
    for m in sizes:
        t = time.thread_time()
        gen.take(m)
        dt = time.thread_time() - t
        if dt > cost.take_s:
            cost.take_s, cost.take_m = dt, m
    return cost


# -- against a running server ---------------------------------------------------------

@dataclass
class Paced:
    """A paced stream's arrivals (``perf_counter`` seconds) and the lags the
    server reported in its data messages."""

    arrivals: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)

    def largest_gap(self, since: float = 0.0, until: float | None = None) -> float:
        """Longest time between arrivals from ``since`` on (to ``until``,
        when no message arrived after it: a stream that stopped counts)."""
        times = [since, *(t for t in self.arrivals if t >= since)]
        if until is not None and times[-1] < until:
            times.append(until)
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)


async def paced_stream(url: str, record: Paced, interval: float = 0.01, stop=None) -> None:
    """Subscribe to a sine at ``interval`` on ``url`` and record every data
    message's arrival until cancelled (or ``stop``, an asyncio.Event, is set)."""
    import orjson
    from websockets.asyncio.client import connect

    async with connect(url, max_size=None) as ws:
        await ws.send(orjson.dumps({"type": "subscribe", "id": "paced", "generator": "sine",
                                    "params": {"interval": interval}, "seed": 1}).decode())
        async for raw in ws:
            msg = orjson.loads(raw)
            if msg.get("type") == "data":
                record.arrivals.append(time.perf_counter())
                record.lags.append(msg.get("lag", 0.0))
                record.seqs.append(msg["seq"])
            if stop is not None and stop.is_set():
                return


async def subscribe_case(url: str, case: Case, messages: int = 8, seconds: float = 0.5,
                         reply_timeout: float = 60.0) -> dict[str, Any]:
    """Subscribe to ``case`` on its own connection, read its reply and up to
    ``messages`` data messages (at most ``seconds`` after the reply), then
    close. Returns the reply (``subscribed`` or ``error``) with ``"data"``:
    the data messages read."""
    import asyncio

    import orjson
    from websockets.asyncio.client import connect

    async with connect(url, max_size=None, close_timeout=1) as ws:
        await ws.send(orjson.dumps(case.subscribe("x")).decode())
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), reply_timeout))
        reply["data"] = 0
        if reply.get("type") != "subscribed":
            return reply
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while reply["data"] < messages and loop.time() < end:
            try:
                raw = await asyncio.wait_for(ws.recv(), max(0.0, end - loop.time()))
            except asyncio.TimeoutError:
                break
            if orjson.loads(raw).get("type") == "data":
                reply["data"] += 1
        await ws.send(orjson.dumps({"type": "unsubscribe", "id": "x"}).decode())
        while True:   # read up to the reply, so that the close is not stuck behind data
            msg = orjson.loads(await asyncio.wait_for(ws.recv(), reply_timeout))
            if msg.get("type") in ("unsubscribed", "error"):
                return reply
