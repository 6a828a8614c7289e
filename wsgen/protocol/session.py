"""One connection's subscriptions and what each client message does to them.

Plain Python, no sockets and no asyncio: the WebSocket adapter feeds it
messages and the clock, and sends what it returns. This is where the
protocol's rules live (docs/protocol.md).
"""
from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from wsgen.server import offload
from wsgen.protocol import fanout
from wsgen.protocol.encoding import wire_lag
from wsgen.protocol import messages as P
from wsgen.server.budget import COMPOSITION_BUDGET_S, COMPOSITION_MAX_RENDER, FIRST_RENDER, UNLIMITED, RenderBudget
from wsgen.server.config import Settings
from wsgen.protocol.controls import CONTROLS, StreamControls, controls_from_text
from wsgen.engine.params import summary
from wsgen.engine.composite import composition_catalogue, create_composite
from wsgen.engine import (Block, Generator, GeneratorParams, InvalidParams, UnknownGenerator, catalogue, create,
                         get_spec)
from wsgen.scoring import live as detection
from wsgen.engine.pacing import Pacer, grid_phase

log = logging.getLogger("wsgen.protocol.session")

_sessions = itertools.count()   # numbers the sessions, for their grid phases
#: The messages that may change a subscription's state (options, pace,
#: parameters, pause): the send order and its passes are renewed after them.
#: :data:`UNCHANGING` change none (tests/test_fanout.py checks every message
#: type is in one of the two).
CHANGING = frozenset({"subscribe", "update", "pause", "resume", "unsubscribe", "inject"})
UNCHANGING = frozenset({"detect", "score", "watch", "unwatch", "list"})

#: Query keys of a URL subscription that are subscription options, not params
#: (``count``/``duration`` are called ``stream_count``/``stream_duration`` on a
#: generator with a parameter of that name, as on the HTTP path).
#: Default ``max_lag`` of a backpressure ``drop`` subscription, in seconds.
DEFAULT_MAX_LAG = 1.0

URL_OPTIONS = ("seed", "speed", "backpressure", "encoding", "start_seq", "count", "duration", "token",
               "max_lag")

#: HTTP stream controls that mean nothing on a WebSocket, and why (wsgen.protocol.controls).
HTTP_ONLY = {name: c["why"] for name, c in CONTROLS.items() if c["ws"] is None}


def stream_end(count: int | None, duration: float | None, interval: float, seq: int) -> int | None:
    """The seq before which a stream started at ``seq`` ends: after ``count``
    samples, or after the samples whose stream time is within ``duration``
    seconds of the first one's (``k * interval < duration``: at least one),
    whichever comes first; ``None`` when endless (or ``duration`` with an
    interval of 0, which ends by wall time instead). The HTTP path's rule."""
    end = None if count is None else seq + count
    if duration is not None and interval > 0:
        ratio = duration / interval
        if ratio < 1 << 62:
            n = max(1, math.ceil(ratio - 1e-9))
            end = seq + n if end is None else min(end, seq + n)
    return end


@dataclass(slots=True)
class Chunk:
    """Samples ready to send for one subscription (one ``data`` message)."""

    sub: "SessionStream"
    block: Block
    t: float          # Unix time of the first sample (stream time)
    dt: float         # seconds of stream time between samples
    lag: float        # seconds the last sample is behind its due time (backlog)
    skipped: int      # samples dropped (backpressure "drop") since the last chunk

    def to_json(self) -> dict[str, Any]:
        block = self.block
        values, labels = block.values, block.labels
        if values.ndim == 2:        # channels: one array per channel, in declared order
            values, labels = values.T.copy(), labels.T.copy()
        elif len(values) <= 8:      # orjson writes short lists faster than short arrays
            values = values.tolist()
            labels = None if labels is None else labels.tolist()
        msg: dict[str, Any] = {"type": "data", "id": self.sub.id, "seq": block.seq, "t": self.t,
                               "dt": self.dt, "values": values}
        if labels is not None:
            msg["labels"] = labels
        events = getattr(block, "events", None)
        if events is not None:                      # a composition: ground truth and faults
            msg["events"] = events
            if self.sub.generator.params.faults.any:
                msg["seqs"] = self.block.seqs
                msg["ts"] = self.t + self.block.offsets - self.block.seq * self.dt
        if self.lag:
            msg["lag"] = wire_lag(self.lag)
        if self.skipped:
            msg["skipped"] = self.skipped
        return msg


