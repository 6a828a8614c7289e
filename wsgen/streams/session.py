"""Named streams on one connection: the protocol rules, no I/O.

:class:`~wsgen.protocol.session.Session` hands these messages here (:func:`wants`):

* ``subscribe`` with ``stream`` (instead of ``generator``): a
  :class:`NamedSubscription` reading the process's shared stream, from the
  sample due now or from ``start_seq`` (back to the stream's history);
* ``update`` / ``inject`` naming a ``stream`` (or the id of a named
  subscription), with ``admin_token``: an operator change, appended to the
  control plane's log; the reply names the seq it applies from;
* ``pause``, ``resume``, ``unsubscribe`` of a named subscription.

Changes reach every subscriber as ``updated`` (``op`` ``update`` or
``inject``) through ``session.push`` (set by the WebSocket adapter); a
deleted stream ends its subscriptions with ``unsubscribed`` (``reason``).
"""
from __future__ import annotations

import hmac
import inspect
import weakref
from typing import Any, Callable, Mapping

from wsgen.protocol import messages as P
from wsgen.protocol.encoding import wire_lag
from wsgen.streams.named import (FORBIDDEN, INVALID_PARAMS, Change, NamedError, NamedStreams, SharedStream, UNKNOWN_STREAM,
                    _Cursor)
from wsgen.protocol.session import Chunk, Session, SessionStream


def registry(settings) -> NamedStreams | None:
    """The process's named streams (``settings.named``), if any."""
    return getattr(settings, "named", None)


class NamedChunk(Chunk):
    """A chunk of a shared stream: its JSON is built once per wake-up for
    every subscriber reading the same samples (``template``), then given
    each one's id, lag and skipped count."""

    __slots__ = ("template",)

    def to_json(self) -> dict[str, Any]:
        msg = self.template[0].copy()
        msg["id"] = self.sub.id
        if self.lag:
            msg["lag"] = wire_lag(self.lag)
        if self.skipped:
            msg["skipped"] = self.skipped
        return msg


class NamedSubscription(SessionStream):
    """A subscription to a shared stream: the pump reads it like any other,
    but ``take`` slices the stream's samples (generated once per wake-up
    for all its subscribers) instead of generating its own."""

    __hash__ = object.__hash__          # held in the stream's WeakSet: by identity

    def __eq__(self, other: object) -> bool:
        return self is other

    def __init__(self, id: str, stream: SharedStream, seq: int, session: Session, backpressure: str,
                 encoding: str, batch: bool) -> None:
        super().__init__(id, _Cursor(stream, seq), stream.pacer, backpressure, encoding, batch)
        self.stream = stream
        self._session = weakref.ref(session)

    def take(self, now: float, limit: int, wall: float | None = None) -> Chunk | None:
        if self.paused:
            return None
        cursor, pacer = self.generator, self.pacer
        seq = cursor.seq
        m = pacer.due_count(seq, now)
        if m <= 0:
            return None
        stream = self.stream
        if m > 1:
            m = min(m, limit, stream.read_max)
        end = seq + m
        if end > stream.gen_seq:
            stream.advance(end)
        if seq < stream.hist_seq:            # fell behind the kept samples: skip to the oldest
            self.skipped += stream.hist_seq - seq
            seq = stream.hist_seq
            m = min(pacer.due_count(seq, now), limit, stream.read_max)
            if m <= 0:
                cursor.seq = seq
                return None
            end = seq + m
        last = stream._last              # shared_read's cache, inlined: the common case per subscriber
        if last is not None and last[0] == seq and last[1] == end and last[2] == len(stream.changes):
            block, template = last[3], last[4]
        else:
            block, template = stream.shared_read(seq, end)
        cursor.seq = end
        chunk = NamedChunk(self, block, template[0]["t"], stream.interval, now - pacer.due_time(end - 1),
                           self.skipped)
        chunk.template = template
        self.skipped = 0
        self.samples_sent += m
        self.messages_sent += 1
        return chunk

    def drop_due(self, now: float, limit: int) -> int:
        m = min(self.due(now), limit)
        if m > 0:
            self.generator.seq += m
            self.skipped += m
        return m

    # -- notices from the stream ---------------------------------------------------
    def _push(self, message: dict[str, Any]) -> None:
        session = self._session()
        if session is None:
            return
        push = getattr(session, "push", None)
        if push is not None:
            push(message)
        else:
            session.__dict__.setdefault("notices", []).append(message)

    def changed(self, change: Change, params: dict[str, Any]) -> None:
        """The stream changes from ``change.seq``: tell the subscriber."""
        self._push(updated(self.id, self.stream.name, change, params))

    def ended(self, why: str) -> None:
        """The stream was deleted (or redefined): the subscription ends."""
        session = self._session()
        if session is not None and session.subscriptions.get(self.id) is self:
            del session.subscriptions[self.id]
            session._order = None
        self._push({"type": "unsubscribed", "id": self.id, "seq": self.generator.seq, "stream": self.stream.name,
                    "reason": f"stream {why}"})


