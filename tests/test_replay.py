"""``replay``: CSV (stdlib csv) and Parquet (pyarrow) files of a data
directory, their labels as the stream's labels, errors naming row and column,
direct start_seq seeks, live file changes; ``POST /datasets`` uploads with
their limits; every transport against a real server (uploads, then HTTP,
WebSocket, ``wsgen sub`` with ``--data-dir``)."""
from __future__ import annotations

import csv
import io
import json
import subprocess

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import wsgen
from wsgen.engine import datasets
from wsgen.client import Client
from wsgen.engine import InvalidParams
from wsgen.engine.composite import create_composite
from wsgen.protocol.session import Session

from servers import WSGEN, ServeProcess, running_server  # noqa: E402  (tests/ is on sys.path under pytest)

ROWS = [(1_767_571_200 + 60 * i, round(10 + 3 * np.sin(i / 5), 3), i % 7 == 3) for i in range(40)]
VALUES = np.array([r[1] for r in ROWS])
LABELS = np.array([r[2] for r in ROWS])


def write_csv(path, rows=ROWS, header=("timestamp", "value", "label"), iso=False):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for t, v, lab in rows:
            stamp = np.datetime_as_string(np.datetime64(int(t), "s")) + "Z" if iso else t
            w.writerow([stamp, v, "true" if lab else "false"])
    return path


@pytest.fixture
def data_dir(tmp_path):
    before = datasets.data_dir()
    datasets.set_data_dir(tmp_path)
    yield tmp_path
    datasets.set_data_dir(before)


def refused(params, field, *words):
    with pytest.raises(InvalidParams) as info:
        wsgen.create("replay", params)
    d = info.value.details[0]
    assert d["field"] == field, info.value.details
    for w in words:
        assert w in d["message"], (w, d["message"])
    return d


# -- the engine ------------------------------------------------------------------------

def test_csv_values_and_labels_replay_exactly_and_loop(data_dir):
    write_csv(data_dir / "load.csv")
    g = wsgen.create("replay", {"file": "load.csv", "label_column": "label"})
    b = g.take(100)
    idx = np.arange(100) % 40
    assert b.values.tolist() == VALUES[idx].tolist()
    assert b.labels.tolist() == LABELS[idx].tolist()
    assert g.anomalous is True
    # without label_column: no labels; the same values whatever the seed
    plain = wsgen.create("replay", {"file": "load.csv"}, seed=1).take(40)
    assert plain.labels is None and plain.values.tolist() == VALUES.tolist()
    assert wsgen.create("replay", {"file": "load.csv"}, seed=2).take(40).values.tobytes() == plain.values.tobytes()


def test_parquet_with_timestamps_and_boolean_labels(data_dir):
    stamps = pa.array(np.array([r[0] for r in ROWS], dtype="datetime64[s]")).cast(pa.timestamp("s", tz="UTC"))
    table = pa.table({"ts": stamps, "load": pa.array(VALUES), "anomaly": pa.array(LABELS)})
    pq.write_table(table, data_dir / "load.parquet")
    g = wsgen.create("replay", {"file": "load.parquet", "value_column": "load", "time_column": "ts",
                                "label_column": "anomaly", "pace": "timestamps", "at_end": "end"})
    assert g.sample_interval == 60.0 and g.end_seq == 40
    b = g.take(42)
    assert b.values[:40].tolist() == VALUES.tolist() and np.isnan(b.values[40:]).all()
    assert b.labels.tolist() == LABELS.tolist() + [False, False]
    # integer 0/1 labels and integer values are read too
    pq.write_table(pa.table({"value": pa.array([1, 2, 3]), "label": pa.array([0, 1, 0])}), data_dir / "ints.pq")
    b = wsgen.create("replay", {"file": "ints.pq", "label_column": "label"}).take(3)
    assert b.values.tolist() == [1.0, 2.0, 3.0] and b.labels.tolist() == [False, True, False]