@dataclass
class SessionStream:
    """A generator, its pacer, and its delivery options."""

    id: str
    generator: Generator
    pacer: Pacer
    backpressure: str = "block"
    encoding: str = "json"
    batch: bool = False
    paused: bool = False
    skipped: int = 0
    #: backpressure drop: samples more than this many seconds behind their due time are skipped
    max_lag: float = DEFAULT_MAX_LAG
    #: called with (generator name, samples) for every sample skipped (metrics), or None
    on_drop: Callable[[str, int], None] | None = None
    samples_sent: int = 0
    messages_sent: int = 0
    score: "detection.LiveScore | None" = None   # truth and alarms, when scored (detection.py)
    end_seq: int | None = None     # count / duration: no sample from this seq on
    end_at: float | None = None    # duration of an unpaced stream: monotonic time it ends
    end_reason: str = ""           # "count" or "duration"
    #: sizes of the renders and drop seeks of this stream on the event loop
    #: (:mod:`wsgen.server.budget`); made at the first one
    budget: RenderBudget | None = None
    seek_budget: RenderBudget | None = None
    #: True while an update is applied off the event loop: nothing is taken
    held: bool = False
    #: served by :func:`wsgen.protocol.fanout.take_plain` (set at subscribe: its options; again
    #: at an update, which may change the generator's, e.g. a replay given a ``label_column``)
    plain: bool = False
    #: its next data messages, written ahead by take_plain (a ``fanout.TextsAhead``)
    texts_ahead: Any = None

    def _budgets(self) -> tuple[RenderBudget, RenderBudget]:
        # a composition's samples cost from 0.1 to 30 us each: sized by time; the
        # named kinds' about 1 us at most: the caller's limit (max_block) bounds them
        if self.generator.name == "composite":
            self.budget, self.seek_budget = RenderBudget(COMPOSITION_MAX_RENDER, FIRST_RENDER, COMPOSITION_BUDGET_S), \
                RenderBudget(None, FIRST_RENDER)
        else:
            self.budget = self.seek_budget = UNLIMITED
        return self.budget, self.seek_budget

    def finished(self, now: float) -> bool:
        """Whether the stream reached its ``count`` / ``duration``."""
        if self.end_seq is not None and self.generator.seq >= self.end_seq:
            return True
        return self.end_at is not None and now >= self.end_at and self.samples_sent > 0

    @property
    def name(self) -> str:
        return self.generator.name

    def due(self, now: float) -> int:
        """Samples due at monotonic time ``now`` (0 when paused)."""
        if self.paused:
            return 0
        m = self.pacer.due_count(self.generator.seq, now)
        return m if self.end_seq is None else min(m, self.end_seq - self.generator.seq)

    def next_due(self) -> float:
        """Monotonic time the next sample is due (inf when paused)."""
        if self.paused or (self.end_seq is not None and self.generator.seq >= self.end_seq):
            return math.inf
        return self.pacer.due_time(self.generator.seq)

    @property
    def stats(self) -> dict[str, int]:
        """Samples and data messages produced so far."""
        return {"samples": self.samples_sent, "messages": self.messages_sent}

    def take(self, now: float, limit: int, wall: float | None = None) -> Chunk | None:
        """Generate the samples due at ``now`` (at most ``limit``, and at
        most what :attr:`budget` lets one render cost)."""
        if self.paused or self.held:
            return None
        if self.backpressure == "drop" and self.pacer.pace:
            self.drop_due(now - self.max_lag, 1 << 62)   # what would arrive more than max_lag late
        pacer, seq = self.pacer, self.generator.seq
        m = pacer.due_count(seq, now)
        if m <= 0:
            return None
        if m > limit:
            m = limit
        if self.end_seq is not None or self.end_at is not None:
            if self.end_seq is not None:
                m = min(m, self.end_seq - seq)
            if m <= 0 or (self.end_at is not None and now >= self.end_at and self.samples_sent):
                return None
        budget = self.budget or self._budgets()[0]
        m = budget.size(m)
        cap = self.generator.render_limit       # a kind whose samples can be dear, by its parameters
        if cap is not None and m > cap:
            m = cap
        # how late the last sample is (>= 0: it is due); 0 when unpaced
        lag = now - pacer.due_time(seq + m - 1) if pacer.pace else 0.0
        started = budget.clock()
        block = self.generator.take(m)
        if self.score is not None:
            self.score.record(block, now)
        budget.spent(m, budget.clock() - started)
        chunk = Chunk(self, block, pacer.stream_time(seq, wall), pacer.interval, lag, self.skipped)
        self.skipped = 0
        self.samples_sent += m
        self.messages_sent += 1
        return chunk

    def drop_due(self, now: float, limit: int) -> int:
        """Skip the samples due at ``now`` (backpressure ``drop``), at most
        ``limit`` and what :attr:`seek_budget` lets one seek cost (the rest
        on the next call)."""
        if self.held:
            return 0
        m = min(self.due(now), limit)
        if m > 0:
            budget = self.seek_budget or self._budgets()[1]
            m = budget.size(m)
            started = budget.clock()
            self.generator.seek(self.generator.seq + m)
            budget.spent(m, budget.clock() - started)
            self.skipped += m
            if self.on_drop is not None:
                self.on_drop(self.generator.name, m)
        return m


