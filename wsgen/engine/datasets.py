"""Recorded series for ``replay``: the data directory, file loading, the cache.

The operator allows one directory (``wsgen serve --data-dir DIR``, or
:func:`set_data_dir` in Python); ``replay`` names a file in it (``file``, a
relative path without ``..``), or leaves ``file`` empty for the built-in
:data:`EXAMPLE`. ``POST /datasets`` stores uploads there
(:mod:`wsgen.server.http.datasets`). Two formats, read by well-kept parsers:

* CSV (``.csv``): the standard library's :mod:`csv` module; the first row
  names the columns; every row has as many fields as the header.
* Parquet (``.parquet``, ``.pq``): :mod:`pyarrow.parquet`.

A series is one numeric ``value`` column (finite numbers, no gaps) and,
optionally, a ``time`` column (Unix seconds, or ISO-8601 date-times: UTC when
they have no zone; strictly increasing) and a ``label`` column (``true`` /
``false``, ``1`` / ``0``, ``yes`` / ``no``, case-insensitive; empty =
false). A bad file raises :class:`DatasetError` naming the file, the row
(1-based data row; the header is not counted), the column and what is
allowed.

Loaded series are cached by (path, size, modification time, columns):
subscribers of the same file share one copy, and a file that changes on disk
is read again. Uploads are parsed in a worker thread; a file placed in the
directory by hand is parsed at its first use (about a second per million
CSV rows).
"""
from __future__ import annotations

import csv
import math
import os
import re
import threading
from typing import Any
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from wsgen.errors import WsgenError

__all__ = ["DatasetError", "Series", "SUFFIXES", "data_dir", "load", "resolve", "set_data_dir"]

#: File name endings read as CSV and as Parquet.
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
#: The built-in series (``file`` empty): one day of per-minute CPU load in
#: percent with three labelled incidents; columns timestamp, value, label
#: (made by scripts/make_example_dataset.py).
EXAMPLE = Path(__file__).resolve().parent.parent / "static" / "datasets" / "example.csv"
#: Most rows of one series.
MAX_ROWS = 10_000_000
#: Most series kept in the cache (least recently used dropped first).
CACHE_SIZE = 32

_TRUE = {"true", "1", "yes", "y", "t", "1.0"}
_FALSE = {"false", "0", "no", "n", "f", "", "0.0"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

_data_dir: Path | None = None
_cache: dict[tuple, "Series"] = {}
_lock = threading.Lock()


class DatasetError(WsgenError, ValueError):
    """A dataset that cannot be read. ``field`` is the parameter to blame
    (``file``, ``value_column``, ...); ``row`` (1-based data row) and
    ``column`` locate the bad cell when there is one."""

    def __init__(self, message: str, field: str = "file", row: int | None = None, column: str | None = None):
        self.field, self.row, self.column = field, row, column
        super().__init__(message)

    def detail(self, value: Any) -> dict[str, Any]:
        """The error detail of a refusal (``value``: that of the blamed
        parameter): ``field``, ``value``, ``message``, and ``row`` / ``column``
        (null when unknown) when the error locates a row or a column."""
        out: dict[str, Any] = {"field": self.field, "value": value, "message": str(self)}
        if self.row is not None or self.column is not None:
            out.update(row=self.row, column=self.column)
        return out


@dataclass(frozen=True)
class Series:
    """A loaded series: ``values`` (float64, shape (n,)), ``times`` (Unix
    seconds, float64, strictly increasing, or None) and ``labels`` (bool, or
    None)."""

    values: np.ndarray
    times: np.ndarray | None
    labels: np.ndarray | None

    def __len__(self) -> int:
        return len(self.values)

    @property
    def median_step(self) -> float | None:
        """Median seconds between consecutive timestamps (None without times
        or with fewer than two rows)."""
        if self.times is None or len(self.times) < 2:
            return None
        return float(np.median(np.diff(self.times)))


def set_data_dir(path: str | os.PathLike | None) -> None:
    """Allow replay from ``path`` (None: from nowhere). One per process."""
    global _data_dir
    _data_dir = None if path is None else Path(path).resolve()


def data_dir() -> Path | None:
    """The directory replay may read (None: replay is off)."""
    return _data_dir


def check_name(name: str) -> str | None:
    """What is wrong with a dataset file name (None: nothing): a relative
    path of plain names (letters, digits, ``.``, ``_``, ``-``; no ``..``)
    ending in .csv, .parquet or .pq."""
    parts = name.split("/")
    if not name or any(not _NAME.fullmatch(p) or p in (".", "..") or ".." in p for p in parts):
        return ("must be a file name in the data directory: letters, digits, '.', '_' and '-', "
                "sub-directories with '/', no '..'")
    if Path(name).suffix.lower() not in SUFFIXES:
        return f"must end in one of: {', '.join(SUFFIXES)}"
    return None


def resolve(name: str) -> Path:
    """The path of dataset ``name`` in the data directory (``""``: the
    built-in :data:`EXAMPLE`); raises :class:`DatasetError` (field ``file``)
    when there is no data directory, the name is not allowed or the file does
    not exist."""
    if name == "":
        return EXAMPLE
    if _data_dir is None:
        raise DatasetError("replay is off on this server: no data directory (start it with --data-dir DIR)")
    problem = check_name(name)
    if problem:
        raise DatasetError(problem)
    path = (_data_dir / name).resolve()
    if _data_dir not in path.parents or not path.is_file():
        raise DatasetError(f"no such file in the data directory: {name!r}")
    return path


def load(name: str, value_column: str = "value", time_column: str = "", label_column: str = "") -> Series:
    """The series of file ``name`` (see the module doc); cached."""
    path = resolve(name)
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, value_column, time_column, label_column)
    with _lock:
        hit = _cache.pop(key, None)
        if hit is not None:
            _cache[key] = hit           # most recently used last
            return hit
    series = read(path, value_column, time_column, label_column, display=name)
    with _lock:
        _cache[key] = series
        while len(_cache) > CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
    return series


