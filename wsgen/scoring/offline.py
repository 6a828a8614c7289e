"""Scoring detections against a stream regenerated from its definition (no I/O).

Every wsgen stream is a function of its generator, params and seed, so the
truth of samples ``first .. last`` needs no file of labels: it is generated
again here (:func:`truth`) and scored with :func:`wsgen.scoring.figures.score`.
``POST /score`` (:mod:`wsgen.server.http.score`) and ``wsgen score`` use it.

A definition (:class:`Definition`, JSON)::

    {"generator": "random-square" | {composition}, "params": {...}, "seed": 1,
     "first": 0, "last": 9999, "window": "nab", "probation": 0.15, "threshold": 0.5}

Detections: a list of seqs, or of ``{"seq": N, "score": x}`` objects, or a
CSV text with a header naming a ``seq`` column and optionally a ``score``
column (:func:`read_csv`). With scores, a detection is an alarm when
``score >= threshold``.

The regenerated stream is the stream as first defined: live updates of a
subscription are not part of a definition.
"""
from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from wsgen.engine import InvalidParams, UnknownGenerator, create
from wsgen.engine.composite import create_composite
from wsgen.engine.injectors import INJECTORS
from wsgen.engine.params import brief_value, error_details, summary
from wsgen.protocol.messages import Seed, _window
from wsgen.scoring.figures import PROFILES, ScoringError, score
from wsgen.errors import WsgenError

#: Most samples one definition may regenerate.
MAX_SAMPLES = 10_000_000
#: Most detections one request may carry.
MAX_DETECTIONS = 1_000_000
_BLOCK = 65_536


