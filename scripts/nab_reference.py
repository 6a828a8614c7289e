"""Reference NAB scores computed with NAB's own code, for tests/test_scoring.py.

Not part of wsgen and not run by the tests (NAB cannot be downloaded at test
time, and no PyPI package carries its scorer). It made
``tests/data/nab_reference.json`` with:

    # numenta/NAB at commit ea702d75cc2258d9d7dd35ca8e5e2539d71f3140, its nab/ and config/ in $NAB
    python3 -m venv /tmp/nabref/venv && /tmp/nabref/venv/bin/pip install '.[nab-reference]'
    /tmp/nabref/venv/bin/python scripts/nab_reference.py $NAB > tests/data/nab_reference.json

For each case (data length, anomaly rows, alarm rows, probationary fraction)
it runs, from NAB:

* the windows: ``nab.labeler.LabelCombiner.applyWindows`` then
  ``checkWindows`` (window size 0.1), on a one-file corpus of timestamps one
  minute apart;
* the raw score of each profile of ``config/profiles.json``:
  ``nab.sweeper.Sweeper(probationPercent, costMatrix).scoreDataSet`` with
  anomaly score 1 at the alarms, 0 elsewhere, threshold 1;
* the normalised score as ``nab/runner.py``'s ``normalize`` does it:
  ``100 * (score - null) / (perfect - null)``, ``null`` the same scorer's
  score with no alarm, ``perfect = tpWeight * number of windows``.

Cases whose windows NAB cannot build are skipped: an odd window length
(its Python 3 labeler indexes timestamps with ``length / 2``), three
mutually overlapping windows (merged in one pass), and windows left
wholly inside the probationary period (normalised on a window that cannot
score). wsgen's docs (wsgen/scoring/figures.py) state these differences.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import random
import sys


def main(nab_dir: str) -> None:
    # NAB's own modules, from the checkout given on the command line, in NAB's
    # venv (pandas, the 'nab-reference' extra): nothing wsgen itself imports
    sys.path.insert(0, nab_dir)
    import pandas
    LabelCombiner = importlib.import_module("nab.labeler").LabelCombiner
    Sweeper = importlib.import_module("nab.sweeper").Sweeper
    getProbationPeriod = importlib.import_module("nab.util").getProbationPeriod

    with open(f"{nab_dir}/config/profiles.json") as f:
        profiles = json.load(f)

    class DataFile:
        def __init__(self, n: int) -> None:
            self.data = pandas.DataFrame({"timestamp": pandas.date_range("2020-01-01", periods=n, freq="min")})

    class Corpus:
        def __init__(self, n: int) -> None:
            self.dataFiles = {"f.csv": DataFile(n)}

    def nab_case(n: int, anomalies: list[int], alarms: list[int], probation: float) -> dict | None:
        labeler = LabelCombiner.__new__(LabelCombiner)
        labeler.corpus, labeler.windowSize, labeler.verbosity = Corpus(n), 0.1, 0
        labeler.probationaryPercent = probation
        labeler.labelIndices = {"f.csv": anomalies}
        length = int(0.1 * n / len(anomalies)) if anomalies else int(0.1 * n)
        if length % 2:
            return None
        with contextlib.redirect_stdout(io.StringIO()):
            labeler.applyWindows()
            labeler.checkWindows()
        windows = [[pandas.Timestamp(a), pandas.Timestamp(b)] for a, b in labeler.combinedWindows["f.csv"]]
        stamps = list(labeler.corpus.dataFiles["f.csv"].data["timestamp"])
        rows = [[stamps.index(a), stamps.index(b)] for a, b in windows]
        if any(rows[i + 1][0] <= rows[i][1] for i in range(len(rows) - 1)):
            return None    # left overlapping by the one-pass merge
        p = getProbationPeriod(probation, n)
        if any(b < p for _, b in rows):
            return None
        scores = [1.0 if i in set(alarms) else 0.0 for i in range(n)]
        out = {"length": n, "anomalies": anomalies, "alarms": sorted(set(alarms)), "probation": probation,
               "windows": rows, "profiles": {}}
        for name, profile in profiles.items():
            sweeper = Sweeper(probationPercent=probation, costMatrix=profile["CostMatrix"])
            _, row = sweeper.scoreDataSet(stamps, scores, windows, "f.csv", 1.0)
            _, null = sweeper.scoreDataSet(stamps, [0.0] * n, windows, "f.csv", 1.0)
            perfect = len(windows) * profile["CostMatrix"]["tpWeight"]
            normalised = 100 * (row.score - null.score) / (perfect - null.score) if windows else None
            out["profiles"][name] = {"raw": row.score, "score": normalised, "tp": row.tp, "fp": row.fp}
        return out

    cases = []
    # hand-picked: alarm at a window's first sample, its last, two in one window, far FP, missed, none
    for n, anomalies, alarms, probation in [
        (200, [100], [90], 0.0), (200, [100], [110], 0.0), (200, [100], [95, 105], 0.0),
        (200, [100], [95, 190], 0.0), (200, [50, 150], [150], 0.0), (200, [100], [], 0.0),
        (1000, [400, 800], [350, 390, 420, 900], 0.15), (1000, [100, 600], [120, 610, 700], 0.15),
        (10000, [1000, 4000, 6000, 9000], [500, 900, 5100, 5300, 7000, 9999], 0.15),
    ]:
        case = nab_case(n, anomalies, alarms, probation)
        assert case is not None, (n, anomalies)
        cases.append(case)
    rng = random.Random(20261202)
    while len(cases) < 60:
        n = rng.choice([100, 500, 2000, 8000])
        anomalies = sorted(rng.sample(range(n), rng.randint(0, 5)))
        alarms = sorted(rng.sample(range(n), rng.randint(0, 30)))
        case = nab_case(n, anomalies, alarms, rng.choice([0.0, 0.1, 0.15]))
        if case is not None:
            cases.append(case)
    json.dump({"nab_commit": "ea702d75cc2258d9d7dd35ca8e5e2539d71f3140", "cases": cases}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