def updated(id: str | None, name: str, change: Change, params: dict[str, Any]) -> dict[str, Any]:
    """The ``updated`` message of a named-stream change."""
    msg = {"type": "updated", "id": id, "stream": name, "seq": change.seq, "op": change.op, "params": params,
           "speed": 1.0}
    if change.op == "update":
        msg["changes"] = change.payload
    else:
        msg["anomaly"] = change.payload["anomaly"]
        msg["length"] = change.payload["length"]
    return msg


def _error(exc: NamedError, id: str | None) -> P.ProtocolError:
    return P.ProtocolError(exc.code, exc.message, id, exc.details)


def wants(session: Session, msg) -> bool:
    """Whether ``msg`` is about a named stream (handled here)."""
    kind = msg.type
    if kind == "subscribe":
        return getattr(msg, "stream", None) is not None or msg.generator is None
    if kind == "inject":
        return True
    if getattr(msg, "stream", None) is not None:
        return True
    sub = session.subscriptions.get(getattr(msg, "id", None)) if hasattr(msg, "id") else None
    return isinstance(sub, NamedSubscription)


def apply(session: Session, msg) -> list[Any]:
    """The replies to a named-stream message (dicts; an awaitable producing
    one when the control plane must be waited for)."""
    return globals()["_on_" + msg.type](session, msg)


def _named(session: Session, id: str | None) -> NamedStreams:
    named = registry(session.settings)
    if named is None:
        raise P.ProtocolError(UNKNOWN_STREAM, "this server has no named streams: start it with --scenario FILE, "
                              "or create them (PUT /streams/<name> with the admin token)", id)
    return named


