"""The uninterrupted stream a test compares the server's output with."""
from __future__ import annotations

import numpy as np

import wsgen


def engine(name, params, seed, n, updates=()):
    """Values (and labels, or None) of samples 0..n-1 of ``name`` with
    ``params`` and ``seed``; ``updates``: (seq, changes) applied at those seqs."""
    gen = wsgen.create(name, params, seed=seed)
    blocks = []
    for at, changes in sorted(updates, key=lambda u: u[0]):
        blocks.append(gen.take(at - gen.seq))
        gen.update(changes)
    blocks.append(gen.take(n - gen.seq))
    values = np.concatenate([b.values for b in blocks])
    labels = None if blocks[0].labels is None else np.concatenate([b.labels for b in blocks])
    return values, labels


#: What docs/protocol.md lets each client message get back: the reply type
#: on success and the error codes it may get instead. ``internal_error`` is
#: never among them: it means a server bug.
DOCUMENTED_REPLIES: dict[str, tuple[str, frozenset[str]]] = {
    "subscribe": ("subscribed", frozenset({"invalid_params", "unknown_generator", "duplicate_id", "limit_reached",
                                           "invalid_message"})),
    "update": ("updated", frozenset({"unknown_id", "invalid_params"})),
    "pause": ("paused", frozenset({"unknown_id"})),
    "resume": ("resumed", frozenset({"unknown_id"})),
    "unsubscribe": ("unsubscribed", frozenset({"unknown_id"})),
    "list": ("generators", frozenset()),
    "detect": ("detected", frozenset({"unknown_id", "invalid_message", "out_of_range", "limit_reached"})),
    "score": ("score", frozenset({"unknown_id", "invalid_message", "out_of_range"})),   # out_of_range: last
    "watch": ("watching", frozenset({"unknown_id", "duplicate_id", "limit_reached", "invalid_message"})),
    "unwatch": ("unwatched", frozenset({"unknown_id"})),
    "inject": ("updated", frozenset({"invalid_message", "invalid_params", "unknown_stream", "forbidden", "too_late",
                                     "not_supported", "control_plane_unavailable"})),
}
#: What an operator's change of a named stream (``update`` / ``inject`` with ``stream``) may get back.
NAMED_CHANGE_REPLIES = DOCUMENTED_REPLIES["inject"]


def check_documented_reply(parsed, reply: dict, live_ids: set[str]) -> None:
    """Assert that ``reply`` is the documented answer to the parsed client
    message ``parsed`` on a connection whose subscriptions are ``live_ids``:

    * never ``internal_error``;
    * a message naming an id that is not subscribed gets ``unknown_id``
      (``subscribe``: a taken id gets ``duplicate_id``);
    * pause, resume, unsubscribe and list of a live id always succeed;
    * otherwise the success reply, or one of the codes documented for it.
    """
    assert not (reply["type"] == "error" and reply.get("code") == "internal_error"), (parsed, reply)
    assert parsed.type in DOCUMENTED_REPLIES, f"no documented replies for {parsed.type!r}: add them here"
    ok, codes = DOCUMENTED_REPLIES[parsed.type]
    sub_id = getattr(parsed, "id", None)
    if parsed.type == "inject" or (parsed.type == "update" and getattr(parsed, "stream", None) is not None):
        ok, codes = NAMED_CHANGE_REPLIES        # an operator's change: about the stream, not a subscription
        assert reply["type"] == ok or reply.get("code") in codes, (parsed, reply)
        return
    if parsed.type == "subscribe" and getattr(parsed, "stream", None) is not None:
        codes = codes | {"unknown_stream"}
    if parsed.type == "subscribe":
        if sub_id is not None and sub_id in live_ids:
            assert reply["type"] == "error" and reply["code"] == "duplicate_id", (parsed, reply)
    elif parsed.type != "list" and sub_id not in live_ids:
        assert reply["type"] == "error" and reply["code"] == "unknown_id", (parsed, reply)
        return
    elif parsed.type in ("pause", "resume", "unsubscribe", "list"):
        assert reply["type"] == ok, (parsed, reply)
    if reply["type"] == "error":
        assert reply["code"] in codes, (parsed, reply)
        assert reply["id"] == sub_id, (parsed, reply)
    else:
        assert reply["type"] == ok, (parsed, reply)
        if sub_id is not None:
            assert reply["id"] == sub_id, (parsed, reply)
