"""Scenario files: named streams declared in YAML (``wsgen serve --scenario plant.yaml``).

The format (YAML, read with PyYAML's ``safe_load``)::

    streams:
      - name: plant/boiler-3/temperature
        generator: sine                      # a registry name ...
        params: {amplitude: 5, frequency: 0.01, offset: 80}
        interval: 0.1                        # seconds between samples
        seed: 7                              # default: derived from the name
      - name: plant/boiler-3/pressure
        generator:                           # ... or a composition (docs/compositions.md), no faults
          base: {kind: normal, params: {mean: 3, std_dev: 0.05}}
          anomalies:
            - {kind: spike, placement: {mode: random, probability: 0.001}, height: 2}
        interval: 1
        epoch: 2026-01-01T00:00:00Z          # sample 0 (default: the Unix epoch)
        history: 3600                        # samples kept for start_seq backfill

Each stream is checked by the same models as the wire (:class:`wsgen.streams.named.StreamDef`,
the generators' parameter models, the composition spec); an error names the
file, the stream (index and name) and the field:
``plant.yaml: streams[0] (plant/boiler-3/temperature): params.amplitude: ...``.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any

import yaml

from wsgen.engine import InvalidParams
from wsgen.streams.named import StreamDef, validate_def
from wsgen.errors import WsgenError

__all__ = ["ScenarioError", "load_scenario", "parse_scenario"]


class ScenarioError(WsgenError, ValueError):
    """A scenario file that cannot be used; ``str()`` names file, stream and field.

    Attributes:
        problems: one line per problem.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _epoch(value: Any) -> Any:
    """A YAML timestamp (``2026-01-01T00:00:00Z``) as Unix seconds (naive: UTC)."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.timestamp()
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc).timestamp()
    return value


def parse_scenario(text: str, source: str = "<scenario>") -> list[StreamDef]:
    """The streams of a scenario's YAML ``text``; ``source`` names it in errors.

    Raises:
        ScenarioError: YAML that does not parse (with line and column), a
            wrong layout, invalid streams (every problem listed), or a name
            given twice.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError([f"{source}: not valid YAML{where}: {problem}"]) from None
    if not isinstance(data, dict) or not isinstance(data.get("streams"), list):
        raise ScenarioError([f"{source}: expected a mapping with a list under 'streams' (each item a named "
                             "stream: name, generator, params, interval, seed, epoch, history)"])
    unknown = sorted(set(data) - {"streams", "description"})
    if unknown:
        raise ScenarioError([f"{source}: unknown top-level key {unknown[0]!r}; allowed: streams, description"])
    problems: list[str] = []
    defs: list[StreamDef] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(data["streams"]):
        name = item.get("name") if isinstance(item, dict) else None
        where = f"{source}: streams[{i}]" + (f" ({name})" if isinstance(name, str) else "")
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a mapping (name, generator, params, interval, ...)")
            continue
        item = dict(item)
        if "epoch" in item:
            item["epoch"] = _epoch(item["epoch"])
        try:
            d = validate_def(item)
        except InvalidParams as exc:
            for detail in exc.details:
                message = str(detail.get("message"))
                got = "" if message.startswith("missing:") else f" (got {detail.get('value')!r})"
                problems.append(f"{where}: {detail.get('field', '?')}: {message}{got}")
            continue
        if d.name in seen:
            problems.append(f"{where}: name {d.name!r} is already used by streams[{seen[d.name]}]")
            continue
        seen[d.name] = i
        defs.append(d)
    if problems:
        raise ScenarioError(problems)
    return defs


def load_scenario(path: str) -> list[StreamDef]:
    """The streams of the scenario file at ``path`` (see :func:`parse_scenario`)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    return parse_scenario(text, path)