def _on_subscribe(session: Session, msg: P.Subscribe) -> list[Any]:
    if msg.stream is None:
        raise P.ProtocolError(P.INVALID_MESSAGE, "invalid message: generator: Field required (a registry name or a "
                              "composition; or stream, a named stream)", msg.id,
                              [{"field": "generator", "value": None, "message": "Field required"}])
    extra = [f for f in ("generator", "seed") if getattr(msg, f) is not None] + (["params"] if msg.params else [])
    extra += ["score"] if getattr(msg, "score", None) is not None else []   # scoring: private streams only
    if extra:
        raise P.ProtocolError(P.INVALID_MESSAGE, "a named stream has its own generator, params and seed: give "
                              "stream and optionally start_seq, backpressure, encoding, batch", msg.id,
                              [{"field": extra[0], "value": "<given>", "message": "not allowed with stream"}])
    if msg.speed != 1.0:
        raise P.ProtocolError(P.INVALID_MESSAGE, "a named stream runs at the wall clock: speed must be 1",
                              msg.id, [{"field": "speed", "value": P.speed_to_wire(msg.speed),
                                        "message": "must be 1 for a named stream"}])
    session.check_room(msg.id)
    named = _named(session, msg.id)
    try:
        stream = named.get(msg.stream)
    except NamedError as exc:
        raise _error(exc, msg.id) from None
    live = stream.live_seq(session.wall())
    oldest = max(stream.origin, live - stream.cap)
    seq = live
    if msg.start_seq:
        if msg.start_seq < oldest:
            raise P.ProtocolError(INVALID_PARAMS, f"start_seq {msg.start_seq} is older than {stream.name} keeps: "
                                  f"the oldest sample is {oldest} (history {stream.cap} samples); the live "
                                  f"sample is {live}", msg.id,
                                  [{"field": "start_seq", "value": msg.start_seq, "message": f"must be >= {oldest}"}])
        seq = msg.start_seq
    sub_id = msg.id
    while sub_id is None or sub_id in session.subscriptions:
        sub_id = f"{stream.name}-{next(session._auto_ids)}"
    sub = NamedSubscription(sub_id, stream, seq, session, msg.backpressure, msg.encoding, msg.batch)
    session.subscriptions[sub_id] = sub
    session._order = None
    stream.subscribers.add(sub)
    # the parameters of its first sample; then each change its samples will cross (those at
    # later seqs, already in the log), as the stream's subscribers were told of it
    reply = P.subscribed(sub_id, stream.kind, stream.params_at(seq), stream.d.effective_seed, seq, 1.0,
                         msg.backpressure, msg.encoding, stream.interval, msg.batch)
    reply.update(stream=stream.name, epoch=stream.epoch, origin=stream.origin, live_seq=live, oldest_seq=oldest)
    return [reply] + [updated(sub_id, stream.name, change, params) for change, params in stream.changes_after(seq)]


def subscribe_url(session: Session, name: str, query: Mapping[str, str]) -> list[dict[str, Any]]:
    """``ws://host/streams/<name>?start_seq=&backpressure=&encoding=``."""
    allowed = ("start_seq", "backpressure", "encoding", "batch", "token")
    message: dict[str, Any] = {"type": "subscribe", "id": name, "stream": name}
    for key, value in query.items():
        if key == "token":
            continue
        if key not in allowed:
            session.errors.append(P.INVALID_MESSAGE)
            return [P.error(P.INVALID_MESSAGE, f"unknown option {key!r} for a named stream; the URL takes "
                            + ", ".join(allowed), name, [{"field": key, "value": value, "message": "unknown option"}])]
        message[key] = int(value) if key == "start_seq" and value.isdigit() else \
            (value in ("1", "true")) if key == "batch" else value
    try:
        return session.apply(P.subscribe_from_url(message))
    except P.ProtocolError as exc:
        session.errors.append(exc.code)
        return [exc.to_message()]


def admin_ok(settings, given: str | None) -> bool:
    """Whether ``given`` is the server's operator token (constant time)."""
    expected = getattr(settings, "admin_token", None)
    return bool(expected) and given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _check_admin(session: Session, given: str | None, id: str | None) -> None:
    if not getattr(session.settings, "admin_token", None):
        raise P.ProtocolError(FORBIDDEN, "operator changes are off on this server: start it with --admin-token "
                              "(or WSGEN_ADMIN_TOKEN)", id)
    if not admin_ok(session.settings, given):
        raise P.ProtocolError(FORBIDDEN, "changing a named stream needs the operator token: add "
                              "\"admin_token\" to the message", id,
                              [{"field": "admin_token", "value": "<hidden>" if given else None,
                                "message": "missing or wrong"}])


def _stream_name(session: Session, msg) -> str:
    if getattr(msg, "stream", None) is not None:
        return msg.stream
    sub = session.subscriptions.get(msg.id)
    if isinstance(sub, NamedSubscription):
        return sub.stream.name
    raise P.ProtocolError(P.INVALID_MESSAGE, f"{msg.type} names a named stream: give stream", msg.id,
                          [{"field": "stream", "value": None, "message": "required"}])


