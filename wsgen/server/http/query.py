"""A stream route's query string: the generator's parameters apart from
the stream controls, each control read with the protocol's rules
(:func:`wsgen.protocol.controls.controls_from_text`), every problem a
detail ``{field, value, message}``.

A control named like one of the route's parameters (``count-per-duration``'s
``duration``) is called ``stream_<name>`` there. With ``format=sse`` and no
``start_seq``, a ``Last-Event-ID`` header (an ``EventSource`` reconnecting)
resumes after that id.
"""
from __future__ import annotations

from typing import Any

from starlette.requests import Request

from wsgen.protocol.controls import MAX_SEQ, HttpStreamControls, controls_from_text, int_from_text, why_not


class StreamQuery:
    """The query rules of one route.

    Args:
        fields: the route's own parameter names (a generator's fields and
            aliases; ``spec`` for ``GET /composite``).
        token: whether the server wants a token (``token`` is then listed
            among the allowed names).
    """

    def __init__(self, fields: tuple[str, ...], token: bool) -> None:
        self.fields = fields
        #: control -> its name in this route's query
        self.controls = {c: (f"stream_{c}" if c in fields else c) for c in HttpStreamControls.model_fields}
        self.by_query = {q: c for c, q in self.controls.items()}
        #: control -> query name of the controls the docs show (token: when the server wants one)
        self.public = {c: q for c, q in self.controls.items() if c != "token" or token}
        self.allowed = ", ".join(fields + tuple(self.public.values()))

    def parse(self, request: Request) -> tuple[dict[str, str], HttpStreamControls, list[dict[str, Any]]]:
        """The route's parameters (as given), the stream controls, and the
        problems found (a name given twice, an unknown name, a bad control)."""
        errors: list[dict[str, Any]] = []
        given: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            given.setdefault(key, []).append(value)
        params: dict[str, str] = {}
        controls: dict[str, str] = {}
        for key, values in given.items():
            if len(values) > 1:
                errors.append({"field": key, "value": values, "message": "given more than once; give it once"})
                continue
            value = values[0]
            if key in self.fields:
                params[key] = value
            elif key in self.by_query:
                controls[self.by_query[key]] = value
            else:
                why = why_not(key, "http")    # a WebSocket option given here: say so
                errors.append({"field": key, "value": value,
                               "message": why or f"unknown parameter; allowed: {self.allowed}"})
        opts, problems = controls_from_text(controls, self.controls)
        errors.extend(problems)
        if opts.format == "sse" and "start_seq" not in controls:
            resume, problem = resume_seq(request)
            if problem:
                errors.append(problem)
            elif resume is not None:
                opts.start_seq = resume
        return params, opts, errors


def resume_seq(request: Request) -> tuple[int | None, dict[str, Any] | None]:
    """Where an SSE client reconnecting with ``Last-Event-ID: <id>`` resumes:
    ``id + 1`` (None without the header), or the problem with the header."""
    last = request.headers.get("last-event-id")
    if last is None:
        return None, None
    try:
        last_id = int_from_text(last)
    except ValueError:
        last_id = MAX_SEQ
    if last_id >= MAX_SEQ:
        return None, {"field": "Last-Event-ID", "value": last,
                      "message": "must be the id of an event of this stream (an integer)"}
    return last_id + 1, None
