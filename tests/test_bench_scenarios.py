"""`wsgen bench` server scenarios, run small through the real command line.

Not timed tests: each scenario starts its own `wsgen serve` child process,
measures, prints its table and writes JSON; these tests check that the
numbers it writes are real measurements of what happened (every expected
sample delivered, counts that add up, units that make sense), not that they
meet the targets (that is for the benchmark on its machine, in the README).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(180)


def bench(tmp_path, *args: str) -> dict:
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, "-m", "wsgen.cli", "bench", *args, "--json", str(out)],
                          capture_output=True, text=True, timeout=170)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out}" in proc.stdout
    payload = json.loads(out.read_text())
    assert payload["environment"]["cpus"] >= 1 and payload["targets"]
    return payload


def test_fanout_counts_every_expected_sample_and_its_lateness(tmp_path):
    payload = bench(tmp_path, "fanout", "--subscriptions", "30", "--connections", "3", "--interval", "0.02",
                    "--seconds", "2", "--repeat", "2")
    plain, batched = payload["results"]        # a row without batch and one with, by default
    assert (plain["batch"], batched["batch"]) == (False, True)
    assert payload["targets"]["server_cpu_us_per_msg"] == 4
    for row in (plain, batched):
        assert len(row["runs"]) == 2
        for run in row["runs"]:
            # 30 streams x 2 s / 0.02 s = 3000 samples due in the window, every one delivered
            assert run["samples_expected"] == 3000 and run["samples_delivered"] == 3000
            assert 0 <= run["lateness_p50_ms"] <= run["lateness_p99_ms"] <= run["lateness_max_ms"] < 1000
            assert 0 < run["server_cpu_pct"] < 200 and run["server_rss_mb"] > 10
            assert abs(run["drift_ms"]) < 100
            # CPU per data message: the window's server CPU over the data messages it sent (its /metrics),
            # about as many as the clients received due in the window
            assert 0 < run["messages"] <= 3000
            assert 0.8 * run["messages"] <= run["server_messages"] <= 1.2 * run["messages"] + 60
            assert run["server_cpu_us_per_msg"] == pytest.approx(
                run["server_cpu_pct"] / 100 * (2 + 0.1) / run["server_messages"] * 1e6)
        assert row["samples_delivered"] == 3000 and row["workers"] == "1" and row["clients"] == 1


def test_fanout_with_workers_counts_every_worker_and_finds_a_capacity(tmp_path):
    payload = bench(tmp_path, "fanout", "--subscriptions", "20", "--connections", "4", "--interval", "0.02",
                    "--seconds", "1.5", "--repeat", "1", "--workers", "2", "--no-batch",
                    "--capacity", "--capacity-max", "40", "--clients", "2", "--capacity-p99-ms", "5000")
    *probes, found = payload["results"]
    assert [p["subscriptions"] for p in probes[:2]] in ([20, 40], [20, 10])     # doubles while runs pass
    for p in probes:
        assert p["workers"] == "2" and p["batch"] is False and p["clients"] == 2
        assert p["server_messages"] > 0 and p["server_cpu_us_per_msg"] > 0
        assert p["samples_expected"] == p["subscriptions"] * 75
        assert p["server_rss_mb"] > 40        # the supervisor and two workers, each with numpy loaded
    # the capacity is the largest probe that delivered everything within the p99 asked for
    ok = [p["subscriptions"] for p in probes
          if p["samples_delivered"] >= p["samples_expected"] and p["lateness_p99_ms"] <= 5000]
    assert found == {"workers": "2", "batch": False, "capacity_subscriptions": max(ok, default=0),
                     "interval_s": 0.02, "connections": 4}


def test_throughput_reports_each_generator_and_encoding(tmp_path):
    payload = bench(tmp_path, "throughput", "--seconds", "0.5", "--repeat", "1",
                    "--generators", "sine,uniform", "--encodings", "json,binary")
    rows = {(r["generator"], r["encoding"]): r for r in payload["results"]}
    assert set(rows) == {("sine", "json"), ("sine", "binary"), ("uniform", "json"), ("uniform", "binary")}
    for (gen, enc), r in rows.items():
        # MB/s over samples/s is the bytes per sample: 8 and a few header bytes in
        # binary, the JSON text of a float (about 18-20 characters with its comma)
        per_sample = r["mb_per_s"] * 1e6 / r["samples_per_s"]
        assert r["samples_per_s"] > 1e5, r
        assert (8 <= per_sample < 8.1) if enc == "binary" else (12 < per_sample < 25), (gen, enc, per_sample)


def test_update_and_memory_scenarios_measure(tmp_path):
    update = bench(tmp_path, "update", "--repeat", "1")["results"][0]
    assert 0 < update["updated_p50_ms"] <= update["updated_p99_ms"] < 1000
    assert update["updated_p50_ms"] <= update["first_sample_p50_ms"] < 1000
    memory = bench(tmp_path, "memory", "--connections", "100", "--repeat", "1")["results"][0]
    assert memory["connections"] == 100 and 0 < memory["kb_per_connection"] < 1000


def test_http_scenario_counts_lines(tmp_path):
    (row,) = bench(tmp_path, "http", "--seconds", "0.5", "--repeat", "1")["results"]
    # "0.0\n" to "-0.9980267284282716\n": 4 to 20 bytes a line
    assert row["path"] == "/sine" and row["samples_per_s"] > 1e5
    assert 4 <= row["mb_per_s"] * 1e6 / row["samples_per_s"] <= 20
