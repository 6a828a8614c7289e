"""``wsgen sub`` and ``wsgen list`` as subprocesses against a ``wsgen serve`` subprocess."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import wsgen
from wsgen.cli import subscriber

ROOT = Path(__file__).resolve().parent.parent
WSGEN = [sys.executable, "-m", "wsgen.cli"]

from reference import engine  # noqa: E402  (tests/ is on sys.path under pytest)
from servers import ServeProcess  # noqa: E402


@contextlib.contextmanager
def served(*args: str):
    """A ``wsgen serve`` subprocess on free ports; yields its WebSocket URL."""
    with ServeProcess("--log-level", "warning", *args) as server:
        yield server.url


@pytest.fixture(scope="module")
def url():
    with served() as ws_url:
        yield ws_url


def run(*args, input: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([*WSGEN, *args], capture_output=True, text=True, timeout=timeout,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL)


def assert_clean(stderr: str) -> None:
    assert "Traceback" not in stderr and "Error" not in stderr.replace("error ", ""), stderr


def test_sub_csv_values_equal_engine(url):
    r = run("sub", "sine", "--count", "50", "--format", "csv", "--seed", "1", "--speed", "max", "--url", url,
            "--amplitude", "3", "--defaults")
    assert r.returncode == 0, r.stderr
    assert_clean(r.stderr)
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["seq", "t", "value"]
    data = rows[1:]
    assert len(data) == 50
    assert [int(row[0]) for row in data] == list(range(50))
    np.testing.assert_allclose(np.diff([float(row[1]) for row in data]), 1.0, atol=2e-6)   # (stamps in whole us)
    expected, _ = engine("sine", {"amplitude": 3}, 1, 50)
    np.testing.assert_array_equal([float(row[2]) for row in data], expected)
    assert "seed=1" in r.stderr


def test_sub_ndjson_labels_binary(url):
    r = run("sub", "random", "--count", "300", "--format", "ndjson", "--seed", "5", "--speed", "max", "--binary",
            "--url", url, "--anomaly-probability", "0.3", "-p", "anomaly_range=4")
    assert r.returncode == 0, r.stderr
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(objs) == 300 and set(objs[0]) == {"seq", "t", "value", "label"}
    values, labels = engine("random", {"anomaly_probability": 0.3, "anomaly_range": 4}, 5, 300)
    assert [o["seq"] for o in objs] == list(range(300))
    np.testing.assert_array_equal([o["value"] for o in objs], values)
    assert [o["label"] for o in objs] == labels.tolist()
    assert 30 < sum(labels) < 150


def test_sub_csv_label_column_and_text_format(url):
    r = run("sub", "clustered", "--count", "400", "--format", "csv", "--seed", "2", "--speed", "max", "--url", url,
            "--defaults")
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["seq", "t", "value", "label"]
    _, labels = engine("clustered", {}, 2, 400)
    assert {row[3] for row in rows[1:]} <= {"true", "false"}            # as the HTTP csv
    assert [row[3] == "true" for row in rows[1:]] == labels.tolist()

    r = run("sub", "sine", "--count", "20", "--format", "text", "--seed", "3", "--speed", "max", "--url", url,
            "--offset=0.1", "--sample-rate", "7", "--phase", "-30", "--defaults")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    expected, _ = engine("sine", {"offset": 0.1, "sample_rate": 7, "phase": -30}, 3, 20)
    assert lines == [repr(v) for v in expected.tolist()]      # full precision


def test_sub_duration_keeps_streaming_after_stdin_eof(url):
    started = time.monotonic()
    r = run("sub", "sine", "--interval", "0.01", "--duration", "1", "--format", "ndjson", "--url", url)
    elapsed = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    assert 10 <= len(objs) <= 130          # ~100 at 100 samples/s (fewer on a loaded machine); stdin was at EOF
    assert [o["seq"] for o in objs] == list(range(len(objs)))
    assert 1.0 <= elapsed < 30             # it streamed its whole second, not stopping at EOF


def test_sub_live_update_from_stdin(url):
    proc = subprocess.Popen([*WSGEN, "sub", "sine", "--interval", "0.01", "--count", "150", "--format", "csv",
                             "--seed", "1", "--url", url, "--defaults"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        head = [proc.stdout.readline() for _ in range(41)]      # header + 40 samples
        proc.stdin.write("frequency=10\n")
        proc.stdin.flush()
        rest, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    rows = list(csv.reader(io.StringIO("".join(head) + rest)))[1:]
    assert [int(r[0]) for r in rows] == list(range(150))
    match = re.search(r"updated at seq (\d+): frequency=10", err)
    assert match, err
    u = int(match.group(1))
    assert 40 <= u < 150
    expected, _ = engine("sine", {"interval": 0.01}, 1, 150, [(u, {"frequency": 10})])
    got = np.array([float(r[2]) for r in rows])
    np.testing.assert_array_equal(got, expected)
    unchanged, _ = engine("sine", {"interval": 0.01}, 1, 150)
    assert not np.array_equal(got[u:], unchanged[u:])            # the update is visible
    assert "frequency" not in rest                               # acks never go into the data


def test_sub_stdin_errors_and_pause_go_to_stderr(url):
    r = run("sub", "sine", "--interval", "0.01", "--duration", "1.5", "--url", url, "--format", "text",
            input="amplitude=oops\nnonsense\npause\nresume\n")
    assert r.returncode == 0, r.stderr
    assert "error invalid_params:" in r.stderr and "cannot read 'nonsense'" in r.stderr
    assert re.search(r"paused at seq \d+", r.stderr) and re.search(r"resumed at seq \d+", r.stderr)
    for line in r.stdout.splitlines():
        float(line)


def test_sub_sigint_ends_cleanly(url):
    proc = subprocess.Popen([*WSGEN, "sub", "sine", "--interval", "0.01", "--url", url], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(10):
            float(proc.stdout.readline())
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode in (0, 130)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert rest == "" or rest.endswith("\n")
    for line in rest.splitlines():
        float(line)


def test_sub_broken_pipe_is_quiet(url):
    proc = subprocess.Popen([*WSGEN, "sub", "sine", "--interval", "0", "--speed", "max", "--url", url],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(5):
            proc.stdout.readline()
        proc.stdout.close()                    # like `| head -5`
        err = proc.stderr.read().decode()
        proc.wait(10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err


def test_sub_server_errors_exit_2(url):
    r = run("sub", "nosuch", "--url", url, "--count", "1")
    assert r.returncode == 2
    assert r.stderr.startswith("error unknown_generator: ") and r.stdout == ""
    r = run("sub", "sine", "--url", url, "--count", "1", "--amplitude", "loud")
    assert r.returncode == 2 and "error invalid_params: " in r.stderr and "amplitude" in r.stderr
    assert "Traceback" not in r.stderr


def test_sub_to_a_path_the_websocket_port_does_not_serve_says_what_it_serves(url):
    r = run("sub", "sine", "--url", url + "/nosuch", "--count", "1")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "HTTP 404 (no generator at /nosuch; connect to / and send messages, or to /<generator>: sine, " \
        in r.stderr, r.stderr


def test_sub_unreachable_server_and_bad_arguments():
    r = run("sub", "sine", "--url", "ws://127.0.0.1:1", "--count", "1")
    assert r.returncode == 1 and "cannot connect" in r.stderr and "Traceback" not in r.stderr
    r = run("sub", "sine", "--amplitude")
    assert r.returncode == 2 and "needs a value" in r.stderr
    r = run("sub", "sine", "-p", "novalue")
    assert r.returncode == 2 and "name=value" in r.stderr


def test_list_local_and_remote(url):
    r = run("list")
    assert r.returncode == 0, r.stderr
    for gen in wsgen.catalogue():
        assert re.search(rf"^{re.escape(gen['name'])}\s+\({gen['family']}", r.stdout, re.M), gen["name"]
    sine = next(b for b in r.stdout.split("\n\n") if b.startswith("sine "))
    assert re.search(r"^\s+amplitude\s+4\.0\s+Peak amplitude", sine, re.M)
    # the default, then the demo value the page and wsgen sub start from
    assert re.search(r"^\s+frequency\s+2\.0 Hz\s+demo 0\.5\s+Frequency in Hz", sine, re.M)
    assert re.search(r"^\s+interval\s+1\.0 s\s+demo 0\.05\s", sine, re.M)
    assert "'demo' values are lively ones" in r.stdout.splitlines()[0]

    r = run("list", "--json")
    assert json.loads(r.stdout) == json.loads(json.dumps(wsgen.catalogue()))

    r = run("list", "--url", url)
    assert r.returncode == 0, r.stderr
    assert all(gen["name"] in r.stdout for gen in wsgen.catalogue())
    assert "amplitude" in r.stdout


def test_progress_bar_on_tty_stderr_only(url):
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def drain():
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        r = subprocess.run([*WSGEN, "sub", "sine", "--count", "5000", "--speed", "max", "--url", url, "-q",
                            "--interval", "0"], stdout=subprocess.PIPE, stderr=slave,
                           stdin=subprocess.DEVNULL, timeout=30)
    finally:
        os.close(slave)
        reader.join(5)
        os.close(master)
    tty = b"".join(chunks).decode(errors="replace")
    assert r.returncode == 0
    assert "5000/5000" in tty, tty
    out = r.stdout.decode().splitlines()
    assert len(out) == 5000 and all(re.fullmatch(r"-?\d+\.\d+(e-?\d+)?", line) for line in out)
    # stderr not a terminal: no bar at all
    r = run("sub", "sine", "--count", "5000", "--speed", "max", "--url", url, "-q", "--interval", "0")
    assert r.stderr == "" and len(r.stdout.splitlines()) == 5000


def test_want_progress_and_param_parsing():
    assert subscriber.want_progress(5000, 1.0, "max", False, True)
    assert not subscriber.want_progress(5000, 1.0, "max", True, True)      # stdout is a terminal
    assert not subscriber.want_progress(5000, 1.0, "max", False, False)    # stderr is not
    assert not subscriber.want_progress(None, 1.0, 1.0, False, True)
    assert not subscriber.want_progress(50, 0.01, 1.0, False, True)        # short
    assert subscriber.want_progress(50, 1.0, 1.0, False, True)             # 50 s
    params, bad = subscriber.params_from_extras(["--amplitude", "3", "--offset=-2.5", "--sample-rate", "1e3",
                                                 "--name", "abc", "--flag", "true", "stray"])
    assert params == {"amplitude": 3, "offset": -2.5, "sample_rate": 1000.0, "name": "abc", "flag": True}
    assert bad == ["stray"]
    assert subscriber.parse_assignments(["frequency=5", "mode=x"]) == {"frequency": 5, "mode": "x"}


@pytest.mark.parametrize("name", ["async_client.py", "sync_numpy.py", "detector_testing.py"])
def test_examples_run(url, name):
    r = subprocess.run([sys.executable, str(ROOT / "clients" / "examples" / name), url], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() and "Traceback" not in r.stderr


COMPOSITION = {
    "interval": 0.5,
    "base": {"kind": "constant", "params": {"value": 1.0}},
    "noise": {"kind": "uniform", "low": -0.1, "high": 0.1},
    "anomalies": [{"kind": "spike", "placement": {"mode": "indices", "indices": [3]}, "height": 5.0}],
    "faults": {"nulls": {"placement": {"mode": "indices", "indices": [7]}},
               "gaps": {"placement": {"mode": "indices", "indices": [10]}, "min_length": 2, "max_length": 2},
               "duplicates": {"placement": {"mode": "indices", "indices": [15]}}},
}


def test_sub_spec_composition_ndjson_and_csv(url, tmp_path):
    from wsgen.engine.composite import create_composite
    ref = create_composite(COMPOSITION, seed=9).take(40)
    n = 30
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(COMPOSITION))
    r = run("sub", "--spec", str(path), "--count", str(n), "--format", "ndjson", "--seed", "9", "--speed", "max",
            "--url", url)
    assert r.returncode == 0, r.stderr
    assert_clean(r.stderr)
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(objs) == n and set(objs[0]) == {"seq", "t", "value", "label", "events"}
    assert [o["seq"] for o in objs] == ref.seqs[:n].tolist()
    np.testing.assert_array_equal([np.nan if o["value"] is None else o["value"] for o in objs], ref.values[:n])
    assert [o["label"] for o in objs] == ref.labels[:n].tolist()
    by_seq = {o["seq"]: o for o in objs}
    assert [e["kind"] for e in by_seq[3]["events"]] == ["spike"] and by_seq[7]["value"] is None
    assert [(e["kind"], e["first"], e["last"]) for e in by_seq[12]["events"]] == [("gap", 10, 11)]
    assert [o["seq"] for o in objs].count(15) == 2

    r = run("sub", "--spec", json.dumps(COMPOSITION), "--count", "20", "--format", "csv", "--seed", "9",
            "--speed", "max", "--url", url)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert list(rows[0]) == ["seq", "t", "value", "label", "events"] and len(rows) == 20
    by_seq = {int(row["seq"]): row for row in rows}
    assert by_seq[3]["events"] == "spike:96:3:3" and by_seq[3]["label"] == "true"
    assert by_seq[7]["value"] == "" and by_seq[7]["events"].startswith("null:")

    bad = run("sub", "sine", "--spec", str(path), "--url", url)
    assert bad.returncode == 2 and "--spec" in bad.stderr
    bad = run("sub", "--spec", json.dumps({"anomalies": [{"kind": "nope"}]}), "--url", url)
    assert bad.returncode == 2 and "invalid_params" in bad.stderr and "anomalies.0.kind" in bad.stderr


def test_sub_and_list_take_a_bearer_token_from_the_option_or_the_environment():
    token = "cli-T0ken"
    with served("--token", token) as url:
        env = {k: v for k, v in os.environ.items() if k != "WSGEN_TOKEN"}
        sub = [*WSGEN, "sub", "sine", "--count", "3", "--speed", "max", "--seed", "1", "--url", url, "--defaults"]
        # no token: exit 1, and the line says what to do
        r = subprocess.run(sub, capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
        assert r.returncode == 1 and "401" in r.stderr and "--token or set WSGEN_TOKEN" in r.stderr, r.stderr
        assert_clean(r.stderr)
        r = subprocess.run([*sub, "--token", "wrong"], capture_output=True, text=True, timeout=30, env=env,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 1 and "refused this token" in r.stderr, r.stderr
        # the option, then the environment
        expected = [f"{v:.3f}" for v in wsgen.create("sine", seed=1).take(3).values]
        for extra, environ in (["--token", token], []), ([], {**env, "WSGEN_TOKEN": token}):
            r = subprocess.run([*sub, *extra], capture_output=True, text=True, timeout=30,
                               env=environ or env, stdin=subprocess.DEVNULL)
            assert r.returncode == 0, r.stderr
            assert [f"{float(x):.3f}" for x in r.stdout.split()] == expected
        r = subprocess.run([*WSGEN, "list", "--url", url, "--json"], capture_output=True, text=True, timeout=30,
                           env={**env, "WSGEN_TOKEN": token}, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        assert {g["name"] for g in json.loads(r.stdout)} >= {"sine", "normal", "clustered"}


def test_output_rows_are_the_http_rows_with_skipped_seqs():
    """wsgen sub's csv/ndjson rows come from wsgen.protocol.lines (as over
    HTTP), with each sample's own seq when a joined block skips some, and no
    label column when labels are not wanted."""
    from wsgen.client import Block
    block = Block(seq=10, t=1700000000.0, dt=0.5, values=np.array([0.25, -1.5, 3.0]),
                  labels=np.array([False, True, False]), id="a",
                  explicit_seqs=np.array([10, 11, 14]),
                  explicit_timestamps=np.array([1700000000.0, 1700000000.5, 1700000002.0]))
    out = io.StringIO()
    subscriber.Output("csv", out, labels=True).write(block)
    assert out.getvalue() == ("seq,t,value,label\n10,1700000000.000000,0.25,false\n"
                              "11,1700000000.500000,-1.5,true\n14,1700000002.000000,3.0,false\n")
    out = io.StringIO()
    subscriber.Output("ndjson", out, labels=False).write(block)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {"seq": 10, "t": 1700000000.0, "value": 0.25}, {"seq": 11, "t": 1700000000.5, "value": -1.5},
        {"seq": 14, "t": 1700000002.0, "value": 3.0}]


def test_version_prints_the_package_version():
    r = run("--version")
    assert (r.returncode, r.stdout, r.stderr) == (0, f"wsgen {wsgen.__version__}\n", "")


def test_sub_max_lag_needs_backpressure_drop_and_says_so_in_one_line(url, tmp_path):
    # docs/protocol.md: max_lag "only with backpressure "drop" (else invalid_message)"; the help of --max-lag
    # says "with --backpressure drop": --max-lag does not imply drop, it is refused in one line saying what is allowed
    refusal = ('error invalid_message: max_lag bounds the lag of backpressure "drop"; give it with backpressure '
               '"drop" or leave it out\n')
    r = run("sub", "sine", "--url", url, "--count", "2", "-q", "--max-lag", "0.5")
    assert (r.returncode, r.stdout, r.stderr) == (2, "", refusal)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"base": {"kind": "sine"}}))
    r = run("sub", "--spec", str(spec), "--url", url, "--count", "2", "-q", "--max-lag", "0.5")
    assert (r.returncode, r.stdout, r.stderr) == (2, "", refusal)
    r = run("sub", "sine", "--url", url, "--count", "2", "-q", "--seed", "1", "--defaults",
            "--backpressure", "drop", "--max-lag", "0.5")
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.splitlines() == [repr(v) for v in wsgen.create("sine", {}, seed=1).take(2).values.tolist()]
    # a named stream's subscription carries no max_lag: refused before connecting, not silently dropped
    r = run("sub", "--stream", "plant", "--url", "ws://127.0.0.1:1", "--max-lag", "0.5")
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == ("wsgen sub: --stream subscribes to a named stream: give no generator name, --spec, "
                        "parameters, --seed, --speed or --max-lag (the stream has its own, at the wall clock)\n")