class _Recent(list):
    """A list that keeps only its last :attr:`KEEP` items: a connection
    that sends bad messages forever must not grow the server's memory."""

    KEEP = 64

    def append(self, item) -> None:
        super().append(item)
        if len(self) > 2 * self.KEEP:
            del self[:-self.KEEP]


class Session:
    """The subscriptions of one connection and the protocol's rules.

    ``handle(text)`` validates and applies one client message and returns
    the replies it owes (dicts, in order). Errors never raise: they become
    ``error`` replies and the other subscriptions go on.
    """

    #: given to every subscription as its ``on_drop`` (the adapter sets it: metrics)
    on_drop: Callable[[str, int], None] | None = None

    def __init__(self, settings: Settings | None = None, clock=None, wall=None) -> None:
        import time
        self.settings = settings or Settings()
        self.clock = clock or time.monotonic
        self.wall = wall or time.time
        self.subscriptions: dict[str, SessionStream] = {}
        #: origin of this connection's pacing grid (monotonic seconds): fast
        #: streams start on it so that they fall due together; each
        #: connection's lies a different fraction of ``align_s`` in the past,
        #: so that connections do not all fall due at once (pacing.py)
        self.grid = self.clock() - grid_phase(next(_sessions), self.settings.align_s)
        self._auto_ids = itertools.count(1)
        self.errors: list[str] = _Recent()   # codes of the latest errors replied
        self._order: fanout.SendOrder | None = None   # cache of send_order()
        #: ``offload(fn, *args)``: an awaitable running ``fn(*args)`` off the
        #: event loop (:func:`wsgen.server.offload.run`), or None. When set, a
        #: subscribe whose generator may be costly to build (a composition, a
        #: ``start_seq``) is answered by an awaitable in the replies, which
        #: builds it there and then registers it (:meth:`handle`).
        self.offload = None

    # -- entry points ---------------------------------------------------
    def handle(self, data: str | bytes) -> list[dict[str, Any]]:
        """Apply one raw client message; return the replies (with
        :attr:`offload` set, a reply may be an awaitable giving the dict:
        await it before applying the next message)."""
        try:
            msg = P.parse_client_message(data)
            return self.apply(msg)
        except P.ProtocolError as exc:
            self.errors.append(exc.code)
            return [exc.to_message()]
        except Exception:
            # A bug of ours, never the client's doing: say so, keep the
            # connection and its other subscriptions, log the traceback.
            log.exception("internal error while handling a client message")
            self.errors.append(P.INTERNAL_ERROR)
            return [P.error(P.INTERNAL_ERROR, "the server failed to handle this message (a bug, logged on "
                            "the server); the connection and its other subscriptions go on")]

    def apply(self, msg) -> list[dict[str, Any]]:
        from wsgen.streams import session as named_session   # named streams: their own rules (imported here: it imports this module)
        if named_session.wants(self, msg):
            return named_session.apply(self, msg)
        handler = getattr(self, "_on_" + msg.type)
        if msg.type in CHANGING:
            self._order = None   # what a wake-up serves, and how, may change (fanout.PlainPass)
        return handler(msg)

    def subscribe_url(self, name: str, query: Mapping[str, str]) -> list[dict[str, Any]]:
        """Subscribe as ``ws://host/<name>?<query>`` asks: id = name, query
        keys are params except the options in :data:`URL_OPTIONS`.
        ``streams/<name>`` subscribes to a named stream."""
        if name.startswith("streams/"):
            from wsgen.streams import session as named_session
            return named_session.subscribe_url(self, name[len("streams/"):], query)
        try:
            fields = get_spec(name).params_model.model_fields
        except UnknownGenerator:
            fields = {}       # refused below, as a subscribe message naming it would be
        options: dict[str, Any] = {k: query[k] for k in URL_OPTIONS if k in query and k != "token"}
        # the stream controls' text, by the HTTP query's rules (wsgen.protocol.controls): a
        # generator's own parameter named count or duration wins, the control is stream_<name>
        names = {k: f"stream_{k}" for k in ("count", "duration") if k in fields}
        given = {k: query[names.get(k, k)] for k in StreamControls.model_fields if names.get(k, k) in query}
        for key in StreamControls.model_fields:
            options.pop(key, None)
        controls, problems = controls_from_text(given, names)
        if problems:
            self.errors.append(P.INVALID_MESSAGE)
            return [P.error(P.INVALID_MESSAGE, f"invalid subscription options in the URL: {summary(problems)}",
                            name, problems)]
        options.update({k: getattr(controls, k) for k in given})
        if "speed" in options:
            options["speed"] = P.speed_to_wire(options["speed"])
        for key, why in HTTP_ONLY.items():
            if key in query and key not in fields:
                self.errors.append(P.INVALID_MESSAGE)
                return [P.error(P.INVALID_MESSAGE, f"invalid subscription options in the URL: {why}", name,
                                [{"field": key, "value": query[key], "message": why}])]
        stream_keys = {f"stream_{k}" for k in ("count", "duration") if k in fields}
        params = {k: v for k, v in query.items() if (k not in URL_OPTIONS or k in fields) and k not in stream_keys}
        message = {"type": "subscribe", "id": name, "generator": name, "params": params, **options}
        try:
            return self.apply(P.subscribe_from_url(message))
        except P.ProtocolError as exc:
            self.errors.append(exc.code)
            if any(d.get("message", "").startswith("unknown parameter") for d in exc.details or ()):
                # in a URL, options sit beside the params: name them too
                exc.message += "; the URL also takes the options " + ", ".join(URL_OPTIONS)
            return [exc.to_message()]

    # -- one stream opened by another transport (HTTP) --------------------
    def check_params(self, params: GeneratorParams, given: Mapping[str, Any] = {}) -> None:
        """This server's rules on a generator's validated ``params`` (its
        smallest interval), as a subscribe applies them; raises
        ProtocolError ``invalid_params`` naming the key of ``given``."""
        self._check_interval(params, None, given)

    def open(self, msg: P.Subscribe, gen: Generator) -> SessionStream:
        """Register the subscription ``msg`` asks for, of the generator
        ``gen`` built for it (by the caller), with the rules of a subscribe
        (interval, count / duration / end of data, pacer); raises
        ProtocolError. The HTTP streams' way in (wsgen.server.http.delivery)."""
        reply = self._subscribed(msg, gen)[0]
        return self.subscriptions[reply["id"]]

    # -- scheduling helpers for the I/O layer ---------------------------
    def next_due(self) -> float:
        """Earliest monotonic time any subscription has a sample due."""
        return min((s.next_due() for s in self.subscriptions.values()), default=math.inf)

    def send_order(self) -> "fanout.SendOrder":
        """The subscriptions in three lists, and the passes serving the
        plain ones (cached until a message of :data:`CHANGING` is applied:
        a pause, resume or update changes what a pass may assume): the
        plain ones (:func:`wsgen.protocol.fanout.take_plain` serves them) sending their own frames, the plain batched ones, and
        the others, those sending their own frames first and the batched
        ones last."""
        if self._order is None:
            self._order = fanout.SendOrder.of(list(self.subscriptions.values()))
        return self._order

    def close(self) -> None:
        detection.session_closed(self)   # watchers of its scored subscriptions hear unwatched
        self.subscriptions.clear()
        self._order = None

    # -- message handlers -----------------------------------------------
    def _sub(self, id: str) -> SessionStream:
        sub = self.subscriptions.get(id)
        if sub is None:
            known = ", ".join(sorted(self.subscriptions)) or "none"
            raise P.ProtocolError(P.UNKNOWN_ID, f"no subscription with id {id!r}; active: {known}", id)
        return sub

    def _check_interval(self, params: GeneratorParams, id: str | None, given: Mapping[str, Any] = {}) -> None:
        """The server's smallest interval; the error names the key the client
        gave in ``given`` (``interval`` or its alias ``data_interval``)."""
        name = next((a for a, f in params.aliases.items() if f == params.interval_field and a in given),
                    params.interval_field)
        self._check_interval_value(params.sample_interval, name, id)

    def _check_interval_value(self, interval: float, field_name: str, id: str | None) -> None:
        floor = self.settings.min_interval_s
        if 0 < interval < floor:
            raise P.ProtocolError(P.INVALID_PARAMS, f"{field_name} {interval} s is below this server's "
                                  f"smallest interval {floor} s; use >= {floor} or 0 (unpaced)", id,
                                  [{"field": field_name, "value": interval,
                                    "message": f"must be 0 or >= {floor}"}])

    def _invalid(self, exc: InvalidParams, id: str | None) -> P.ProtocolError:
        return P.ProtocolError(P.INVALID_PARAMS, "invalid params: " + str(exc), id, exc.details)

    def _on_subscribe(self, msg: P.Subscribe) -> list[Any]:
        self._check_subscribe(msg)
        if self.offload is not None and offload.worth_offloading(isinstance(msg.generator, dict), msg.start_seq,
                                                                 msg.generator if isinstance(msg.generator, str) else None):
            return [self._subscribe_when_built(msg)]
        return self._subscribed(msg, self._build(msg))

    async def _subscribe_when_built(self, msg: P.Subscribe) -> dict[str, Any]:
        """The reply to a subscribe whose generator is built off the event
        loop (``self.offload``): ``subscribed`` once it is ready, or the error."""
        try:
            gen = await self.offload(self._build, msg)
            self._check_subscribe(msg)     # (the connection's reader waited: nothing changed)
            return self._subscribed(msg, gen)[0]
        except P.ProtocolError as exc:
            self.errors.append(exc.code)
            return exc.to_message()
        except Exception:
            log.exception("internal error while building a subscription's generator")
            self.errors.append(P.INTERNAL_ERROR)
            return P.error(P.INTERNAL_ERROR, "the server failed to handle this message (a bug, logged on "
                           "the server); the connection and its other subscriptions go on", msg.id)

    def check_room(self, id: str | None) -> None:
        """Whether a new subscription ``id`` fits: raises ProtocolError
        ``duplicate_id`` (the id is in use, by a subscription or a watch) or ``limit_reached``
        (``max_subscriptions`` already), for generators and named streams."""
        if id is not None and id in self.subscriptions:
            raise P.ProtocolError(P.DUPLICATE_ID, f"subscription id {id!r} is already in use on this "
                                  "connection; unsubscribe it first or pick another id", id)
        if id is not None and detection.watched(self, id) is not None:
            raise P.ProtocolError(P.DUPLICATE_ID, f"id {id!r} is a watch on this connection; unwatch it first "
                                  "or pick another id for the subscription", id)
        if len(self.subscriptions) >= self.settings.max_subscriptions:
            raise P.ProtocolError(P.LIMIT_REACHED, f"at most {self.settings.max_subscriptions} subscriptions "
                                  "per connection; unsubscribe one first", id)

    def _check_subscribe(self, msg: P.Subscribe) -> None:
        """The rules of a subscribe that need no generator (raises ProtocolError)."""
        self.check_room(msg.id)
        if msg.batch and msg.encoding == "binary":
            raise P.ProtocolError(P.INVALID_MESSAGE, "batch groups JSON data messages; binary frames are "
                                  "sent one per subscription: use batch with encoding \"json\"", msg.id,
                                  [{"field": "batch", "value": True, "message": "must be false with encoding \"binary\""}])

    def _build(self, msg: P.Subscribe) -> Generator:
        """The generator a subscribe asks for (raises ProtocolError); no
        state of the session is touched (it may run in a worker thread)."""
        try:
            if isinstance(msg.generator, dict):
                if msg.params:
                    raise P.ProtocolError(P.INVALID_MESSAGE, "a composition carries its parameters in "
                                          "\"generator\"; leave \"params\" out", msg.id,
                                          [{"field": "params", "value": "<dict>",
                                            "message": "must be empty when generator is a composition"}])
                if msg.encoding == "binary":
                    raise P.ProtocolError(P.INVALID_MESSAGE, "encoding \"binary\" cannot carry a composition's "
                                          "events and fault seqs; use \"json\"", msg.id,
                                          [{"field": "encoding", "value": "binary",
                                            "message": "must be \"json\" for a composition"}])
                gen = create_composite(msg.generator, seed=msg.seed, start_seq=msg.start_seq)
            else:
                gen = create(msg.generator, msg.params, seed=msg.seed, start_seq=msg.start_seq)
        except UnknownGenerator as exc:
            raise P.ProtocolError(P.UNKNOWN_GENERATOR, str(exc), msg.id) from None
        except InvalidParams as exc:
            raise self._invalid(exc, msg.id) from None
        return gen

    def _subscribed(self, msg: P.Subscribe, gen: Generator) -> list[dict[str, Any]]:
        """Register the subscription of ``gen``; the ``subscribed`` reply."""
        self._check_interval(gen.params, msg.id, msg.params)
        sub_id = msg.id
        while sub_id is None or sub_id in self.subscriptions:
            sub_id = f"{gen.name}-{next(self._auto_ids)}"
        pacer = Pacer.start(gen.sample_interval, msg.speed, gen.seq, self.clock(), self.wall(),
                            self.grid, self.settings.align_s)
        sub = SessionStream(sub_id, gen, pacer, msg.backpressure, msg.encoding, msg.batch)
        if msg.max_lag is not None:
            if msg.backpressure != "drop":
                raise P.ProtocolError(P.INVALID_MESSAGE, "max_lag bounds the lag of backpressure \"drop\"; "
                                      "give it with backpressure \"drop\" or leave it out", msg.id,
                                      [{"field": "max_lag", "value": msg.max_lag,
                                        "message": "only with backpressure \"drop\""}])
            sub.max_lag = msg.max_lag
        sub.on_drop = self.on_drop
        sub.score = detection.live_score(msg, gen)
        if msg.count is not None or msg.duration is not None:
            sub.end_seq = stream_end(msg.count, msg.duration, gen.sample_interval, gen.seq)
            by_count = msg.count is not None and sub.end_seq == gen.seq + msg.count
            sub.end_reason = "count" if by_count else "duration"
            if msg.duration is not None and gen.sample_interval <= 0:
                sub.end_at = self.clock() + msg.duration   # unpaced: stream time is wall time
        data_end = getattr(gen, "end_seq", None)        # replay with at_end "end": its last row
        if data_end is not None and (sub.end_seq is None or data_end < sub.end_seq):
            sub.end_seq, sub.end_reason = data_end, "end_of_data"
        sub.plain = fanout.is_plain(sub)
        self.subscriptions[sub_id] = sub
        self._order = None
        return [detection.announce(sub, P.subscribed(sub_id, gen.name, gen.params.model_dump(), gen.seed, gen.seq,
                             P.speed_to_wire(msg.speed), msg.backpressure, msg.encoding,
                             gen.sample_interval, msg.batch,
                             sub.max_lag if msg.backpressure == "drop" else None))]

    def _on_update(self, msg: P.Update) -> list[dict[str, Any]]:
        sub = self._sub(msg.id)
        gen = sub.generator
        old = gen.params
        # A refused update must leave the stream untouched, and undoing one
        # would re-anchor some generators (e.g. start a new count-per-duration
        # window): check the server's smallest interval before applying.
        # ``update`` validates the rest (with the generator's own merge rules;
        # compositions merge nested objects) and changes nothing on error.
        names = [old.interval_field, *(a for a, f in old.aliases.items() if f == old.interval_field)]
        field_name = next((n for n in names if n in msg.params), None)
        if field_name is not None:
            given = msg.params[field_name]
            try:
                interval = float(given)
            except (TypeError, ValueError, OverflowError):
                interval = math.nan   # not a number: update() refuses it, naming the field
            self._check_interval_value(interval, field_name, msg.id)
        if self.offload is not None and gen.name == "composite":
            # a composition re-decides its events from here: off the event loop, the stream held
            return [self._update_when_applied(sub, msg)]
        return self._updated(sub, msg, self._apply_update(gen, msg))

    def _apply_update(self, gen: Generator, msg: P.Update) -> GeneratorParams:
        """``gen.update`` (raises ProtocolError; may run in a worker thread)."""
        old = gen.params
        try:
            new = gen.update(msg.params)
        except InvalidParams as exc:
            raise self._invalid(exc, msg.id) from None
        try:
            self._check_interval(new, msg.id)   # a safety net: checked above
        except P.ProtocolError:
            gen.update(old.model_dump())
            raise
        return new

    async def _update_when_applied(self, sub: "SessionStream", msg: P.Update) -> dict[str, Any]:
        """The reply to an update applied off the event loop (``self.offload``);
        the pump takes nothing from the stream meanwhile (``sub.held``)."""
        sub.held = True
        self._order = None
        try:
            new = await self.offload(self._apply_update, sub.generator, msg)
            return self._updated(sub, msg, new)[0]
        except P.ProtocolError as exc:
            self.errors.append(exc.code)
            return exc.to_message()
        except Exception:
            log.exception("internal error while updating a subscription")
            self.errors.append(P.INTERNAL_ERROR)
            return P.error(P.INTERNAL_ERROR, "the server failed to handle this message (a bug, logged on "
                           "the server); the connection and its other subscriptions go on", msg.id)
        finally:
            sub.held = False
            self._order = None

    def _updated(self, sub: "SessionStream", msg: P.Update, new: GeneratorParams) -> list[dict[str, Any]]:
        gen = sub.generator
        # the stream's own interval, as at subscribe (a replay paced by its file's
        # timestamps: their median spacing, whatever its interval parameter)
        interval = gen.sample_interval
        if interval != sub.pacer.interval or msg.speed is not None:
            sub.pacer.retime(gen.seq, interval=interval, speed=msg.speed, now=self.clock(), wall=self.wall())
        # an update may change what the fan-out pass may serve (a replay given a
        # label_column has labels: no texts ahead); the send order is renewed
        plain = fanout.is_plain(sub)
        if plain != sub.plain:
            sub.plain, sub.texts_ahead, self._order = plain, None, None
        return [P.updated(sub.id, gen.seq, new.model_dump(), P.speed_to_wire(sub.pacer.speed))]

    def _on_pause(self, msg: P.Pause) -> list[dict[str, Any]]:
        sub = self._sub(msg.id)
        sub.paused = True
        return [P.state_change("paused", sub.id, sub.generator.seq)]

    def _on_resume(self, msg: P.Resume) -> list[dict[str, Any]]:
        sub = self._sub(msg.id)
        if sub.paused:
            sub.paused = False
            sub.pacer.resume(sub.generator.seq, self.clock(), self.wall(), self.grid, self.settings.align_s)
        return [P.state_change("resumed", sub.id, sub.generator.seq)]

    def _on_unsubscribe(self, msg: P.Unsubscribe) -> list[dict[str, Any]]:
        sub = self._sub(msg.id)
        del self.subscriptions[sub.id]
        self._order = None
        return [P.state_change("unsubscribed", sub.id, sub.generator.seq, detection.final(sub))]

    def end(self, id: str) -> list[dict[str, Any]]:
        """End subscription ``id``, which reached its ``count`` or
        ``duration`` (:meth:`SessionStream.finished`): the ``ended`` message."""
        sub = self.subscriptions.pop(id)
        self._order = None
        figures = detection.final(sub)   # a scored stream: its figures, then ended
        ended = [P.ended(sub.id, sub.generator.seq, sub.end_reason)]
        return ended if figures is None else [P.score(sub.id, figures, ended=True)] + ended

    def _on_detect(self, msg: P.Detect) -> list[dict[str, Any]]:
        return detection.on_detect(self, msg)

    def _on_score(self, msg: P.ScoreRequest) -> list[dict[str, Any]]:
        return detection.on_score(self, msg)

    def _on_watch(self, msg: P.Watch) -> list[dict[str, Any]]:
        return detection.on_watch(self, msg)

    def _on_unwatch(self, msg: P.Unwatch) -> list[dict[str, Any]]:
        return detection.on_unwatch(self, msg)

    def _on_list(self, msg: P.ListGenerators) -> list[dict[str, Any]]:
        reply = P.generators(catalogue(), composition_catalogue())
        reply["controls"] = CONTROLS      # the stream controls of each transport, and why one lacks some
        return [reply]