def test_iso_timestamps_pace_the_stream(data_dir):
    write_csv(data_dir / "iso.csv", iso=True)
    g = wsgen.create("replay", {"file": "iso.csv", "time_column": "timestamp", "pace": "timestamps"})
    assert g.sample_interval == 60.0
    assert g.take(40).values.tolist() == VALUES.tolist()


def test_start_seq_seeks_directly(data_dir):
    write_csv(data_dir / "load.csv")
    g = wsgen.create("replay", {"file": "load.csv", "label_column": "label"}, start_seq=10**15 + 3)
    b = g.take(5)
    rows = (10**15 + 3 + np.arange(5)) % 40
    assert b.seq == 10**15 + 3 and b.values.tolist() == VALUES[rows].tolist() and b.labels.tolist() == LABELS[rows].tolist()


def test_bad_files_name_row_and_column(data_dir):
    (data_dir / "word.csv").write_text("timestamp,value\n1,2.5\n2,3.5\n3,abc\n")
    d = refused({"file": "word.csv"}, "value_column", "row 3, column 'value'", "'abc'")
    assert (d["row"], d["column"]) == (3, "value")        # as fields of the detail too (docs/generators.md)
    (data_dir / "short.csv").write_text("t,value\n1,2\n2\n")
    d = refused({"file": "short.csv"}, "file", "row 2", "1 fields", "header 2")
    assert (d["row"], d["column"]) == (2, None)
    (data_dir / "gap.csv").write_text("value\n1\n\n3\n")
    refused({"file": "gap.csv"}, "file", "row 2")
    (data_dir / "nan.csv").write_text("value\n1\nnan\n")
    refused({"file": "nan.csv"}, "value_column", "row 2, column 'value'", "finite")
    (data_dir / "load.csv").write_text("value,label,t\n1,true,5\n2,maybe,6\n3,0,6\n")
    d = refused({"file": "load.csv", "label_column": "label"}, "label_column", "row 2, column 'label'", "'maybe'")
    assert (d["row"], d["column"]) == (2, "label")
    d = refused({"file": "load.csv", "time_column": "t"}, "time_column", "row 3, column 't'", "increase")
    assert (d["row"], d["column"]) == (3, "t")
    refused({"file": "load.csv", "value_column": "cpu"}, "value_column", "no column 'cpu'", "value, label, t")
    (data_dir / "twice.csv").write_text("value,value,other,other\n1,2,3,4\n")
    d = refused({"file": "twice.csv"}, "file", "names column 'value' 2 times")
    assert (d["row"], d["column"]) == (None, "value")
    (data_dir / "others.csv").write_text("x,value,x\n1,2,3\n")     # a column not read may repeat
    assert wsgen.create("replay", {"file": "others.csv"}).take(1).values.tolist() == [2.0]
    (data_dir / "empty.csv").write_text("")
    refused({"file": "empty.csv"}, "file", "empty")
    (data_dir / "header.csv").write_text("value\n")
    assert "row" not in refused({"file": "header.csv"}, "file", "no data rows")   # no cell to point at
    (data_dir / "broken.parquet").write_bytes(b"PAR1 not really")
    refused({"file": "broken.parquet"}, "file", "not a readable Parquet file")
    pq.write_table(pa.table({"value": pa.array([1.0, None, 3.0])}), data_dir / "null.parquet")
    d = refused({"file": "null.parquet"}, "value_column", "row 2, column 'value'")
    assert (d["row"], d["column"]) == (2, "value")
    refused({"file": "../secret.csv"}, "file", "no '..'")
    refused({"file": "/etc/passwd"}, "file")
    refused({"file": "notes.txt"}, "file", ".csv")
    refused({"file": "missing.csv"}, "file", "no such file")
    refused({"pace": "timestamps"}, "pace", "time_column")


