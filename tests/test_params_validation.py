"""Parameter validation: every rule, on creation and on live update; every
error names the field, the value given and what is allowed; a refused update
leaves the generator unchanged."""
from __future__ import annotations

import math

import numpy as np
import pytest

from wsgen.engine import ANOMALY_KINDS, GENERATORS, InvalidParams, UnknownGenerator, create, get_spec, validate_params

KINDS = list(GENERATORS)
NON_FINITE = [float("nan"), float("inf"), float("-inf"), "nan", "inf", "-Infinity"]


def fields_of(kind, annotation):
    return [f for f, info in get_spec(kind).params_model.model_fields.items() if info.annotation is annotation]


FLOAT_FIELDS = [(k, f) for k in KINDS for f in fields_of(k, float)]
INT_FIELDS = [(k, f) for k in KINDS for f in fields_of(k, int)]


def refused(kind, params, field, *allowed_words):
    """Assert that ``params`` is refused on creation and as an update, naming
    ``field``, the value given and what is allowed (each of ``allowed_words``
    appears in the message)."""
    with pytest.raises(InvalidParams) as info:
        create(kind, params, seed=1)
    check_error(info.value, field, params.get(field, None), allowed_words)

    g = create(kind, {}, seed=1)
    before = g.params
    with pytest.raises(InvalidParams) as info:
        g.update(params)
    check_error(info.value, field, params.get(field, None), allowed_words)
    assert g.params == before


def check_error(exc, field, value, allowed_words):
    fields = [d["field"] for d in exc.details]
    assert field in fields, exc.details
    d = exc.details[fields.index(field)]
    assert set(d) >= {"field", "value", "message"}
    if value is not None:
        given = d["value"]
        if isinstance(value, float) and not math.isfinite(value):
            assert str(given).lower() == str(value).lower()
        elif isinstance(value, str):
            assert given == value
        else:
            assert given == value, (given, value)
    for word in allowed_words:
        assert word in d["message"], (word, d["message"])
    text = str(exc)
    assert field in text and d["message"] in text


def test_every_kind_accepts_its_defaults_and_reports_them():
    for kind in KINDS:
        g = create(kind, seed=1)
        defaults = {f: info.default for f, info in get_spec(kind).params_model.model_fields.items()}
        assert g.params.model_dump() == defaults
        assert g.sample_interval == defaults[get_spec(kind).interval_field]


# -- NaN and infinities are refused everywhere --------------------------------

@pytest.mark.parametrize("kind,field", FLOAT_FIELDS)
@pytest.mark.parametrize("bad", NON_FINITE, ids=repr)
def test_non_finite_refused(kind, field, bad):
    refused(kind, {field: bad}, field, "finite")


