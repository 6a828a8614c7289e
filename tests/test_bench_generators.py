"""``wsgen bench generators``: runs through the CLI, prints a table for the
asked kinds and writes JSON with every cell."""
from __future__ import annotations

import json

from wsgen import bench
from wsgen.cli import build_parser, main
from wsgen.engine import GENERATORS


def test_generators_scenario_table_and_json(tmp_path, capsys):
    out = tmp_path / "sub" / "gen.json"
    rc = main(["bench", "generators", "--seconds", "0.02", "--kinds", "sine,count-per-duration",
               "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "sine" in text and "count-per-duration" in text and "normal" not in text
    data = json.loads(out.read_text())
    assert data["scenario"] == "generators"
    assert data["settings"]["kinds"] == ["sine", "count-per-duration"]
    assert data["settings"]["blocks"] == [1, 64, 4096]
    cells = {(c["kind"], c["block"]) for c in data["cells"]}
    assert cells == {(k, b) for k in ("sine", "count-per-duration") for b in (1, 64, 4096)}
    for c in data["cells"]:
        assert c["calls"] > 0 and c["samples"] == c["calls"] * c["block"]
        assert c["seconds"] > 0 and c["samples_per_s"] > 0 and c["us_per_call"] > 0
        assert c["median_us_per_call"] > 0
    assert set(data["summary"]) == {"sine", "count-per-duration"}
    assert data["targets"] == {"samples_per_s_at_block_4096": 10e6, "us_per_call_at_block_1": 5.0}


def test_default_kinds_blocks_and_json_path():
    args = build_parser().parse_args(["bench", "generators"])
    assert args.func is bench.run_generators
    assert args.kinds is None and args.blocks == [1, 64, 4096]
    assert args.seconds == 0.3 and args.json == "bench-results/generators.json"


def test_unknown_kind_refused(capsys):
    assert main(["bench", "generators", "--kinds", "nope", "--json", ""]) == 2
    assert "nope" in capsys.readouterr().err


def test_scenarios_are_a_subparsers_group():
    assert "generators" in bench.SCENARIOS
    assert list(bench.SCENARIOS)[0] == "generators"
    cell = bench.measure("normal", 64, 0.01)
    assert cell.kind == "normal" and cell.block == 64 and cell.samples == 64 * cell.calls
    assert len(GENERATORS) == 20    # 13 of the original service, 7 of issue 15


def test_params_are_given_to_every_measured_kind(tmp_path, capsys):
    out = tmp_path / "gen.json"
    rc = main(["bench", "generators", "--seconds", "0.01", "--kinds", "random-walk", "--blocks", "64",
               "--params", '{"min": -1, "max": 1}', "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["settings"]["params"] == {"min": -1, "max": 1}
    assert data["cells"][0]["kind"] == "random-walk" and data["cells"][0]["block"] == 64
    capsys.readouterr()
    # parameters the kind refuses: exit 2 naming the field
    assert main(["bench", "generators", "--kinds", "random-walk", "--params", '{"min": 2, "max": 1}',
                 "--json", ""]) == 2
    assert "min" in capsys.readouterr().err