def test_no_data_dir_only_the_builtin_example():
    before = datasets.data_dir()
    datasets.set_data_dir(None)
    try:
        refused({"file": "load.csv"}, "file", "--data-dir")
        g = wsgen.create("replay", {"label_column": "label", "time_column": "timestamp", "pace": "timestamps"})
        b = g.take(1440)
        assert g.sample_interval == 60.0 and b.labels.sum() == 37 and b.labels[300] and b.values[300] > 70
    finally:
        datasets.set_data_dir(before)


def test_update_switches_file_at_the_same_row_and_a_bad_file_changes_nothing(data_dir):
    write_csv(data_dir / "a.csv")
    (data_dir / "b.csv").write_text("value\n" + "\n".join(str(100 + i) for i in range(10)) + "\n")
    (data_dir / "bad.csv").write_text("value\n1\nx\n")
    g = wsgen.create("replay", {"file": "a.csv"})
    assert g.take(12).values.tolist() == VALUES[:12].tolist()
    with pytest.raises(InvalidParams) as info:
        g.update({"file": "bad.csv"})
    assert "row 2, column 'value'" in info.value.details[0]["message"]
    assert g.params.file == "a.csv" and g.take(1).values.tolist() == [VALUES[12]]
    g.update({"file": "b.csv"})
    assert g.take(4).values.tolist() == [103.0, 104.0, 105.0, 106.0]      # rows 13..16 mod 10
    with pytest.raises(InvalidParams) as info:
        g.update({"at_end": "end"})
    assert info.value.details[0]["field"] == "at_end"


def test_a_replay_paced_by_its_timestamps_keeps_their_spacing_across_updates(data_dir):
    """pace "timestamps": the stream's interval is the file's median spacing.
    An update of ``interval`` (not used by this pace) leaves the schedule and
    ``dt`` alone (it used to re-time the stream to it: data at 0.5 s with a
    60 s spacing); a new file of another spacing re-times it from the next
    sample, ``t`` going on from the last one."""
    write_csv(data_dir / "a.csv")
    write_csv(data_dir / "b.csv", [(ROWS[0][0] + 30 * i, v, lab) for i, (_, v, lab) in enumerate(ROWS)])   # 30 s apart
    clock = [5000.0]
    s = Session(clock=lambda: clock[0], wall=lambda: 1.7e9 + clock[0])
    reply = s.handle(json.dumps({"type": "subscribe", "id": "r", "generator": "replay", "speed": 600,
                                 "params": {"file": "a.csv", "time_column": "timestamp", "pace": "timestamps"}}))[0]
    assert reply["interval"] == 60.0
    sub = s.subscriptions["r"]

    def data(n):
        clock[0] = sub.pacer.due_time(sub.generator.seq + n - 1)
        return sub.take(clock[0], 8192).to_json()

    first = data(3)
    assert first["dt"] == 60.0 and first["t"] == 1.7e9 + 5000.0 and len(first["values"]) == 3
    updated = s.handle(json.dumps({"type": "update", "id": "r", "params": {"interval": 0.5}}))[0]
    assert updated["type"] == "updated" and updated["params"]["interval"] == 0.5
    msg = data(2)
    assert msg["dt"] == 60.0 and msg["t"] == first["t"] + 3 * 60.0
    assert sub.pacer.pace == 60.0 / 600 and sub.pacer.epoch == 1        # not re-timed
    s.handle(json.dumps({"type": "update", "id": "r", "params": {"file": "b.csv"}}))
    msg = data(2)
    assert msg["dt"] == 30.0 and msg["t"] == first["t"] + 4 * 60.0 + 30.0
    assert msg["values"] == VALUES[5:7].tolist()


def test_replay_is_built_off_the_event_loop():
    # reading a file may take a while: the adapters build replays in the offload worker
    from wsgen.server import offload
    assert offload.worth_offloading(False, None, "replay")
    assert not offload.worth_offloading(False, None, "sine") and not offload.worth_offloading(False, 0, None)


