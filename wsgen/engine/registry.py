"""The registry: generator name -> parameter model and generator class.

``create(name, params, seed)`` builds a generator; ``catalogue()`` lists every
kind with the JSON Schema of its parameters (what clients build forms from).
"""
from __future__ import annotations

import functools

from dataclasses import dataclass
from typing import Any, Mapping

from wsgen.engine.anomalies import Clustered, CountPerDuration, PeriodicSpike, Random, RandomSquare
from wsgen.engine.base import Generator
from wsgen.engine.distributions import Exponential, Normal, Uniform
from wsgen.engine.params import GeneratorParams
from wsgen.engine.processes import OrnsteinUhlenbeck, RandomWalk
from wsgen.engine.replay import Replay
from wsgen.engine.seasonal import Seasonal
from wsgen.engine.shapes import Pattern, Pulse, Steps
from wsgen.engine.waveforms import Cosine, Sawtooth, Sine, Square, Triangle
from wsgen.errors import WsgenError


class UnknownGenerator(WsgenError, KeyError):
    """Raised for a name that is not in the registry; ``str()`` lists the
    known names."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown generator {self.name!r}; known: {', '.join(GENERATORS)}"


@dataclass(frozen=True)
class GeneratorSpec:
    """One registry entry: its name, family, model and class."""

    name: str
    family: str            # "waveform" | "distribution" | "anomaly" | "process" | "periodic" | "recorded"
    cls: type[Generator]
    description: str

    @property
    def params_model(self) -> type[GeneratorParams]:
        return self.cls.Params

    @property
    def anomalous(self) -> bool:
        return self.cls.anomalous

    @property
    def interval_field(self) -> str:
        return self.cls.Params.interval_field

    def schema(self) -> dict[str, Any]:
        """JSON Schema of the parameter model."""
        return self.params_model.model_json_schema()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "anomalous": self.anomalous,
                "description": self.description, "interval_field": self.interval_field,
                "param_aliases": dict(self.params_model.aliases), "demo": self.demo,
                "params_schema": self.schema()}

    @property
    def demo(self) -> dict[str, Any]:
        """Lively values to look at this kind with (:mod:`.demo`); the
        defaults stay the original service's."""
        from wsgen.engine.demo import demo_params
        return demo_params(self.name, self.params_model)


def _spec(family: str, cls: type[Generator]) -> GeneratorSpec:
    doc = (cls.Params.__doc__ or cls.name).strip().splitlines()[0]
    return GeneratorSpec(cls.name, family, cls, doc)


GENERATORS: dict[str, GeneratorSpec] = {s.name: s for s in [
    _spec("waveform", Sine), _spec("waveform", Cosine), _spec("waveform", Square),
    _spec("waveform", Sawtooth), _spec("waveform", Triangle),
    _spec("distribution", Normal), _spec("distribution", Uniform), _spec("distribution", Exponential),
    _spec("anomaly", Random), _spec("anomaly", RandomSquare), _spec("anomaly", Clustered),
    _spec("anomaly", PeriodicSpike), _spec("anomaly", CountPerDuration),
    _spec("process", RandomWalk), _spec("process", OrnsteinUhlenbeck),
    _spec("periodic", Pulse), _spec("periodic", Steps), _spec("periodic", Pattern), _spec("periodic", Seasonal),
    _spec("recorded", Replay),
]}

#: The kinds the original service also served under ``/anomalies/<name>``.
ANOMALY_KINDS: tuple[str, ...] = tuple(n for n, s in GENERATORS.items() if s.anomalous)


def get_spec(name: str) -> GeneratorSpec:
    """The registry entry for ``name``; raises :class:`UnknownGenerator`."""
    try:
        return GENERATORS[name]
    except (KeyError, TypeError):
        raise UnknownGenerator(str(name)) from None


def create(name: str, params: Mapping[str, Any] | None = None, seed: int | None = None,
           start_seq: int = 0) -> Generator:
    """Create a generator by registry name.

    Args:
        name: registry name, e.g. ``"sine"`` or ``"count-per-duration"``.
        params: parameter values; omitted ones take their defaults.
        seed: integer in [0, 2**64); ``None`` draws one (``gen.seed``).
        start_seq: index of the first sample produced.

    Raises:
        UnknownGenerator: ``name`` is not registered.
        InvalidParams: a parameter is invalid (field, value, what is allowed).
    """
    return get_spec(name).cls(params, seed=seed, start_seq=start_seq)


@functools.cache
def catalogue() -> list[dict[str, Any]]:
    """Every generator with its family, description and parameter JSON Schema.

    Built once (12-18 ms: JSON Schemas and demo values) and shared by every
    caller (the ``list`` reply, ``GET /generators``): read it, do not change it."""
    return [spec.describe() for spec in GENERATORS.values()]