def read(path: Path, value_column: str = "value", time_column: str = "", label_column: str = "",
         display: str | None = None) -> Series:
    """Read ``path`` (CSV or Parquet by its suffix) into a :class:`Series`,
    uncached. Raises :class:`DatasetError`."""
    display = display or path.name
    kind = SUFFIXES.get(path.suffix.lower())
    wanted = {"value_column": value_column, "time_column": time_column, "label_column": label_column}
    wanted = {field: col for field, col in wanted.items() if col}
    if kind == "csv":
        columns = _read_csv(path, set(wanted.values()), display)
    elif kind == "parquet":
        columns = _read_parquet(path, list(dict.fromkeys(wanted.values())), display)
    else:
        raise DatasetError(f"{display}: unknown format; the file must end in one of: {', '.join(SUFFIXES)}")
    for field, col in wanted.items():
        if col not in columns["__header__"]:
            raise DatasetError(f"{display}: no column {col!r}; the file has: {', '.join(columns['__header__'])}",
                               field=field, column=col)
    n = columns["__rows__"]
    if n == 0:
        raise DatasetError(f"{display}: no data rows")
    if n > MAX_ROWS:
        raise DatasetError(f"{display}: {n} rows; at most {MAX_ROWS}")
    values = _numbers(columns[value_column], display, value_column, "value_column")
    times = _times(columns[time_column], display, time_column) if time_column else None
    labels = _labels(columns[label_column], display, label_column) if label_column else None
    return Series(values, times, labels)


# -- parsing -----------------------------------------------------------------------

