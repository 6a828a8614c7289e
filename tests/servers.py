"""The one way the tests start a wsgen server, and wait for things.

Every server here is the real one, started as ``wsgen serve`` starts it
(``wsgen.server.serve.start`` with a :class:`wsgen.server.config.Settings`: both listeners,
the HTTP header timeout, the connection limits, the metrics), on free
loopback ports:

* :func:`running_server` - in the test's own event loop (async tests);
  ``conftest.py`` wraps it as the ``server`` and ``full_server`` fixtures;
* :class:`ThreadedServer` - in a thread with its own event loop, for
  synchronous tests (``requests``, ``websockets.sync``, selenium, hypothesis);
* :class:`ServeProcess` - ``python -m wsgen.cli serve`` as a child process,
  stopped by PID (SIGTERM, then SIGKILL), for what only a process shows
  (signals, exit codes, logs).

And two pollers, :func:`wait_until` and :func:`async_wait_until`, for
"eventually true" instead of sleeping and then asserting.
"""
from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, AsyncIterator, Callable, Iterator

from wsgen.server.config import Settings
from wsgen.server.serve import Running, start

WSGEN = [sys.executable, "-m", "wsgen.cli"]

#: How late a wake-up (the server's or the test's) may come on a loaded
#: machine: the suite must pass at a load of 4 on 2 cores, where a process
#: can wait hundreds of milliseconds for a core. Tests bound lateness and
#: counts-versus-elapsed-time with it; what is exact (stream time, seqs,
#: "never early") they check exactly. Speed is measured by ``wsgen bench``.
LOADED_LATENESS_S = 1.0
DEFAULTS: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "http_port": None, "graceful_timeout_s": 2}


def test_settings(**overrides: Any) -> Settings:
    """Settings for a test server: loopback, both ports picked by the OS
    (``http_port=0`` turns HTTP off), 2 s of graceful shutdown; any
    :class:`Settings` field can be overridden."""
    return Settings(**{**DEFAULTS, **overrides})


test_settings.__test__ = False   # not a test, whatever its name


@contextlib.asynccontextmanager
async def running_server(**overrides: Any) -> AsyncIterator[Running]:
    """A server in the current event loop; stopped (gracefully) on exit."""
    running = await start(test_settings(**overrides))
    try:
        yield running
    finally:
        await running.stop()


class ThreadedServer:
    """A server in a background thread's own event loop.

    ``url`` / ``port`` are the WebSocket address, ``http_url`` the HTTP one
    (None when HTTP is off); ``call(coro)`` runs a coroutine in the server's
    loop and returns its result. Use as a context manager, or call
    :meth:`stop`.
    """

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        settings = settings if settings is not None else test_settings(**overrides)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="wsgen-test-server", daemon=True)
        self.thread.start()
        try:
            self.running: Running = self.call(start(settings), timeout=30)
        except BaseException:
            self._stop_loop()
            raise
        self.url = self.running.ws_url
        self.port = self.running.ws_port
        self.http_url = self.running.http_url

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def tasks(self) -> int:
        """How many asyncio tasks the server's loop holds."""
        async def count() -> int:
            return len(asyncio.all_tasks())
        return self.call(count())

    @property
    def gate(self):
        return self.running.gate

    def active_streams(self) -> int:
        """Open HTTP streams, as ``/healthz`` reports them."""
        import requests
        return requests.get(self.http_url + "/healthz", timeout=5).json()["active_streams"]

    def stop(self) -> None:
        try:
            if not self.loop.is_closed():
                self.call(self.running.stop())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    def __enter__(self) -> "ThreadedServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class ServeProcess:
    """``wsgen serve --port 0 --http-port <free port> ARGS...`` as a child
    process (``http=False``: no HTTP server).

    ``url``/``port`` and ``http_url``/``http_port`` are read from the line
    the server prints when it listens. ``stderr`` is where its log goes (a
    file object, ``subprocess.PIPE`` or DEVNULL). :meth:`stop` sends SIGTERM
    and returns the exit code (SIGKILL after ``timeout`` seconds).
    """

    LISTENING = re.compile(r"wsgen: WebSocket (ws://127\.0\.0\.1:(\d+))(?:\s+HTTP (http://127\.0\.0\.1:(\d+)))?")

    def __init__(self, *args: str, stderr=subprocess.DEVNULL, http: bool = True, env: dict | None = None,
                 cwd: str | None = None) -> None:
        # ``--http-port 0`` turns HTTP off on the command line: take a free port for it
        ports = ["--port", "0", "--http-port", str(free_port() if http else 0)]
        self.proc = subprocess.Popen([*WSGEN, "serve", *ports, *args], stdout=subprocess.PIPE, stderr=stderr,
                                     stdin=subprocess.DEVNULL, text=True, env=env, cwd=cwd)
        line = self.proc.stdout.readline()
        match = self.LISTENING.search(line)
        if not match:
            self.kill()
            raise AssertionError(f"wsgen serve did not start: {line!r}")
        self.url, self.port = match.group(1), int(match.group(2))
        self.http_url = match.group(3)
        self.http_port = int(match.group(4)) if match.group(4) else None
        self.pid = self.proc.pid

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def __enter__(self) -> "ServeProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        if self.proc.stdout:
            self.proc.stdout.close()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a child process that
    cannot report the port it picked)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve_process(*args: str, **kwargs: Any) -> Iterator[ServeProcess]:
    """:class:`ServeProcess` as a ``with`` block."""
    with ServeProcess(*args, **kwargs) as proc:
        yield proc


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01,
               ignore: tuple[type[BaseException], ...] = ()) -> bool:
    """Poll ``predicate`` until it is true (returns True) or ``timeout``
    seconds pass (returns False). An exception of a type in ``ignore`` (a
    server still starting: connection refused) counts as "not yet".
    Timeouts are generous: they bound a failing test, not a passing one."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except ignore:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


async def async_wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> bool:
    """:func:`wait_until` for async tests: sleeps in the event loop."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True