def submit(named: NamedStreams, entry: dict[str, Any], reply: Callable[[dict[str, Any]], dict[str, Any]],
           id: str | None) -> Any:
    """Append ``entry`` through the control plane; the reply (a dict, or an
    awaitable of one when the plane is remote)."""
    try:
        result = named.plane.submit(entry)
    except NamedError as exc:
        raise _error(exc, id) from None
    if not inspect.isawaitable(result):
        return reply(result)

    async def later() -> dict[str, Any]:
        try:
            return reply(await result)
        except NamedError as exc:
            return _error(exc, id).to_message()
    return later()


def _change_reply(id: str | None, name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def reply(result: dict[str, Any]) -> dict[str, Any]:
        if result.get("skipped"):
            return P.error(INVALID_PARAMS, f"the change was not applied: {result['skipped']}", id)
        change = Change(result["seq"], result["op"], {})
        msg = {"type": "updated", "id": id, "stream": name, "seq": change.seq, "op": change.op,
               "params": result.get("params"), "speed": 1.0, "late": result.get("late", False)}
        return msg
    return reply


def _on_update(session: Session, msg: P.Update) -> list[Any]:
    name = _stream_name(session, msg)
    _check_admin(session, getattr(msg, "admin_token", None), msg.id)
    if msg.speed is not None:
        raise P.ProtocolError(P.INVALID_MESSAGE, "a named stream runs at the wall clock: no speed", msg.id,
                              [{"field": "speed", "value": P.speed_to_wire(msg.speed), "message": "not allowed"}])
    named = _named(session, msg.id)
    try:
        entry = named.request_update(name, msg.params, getattr(msg, "seq", None))
    except NamedError as exc:
        raise _error(exc, msg.id) from None
    return [submit(named, entry, _change_reply(msg.id, name), msg.id)]


def _on_inject(session: Session, msg) -> list[Any]:
    name = _stream_name(session, msg)
    _check_admin(session, msg.admin_token, msg.id)
    named = _named(session, msg.id)
    try:
        entry = named.request_inject(name, msg.anomaly, msg.duration, msg.seq)
    except NamedError as exc:
        raise _error(exc, msg.id) from None
    return [submit(named, entry, _change_reply(msg.id, name), msg.id)]


def _on_pause(session: Session, msg: P.Pause) -> list[Any]:
    sub = session._sub(msg.id)
    sub.paused = True
    return [P.state_change("paused", sub.id, sub.generator.seq)]


def _on_resume(session: Session, msg: P.Resume) -> list[Any]:
    """A shared stream does not wait: resuming goes on from the live sample
    (``skipped`` on the next data counts what the pause missed)."""
    sub: NamedSubscription = session._sub(msg.id)
    if sub.paused:
        sub.paused = False
        live = sub.stream.live_seq(session.wall())
        if live > sub.generator.seq:
            sub.skipped += live - sub.generator.seq
            sub.generator.seq = live
    return [P.state_change("resumed", sub.id, sub.generator.seq)]


def _on_unsubscribe(session: Session, msg: P.Unsubscribe) -> list[Any]:
    sub: NamedSubscription = session._sub(msg.id)
    del session.subscriptions[sub.id]
    session._order = None
    sub.stream.subscribers.discard(sub)
    return [P.state_change("unsubscribed", sub.id, sub.generator.seq)]


def _on_detect(session: Session, msg) -> list[Any]:
    """Scoring a detector is for private labelled streams (wsgen.scoring.live), not named ones."""
    session._sub(msg.id)
    raise P.ProtocolError(P.INVALID_MESSAGE, f"subscription {msg.id!r} is a named stream, which is not scored: "
                          "subscribe to a private labelled stream with \"score\" to send detect and score", msg.id)


_on_score = _on_detect