def _read_csv(path: Path, wanted: set[str], display: str) -> dict:
    """Columns in ``wanted`` as lists of strings (plus ``__header__`` and ``__rows__``)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            try:
                header = next(reader)
            except StopIteration:
                raise DatasetError(f"{display}: the file is empty (a CSV needs a header row)") from None
            header = [h.strip() for h in header]
            for c in wanted:
                if header.count(c) > 1:      # which one to read would be a guess
                    raise DatasetError(f"{display}: the header names column {c!r} {header.count(c)} times; "
                                       "give each column its own name", column=c)
            index = {h: i for i, h in enumerate(header)}
            take = [(c, index[c]) for c in wanted if c in index]
            out: dict = {c: [] for c, _ in take}
            width = len(header)
            row = 0
            for row, fields in enumerate(reader, start=1):
                if len(fields) != width:
                    if not fields:        # a blank line: csv gives []
                        raise DatasetError(f"{display}: row {row} is empty; every row needs {width} fields",
                                           row=row)
                    raise DatasetError(f"{display}: row {row} has {len(fields)} fields, the header {width} "
                                       f"({', '.join(header)})", row=row)
                for c, i in take:
                    out[c].append(fields[i])
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{display}: not UTF-8 text ({exc.reason} at byte {exc.start}); a CSV file must be "
                           "UTF-8") from None
    except csv.Error as exc:
        raise DatasetError(f"{display}: not a readable CSV file: {exc}") from None
    out["__header__"] = header
    out["__rows__"] = row
    return out


def _read_parquet(path: Path, wanted: list[str], display: str) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        schema = pq.read_schema(path)
        present = [c for c in wanted if c in schema.names]
        table = pq.read_table(path, columns=present)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetError(f"{display}: not a readable Parquet file: {exc}") from None
    out: dict = {"__header__": list(schema.names), "__rows__": table.num_rows}
    for c in present:
        col = table.column(c)
        if pa.types.is_timestamp(col.type):
            out[c] = col.cast(pa.timestamp("ns", tz="UTC")).to_numpy(zero_copy_only=False)
        else:
            out[c] = col.to_numpy(zero_copy_only=False)
    return out


def _numbers(column, display: str, name: str, field: str) -> np.ndarray:
    """Finite float64 numbers; the first bad cell raises naming its row."""
    if isinstance(column, np.ndarray) and column.dtype.kind in "fiu":
        values = column.astype(np.float64)
    else:
        values = np.empty(len(column))
        for row, cell in enumerate(column, start=1):
            try:
                values[row - 1] = float(cell) if cell is not None else math.nan
            except (TypeError, ValueError):
                raise DatasetError(f"{display}: row {row}, column {name!r}: {cell!r} is not a number",
                                   field=field, row=row, column=name) from None
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(bad.argmax()) + 1
        raise DatasetError(f"{display}: row {row}, column {name!r}: {column[row - 1]!r} is not a finite number "
                           "(no gaps, NaN or infinities)", field=field, row=row, column=name)
    return values


def _times(column, display: str, name: str) -> np.ndarray:
    """Unix seconds from numbers, ISO-8601 strings or Parquet timestamps."""
    if isinstance(column, np.ndarray) and column.dtype.kind == "M":
        if np.isnat(column).any():
            row = int(np.isnat(column).argmax()) + 1
            raise DatasetError(f"{display}: row {row}, column {name!r}: missing timestamp", field="time_column",
                               row=row, column=name)
        times = column.astype("datetime64[ns]").astype(np.int64) / 1e9
    elif isinstance(column, np.ndarray) and column.dtype.kind in "fiu":
        times = _numbers(column, display, name, "time_column")
    else:
        times = np.empty(len(column))
        for row, cell in enumerate(column, start=1):
            try:
                times[row - 1] = float(cell)
                if not math.isfinite(times[row - 1]):
                    raise ValueError
                continue
            except (TypeError, ValueError):
                pass
            try:
                text = str(cell).strip()
                moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" and text else text)
            except ValueError:
                raise DatasetError(f"{display}: row {row}, column {name!r}: {cell!r} is neither Unix seconds nor an "
                                   "ISO-8601 date-time", field="time_column", row=row, column=name) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            times[row - 1] = moment.timestamp()
    if len(times) > 1:
        steps = np.diff(times)
        if (steps <= 0).any():
            row = int((steps <= 0).argmax()) + 2
            raise DatasetError(f"{display}: row {row}, column {name!r}: timestamps must increase strictly "
                               f"({times[row - 1]!r} after {times[row - 2]!r})", field="time_column", row=row,
                               column=name)
    return times


def _labels(column, display: str, name: str) -> np.ndarray:
    if isinstance(column, np.ndarray) and column.dtype.kind == "b":
        return column.astype(bool)
    if isinstance(column, np.ndarray) and column.dtype.kind in "fiu":
        bad = ~np.isin(column, (0, 1))
        if bad.any():
            row = int(bad.argmax()) + 1
            raise DatasetError(f"{display}: row {row}, column {name!r}: {column[row - 1]!r} is not a label "
                               "(0 or 1)", field="label_column", row=row, column=name)
        return column.astype(bool)
    out = np.empty(len(column), dtype=bool)
    for row, cell in enumerate(column, start=1):
        text = "" if cell is None else str(cell).strip().lower()
        if text in _TRUE:
            out[row - 1] = True
        elif text in _FALSE:
            out[row - 1] = False
        else:
            raise DatasetError(f"{display}: row {row}, column {name!r}: {cell!r} is not a label (true/false, "
                               "1/0, yes/no, or empty)", field="label_column", row=row, column=name)
    return out
