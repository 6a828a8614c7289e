"""Prometheus metrics (official ``prometheus_client``), served at ``/metrics``.

Each server instance owns its registry, so several servers in one process
(tests) do not share counters.

``wsgen_errors`` counts error answers by ``code`` (the protocol's error
codes; the HTTP JSON errors' ``error`` field; for a refused WebSocket
handshake ``unauthorized``, ``bad_host``, ``origin_refused``, ``not_found``
or ``limit_reached``) and ``path`` (``ws`` or ``http``, as on
``wsgen_samples_sent``).

Gauges and the error counter are ``prometheus_client`` objects (they move a
few times per connection). What moves once per data message (samples and
messages sent, samples dropped, the schedule-lateness histogram; up to
100,000 times a second under fan-out) is tallied in plain Python numbers by
:class:`DeliveryTally` and handed to the registry as metric families at scrape
time: the library's documented custom-collector mechanism, without its
per-update locks and label lookups on the hot path.
"""
from __future__ import annotations

from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from wsgen.server import metrics_mp

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Upper bounds (seconds) of the lateness histogram's buckets (+Inf added).
LATENESS_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5)


class DeliveryTally:
    """Tallies of data sent, exposed as ``wsgen_samples_sent``,
    ``wsgen_messages_sent``, ``wsgen_samples_dropped`` (counters) and
    ``wsgen_schedule_lateness_seconds`` (histogram, one observation per
    WebSocket data message: how far its last sample was behind its due
    time)."""

    def __init__(self) -> None:
        self.samples: dict[tuple[str, str], int] = {}     # (generator, path) -> samples
        self.messages: dict[str, int] = {}                 # path -> data messages
        self.dropped: dict[str, int] = {}                  # generator -> samples skipped
        self.buckets = [0] * (len(LATENESS_BUCKETS) + 1)   # per bucket, not cumulative
        self.lateness_sum = 0.0

    def collect(self):
        samples = CounterMetricFamily("wsgen_samples_sent", "Samples sent", labels=["generator", "path"])
        for (name, path), n in sorted(self.samples.items()):
            samples.add_metric([name, path], n)
        messages = CounterMetricFamily("wsgen_messages_sent", "Data messages sent", labels=["path"])
        for path, n in sorted(self.messages.items()):
            messages.add_metric([path], n)
        dropped = CounterMetricFamily("wsgen_samples_dropped", "Samples skipped under backpressure 'drop'",
                                      labels=["generator"])
        for name, n in sorted(self.dropped.items()):
            dropped.add_metric([name], n)
        cumulative, total = [], 0
        for bound, n in zip((*LATENESS_BUCKETS, float("inf")), self.buckets):
            total += n
            cumulative.append((_le(bound), total))
        lateness = HistogramMetricFamily(
            "wsgen_schedule_lateness_seconds",
            "How far the last sample of a data message was behind its due time",
            buckets=cumulative, sum_value=self.lateness_sum)
        return [samples, messages, dropped, lateness]


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class Metrics:
    """What the WebSocket and HTTP adapters count."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        # (livesum: with --workers, the sum over the live workers; see wsgen.server.metrics_mp)
        self.connections = Gauge("wsgen_connections", "Open WebSocket connections", registry=r,
                                 multiprocess_mode="livesum")
        self.subscriptions = Gauge("wsgen_subscriptions", "Active subscriptions by generator",
                                   ["generator"], registry=r, multiprocess_mode="livesum")
        self.http_streams = Gauge("wsgen_http_streams", "Open HTTP streams", registry=r,
                                  multiprocess_mode="livesum")
        self.errors = Counter("wsgen_errors", "Error answers by code and path (ws: error messages and refused "
                              "handshakes, http: 4xx/5xx answers)", ["code", "path"], registry=r)
        self.write_timeouts = Counter("wsgen_write_timeouts", "Connections dropped because the client took no "
                                      "bytes for --write-timeout seconds (wsgen.server.liveness)", ["path"], registry=r)
        self.delivery = DeliveryTally()
        r.register(self.delivery)
        #: with --workers: publishes ``delivery`` to the files all workers share
        self.publisher = metrics_mp.Publisher(self.delivery) if metrics_mp.enabled() else None

    def sent(self, chunk) -> None:
        """Count one WebSocket data message."""
        self.sent_many((chunk,))

    def sent_many(self, chunks) -> None:
        """Count the WebSocket data messages of one wake-up (or one ``batch``
        frame). Runs for every data message: plain ints and floats, one dict
        update per generator per call."""
        d = self.delivery
        buckets, bounds = d.buckets, LATENESS_BUCKETS
        per_generator: dict[str, int] = {}
        total = 0.0
        for chunk in chunks:
            lag = chunk.lag
            buckets[bisect_left(bounds, lag)] += 1    # bucket i: bound[i-1] < lag <= bound[i]
            total += lag
            name = chunk.sub.generator.name
            per_generator[name] = per_generator.get(name, 0) + len(chunk.block.values)
        samples = d.samples
        for name, n in per_generator.items():
            key = (name, "ws")
            samples[key] = samples.get(key, 0) + n
        d.lateness_sum += total
        d.messages["ws"] = d.messages.get("ws", 0) + len(chunks)

    def dropped(self, generator: str, samples: int) -> None:
        """Count ``samples`` of ``generator`` skipped under backpressure
        ``drop``, when they are skipped (reported in a later ``skipped`` or
        never, when the subscription ends first)."""
        d = self.delivery.dropped
        d[generator] = d.get(generator, 0) + samples

    def sent_texts(self, lags, samples: dict[str, int]) -> None:
        """Count the WebSocket data messages of one wake-up written
        straight to JSON (wsgen.protocol.fanout): their lateness ``lags``
        (seconds, one per message) and ``samples`` by generator name."""
        d = self.delivery
        buckets, bounds = d.buckets, LATENESS_BUCKETS
        last, i = None, 0
        for lag in lags:             # one wake-up's messages on one grid share their lag
            if lag != last:
                last, i = lag, bisect_left(bounds, lag)
            buckets[i] += 1
        d.lateness_sum += sum(lags)
        counts = d.samples
        for name, n in samples.items():
            key = (name, "ws")
            counts[key] = counts.get(key, 0) + n
        d.messages["ws"] = d.messages.get("ws", 0) + len(lags)

    def sent_http(self, generator: str, samples: int) -> None:
        """Count ``samples`` sent on an HTTP stream of ``generator``."""
        key = (generator, "http")
        self.delivery.samples[key] = self.delivery.samples.get(key, 0) + samples

    def error(self, code: str, path: str) -> None:
        """Count one error answer: a WebSocket ``error`` message
        (``path="ws"``, its ``code``) or an HTTP 4xx/5xx answer
        (``path="http"``, the ``error`` field of its JSON body)."""
        self.errors.labels(code, path).inc()

    def render(self) -> bytes:
        """The Prometheus text of this server: of every worker with --workers."""
        if self.publisher is not None:
            return metrics_mp.render(self.publisher, self.registry)
        return generate_latest(self.registry)