@pytest.mark.parametrize("kind,field", INT_FIELDS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")], ids=repr)
def test_non_finite_refused_in_integer_fields(kind, field, bad):
    refused(kind, {field: bad}, field)


#: fields that are neither float nor int (lists, choices, optional bounds): tests/test_new_kinds.py
#: checks each of them
OTHER_FIELDS = {"random-walk": {"min", "max"}, "steps": {"steps"}, "pattern": {"values", "interpolation"},
                "seasonal": {"components"},
                "replay": {"file", "value_column", "time_column", "label_column", "at_end", "pace"}}


def test_float_and_int_fields_cover_every_parameter():
    for kind in KINDS:
        names = set(get_spec(kind).params_model.model_fields)
        assert names == set(fields_of(kind, float)) | set(fields_of(kind, int)) | OTHER_FIELDS.get(kind, set()), kind


# -- ranges -----------------------------------------------------------------------

WAVES = ["sine", "cosine", "square", "sawtooth", "triangle"]


@pytest.mark.parametrize("kind", WAVES)
@pytest.mark.parametrize("bad", [0, 0.0, -1, -1e-300, 5e-324, 1e-7])
def test_sample_rate_must_be_positive(kind, bad):
    # > 0, and at least 1e-6 Hz so frequency / sample_rate stays finite
    refused(kind, {"sample_rate": bad}, "sample_rate", "greater than or equal to 0.000001")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", [5e-324, 1e-300, 9e-7])
def test_nonzero_intervals_below_a_microsecond_are_refused(kind, bad):
    field = get_spec(kind).interval_field
    with pytest.raises(InvalidParams) as exc:
        create(kind, {field: bad})
    assert exc.value.details[0]["field"] == field
    assert "0.000001" in exc.value.details[0]["message"] or "1e-06" in exc.value.details[0]["message"]


@pytest.mark.parametrize("kind", KINDS)
def test_intervals_must_not_be_negative(kind):
    field = get_spec(kind).interval_field
    for bad in (-1, -0.001):
        refused(kind, {field: bad}, field, "0")
    if kind in ("periodic-spike", "count-per-duration"):
        # stream time places their anomalies: the interval must be > 0 (>= 1 us)
        refused(kind, {field: 0}, field, "greater than or equal to 0.000001")
    else:
        assert create(kind, {field: 0}, seed=1).sample_interval == 0.0
    assert create(kind, {field: 0.25}, seed=1).sample_interval == 0.25


@pytest.mark.parametrize("kind,field", [("normal", "std_dev"), ("exponential", "scale")])
@pytest.mark.parametrize("bad", [0, -1, -1e-9])
def test_spread_must_be_positive(kind, field, bad):
    refused(kind, {field: bad}, field, "greater than 0")


@pytest.mark.parametrize("kind,field", [("random", "anomaly_probability"), ("square", "duty_cycle")])
def test_probabilities_in_unit_interval(kind, field):
    refused(kind, {field: -0.01}, field, "greater than or equal to 0")
    refused(kind, {field: 1.01}, field, "less than or equal to 1")
    for ok in (0, 0.0, 0.5, 1, 1.0):
        assert getattr(create(kind, {field: ok}, seed=1).params, field) == ok


MIN_MAX = [
    ("uniform", "min_val", "max_val", 5.0, 1.0),
    ("periodic-spike", "min_spike_range", "max_spike_range", 9.0, 8.0),
    ("count-per-duration", "min_anomaly_range", "max_anomaly_range", 1.0, -1.0),
    ("random-square", "minimum_interval", "maximum_interval", 20, 10),
    ("random-square", "min_anomaly_duration", "max_anomaly_duration", 6, 5),
    ("clustered", "minimum_interval", "maximum_interval", 151, 150),
    ("clustered", "min_anomaly_length", "max_anomaly_length", 3, 2),
]


@pytest.mark.parametrize("kind,lo,hi,a,b", MIN_MAX)
def test_min_must_not_exceed_max(kind, lo, hi, a, b):
    refused(kind, {lo: a, hi: b}, lo, hi, "<=")
    # equal bounds are fine
    g = create(kind, {lo: b, hi: b}, seed=1)
    assert getattr(g.params, lo) == getattr(g.params, hi) == b


@pytest.mark.parametrize("kind,field", INT_FIELDS)
@pytest.mark.parametrize("bad", [5.5, "5.5", 0.1])
def test_integer_fields_refuse_fractions(kind, field, bad):
    refused(kind, {field: bad}, field, "integer")


@pytest.mark.parametrize("kind,field", INT_FIELDS)
def test_integer_fields_accept_whole_numbers(kind, field):
    pairs = {"minimum_interval": "maximum_interval", "min_anomaly_duration": "max_anomaly_duration",
             "min_anomaly_length": "max_anomaly_length"}
    params = {field: 5.0}
    if field in pairs:
        params[pairs[field]] = 10
    elif field in pairs.values():
        params[next(k for k, v in pairs.items() if v == field)] = 1
    g = create(kind, params, seed=1)
    value = getattr(g.params, field)
    assert value == 5 and type(value) is int


@pytest.mark.parametrize("kind,field", [(k, f) for k, f in INT_FIELDS if f != "num_anomalies"])
def test_counts_are_at_least_one(kind, field):
    refused(kind, {field: 0}, field, "greater than or equal to 1")


def test_num_anomalies_no_more_than_samples_in_a_window():
    refused("count-per-duration", {"num_anomalies": 31, "duration": 30.0}, "num_anomalies", "30")
    refused("count-per-duration", {"num_anomalies": 3601}, "num_anomalies", "3600")
    refused("count-per-duration", {"num_anomalies": 21, "duration": 10.0, "data_interval": 0.5},
            "num_anomalies", "20")
    refused("count-per-duration", {"num_anomalies": -1}, "num_anomalies", "greater than or equal to 0")
    assert create("count-per-duration", {"num_anomalies": 30, "duration": 30.0}, seed=1).params.num_anomalies == 30
    assert create("count-per-duration", {"num_anomalies": 0}, seed=1).params.num_anomalies == 0


def test_count_per_duration_window_must_hold_a_sample():
    refused("count-per-duration", {"duration": 0.4}, "duration", "at least one sample")
    refused("count-per-duration", {"duration": 0.0}, "duration", "greater than 0")


def test_periodic_spike_interval_at_least_data_interval():
    refused("periodic-spike", {"spike_interval": 0.5}, "spike_interval", "interval (1.0)")
    refused("periodic-spike", {"spike_interval": 0}, "spike_interval", "greater than 0")
    assert create("periodic-spike", {"spike_interval": 1.0}, seed=1).params.spike_interval == 1.0


def test_anomaly_range_not_negative():
    refused("random", {"anomaly_range": -1.0}, "anomaly_range", "greater than or equal to 0")


@pytest.mark.parametrize("kind,field", [(k, f) for k, f in FLOAT_FIELDS])
def test_huge_values_refused(kind, field):
    # every field has an upper bound that keeps samples finite
    refused(kind, {field: 1e300}, field, "less than")


# -- unknown fields, wrong shapes ------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_unknown_fields_refused(kind):
    refused(kind, {"no_such_param": 1}, "no_such_param", "unknown parameter", "allowed")
    with pytest.raises(InvalidParams) as info:
        create(kind, {"no_such_param": 1}, seed=1)
    msg = info.value.details[0]["message"]
    for f in get_spec(kind).params_model.model_fields:
        assert f in msg


def test_interval_is_the_name_everywhere_and_data_interval_an_alias_of_the_anomaly_kinds():
    # data_interval belongs to the kinds that had it in the original service only
    refused("sine", {"data_interval": 1.0}, "data_interval", "unknown parameter")
    for kind in ANOMALY_KINDS:
        a = create(kind, {"interval": 0.5}, seed=3)
        b = create(kind, {"data_interval": 0.5}, seed=3)
        assert a.params == b.params and a.params.interval == 0.5 and a.sample_interval == 0.5
        assert "data_interval" not in a.params.model_dump()
        assert np.array_equal(a.take(500).values, b.take(500).values)
        # a live update by either name changes the one interval
        a.update({"data_interval": 0.25})
        assert a.params.interval == 0.25
        # both names at once: refused naming both, on creation and as an update
        refused(kind, {"interval": 0.5, "data_interval": 0.5}, "data_interval", "interval", "data_interval",
                "only one")
        assert get_spec(kind).describe()["param_aliases"] == {"data_interval": "interval"}
    # a problem with the alias's value names the alias the client gave
    with pytest.raises(InvalidParams) as info:
        create("random", {"data_interval": -1})
    assert info.value.details[0]["field"] == "data_interval"


def test_params_must_be_a_mapping():
    for bad in ([1, 2], "amplitude=3", 5):
        with pytest.raises(InvalidParams) as info:
            validate_params(get_spec("sine").params_model, bad)
        assert info.value.details[0]["field"] == "params"
        assert "object" in info.value.details[0]["message"]


def test_update_must_be_a_mapping():
    g = create("sine", seed=1)
    for bad in ([("amplitude", 3)], "amplitude=3", 5):
        with pytest.raises(InvalidParams):
            g.update(bad)
    assert g.params.amplitude == 4.0


def test_several_errors_are_all_reported():
    with pytest.raises(InvalidParams) as info:
        create("sine", {"amplitude": float("nan"), "sample_rate": 0, "bogus": 1}, seed=1)
    assert {d["field"] for d in info.value.details} == {"amplitude", "sample_rate", "bogus"}


def test_unknown_generator():
    with pytest.raises(UnknownGenerator) as info:
        create("sinus")
    assert "sinus" in str(info.value) and "sine" in str(info.value) and "count-per-duration" in str(info.value)
    with pytest.raises(KeyError):
        get_spec("nope")


@pytest.mark.parametrize("seed", [-1, 2**64, 2**70])
def test_seed_out_of_range(seed):
    with pytest.raises(ValueError, match="seed"):
        create("normal", seed=seed)


def test_seed_limits_accepted():
    for seed in (0, 2**64 - 1):
        assert create("normal", seed=seed).seed == seed


# -- a partial update is validated merged with the current params ---------------------------

def test_partial_update_merged_with_current_params():
    g = create("uniform", {"min_val": 0.0, "max_val": 1.0}, seed=3)
    with pytest.raises(InvalidParams) as info:
        g.update({"min_val": 5.0})   # 5 > current max_val 1
    check_error(info.value, "min_val", None, ["max_val", "1.0"])
    assert info.value.details[0]["value"] == 5.0
    g.update({"max_val": 10.0})
    new = g.update({"min_val": 5.0})
    assert (new.min_val, new.max_val) == (5.0, 10.0) and g.params is new
    assert np.all(g.take(1000).values >= 5.0)


def test_partial_update_merged_count_per_duration():
    g = create("count-per-duration", {"num_anomalies": 10, "duration": 100.0}, seed=1)
    with pytest.raises(InvalidParams) as info:
        g.update({"duration": 5.0})     # would leave 10 anomalies in 5 samples
    assert info.value.details[0]["field"] == "num_anomalies"
    assert g.params.duration == 100.0


@pytest.mark.parametrize("kind,bad", [
    ("sine", {"frequency": 3.0, "sample_rate": 0}),
    ("square", {"duty_cycle": 2}),
    ("normal", {"mean": 1.0, "std_dev": 0}),
    ("uniform", {"min_val": 3.0}),
    ("exponential", {"scale": float("inf")}),
    ("random", {"anomaly_probability": 0.5, "junk": True}),
    ("random-square", {"maximum_interval": 10}),           # below minimum_interval 50
    ("clustered", {"min_anomaly_length": 11}),             # above max_anomaly_length 10
    ("periodic-spike", {"data_interval": 2000.0}),         # above spike_interval 1200
    ("count-per-duration", {"num_anomalies": 5.5}),
])
def test_refused_update_leaves_generator_unchanged(kind, bad):
    ref = create(kind, {}, seed=77).take(3000)
    g = create(kind, {}, seed=77)
    a = g.take(1000)
    before = g.params
    with pytest.raises(InvalidParams):
        g.update(bad)
    assert g.params is before and g.seq == 1000
    b = g.take(2000)
    np.testing.assert_array_equal(np.r_[a.values, b.values], ref.values)
    if ref.labels is not None:
        np.testing.assert_array_equal(np.r_[a.labels, b.labels], ref.labels)


def test_update_returns_full_params_and_empty_update_changes_nothing():
    g = create("random-square", {}, seed=5)
    ref = create("random-square", {}, seed=5).take(2000)
    g.take(500)
    new = g.update({})
    assert new == g.params and new.model_dump()["minimum_interval"] == 50
    b = g.take(1500)
    np.testing.assert_array_equal(b.labels, ref.labels[500:])
