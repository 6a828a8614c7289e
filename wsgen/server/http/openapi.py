"""The OpenAPI document of the HTTP streams: each stream route's query
parameters and responses.

A generator route's parameters come from its pydantic model (names,
defaults, bounds, units), the stream controls' from
:class:`wsgen.protocol.controls.HttpStreamControls`
(:func:`~wsgen.protocol.controls.openapi_parameters`): nothing here is
written by hand but the examples and the responses' descriptions.
"""
from __future__ import annotations

import json
from typing import Any

from wsgen.engine import GeneratorSpec
from wsgen.engine.composite import CompositionSpec
from wsgen.protocol.controls import openapi_parameters

#: ``maxLength`` the OpenAPI document gives a list parameter's text (keeps
#: generated URLs under the HTTP server's request-line limit; not enforced).
LIST_PARAM_TEXT_MAX = 1000

#: The body of every error answer: ``{"error", "message", "details"?}``.
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "examples": ["invalid_params"]},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {
            "type": "object", "required": ["field", "value", "message"],
            "properties": {"field": {"type": "string"}, "value": {}, "message": {"type": "string"},
                           "row": {"type": ["integer", "null"], "description": "replay / uploads: 1-based data row"},
                           "column": {"type": ["string", "null"], "description": "replay / uploads: the column"}}}},
    },
}

#: What the stream controls mean on a composition, where it differs.
COMPOSITE_DESCRIPTIONS = {
    "count": "End the stream after this many slots (sample indices): the samples "
             "create_composite(spec, seed).take(count) delivers. Default: endless.",
    "format": "`text`: one value per line, 3 decimals, `nan` for a null fault. `ndjson`: "
              "{seq, t, value (null for a null fault), label, events: [{id, kind, first, "
              "last}]} per line; a gap's event is on the first sample past it. `csv`: "
              "`seq,t,value,label,events`, events as `kind:id:first:last` joined by `;`, "
              "an empty value for a null fault. `sse`: the ndjson objects as events.",
}

#: The example composition of the docs.
EXAMPLE_SPEC: dict[str, Any] = {
    "interval": 0.1,
    "base": {"kind": "sine", "params": {"amplitude": 2, "frequency": 0.5, "sample_rate": 10}, "offset": 10},
    "noise": {"kind": "normal", "std_dev": 0.1},
    "anomalies": [{"kind": "spike", "placement": {"mode": "random", "probability": 0.01},
                   "height": {"low": 3, "high": 5}}],
    "faults": {"nulls": {"placement": {"mode": "random", "probability": 0.01}}},
}


def tag(spec: GeneratorSpec) -> str:
    """The docs section of a generator's route."""
    return {"waveform": "waveforms", "distribution": "distributions", "anomaly": "anomalies",
            "process": "processes", "periodic": "periodic shapes"}.get(spec.family, spec.family)


def _responses(ok: str, examples: dict[str, str], invalid: str) -> dict[str, Any]:
    """A stream route's responses: 200 (``ok``; an example per media type), 422 (``invalid``), 503."""
    return {
        "200": {"description": ok,
                "content": {media: {"schema": {"type": "string"}, "example": example}
                            for media, example in examples.items()}},
        "422": {"description": invalid, "content": {"application/json": {"schema": ERROR_SCHEMA}}},
        "503": {"description": "Too many streams open; retry later.",
                "content": {"application/json": {"schema": ERROR_SCHEMA}}},
    }


def generator_parameters(spec: GeneratorSpec) -> list[dict[str, Any]]:
    """Query parameters of a generator's own parameters, from its model
    (list parameters are text in a query: JSON or comma-separated)."""
    schema = spec.schema()
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        prop.pop("title", None)
        description = prop.get("description", "")
        unit = prop.get("unit")
        if unit and f"[{unit}]" not in description:
            description = f"{description} [{unit}]".strip()
        if prop.get("type") in ("array", "object"):
            # a list in a query string is text: JSON or comma-separated (wsgen.engine.listparams)
            prop = {"type": "string", "maxLength": LIST_PARAM_TEXT_MAX, "default": json.dumps(prop.get("default"))}
            description += " (in a query string: JSON, or numbers separated by commas)"
        params.append({"name": name, "in": "query", "required": False, "description": description,
                       "schema": prop})
    for alias, name in spec.params_model.aliases.items():
        params.append({"name": alias, "in": "query", "required": False, "deprecated": True,
                       "description": f"Another name for {name} (the original service's); give one of them.",
                       "schema": dict(schema["properties"][name], title=alias)})
    return params


def generator_operation(spec: GeneratorSpec, controls: dict[str, str]) -> dict[str, Any]:
    """``openapi_extra`` of a generator's stream route: its parameters
    (the model's, then the ``controls``, control -> query name) and responses."""
    label = ', "label": false' if spec.anomalous else ""
    example_json = '{"seq": 0, "t": 1700000000.0, "value": 0.0%s}' % label
    return {
        "parameters": generator_parameters(spec) + openapi_parameters(controls),
        "responses": _responses(
            "An endless stream (unless count or duration is given), one sample per line; the X-Wsgen-Seed "
            "header holds the seed.",
            {"text/plain": "0.000\n0.501\n0.995\n",
             "application/x-ndjson": example_json + "\n",
             "text/csv": "seq,t,value%s\n0,1700000000.000000,0.0%s\n" % (",label" if label else "",
                                                                        ",false" if label else ""),
             "text/event-stream": f"id: 0\ndata: {example_json}\n\n"},
            "Invalid query parameters; nothing was streamed."),
    }


def composite_operation(body: bool, controls: dict[str, str]) -> dict[str, Any]:
    """``openapi_extra`` of ``/composite``: the spec as ``?spec=`` (GET) or
    the JSON body (POST, ``body``), the ``controls`` and the responses."""
    params = []
    if not body:
        params.append({"name": "spec", "in": "query", "required": True,
                       "description": "The composition (schema: CompositionSpec; see POST /composite and "
                                      "GET /composite/presets) as URL-encoded JSON.",
                       "schema": {"type": "string"},
                       "example": json.dumps(EXAMPLE_SPEC, separators=(",", ":"))})
    params += openapi_parameters(controls, COMPOSITE_DESCRIPTIONS)
    example = ('{"seq":5,"t":1700000000.5,"value":17.0,"label":true,'
               '"events":[{"id":160,"kind":"spike","first":5,"last":5}]}')
    out: dict[str, Any] = {
        "parameters": params,
        "responses": _responses(
            "The composition's delivered samples (see the format parameter); endless unless count or duration "
            "is given. X-Wsgen-Seed holds the seed.",
            {"text/plain": "10.000\nnan\n10.502\n",
             "application/x-ndjson": example + "\n",
             "text/csv": "seq,t,value,label,events\n5,1700000000.500000,17.0,true,spike:160:5:5\n",
             "text/event-stream": f"id: 5\ndata: {example}\n\n"},
            "Invalid composition (details name each field by its dotted path, e.g. anomalies.0.height.low) or "
            "query parameters; nothing was streamed."),
    }
    if body:
        out["requestBody"] = {"required": True, "description": "The composition (CompositionSpec).",
                              "content": {"application/json": {
                                  "schema": {"$ref": "#/components/schemas/CompositionSpec"},
                                  "example": EXAMPLE_SPEC}}}
    return out


def composition_components() -> dict[str, Any]:
    """CompositionSpec's JSON Schema as OpenAPI components (refs rewritten)."""
    schema = CompositionSpec.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {**defs, "CompositionSpec": schema}
