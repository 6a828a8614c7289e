"""The blocking client: :class:`SyncClient` runs a :class:`~wsgen.client.connection.Client`
in an event loop of its own thread, through anyio's blocking portal
(``anyio.from_thread.start_blocking_portal``); :func:`stream` and
:func:`to_numpy` are one-call captures on top of it."""
from __future__ import annotations

from contextlib import ExitStack
from functools import partial
from typing import Any, Awaitable, Callable, Iterable, Iterator, Mapping

import numpy as np
from anyio.from_thread import BlockingPortal, start_blocking_portal

from wsgen.client.block import ReceivedBlock
from wsgen.client.connection import Client, Subscription
from wsgen.client.url import DEFAULT_URL

__all__ = ["SyncClient", "SyncSubscription", "stream", "to_numpy"]

#: Options of :func:`stream` / :func:`to_numpy` that go to ``subscribe``; the
#: others go to :class:`Client`.
_SUBSCRIBE_OPTIONS = ("speed", "backpressure", "encoding", "id", "start_seq")


class SyncSubscription:
    """Blocking view of a :class:`Subscription` (from :class:`SyncClient`).

    Iterate it for blocks; ``take``, ``update``, ``pause``, ``resume``,
    ``unsubscribe``, ``score`` as in the async class; ``detect`` waits for
    its reply (report many alarms at once with ``seqs=``).
    """

    def __init__(self, owner: "SyncClient", sub: Subscription) -> None:
        self._owner = owner
        self.subscription = sub

    def __getattr__(self, name: str) -> Any:
        if name in ("id", "generator", "seed", "params", "speed", "backpressure", "encoding", "interval",
                    "paused", "next_seq", "finished", "composition", "channels", "score_options", "last_score",
                    "detect_errors"):
            return getattr(self.subscription, name)
        raise AttributeError(name)

    def __iter__(self) -> Iterator[ReceivedBlock]:
        return self

    def __next__(self) -> ReceivedBlock:
        try:
            return self._owner._call(self.subscription.__anext__)
        except StopAsyncIteration:
            raise StopIteration from None

    def take(self, n: int) -> ReceivedBlock:
        return self._owner._call(self.subscription.take, n)

    def update(self, params: Mapping[str, Any] | None = None, /, *, speed: float | str | None = None,
               **changes: Any) -> int:
        return self._owner._call(partial(self.subscription.update, params, speed=speed, **changes))

    def pause(self) -> int:
        return self._owner._call(self.subscription.pause)

    def resume(self) -> int:
        return self._owner._call(self.subscription.resume)

    def unsubscribe(self) -> int:
        return self._owner._call(self.subscription.unsubscribe)

    def detect(self, seq: int | None = None, *, seqs: Iterable[int] | None = None, score: float | None = None,
               scores: Iterable[float] | None = None) -> int:
        """As :meth:`Subscription.detect`, waiting for the reply: the number of new alarms."""
        async def detect() -> int:
            return await self.subscription.detect(seq, seqs=seqs, score=score, scores=scores)
        return self._owner._call(detect)

    def score(self, last: int | None = None) -> dict[str, Any]:
        return self._owner._call(self.subscription.score, last)