def test_replay_as_a_composition_base(data_dir):
    write_csv(data_dir / "load.csv")
    spec = {"interval": 1, "base": {"kind": "replay", "params": {"file": "load.csv"}},
            "anomalies": [{"kind": "spike", "placement": {"mode": "indices", "indices": [5]}, "height": 100}]}
    b = create_composite(spec, seed=1).take(40)
    assert b.labels.nonzero()[0].tolist() == [5]
    assert np.delete(b.values, 5).tolist() == np.delete(VALUES, 5).tolist()
    # a missing file is named where the composition holds it: the shared base, or a channel's own
    with pytest.raises(InvalidParams) as exc:
        create_composite({**spec, "base": {"kind": "replay", "params": {"file": "gone.csv"}}}, seed=1)
    assert [(d["field"], d["value"]) for d in exc.value.details] == [("base.params.file", "gone.csv")]
    assert "no such file in the data directory: 'gone.csv'" in exc.value.details[0]["message"]
    channels = {"base": {"kind": "sine"}, "channels": ["a", "b"],
                "bases": {"b": {"kind": "replay", "params": {"file": "gone.csv"}}}}
    with pytest.raises(InvalidParams) as exc:
        create_composite(channels, seed=1)
    assert [(d["field"], d["value"]) for d in exc.value.details] == [("bases.b.params.file", "gone.csv")]


# -- on the wire --------------------------------------------------------------------------

async def test_upload_then_replay_over_http_and_websocket(tmp_path):
    body = io.StringIO()
    w = csv.writer(body)
    w.writerow(["timestamp", "value", "label"])
    for t, v, lab in ROWS:
        w.writerow([t, v, int(lab)])
    before = datasets.data_dir()
    try:
        async with running_server(data_dir=str(tmp_path), max_upload_bytes=4096) as srv:
            async with httpx.AsyncClient(base_url=srv.http_url, timeout=30) as http:
                r = await http.post("/datasets?name=up/load.csv&label_column=label&time_column=timestamp",
                                    content=body.getvalue())
                assert r.status_code == 201, r.text
                assert r.json() == {"name": "up/load.csv", "rows": 40, "bytes": len(body.getvalue()),
                                    "labelled": True, "median_step_s": 60.0}
                assert (tmp_path / "up" / "load.csv").read_bytes() == body.getvalue().encode()
                listing = (await http.get("/datasets")).json()
                assert listing == {"data_dir": True, "files": [{"name": "up/load.csv", "bytes": len(body.getvalue())}]}
                # again: 409 unless overwrite
                assert (await http.post("/datasets?name=up/load.csv", content=body.getvalue())).status_code == 409
                assert (await http.post("/datasets?name=up/load.csv&overwrite=true",
                                        content=body.getvalue())).status_code == 201
                # a bad file: 422 naming row and column, nothing stored
                r = await http.post("/datasets?name=bad.csv", content="value\n1\n2\noops\n")
                assert r.status_code == 422 and r.json()["error"] == "invalid_dataset"
                d = r.json()["details"][0]
                assert d["field"] == "value_column" and "bad.csv: row 3, column 'value': 'oops'" in d["message"]
                assert (d["row"], d["column"]) == (3, "value")
                assert not (tmp_path / "bad.csv").exists() and not list(tmp_path.glob(".upload-*"))
                # too large: 413, nothing stored
                r = await http.post("/datasets?name=big.csv", content="value\n" + "1\n" * 3000)
                assert r.status_code == 413 and r.json()["error"] == "too_large"
                assert not (tmp_path / "big.csv").exists()
                # names that clash with the folders and files there: 409 naming the clash, even with overwrite
                for name, says in [("up/load.csv/x.csv", "up/load.csv is a file in the data directory"),
                                   ("up.csv/x.csv", None)]:
                    if says is None:        # a folder named like a file: fine under it, refused as a file
                        assert (await http.post(f"/datasets?name={name}", content="value\n1\n")).status_code == 201
                        name, says = "up.csv", "up.csv is a folder in the data directory"
                    for query in ("", "&overwrite=true"):
                        r = await http.post(f"/datasets?name={name}{query}", content="value\n1\n")
                        assert r.status_code == 409 and says in r.json()["message"], (name, r.text)
                assert not list(tmp_path.rglob(".upload-*"))
                # bad names
                for name in ("../x.csv", "x.exe", ""):
                    r = await http.post(f"/datasets?name={name}", content="value\n1\n")
                    assert r.status_code == 422 and r.json()["details"][0]["field"] == "name", name

                # HTTP: the file's rows and labels; at_end=end closes the stream after the last row
                r = await http.get("/replay?file=up/load.csv&label_column=label&at_end=end&speed=max&format=ndjson")
                rows = [orjson.loads(x) for x in r.text.splitlines()]
                assert [x["seq"] for x in rows] == list(range(40))
                assert [x["value"] for x in rows] == VALUES.tolist() and [x["label"] for x in rows] == LABELS.tolist()
                r = await http.get("/replay?file=up/load.csv&start_seq=1000003&count=3&speed=max&format=csv")
                lines = r.text.splitlines()
                assert lines[0] == "seq,t,value" and [float(x.split(",")[2]) for x in lines[1:]] == VALUES[[3, 4, 5]].tolist()
                r = await http.get("/replay?file=nope.csv&count=1")
                assert r.status_code == 422 and r.json()["details"][0]["field"] == "file"

            # WebSocket: the labels arrive with the values; the stream ends at the file's end
            async with Client(srv.ws_url, reconnect=False) as c:
                sub = await c.subscribe("replay", {"file": "up/load.csv", "label_column": "label", "at_end": "end",
                                                   "interval": 0}, speed="max")
                blocks = [b async for b in sub]
                values = np.concatenate([b.values for b in blocks])
                labels = np.concatenate([b.labels for b in blocks])
                assert values.tolist() == VALUES.tolist() and labels.tolist() == LABELS.tolist()
                sub = await c.subscribe("replay", {"file": "up/load.csv", "time_column": "timestamp",
                                                   "pace": "timestamps"}, speed="max")
                assert sub.interval == 60.0
                assert (await sub.take(50)).values.tolist() == VALUES[np.arange(50) % 40].tolist()
    finally:
        datasets.set_data_dir(before)


