"""Prometheus metrics (official ``prometheus_client``), served at ``/metrics``.

Each server instance owns its registry, so several servers in one process
(tests) do not share counters.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Counters the WebSocket and HTTP adapters update."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.connections = Gauge("wsgen_connections", "Open WebSocket connections", registry=r)
        self.subscriptions = Gauge("wsgen_subscriptions", "Active subscriptions by generator",
                                   ["generator"], registry=r)
        self.http_streams = Gauge("wsgen_http_streams", "Open HTTP streams", registry=r)
        self.samples = Counter("wsgen_samples_sent", "Samples sent", ["generator", "path"], registry=r)
        self.messages = Counter("wsgen_messages_sent", "Data messages sent", ["path"], registry=r)
        self.dropped = Counter("wsgen_samples_dropped", "Samples skipped under backpressure 'drop'",
                               ["generator"], registry=r)
        self.lateness = Histogram("wsgen_schedule_lateness_seconds",
                                  "How far the last sample of a data message was behind its due time",
                                  buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5),
                                  registry=r)
        self.errors = Counter("wsgen_errors", "Error replies by code", ["code"], registry=r)
        self._ws_samples: dict = {}
        self._ws_messages = self.messages.labels("ws")

    def sent(self, chunk) -> None:
        """Count one WebSocket data message (called per message: label
        children are looked up once per generator and cached)."""
        name = chunk.sub.name
        samples = self._ws_samples.get(name)
        if samples is None:
            samples = self._ws_samples[name] = self.samples.labels(name, "ws")
        samples.inc(len(chunk.block))
        self._ws_messages.inc()
        self.lateness.observe(chunk.lag)
        if chunk.skipped:
            self.dropped.labels(name).inc(chunk.skipped)

    def sent_many(self, chunks) -> None:
        """Count the data messages of one ``batch`` frame (one counter update
        per generator, one histogram observation per message)."""
        per_generator: dict[str, int] = {}
        for chunk in chunks:
            name = chunk.sub.name
            per_generator[name] = per_generator.get(name, 0) + len(chunk.block)
            self.lateness.observe(chunk.lag)
            if chunk.skipped:
                self.dropped.labels(name).inc(chunk.skipped)
        for name, count in per_generator.items():
            samples = self._ws_samples.get(name)
            if samples is None:
                samples = self._ws_samples[name] = self.samples.labels(name, "ws")
            samples.inc(count)
        self._ws_messages.inc(len(chunks))

    def error(self, code: str) -> None:
        self.errors.labels(code).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
