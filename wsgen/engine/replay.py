"""``replay``: a recorded series from a CSV or Parquet file, with its labels.

The file is ``file`` in the server's data directory (``wsgen serve
--data-dir DIR``, or uploaded with ``POST /datasets``; in Python
:func:`wsgen.engine.datasets.set_data_dir`), or, with ``file`` empty, the built-in
example (:data:`wsgen.engine.datasets.EXAMPLE`: one day of per-minute CPU load,
columns ``timestamp``, ``value``, ``label``, three labelled incidents);
loading, formats and errors are those of :mod:`wsgen.engine.datasets`. Sample ``n`` is row ``r(n)`` of the file (rows
counted from 0, the header excluded)::

    at_end = "loop":  r(n) = n mod L          (L = number of rows)
    at_end = "end":   r(n) = n for n < L; the stream ends after sample L - 1
                      (``end_seq`` = L: WebSocket sends ``ended`` with reason
                      ``end_of_data``, HTTP closes the stream; a Python
                      ``take`` past it gives NaN, labelled false)

so a replay is deterministic, needs no seed, and ``start_seq`` seeks
directly (row ``r(start_seq)``). With ``label_column`` the file's labels are
the stream's labels (and ground truth for scoring); without, the stream has
no labels.

Pacing: ``pace = "interval"`` sends a sample every ``interval`` seconds;
``pace = "timestamps"`` (needs ``time_column``) every median spacing of the
file's timestamps (a file recorded every 10 s replays at one sample per 10 s
of stream time; irregular spacing is not reproduced as jitter).

Live updates: from sample ``u = seq`` the new file / columns / ``at_end``
apply with the same rule, ``r(n)`` of the new file (the position is the
sample index, so a replay switched to another file continues at the same row
number); the file is read before anything changes, and a bad one refuses the
update. ``pace`` and ``at_end`` are fixed at subscribe time (an update
changing them is refused); ``interval`` re-times as for every kind.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Mapping

import numpy as np
from pydantic import Field

from wsgen.engine import datasets
from wsgen.engine.base import Generator
from wsgen.engine.fields import interval
from wsgen.engine.params import GeneratorParams, InvalidParams, validate_params

Column = Annotated[str, Field(max_length=256)]


class ReplayParams(GeneratorParams):
    """Parameters of ``replay``: a recorded series (CSV or Parquet file in the data directory) with its labels."""

    file: Annotated[str, Field("", max_length=1024, description="File in the server's data directory (.csv, "
                                                                 ".parquet, .pq), e.g. uploaded with POST /datasets; "
                                                                 "empty: the built-in example (one day of per-minute "
                                                                 "CPU load; columns timestamp, value, label)")]
    value_column: Annotated[str, Field("value", min_length=1, max_length=256, description="Column of the values")]
    time_column: Annotated[str, Field("", max_length=256,
                                      description="Column of timestamps (Unix s or ISO-8601; empty: none)")]
    label_column: Annotated[str, Field("", max_length=256,
                                       description="Column of labels (true/false, 1/0; empty: none): the stream's labels")]
    at_end: Literal["loop", "end"] = Field("loop", description="loop: start again at the first row; end: the "
                                                               "stream ends after the last row")
    pace: Literal["interval", "timestamps"] = Field(
        "interval", description="interval: one sample per interval; timestamps: one per median spacing of the "
                                "file's timestamps (needs time_column)")
    interval: interval(1.0, "Seconds between samples on the wire (0: as fast as the client reads)")

    def check(self):
        if self.pace == "timestamps" and not self.time_column:
            return [("pace", "timestamps needs time_column (the column of the file's timestamps)")]
        return []


def _series(p: ReplayParams) -> datasets.Series:
    """The series ``p`` names; :class:`InvalidParams` naming the field (and
    the row and column of a bad cell)."""
    try:
        series = datasets.load(p.file, p.value_column, p.time_column, p.label_column)
    except datasets.DatasetError as exc:
        raise InvalidParams([exc.detail(getattr(p, exc.field, p.file))]) from None
    if p.pace == "timestamps" and (series.median_step is None or series.median_step < 1e-6):
        raise InvalidParams([{"field": "pace", "value": p.pace, "message": "timestamps needs at least two rows "
                              "at least 1 us apart"}])
    return series


class Replay(Generator):
    name = "replay"
    Params = ReplayParams
    render_ahead = 64     # rows are a function of the sample index (off when labelled: see _setup)

    def _setup(self) -> None:
        self._use(_series(self.params))

    def _use(self, series: datasets.Series) -> None:
        self._data = series
        self.anomalous = series.labels is not None
        self.render_ahead = 0 if self.anomalous else type(self).render_ahead

    @staticmethod
    def labelled(params: Mapping[str, Any]) -> bool:
        """Whether a replay with ``params`` has labels (a ``label_column``)."""
        return bool(params.get("label_column"))

    @property
    def end_seq(self) -> int | None:
        """The seq at which the stream ends (``at_end = "end"``: the row
        count), or None (looping)."""
        return len(self._data) if self.params.at_end == "end" else None

    @property
    def sample_interval(self) -> float:
        if self.params.pace == "timestamps":
            return self._data.median_step
        return self.params.interval

    def _render(self, n, m):
        data, rows = self._data, len(self._data)
        idx = np.arange(n, n + m, dtype=np.int64)
        if self.params.at_end == "loop":
            idx %= rows
            values = data.values[idx]
            labels = None if data.labels is None else data.labels[idx]
            return values, labels
        past = idx >= rows
        np.minimum(idx, rows - 1, out=idx)
        values = data.values[idx]
        labels = None if data.labels is None else data.labels[idx]
        if past.any():
            values[past] = np.nan
            if labels is not None:
                labels[past] = False
        return values, labels

    def update(self, changes: Mapping[str, Any]):
        """As :meth:`Generator.update`; the new file is read first, so a bad
        one changes nothing."""
        if isinstance(changes, Mapping):
            new = validate_params(self.Params, {**self.params.model_dump(), **dict(changes)})
            for name in ("pace", "at_end"):
                if getattr(new, name) != getattr(self.params, name):
                    raise InvalidParams([{"field": name, "value": getattr(new, name),
                                          "message": "is fixed at subscribe time; subscribe again to change it"}])
            self._pending = _series(new)
        return super().update(changes)

    def _on_update(self, old, new, at: int) -> None:
        pending, self._pending = getattr(self, "_pending", None), None
        if pending is not None:
            self._use(pending)