class SyncClient:
    """Blocking client: a :class:`Client` run in a background thread with
    its own event loop (an anyio blocking portal). Same arguments as
    :class:`Client`.

    ::

        with SyncClient(url) as c:
            sub = c.subscribe("sine", {"amplitude": 2}, seed=1, speed="max")
            block = sub.take(1000)

    Ctrl-C while waiting interrupts the call; :meth:`close` (or leaving the
    ``with`` block) closes the connection and stops the thread.
    """

    def __init__(self, url: str = DEFAULT_URL, **client_options: Any) -> None:
        self.url = url
        self._options = client_options
        self._portal: BlockingPortal | None = None
        self._stack: ExitStack | None = None
        self._client: Client | None = None

    def __enter__(self) -> "SyncClient":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("not open")
        return self._client

    def open(self) -> None:
        if self._portal is not None:
            raise RuntimeError("already open")
        self._stack = ExitStack()
        self._portal = self._stack.enter_context(start_blocking_portal(name="wsgen-sync-client"))

        async def make() -> Client:
            client = Client(self.url, **self._options)
            await client.connect()
            return client
        try:
            self._client = self._call(make)
        except BaseException:
            self._stop()
            raise

    def _call(self, func: Callable[..., Awaitable[Any]], *args: Any, timeout: float | None = None) -> Any:
        """``await func(*args)`` in the client's thread; cancelled there if
        this thread stops waiting (Ctrl-C, ``timeout`` seconds)."""
        if self._portal is None:
            raise RuntimeError("not open")
        fut = self._portal.start_task_soon(func, *args)
        try:
            return fut.result(timeout)
        except BaseException:
            fut.cancel()
            raise

    def subscribe(self, generator: str | Mapping[str, Any], params: Mapping[str, Any] | None = None,
                  **options: Any) -> SyncSubscription:
        """As :meth:`Client.subscribe`."""
        return SyncSubscription(self, self._call(partial(self.client.subscribe, generator, params, **options)))

    def list(self) -> list[dict[str, Any]]:
        """As :meth:`Client.list`."""
        return self._call(self.client.list)

    def subscribe_stream(self, name: str, **options: Any) -> SyncSubscription:
        """As :meth:`Client.subscribe_stream`."""
        return SyncSubscription(self, self._call(partial(self.client.subscribe_stream, name, **options)))

    def close(self) -> None:
        if self._portal is None:
            return
        try:
            if self._client is not None:
                self._call(self._client.close, timeout=10)
        finally:
            self._stop()

    def _stop(self) -> None:
        """Stop the portal (cancelling what still runs in it) and its thread."""
        portal, stack = self._portal, self._stack
        self._portal = self._stack = None
        if portal is None or stack is None:
            return
        try:
            portal.call(portal.stop, True)
        except RuntimeError:        # already stopped
            pass
        stack.close()


def _split_options(opts: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    sub = {k: v for k, v in opts.items() if k in _SUBSCRIBE_OPTIONS}
    client = {k: v for k, v in opts.items() if k not in _SUBSCRIBE_OPTIONS}
    return client, sub


def stream(url: str, generator: str | Mapping[str, Any], params: Mapping[str, Any] | None = None, seed: int | None = None,
           **opts: Any) -> Iterator[ReceivedBlock]:
    """Blocks of one subscription, as they arrive (blocking iterator).

    ``opts``: ``speed``, ``backpressure``, ``encoding``, ``id``,
    ``start_seq`` go to :meth:`Client.subscribe`, the others (``reconnect``,
    ``queue_size``, ...) to :class:`Client`. The connection opens on the
    first ``next()`` and closes when the iterator is closed or collected
    (``break`` out of a ``for`` loop, or call ``.close()``).

    Raises (from ``next()``): :class:`WsgenError`, :class:`ConnectionLost`,
    ``OSError`` if the server cannot be reached.
    """
    client_opts, sub_opts = _split_options(opts)
    with SyncClient(url, **client_opts) as c:
        sub = c.subscribe(generator, params, seed=seed, **sub_opts)
        yield from sub


def to_numpy(url: str, generator: str | Mapping[str, Any], n: int, params: Mapping[str, Any] | None = None, seed: int | None = None,
             **opts: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Capture ``n`` samples of a stream as arrays.

    ``speed`` defaults to ``"max"`` here (a capture, not a live view; the
    timestamps are stream time whatever the speed). Other ``opts`` as in
    :func:`stream`.

    Returns:
        ``(values, labels, seqs, timestamps)``: float64 (n,); bool (n,) or
        ``None`` for generators without anomalies; int64 (n,); float64 (n,)
        Unix seconds.
    """
    opts.setdefault("speed", "max")
    client_opts, sub_opts = _split_options(opts)
    with SyncClient(url, **client_opts) as c:
        sub = c.subscribe(generator, params, seed=seed, **sub_opts)
        block = sub.take(n)
    return block.values, block.labels, block.seqs, block.timestamps