async def test_uploads_need_a_data_dir_and_can_be_turned_off(tmp_path):
    before = datasets.data_dir()
    try:
        datasets.set_data_dir(None)
        async with running_server() as srv:
            async with httpx.AsyncClient(base_url=srv.http_url, timeout=30) as http:
                r = await http.post("/datasets?name=a.csv", content="value\n1\n")
                assert r.status_code == 404 and r.json()["error"] == "no_data_dir"
                assert (await http.get("/datasets")).json() == {"data_dir": False, "files": []}
        async with running_server(data_dir=str(tmp_path), max_upload_bytes=0) as srv:
            async with httpx.AsyncClient(base_url=srv.http_url, timeout=30) as http:
                r = await http.post("/datasets?name=a.csv", content="value\n1\n")
                assert r.status_code == 403 and r.json()["error"] == "uploads_off"
    finally:
        datasets.set_data_dir(before)


def test_wsgen_serve_data_dir_and_wsgen_sub(tmp_path):
    write_csv(tmp_path / "load.csv")
    with ServeProcess("--log-level", "warning", "--data-dir", str(tmp_path)) as server:
        r = subprocess.run([*WSGEN, "sub", "replay", "--file", "load.csv", "--label-column", "label", "--at-end", "end",
                            "--interval", "0", "--speed", "max", "--format", "csv", "--url", server.url],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["seq", "t", "value", "label"]
    assert [float(x[2]) for x in rows[1:]] == VALUES.tolist()
    assert [x[3] == "true" for x in rows[1:]] == LABELS.tolist()
    bad = subprocess.run([*WSGEN, "serve", "--data-dir", str(tmp_path / "none"), "--port", "0", "--http-port", "0"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert bad.returncode != 0 and "not a directory" in bad.stderr
