"""Score a detector's alarms (CSV) against a stream regenerated from its definition, offline.

    wsgen score --spec composition.json --seed 1 --detections scores.csv   # a row per sample: seq,score
    wsgen score --spec composition.json --seed 1 --last 9999 --detections alarms.csv
    wsgen score --generator random-square --param minimum_interval=20 --seed 1 --last 9999 \\
                --detections alarms.csv --window 100

The stream is generated again in this process (no server needed) and the
figures (:func:`wsgen.scoring.figures.score`) printed as JSON. ``--detections`` is a
CSV file (``-``: standard input) with a header naming a ``seq`` column and
optionally ``score``. ``--spec`` is a composition, or a whole definition
(an object with ``generator``, as ``POST /score`` takes; options given on
the command line win). Exit status 2 on bad input, with the reason.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from wsgen.scoring.offline import DefinitionError, parse, read_csv, score_definition


def _window(text: str) -> str | int:
    if text in ("nab", "events"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a window is nab, events or a length in samples") from None


def configure(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--spec", metavar="FILE.json", help="a composition (or a definition with generator) as JSON")
    what.add_argument("--generator", metavar="NAME", help="an anomaly kind by name (see wsgen list)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="a param of --generator (repeatable; values are JSON, else text)")
    p.add_argument("--seed", type=int, help="the stream's seed (required unless the definition has it)")
    p.add_argument("--first", type=int, help="first scored seq (default 0)")
    p.add_argument("--last", type=int, help="last scored seq, inclusive (default: the definition's, else the "
                                            "largest seq of the CSV: right for a detector's output with a row "
                                            "per sample)")
    p.add_argument("--detections", required=True, metavar="FILE.csv", help="alarms: CSV with seq[,score]; - for stdin")
    p.add_argument("--window", type=_window, help="nab (default), events, or a window length in samples")
    p.add_argument("--probation", type=float, help="NAB's probationary fraction (default 0.15)")
    p.add_argument("--threshold", type=float, help="alarm when score >= threshold (default 0.5)")
    p.add_argument("--profile", help="one NAB profile (default: all three)")
    p.set_defaults(func=run)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def definition(args: argparse.Namespace) -> dict[str, Any]:
    """The definition the arguments describe (not yet validated)."""
    if args.spec:
        with open(args.spec, encoding="utf-8") as f:
            spec = json.load(f)
        data = dict(spec) if isinstance(spec, dict) and "generator" in spec else {"generator": spec}
    else:
        params = {}
        for item in args.param:
            name, sep, value = item.partition("=")
            if not sep:
                raise DefinitionError(f"--param {item!r}: write NAME=VALUE", [{"field": "param", "value": item,
                                                                             "message": "NAME=VALUE"}])
            params[name] = _value(value)
        data = {"generator": args.generator, "params": params}
    for key in ("seed", "first", "last", "window", "probation", "threshold", "profile"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    data.pop("detections", None)
    return data


def run(args: argparse.Namespace) -> int:
    try:
        data = definition(args)
        if args.detections == "-":
            text = sys.stdin.read()
        else:
            with open(args.detections, encoding="utf-8") as f:
                text = f.read()
        seqs, scores = read_csv(text)
        if "last" not in data and seqs:
            # a detector's output with a row per sample (seq,score) covers the range it read
            data["last"] = max(seqs)
            print(f"wsgen score: scoring seqs {data.get('first', 0)}..{data['last']} (the last seq of the CSV); "
                  "give --last for another range", file=sys.stderr)
        if data.get("seed") is None:
            # the truth is regenerated from the seed: pydantic's "Field required" said too little
            raise DefinitionError("the stream's seed is required: give --seed N (the seed its subscribed "
                                  "reply carried), or \"seed\" in the --spec file",
                                  [{"field": "seed", "value": None, "message": "required: an integer in [0, 2**64)"}])
        defn = parse(data)
        figures = score_definition(defn, seqs, scores)
    except (OSError, ValueError) as exc:     # DefinitionError is a ValueError; so is bad JSON
        print(f"wsgen score: {exc}", file=sys.stderr)
        return 2
    json.dump(figures, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0
