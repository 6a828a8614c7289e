"""``/metrics`` of a server run as several worker processes (``wsgen serve --workers N``).

The workers share the ports, so a scrape reaches one of them; it must
report the whole server. ``prometheus_client``'s multiprocess mode does
that: with ``PROMETHEUS_MULTIPROC_DIR`` set (by :mod:`wsgen.server.workers`, before
any worker imports ``prometheus_client``) every worker writes its metric
values to memory-mapped files in that folder, and
``MultiProcessCollector`` merges the files of all workers at scrape time.

* Counters (``wsgen_errors``) sum over every worker that ever ran, dead
  ones included, so a total never goes back when a worker is restarted.
* The gauges (``wsgen_connections``, ``wsgen_subscriptions``,
  ``wsgen_http_streams``) use mode ``livesum``: the sum over live workers;
  the supervisor removes a dead worker's gauge files
  (``prometheus_client.multiprocess.mark_process_dead``).
* The per-message tallies of :class:`wsgen.server.metrics.DeliveryTally` (plain Python
  numbers, kept off the library's hot path) are copied by
  :class:`Publisher` into gauges of mode ``sum`` once a second and before
  each scrape, as running totals. :func:`render` turns them back into the
  same ``wsgen_samples_sent``, ``wsgen_messages_sent``,
  ``wsgen_samples_dropped`` counters and ``wsgen_schedule_lateness_seconds``
  histogram a single process reports. Another worker's share is then up to
  one second old.
"""
from __future__ import annotations

import asyncio
import os

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["DIR_ENV", "Publisher", "enabled", "render"]

DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
PUBLISH_PERIOD_S = 1.0
_PREFIX = "wsgen_mp_"


def enabled() -> bool:
    """Whether this process is one worker of several (its metrics go to the shared folder)."""
    return bool(os.environ.get(DIR_ENV))


class Publisher:
    """Copies one process's :class:`wsgen.server.metrics.DeliveryTally` totals into
    multiprocess gauges (mode ``sum``), every ``PUBLISH_PERIOD_S`` seconds
    while the event loop runs, and on :meth:`publish`."""

    _gauges: dict[str, Gauge] = {}      # one set per process: metric names are global in the files

    def __init__(self, delivery) -> None:
        self.delivery = delivery
        g = Publisher._gauges
        if not g:
            g["samples"] = Gauge(_PREFIX + "samples_sent", "samples sent (running total of one process)",
                                 ["generator", "path"], multiprocess_mode="sum", registry=None)
            g["messages"] = Gauge(_PREFIX + "messages_sent", "data messages sent", ["path"],
                                  multiprocess_mode="sum", registry=None)
            g["dropped"] = Gauge(_PREFIX + "samples_dropped", "samples skipped", ["generator"],
                                 multiprocess_mode="sum", registry=None)
            g["bucket"] = Gauge(_PREFIX + "lateness_bucket", "lateness observations per bucket (not cumulative)",
                                ["le"], multiprocess_mode="sum", registry=None)
            g["sum"] = Gauge(_PREFIX + "lateness_sum", "sum of lateness, seconds", multiprocess_mode="sum",
                             registry=None)
        self._handle: asyncio.TimerHandle | None = None
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._schedule()

    def _schedule(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._handle = self._loop.call_later(PUBLISH_PERIOD_S, self._tick)

    def _tick(self) -> None:
        self.publish()
        self._schedule()

    def close(self) -> None:
        """Publish a last time and stop the timer."""
        self.publish()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def publish(self) -> None:
        from wsgen.server.metrics import LATENESS_BUCKETS, _le
        d, g = self.delivery, Publisher._gauges
        for (name, path), n in list(d.samples.items()):
            g["samples"].labels(name, path).set(n)
        for path, n in list(d.messages.items()):
            g["messages"].labels(path).set(n)
        for name, n in list(d.dropped.items()):
            g["dropped"].labels(name).set(n)
        for bound, n in zip((*LATENESS_BUCKETS, float("inf")), d.buckets):
            g["bucket"].labels(_le(bound)).set(n)
        g["sum"].set(d.lateness_sum)


def render(publisher: Publisher | None, own: CollectorRegistry | None = None) -> bytes:
    """The whole server's metrics (every worker's files merged), in the
    Prometheus text format; ``publisher``'s own totals are published first.
    Families of ``own`` (this worker's registry) that are not in the files
    (custom collectors, such as a view of state all workers share) are
    added as this worker sees them."""
    if publisher is not None:
        publisher.publish()
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    families = list(registry.collect())
    raw = {f.name[len(_PREFIX):]: f for f in families if f.name.startswith(_PREFIX)}
    out = [f for f in families if not f.name.startswith(_PREFIX)]
    delivered = {"wsgen_samples_sent", "wsgen_messages_sent", "wsgen_samples_dropped",
                 "wsgen_schedule_lateness_seconds"}
    known = {f.name for f in out} | delivered
    if own is not None:
        out += [f for f in own.collect() if f.name not in known]

    def samples(key: str):
        family = raw.get(key)
        return [] if family is None else [s for s in family.samples if s.name == family.name]

    sent = CounterMetricFamily("wsgen_samples_sent", "Samples sent", labels=["generator", "path"])
    for s in sorted(samples("samples_sent"), key=lambda s: (s.labels["generator"], s.labels["path"])):
        sent.add_metric([s.labels["generator"], s.labels["path"]], s.value)
    messages = CounterMetricFamily("wsgen_messages_sent", "Data messages sent", labels=["path"])
    for s in sorted(samples("messages_sent"), key=lambda s: s.labels["path"]):
        messages.add_metric([s.labels["path"]], s.value)
    dropped = CounterMetricFamily("wsgen_samples_dropped", "Samples skipped under backpressure 'drop'",
                                  labels=["generator"])
    for s in sorted(samples("samples_dropped"), key=lambda s: s.labels["generator"]):
        dropped.add_metric([s.labels["generator"]], s.value)
    per_bucket = sorted(((float(s.labels["le"]), s.labels["le"], s.value) for s in samples("lateness_bucket")))
    cumulative, total = [], 0.0
    for _, le, n in per_bucket:
        total += n
        cumulative.append((le, total))
    lateness_sum = sum(s.value for s in samples("lateness_sum"))
    if not cumulative:
        cumulative = [("+Inf", 0.0)]
    lateness = HistogramMetricFamily("wsgen_schedule_lateness_seconds",
                                     "How far the last sample of a data message was behind its due time",
                                     buckets=cumulative, sum_value=lateness_sum)
    out += [sent, messages, dropped, lateness]

    class _Families:
        def collect(self):
            return out

    return generate_latest(_Families())   # type: ignore[arg-type]
