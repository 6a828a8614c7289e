"""``wsgen serve --workers N``: N server processes sharing both ports.

The supervisor (the process ``wsgen serve`` started) serves nothing itself:

1. It binds both ports with ``SO_REUSEPORT`` and keeps those sockets bound
   but not listening, which reserves the ports (``--port 0`` picks one) and
   takes no connections.
2. It starts N workers (this module run as ``__main__``), each a complete
   ``wsgen serve`` (:func:`wsgen.server.serve.serve_forever`) with the same
   settings and ``reuse_port``: each binds and listens on both ports, and
   the kernel spreads new connections over the workers' listening sockets.
   A connection stays with the worker that accepted it; streams are
   deterministic by seed, so it does not matter which one.
3. Once every worker listens it prints the usual ``wsgen: WebSocket ...
   HTTP ...`` line (with ``(N workers)``).
4. A worker that exits while the server runs is logged (pid, exit code or
   signal) and restarted; one that keeps dying within
   ``FAST_DEATH_S`` of its start is restarted with a growing delay (up to
   ``MAX_BACKOFF_S``).
5. SIGTERM or SIGINT: SIGTERM to every worker, each shuts down gracefully
   (``/readyz`` false, ``--drain-delay``, 1001 closes within
   ``--graceful-timeout``); the supervisor waits for them (killing any left
   after drain delay + graceful timeout + 5 s) and exits 0. A second signal
   kills the workers at once (exit 1).

``/metrics`` reports the whole server: the workers share a folder of
``prometheus_client`` multiprocess files (:mod:`wsgen.server.metrics_mp`), which
the supervisor creates, cleans after a dead worker, and removes at exit.
Each worker's ``/healthz`` has its ``pid``. Limits (``--max-connections``
and the others) apply per worker.

Workers run in their own session (a Ctrl-C in a terminal reaches the
supervisor only, which passes one SIGTERM on) and ask the kernel to send
them SIGTERM if the supervisor dies (``PR_SET_PDEATHSIG``).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from wsgen.server.config import Settings

__all__ = ["resolve_workers", "supervise"]

log = logging.getLogger("wsgen.server.workers")

SETTINGS_ENV = "WSGEN_WORKER_SETTINGS"
FAST_DEATH_S = 5.0
MAX_BACKOFF_S = 10.0
START_TIMEOUT_S = 60.0


def usable_cpus(cgroup_root: str = "/sys/fs/cgroup") -> int:
    """The CPUs this process may use, rounded up to whole ones: those of its
    CPU affinity (``taskset``, a cpuset), fewer under a cgroup CPU quota (a
    container's CPU limit: cgroup v2 ``cpu.max`` "quota period", or v1
    ``cpu/cpu.cfs_quota_us`` / ``cpu.cfs_period_us``; 1.5 CPUs count as 2).
    At least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    root = Path(cgroup_root)
    for quota_file, period_file in ((root / "cpu.max", None),
                                    (root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us")):
        try:
            if period_file is None:
                quota, period = quota_file.read_text().split()[:2]
            else:
                quota, period = quota_file.read_text().strip(), period_file.read_text().strip()
            if quota not in ("max", "-1") and int(period) > 0:
                n = min(n, -(-int(quota) // int(period)))
            break
        except (OSError, ValueError):
            continue
    return max(1, n)


def resolve_workers(value: str | int) -> int:
    """The worker count of ``--workers`` / ``WSGEN_WORKERS``: a whole number
    in [1, 1024], or ``auto`` (one per usable CPU, :func:`usable_cpus`: the
    container's CPU limit, not the node's CPU count); raises ``SystemExit``
    with a message naming what is allowed."""
    text = str(value).strip().lower()
    if text == "auto":
        return usable_cpus()
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 1024:
        raise SystemExit(f"wsgen serve: --workers (or WSGEN_WORKERS) must be a whole number in [1, 1024] or "
                         f"'auto', got {value!r}")
    return n


def _reserve(host: str, port: int) -> socket.socket:
    """A bound, not listening ``SO_REUSEPORT`` socket on ``host:port``.

    A port already bound by anyone (a single ``wsgen serve``, another
    ``wsgen serve --workers`` whose sockets also have ``SO_REUSEPORT``, any
    program) raises ``OSError(EADDRINUSE)`` naming ``(host, port)``: a
    probe bind without ``SO_REUSEPORT`` comes first, as the kernel would
    otherwise let a second supervisor share the port and split connections
    between two unrelated servers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # TIME_WAIT leftovers are no owner
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise OSError(exc.errno, f"error while attempting to bind on address {(host, port)!r}: "
                                         f"{exc.strerror}") from exc
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


#: A worker's command (``python -c``): this module as ``__main__``, imported
#: from the folder the supervisor's own ``wsgen`` package came from. ``python
#: -m`` would put the working directory first on the path, and a folder there
#: holding a ``wsgen`` checkout (the repository's parent) shadowed the
#: installed package: the workers failed to start.
_WORKER_MAIN = ("import runpy, sys; sys.path[0] = {root!r}; "
                "runpy.run_module('wsgen.server.workers', run_name='__main__', alter_sys=True)"
                ).format(root=str(Path(__file__).resolve().parents[2]))


class _Worker:
    """One worker process and the thread that reads its standard output
    (its first line says it listens; the rest is drained)."""

    def __init__(self, index: int, env: dict[str, str]) -> None:
        self.index = index
        self.started = time.monotonic()
        self.listening = threading.Event()
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER_MAIN], env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, text=True, start_new_session=True)
        self.pid = self.proc.pid
        threading.Thread(target=self._read, name=f"wsgen-worker-{index}-stdout", daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("wsgen: WebSocket"):
                self.listening.set()
        self.proc.stdout.close()

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def supervise(settings: Settings, n: int) -> int:
    """Run ``n`` workers with ``settings`` until SIGTERM/SIGINT; return the
    exit status (0 after a graceful shutdown, 1 when forced, 2 when the
    workers could not start)."""
    from wsgen.server.serve import configure_logging
    configure_logging(settings.log_level)
    if getattr(settings, "scenario", None) and not getattr(settings, "redis_url", None):
        log.warning("named streams with %d workers and no --redis-url: each worker keeps its own log of "
                    "changes, so an operator's change reaches one worker only; give --redis-url", n)
    try:
        reserved = [_reserve(settings.host, settings.port)]
        port = reserved[0].getsockname()[1]
        http_port = settings.http_port
        if http_port != 0:
            reserved.append(_reserve(settings.host, http_port or 0))
            http_port = reserved[1].getsockname()[1]
    except OSError as exc:
        from wsgen.server.serve import start_problem
        print(f"wsgen: cannot start: {start_problem(exc, settings)}", file=sys.stderr)
        return 2
    folder = tempfile.mkdtemp(prefix="wsgen-metrics-")
    worker_settings = dataclasses.replace(settings, port=port, http_port=http_port, reuse_port=True)
    env = {**os.environ, SETTINGS_ENV: json.dumps(dataclasses.asdict(worker_settings)),
           "PROMETHEUS_MULTIPROC_DIR": folder}
    stop = threading.Event()
    forced = threading.Event()

    def on_signal(signum, frame) -> None:
        if stop.is_set():
            forced.set()
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    workers: list[_Worker] = []
    try:
        workers = [_Worker(i, env) for i in range(n)]
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(w.listening.is_set() for w in workers):
            dead = [w for w in workers if w.proc.poll() is not None]
            if dead or stop.is_set() or time.monotonic() > deadline:
                why = (f"worker {dead[0].index} exited with {_exit_text(dead[0].proc.returncode)}" if dead
                       else "stopped" if stop.is_set() else f"workers not listening after {START_TIMEOUT_S:.0f} s")
                print(f"wsgen: cannot start: {why}", file=sys.stderr)
                _stop_all(workers, 5.0)
                return 2
            time.sleep(0.02)
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        print(f"wsgen: WebSocket ws://{host}:{port}" + (f"  HTTP http://{host}:{http_port}" if http_port else "")
              + f"  ({n} workers)", flush=True)
        log.info("%d workers: pids %s", n, " ".join(str(w.pid) for w in workers))
        backoff = 0.0
        while not stop.is_set():
            for i, w in enumerate(workers):
                code = w.proc.poll()
                if code is None or stop.is_set():
                    continue
                lived = time.monotonic() - w.started
                _forget(folder, w.pid)
                backoff = min(MAX_BACKOFF_S, max(0.5, backoff * 2)) if lived < FAST_DEATH_S else 0.0
                log.warning("worker %d (pid %d) exited with %s after %.1f s; restarting%s", w.index, w.pid,
                            _exit_text(code), lived, f" in {backoff:.1f} s" if backoff else "")
                if backoff and stop.wait(backoff):
                    break
                workers[i] = _Worker(w.index, env)
                log.info("worker %d restarted: pid %d", w.index, workers[i].pid)
            stop.wait(0.1)
        log.info("shutting down %d workers", len(workers))
        for w in workers:
            w.signal(signal.SIGTERM)
        grace = settings.drain_delay_s + settings.graceful_timeout_s + 5.0
        codes = _wait_all(workers, grace, forced)
        if forced.is_set():
            return 1
        return 0 if all(c == 0 for c in codes) else 1
    finally:
        _stop_all(workers, 1.0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sock in reserved:
            sock.close()
        shutil.rmtree(folder, ignore_errors=True)


def _forget(folder: str, pid: int) -> None:
    """Drop a dead worker's live gauges from the shared metric files."""
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(pid, folder)


def _wait_all(workers: list[_Worker], timeout: float, forced: threading.Event) -> list[int | None]:
    deadline = time.monotonic() + timeout
    while any(w.proc.poll() is None for w in workers):
        if forced.is_set():
            for w in workers:
                w.signal(signal.SIGKILL)
            break
        if time.monotonic() > deadline:
            log.warning("workers still running %.1f s after SIGTERM; killing them", timeout)
            for w in workers:
                w.signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    return [w.proc.wait() for w in workers]


def _stop_all(workers: list[_Worker], timeout: float) -> None:
    for w in workers:
        w.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for w in workers:
        try:
            w.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.signal(signal.SIGKILL)
            w.proc.wait()


def _die_with_parent() -> None:
    """Ask Linux for SIGTERM when the supervisor dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)     # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return


def worker_main() -> int:
    """One worker: the settings come from the supervisor's environment."""
    import asyncio

    from wsgen.server.serve import configure_logging, serve_forever, start_problem
    from wsgen.streams.scenario import ScenarioError
    parent = os.getppid()
    _die_with_parent()
    if os.getppid() != parent:     # the supervisor died before prctl
        return 1
    settings = Settings(**json.loads(os.environ[SETTINGS_ENV]))
    configure_logging(settings.log_level)
    try:
        return asyncio.run(serve_forever(settings))
    except (OSError, ScenarioError) as exc:     # one line, as without --workers (it was a traceback)
        print(f"wsgen: cannot start: {start_problem(exc, settings)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(worker_main())
