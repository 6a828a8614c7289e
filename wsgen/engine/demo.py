"""Demo values: lively parameters to look at a generator with.

The defaults of every kind are the original service's (one sample a second;
a 50 s sine period at its sample rate; a spike every 20 minutes), which its
scripts need and the HTTP endpoints keep. On a chart they look like a slowly
rising line. The demo values show each kind at a glance: 20 samples a
second (``interval`` 0.05 s), a period of a few seconds, an anomaly every few
seconds. The catalogue carries them (``demo`` beside each kind's JSON
Schema); the browser page and ``wsgen sub`` start from them and say so.

:func:`demo_params` gives a kind's demo values, validated against its model;
a kind without an entry here (one added later) gets ``interval`` 0.05 s
alone, when it has that field.
"""
from __future__ import annotations

from typing import Any

from wsgen.engine.params import GeneratorParams, validate_params

#: Seconds between samples in every demo: 20 samples a second.
DEMO_INTERVAL = 0.05

# Waveforms: sample n is at n / sample_rate s of signal time; sample_rate =
# 1 / interval makes signal time run at wall speed, so frequency is in real Hz.
_WAVE = {"frequency": 0.5, "sample_rate": 1 / DEMO_INTERVAL, "interval": DEMO_INTERVAL}

#: Demo values of each kind that needs more than ``interval`` (what it shows).
DEMOS: dict[str, dict[str, Any]] = {
    "sine": dict(_WAVE),                          # a 2 s period
    "cosine": dict(_WAVE),
    "square": dict(_WAVE),
    "sawtooth": dict(_WAVE),
    "triangle": dict(_WAVE),
    "random": {"anomaly_probability": 0.02, "interval": DEMO_INTERVAL},            # one in 2.5 s on average
    "random-square": {"minimum_interval": 40, "maximum_interval": 100,              # a plateau every 2-5 s
                      "min_anomaly_duration": 5, "max_anomaly_duration": 15, "interval": DEMO_INTERVAL},
    "clustered": {"minimum_interval": 40, "maximum_interval": 100,                  # a cluster every 2-5 s
                  "min_anomaly_length": 5, "max_anomaly_length": 15, "interval": DEMO_INTERVAL},
    "periodic-spike": {"spike_interval": 3.0, "interval": DEMO_INTERVAL},           # a spike every 3 s
    "count-per-duration": {"num_anomalies": 3, "duration": 10.0, "interval": DEMO_INTERVAL},  # 3 in 10 s
    "ou": {"dt": DEMO_INTERVAL, "interval": DEMO_INTERVAL},
    "random-walk": {"volatility": 0.2, "interval": DEMO_INTERVAL},
    "pulse": {"on_duration": 0.5, "off_duration": 1.5, "dt": DEMO_INTERVAL, "interval": DEMO_INTERVAL},
}


def demo_params(name: str, model: type[GeneratorParams]) -> dict[str, Any]:
    """The demo values of kind ``name`` (only the fields that differ from
    the defaults), valid for ``model``; ``{}`` when it has none."""
    fields = model.model_fields
    values = {k: v for k, v in DEMOS.get(name, {"interval": DEMO_INTERVAL}).items() if k in fields}
    try:
        validate_params(model, values)
    except ValueError:    # a kind whose rules these break: no demo rather than a bad one
        return {}
    return values