class DefinitionError(WsgenError, ValueError):
    """A definition or detections that cannot be scored: ``details`` name each field."""

    def __init__(self, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.details = details


class Detection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seq: Annotated[int, Field(ge=0, le=2**53)]
    score: Annotated[float, Field(allow_inf_nan=False)] | None = None


class Definition(BaseModel):
    """A stream's definition and the scoring options (see the module doc)."""

    model_config = ConfigDict(extra="forbid")

    generator: Union[Annotated[str, Field(max_length=64)], dict[str, Any]] = Field(
        description="A registry name of an anomaly kind, or a composition object")
    params: dict[str, Any] = Field(default_factory=dict, description="The generator's params (not for a "
                                                                     "composition, which carries its own)")
    seed: Seed = Field(description="The stream's seed (the truth depends on it)")
    first: Annotated[int, Field(ge=0, le=2**53)] = Field(0, description="First scored seq")
    last: Annotated[int, Field(ge=0, le=2**53)] = Field(description="Last scored seq (inclusive)")
    window: Annotated[Any, BeforeValidator(_window)] = Field("nab", description="\"nab\", \"events\" or a "
                                                                                  "length in samples")
    probation: Annotated[float, Field(ge=0, lt=1)] = 0.15
    threshold: Annotated[float, Field(allow_inf_nan=False)] = 0.5
    profile: Literal[tuple(PROFILES)] | None = Field(None, description="One NAB profile (default: all three)")
    detections: list[Union[Annotated[int, Field(ge=0, le=2**53)], Detection]] | None = Field(
        None, max_length=MAX_DETECTIONS, description="Seqs, or {seq, score} objects (JSON bodies)")

    @model_validator(mode="after")
    def _range(self) -> "Definition":
        if self.last < self.first:
            raise ValueError(f"last ({self.last}) must be >= first ({self.first})")
        if self.last - self.first + 1 > MAX_SAMPLES:
            raise ValueError(f"at most {MAX_SAMPLES} samples per definition (last - first + 1)")
        if isinstance(self.generator, dict) and self.params:
            raise ValueError("a composition carries its parameters in \"generator\"; leave \"params\" out")
        return self


def _details(exc: ValidationError) -> list[dict[str, Any]]:
    return error_details(exc, "definition", value=brief_value, limit=20)


def parse(data: dict[str, Any]) -> Definition:
    """Validate a definition; :class:`DefinitionError` names each bad field."""
    try:
        return Definition.model_validate(data)
    except ValidationError as exc:
        details = _details(exc)
        raise DefinitionError("invalid definition: " + summary(details), details) from None


def read_csv(text: str) -> tuple[list[int], list[float] | None]:
    """Detections from CSV text: a header with a ``seq`` column (and maybe ``score``), one row each."""
    rows = csv.DictReader(io.StringIO(text))
    fields = [f.strip() for f in rows.fieldnames or []]
    if "seq" not in fields:
        raise DefinitionError(f"the CSV needs a header naming a seq column (and optionally score); got "
                              f"{fields or 'no header'}", [{"field": "csv", "value": ",".join(fields),
                                                            "message": "needs a seq column"}])
    rows.fieldnames = fields
    seqs, scores = [], []
    for line, row in enumerate(rows, start=2):
        try:
            seqs.append(int(row["seq"]))
            if "score" in fields:
                scores.append(float(row["score"]))
        except (TypeError, ValueError):
            raise DefinitionError(f"CSV line {line}: seq must be an integer and score a number; got "
                                  f"{row!r}", [{"field": f"csv line {line}", "value": str(row),
                                               "message": "seq must be an integer, score a number"}]) from None
        if len(seqs) > MAX_DETECTIONS:
            raise DefinitionError(f"at most {MAX_DETECTIONS} detections", [{"field": "csv", "value": None,
                                                                           "message": "too many rows"}])
    return seqs, (scores if "score" in fields else None)


def truth(defn: Definition) -> tuple[np.ndarray, float]:
    """The anomaly events of samples ``first .. last`` (int64 (E, 2), inclusive seqs, clipped to the
    range) and the sample interval in seconds, by generating the stream again."""
    try:
        if isinstance(defn.generator, dict):
            gen = create_composite(defn.generator, seed=defn.seed, start_seq=defn.first)
        else:
            gen = create(defn.generator, defn.params, seed=defn.seed, start_seq=defn.first)
    except UnknownGenerator as exc:
        raise DefinitionError(str(exc), [{"field": "generator", "value": defn.generator,
                                          "message": str(exc)}]) from None
    except InvalidParams as exc:
        raise DefinitionError("invalid params: " + str(exc), exc.details) from None
    if getattr(gen, "channels", None):
        raise DefinitionError("a composition with channels has one truth per channel, not one score",
                              [{"field": "generator.channels", "value": list(gen.channels),
                                "message": "score a single-channel composition"}])
    if not getattr(gen, "anomalous", False):
        raise DefinitionError(f"{gen.name!r} has no ground truth: score an anomaly kind, a composition or "
                              "a replay with label_column",
                              [{"field": "generator", "value": gen.name, "message": "needs a labelled stream"}])
    composite = gen.name == "composite"
    n = defn.last - defn.first + 1
    spans: dict[int, tuple[int, int]] = {}
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    done = 0
    while done < n:
        m = min(_BLOCK, n - done)
        block = gen.take(m)
        if composite:
            for e in block.events:
                if e["kind"] in INJECTORS:
                    spans[e["id"]] = (e["first"], e["last"])
        elif block.labels.any():
            x = block.labels
            edges = np.flatnonzero(np.diff(np.concatenate(([False], x, [False])).astype(np.int8)))
            starts.append(edges[0::2] + block.seq)
            ends.append(edges[1::2] - 1 + block.seq)
        done += m
    events = _pairs(sorted(spans.values())) if composite else _runs(starts, ends)
    if len(events):
        events = np.clip(events, defn.first, defn.last)
    return events, gen.sample_interval


def _runs(starts: list[np.ndarray], ends: list[np.ndarray]) -> np.ndarray:
    """The runs of true labels (int64 (E, 2), inclusive seqs) from each block's runs (``starts``,
    ``ends``: its runs' first and last seqs, blocks in order): a run that ends at a block's last
    sample and one that starts at the next block's first sample are one run. In numpy, not in a
    list of Python pairs: a stream of 1e7 samples has up to 5e6 runs, and building the array from
    such a list holds the interpreter lock (and the event loop of the server calling this from a
    worker thread) for about a second."""
    if not starts:
        return np.empty((0, 2), dtype=np.int64)
    first = np.concatenate(starts).astype(np.int64)
    last = np.concatenate(ends).astype(np.int64)
    new = np.ones(len(first), dtype=bool)
    new[1:] = first[1:] != last[:-1] + 1       # not the continuation of the previous block's last run
    closes = np.ones(len(first), dtype=bool)
    closes[:-1] = new[1:]                      # the last piece of each run
    return np.stack([first[new], last[closes]], axis=1)


def _pairs(rows: list[tuple[int, int]], chunk: int = 65_536) -> np.ndarray:
    """``rows`` as an int64 (E, 2) array, converted ``chunk`` rows at a time: one ``np.array`` call on
    millions of Python pairs holds the interpreter lock for about a second."""
    if not rows:
        return np.empty((0, 2), dtype=np.int64)
    return np.concatenate([np.array(rows[i:i + chunk], dtype=np.int64).reshape(-1, 2)
                           for i in range(0, len(rows), chunk)])


def score_definition(defn: Definition, seqs: list[int] | None = None,
                     scores: list[float] | None = None) -> dict[str, Any]:
    """The figures of detections (``seqs``/``scores``, else ``defn.detections``) on the stream
    ``defn`` defines (:func:`wsgen.scoring.figures.score`, plus ``definition``: seed, first, last, generator)."""
    if seqs is None:
        items = defn.detections or []
        seqs = [d if isinstance(d, int) else d.seq for d in items]
        has_scores = [not isinstance(d, int) and d.score is not None for d in items]
        if any(has_scores):
            if not all(has_scores):
                raise DefinitionError("give a score with every detection or with none",
                                      [{"field": "detections", "value": None, "message": "scores mixed"}])
            scores = [d.score for d in items]
    events, interval = truth(defn)
    try:
        figures = score(events, seqs, profile=defn.profile, window=defn.window, probation=defn.probation,
                        start=defn.first, length=defn.last - defn.first + 1, interval=interval or None,
                        scores=scores, threshold=defn.threshold)
    except ScoringError as exc:
        raise DefinitionError(str(exc), [{"field": "detections", "value": None, "message": str(exc)}]) from None
    figures["options"] = {"window": defn.window, "probation": defn.probation, "threshold": defn.threshold}
    figures["definition"] = {"generator": defn.generator if isinstance(defn.generator, str) else "composite",
                             "seed": defn.seed, "first": defn.first, "last": defn.last}
    return figures
