"""Where the named streams' log lives: in this process, or in Redis.

The log holds definitions and changes of named streams (entries in
:mod:`wsgen.streams.named`), never samples: each process generates its samples
itself, deterministically from the log.

* :class:`LocalPlane` (default, no ``--redis-url``): appending applies the
  entry at once; one process.
* :class:`RedisPlane` (``--redis-url`` / ``WSGEN_REDIS_URL``): the log is
  one Redis stream (key ``wsgen:named:log``, one field ``e`` holding the
  entry as JSON). Every process reads it from the start (``XRANGE``), then
  follows it (``XREAD BLOCK``), applying entries in the stream's order; an
  operator's request is appended with ``XADD`` and answered once this
  process has read it back and applied it, so the reply names the same
  effective seq every process uses. After the first full read, the
  scenario's streams that the log does not define yet are appended
  (``define``; a name already defined keeps the log's definition, and a
  different one in the file is logged as a warning).

  While Redis is unreachable, streams go on with what the log said;
  changes are refused (``control_plane_unavailable``); ``status()`` (in
  ``/readyz``, ``/streams``) and ``wsgen_control_plane_up`` (``/metrics``)
  say so. The follower retries every ``retry_s`` and, when Redis is back,
  reads what it missed.
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import uuid
from typing import Any, Iterable

from wsgen.streams.named import CONTROL_PLANE_UNAVAILABLE, NamedError, NamedStreams, StreamDef

log = logging.getLogger("wsgen.streams.controlplane")

LOG_KEY = "wsgen:named:log"


def redact(url: str) -> str:
    """``url`` without its password (``redis://:secret@host`` -> ``redis://:***@host``)."""
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)


