"""Readiness: whether this process wants new clients (``GET /readyz``).

``/healthz`` says the process answers (a liveness probe). ``/readyz`` says
it accepts new streams: true once both listeners run, false from the moment
a graceful shutdown begins. On SIGTERM ``wsgen serve`` turns it false first,
keeps serving everything for ``--drain-delay`` seconds (so that a load
balancer polling ``/readyz`` stops sending new clients there), and only then
closes WebSockets with 1001 and ends HTTP streams, within
``--graceful-timeout``. A Kubernetes ``preStop`` sleep does the same job for
the Service's endpoints; ``deploy/kubernetes/`` uses both.
"""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["Readiness"]


class Readiness:
    """One process's readiness: ``ready`` (bool) and why not (``reason``)."""

    def __init__(self) -> None:
        self.ready = False
        self.reason = "starting"
        #: more to report, without changing readiness: name -> function giving a
        #: JSON value (e.g. ``control_plane``: the named streams' Redis link; streams
        #: flow while it is down, only changes are refused, so the process stays ready)
        self.details: dict[str, Callable[[], Any]] = {}

    def started(self) -> None:
        """Both listeners run: ready."""
        self.ready, self.reason = True, "accepting streams"

    def draining(self) -> None:
        """A graceful shutdown began: not ready, for good."""
        self.ready, self.reason = False, "shutting down"

    def answer(self) -> tuple[int, dict]:
        """HTTP status (200 or 503) and JSON body of ``/readyz``:
        ``{"ready": bool, "status": reason}`` plus each of :attr:`details`."""
        body: dict[str, Any] = {"ready": self.ready, "status": self.reason}
        for name, detail in self.details.items():
            body[name] = detail()
        return (200 if self.ready else 503), body