class LocalPlane:
    """The embedded log: one process, always up."""

    kind = "embedded"
    up = True

    def __init__(self, named: NamedStreams) -> None:
        self.named = named
        named.plane = self

    async def start(self, scenario: Iterable[StreamDef] = ()) -> None:
        for d in scenario:
            self.named.apply(self.named.define_entry(d))

    def submit(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Apply ``entry``; returns what it did (:meth:`NamedStreams.apply`)."""
        return self.named.apply(entry)

    async def stop(self) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return {"kind": self.kind, "up": True}


class RedisPlane:
    """The log in a Redis stream (module docstring).

    Args:
        named: the process's streams, kept in step with the log.
        url: ``redis://[:password@]host:port[/db]``.
        key: the Redis stream's key.
        retry_s: seconds between attempts while Redis is unreachable.
        timeout_s: how long a request waits for Redis and for its entry to
            come back, before it is refused.
    """

    kind = "redis"

    def __init__(self, named: NamedStreams, url: str, key: str = LOG_KEY, retry_s: float = 0.5,
                 timeout_s: float = 3.0) -> None:
        import redis.asyncio as aioredis

        self.named = named
        named.plane = self
        self.url, self.key, self.retry_s, self.timeout_s = url, key, retry_s, timeout_s
        self.redis = aioredis.from_url(url, socket_connect_timeout=1.0, socket_timeout=5.0,
                                       health_check_interval=0, decode_responses=True)
        self.up = False
        self.synced = False              # the whole log was read once
        self.error: str | None = "not connected yet"
        self.last_id = "0-0"
        self._scenario: list[StreamDef] = []
        self._waiters: dict[str, asyncio.Future] = {}
        self._results: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self._task: asyncio.Task | None = None
        self._first_sync = asyncio.Event()

    async def start(self, scenario: Iterable[StreamDef] = (), wait_s: float = 5.0) -> None:
        """Follow the log; wait up to ``wait_s`` for a first full read (the
        server starts anyway if Redis is unreachable, and catches up later)."""
        self._scenario = list(scenario)
        self._task = asyncio.create_task(self._follow())
        try:
            await asyncio.wait_for(self._first_sync.wait(), wait_s)
        except asyncio.TimeoutError:
            log.error("control plane: Redis at %s unreachable (%s); named streams start when it answers",
                      redact(self.url), self.error)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(NamedError(CONTROL_PLANE_UNAVAILABLE, "the server is stopping"))
        await self.redis.aclose()

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "up": self.up, "url": redact(self.url), "last_id": self.last_id}
        if not self.up:
            out["error"] = self.error
        return out

    # -- following ------------------------------------------------------------------
    def _down(self, exc: BaseException) -> None:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self.up or self.error != text:
            log.warning("control plane: Redis at %s unreachable: %s; the named streams already read go on, "
                        "changes are refused",
                        redact(self.url), text)
        self.up, self.error = False, text

    def _mark_up(self) -> None:
        if not self.up:
            log.info("control plane: Redis at %s reachable (log at %s)", redact(self.url), self.last_id)
        self.up, self.error = True, None

    def _apply(self, entry_id: str, fields: dict[str, str]) -> None:
        try:
            entry = json.loads(fields["e"])
        except (KeyError, ValueError) as exc:
            log.warning("control plane: entry %s is not a wsgen entry (%s); skipped", entry_id, exc)
            result: dict[str, Any] = {"skipped": "not a wsgen entry"}
        else:
            result = self.named.apply(entry)
        self.last_id = entry_id
        fut = self._waiters.pop(entry_id, None)
        if fut is not None:
            if not fut.done():
                fut.set_result(result)
        else:
            self._results[entry_id] = result
            while len(self._results) > 256:
                self._results.popitem(last=False)

    async def _catch_up(self) -> None:
        while True:
            start = "-" if self.last_id == "0-0" else "(" + self.last_id
            entries = await self.redis.xrange(self.key, min=start, max="+", count=1000)
            for i, (entry_id, fields) in enumerate(entries):
                self._apply(entry_id, fields)
                if i % 50 == 49:
                    await asyncio.sleep(0)   # a long log: let the streams run between applications
            if len(entries) < 1000:
                return

    async def _publish_scenario(self) -> None:
        for d in self._scenario:
            have = self.named.streams.get(d.name)
            if have is None:
                await self.redis.xadd(self.key, {"e": json.dumps(self.named.define_entry(d))})
            elif have.d != d:
                log.warning("scenario stream %s differs from the control plane's definition; the control "
                            "plane's is kept (delete the stream to redefine it)", d.name)
        await self._catch_up()

    async def _follow(self) -> None:
        from redis.exceptions import RedisError
        while True:
            try:
                if not self.synced:
                    await self._catch_up()
                    await self._publish_scenario()
                    self.synced = True
                    self._mark_up()
                    self._first_sync.set()
                reply = await self.redis.xread({self.key: self.last_id}, block=1000, count=500)
                self._mark_up()
                for _key, entries in reply or ():
                    for entry_id, fields in entries:
                        self._apply(entry_id, fields)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._down(exc)
                await asyncio.sleep(self.retry_s)

    # -- appending --------------------------------------------------------------------
    def _unavailable(self) -> NamedError:
        return NamedError(CONTROL_PLANE_UNAVAILABLE, f"the control plane (Redis at {redact(self.url)}) is "
                          f"unreachable ({self.error}): named streams go on with their last known definitions, "
                          "and changes are refused until it is back; retry later")

    def submit(self, entry: dict[str, Any]):
        """Append ``entry``; an awaitable of what it did once read back.
        Raises :class:`NamedError` (``control_plane_unavailable``) at once
        when Redis is known to be down."""
        if not self.up or not self.synced:
            raise self._unavailable()
        return self._submit(entry)

    async def _submit(self, entry: dict[str, Any]) -> dict[str, Any]:
        from redis.exceptions import ConnectionError as RedisConnectionError, RedisError
        entry = {**entry, "rid": uuid.uuid4().hex}   # a retried append applies once (NamedStreams.apply)
        for attempt in (1, 2):
            try:
                entry_id = await asyncio.wait_for(self.redis.xadd(self.key, {"e": json.dumps(entry)}),
                                                  self.timeout_s)
                break
            except RedisConnectionError as exc:
                if attempt == 2:          # (the first may have met a pooled connection Redis closed)
                    self._down(exc)
                    raise self._unavailable() from None
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                self._down(exc)
                raise self._unavailable() from None
        if entry_id in self._results:
            return self._results.pop(entry_id)
        fut = asyncio.get_running_loop().create_future()
        self._waiters[entry_id] = fut
        try:
            return await asyncio.wait_for(fut, self.timeout_s)
        except asyncio.TimeoutError:
            self._waiters.pop(entry_id, None)
            raise NamedError(CONTROL_PLANE_UNAVAILABLE, f"the change was appended to the log (entry {entry_id}) "
                             f"but not read back within {self.timeout_s} s; it applies when the log is read "
                             "(see GET /streams)") from None


# -- the server's wiring ------------------------------------------------------------

class _Collector:
    """``/metrics`` families of the named streams, computed at scrape time:
    ``wsgen_control_plane_up`` (1/0, label ``kind``: embedded or redis),
    ``wsgen_named_streams``, ``wsgen_named_subscribers`` (label ``stream``),
    ``wsgen_named_log_entries`` and ``wsgen_named_late_updates`` (counters:
    entries applied; changes read after their seq was generated here)."""

    def __init__(self, named: NamedStreams) -> None:
        self.named = named

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        named, plane = self.named, self.named.plane
        up = GaugeMetricFamily("wsgen_control_plane_up", "Whether the named streams' control plane is reachable "
                               "(changes are refused while it is not)", labels=["kind"])
        up.add_metric([plane.kind], 1.0 if plane.up else 0.0)
        streams = GaugeMetricFamily("wsgen_named_streams", "Named streams defined")
        streams.add_metric([], len(named.streams))
        subs = GaugeMetricFamily("wsgen_named_subscribers", "WebSocket subscribers per named stream", labels=["stream"])
        for name, stream in sorted(named.streams.items()):
            subs.add_metric([name], len(stream.subscribers))
        entries = CounterMetricFamily("wsgen_named_log_entries", "Control-plane log entries applied")
        entries.add_metric([], named.entries)
        late = CounterMetricFamily("wsgen_named_late_updates", "Changes read after their seq had been generated "
                                   "here (the stream was rebuilt; raise --update-margin)")
        late.add_metric([], named.late_updates)
        return [up, streams, subs, entries, late]


async def start(settings, metrics=None):
    """Create the process's named streams (``settings.named``) and their
    control plane, load ``settings.scenario`` into it; returns the plane.

    Raises:
        wsgen.streams.scenario.ScenarioError: the scenario file is unreadable or invalid.
    """
    from wsgen.streams.scenario import load_scenario
    defs = load_scenario(settings.scenario) if settings.scenario else []
    named = NamedStreams(margin_s=settings.update_margin_s)
    plane = RedisPlane(named, settings.redis_url) if settings.redis_url else LocalPlane(named)
    await plane.start(defs)
    settings.named = named
    named.keeper = asyncio.create_task(_keep(named))
    if metrics is not None:
        metrics.registry.register(_Collector(named))
    return plane


async def stop(settings) -> None:
    """Stop following the log (at server shutdown)."""
    named = getattr(settings, "named", None)
    keeper = getattr(named, "keeper", None)
    if keeper is not None:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
    if named is not None and named.plane is not None:
        await named.plane.stop()


async def _keep(named: NamedStreams, period_s: float = 1.0) -> None:
    """Bring every stream up to its live sample once a ``period_s``, with or
    without subscribers: a first subscriber after a quiet hour then finds
    its samples ready instead of a long catch-up in its wake-up (waveforms
    and distributions seek in O(1); compositions in time linear in the
    distance)."""
    while True:
        await asyncio.sleep(period_s)
        for stream in list(named.streams.values()):
            try:
                stream.advance(stream.live_seq())
            except Exception:      # a bug of ours: keep the others going, say so
                log.exception("named stream %s: advancing failed", stream.name)
