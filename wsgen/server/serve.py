"""Lifecycle of ``wsgen serve``: listeners, signals, graceful shutdown.

Start: the WebSocket server (``websockets`` asyncio) and, unless
``http_port`` is 0, the HTTP server (uvicorn) in the same event loop. Stop on
SIGTERM or SIGINT: stop accepting, close every WebSocket with 1001 (going
away), end HTTP streams, wait at most ``graceful_timeout_s``, exit 0. A
second signal forces the exit.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import re
import signal
import socket
import sys
from dataclasses import dataclass, field
from urllib.parse import unquote

from websockets.asyncio.server import Server, serve

from wsgen.engine import catalogue
from wsgen.engine.composite import composition_catalogue
from wsgen.streams import controlplane
from wsgen.server.config import Settings, settings_from_args
from wsgen.streams.scenario import ScenarioError
from wsgen.server.metrics import Metrics
from wsgen.server.liveness import WriteDeadline, http_protocol_class
from wsgen.server.readiness import Readiness
from wsgen.server.ws import Gate, make_handler

log = logging.getLogger("wsgen")


@dataclass
class Running:
    """A started server: its bound ports and a way to stop it."""

    settings: Settings
    ws_server: Server
    ws_port: int
    http_port: int | None
    metrics: Metrics
    gate: Gate
    _http: object | None = None
    _http_task: asyncio.Task | None = None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    readiness: Readiness = field(default_factory=Readiness)   # GET /readyz
    write_deadline: WriteDeadline | None = None               # wsgen.server.liveness

    @property
    def ws_url(self) -> str:
        return f"ws://{self.settings.host}:{self.ws_port}"

    @property
    def http_url(self) -> str | None:
        return f"http://{self.settings.host}:{self.http_port}" if self.http_port else None

    async def stop(self) -> None:
        """Close every client (1001), stop both servers, within the grace period.

        Clients still connected when it ends (typically ones that stopped
        reading: neither the close frame nor the end of an HTTP stream can
        reach them) are dropped then, so the process can exit on time and
        uvicorn need not cancel their streams (which it logs as tracebacks).
        """
        self.readiness.draining()
        timeout = self.settings.graceful_timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for connection in list(self.gate.connections):
            connection.stop_generation()     # no more data: what is queued goes, then the 1001
        self.ws_server.close()
        if self._http is not None:
            self._http.config.app.state.streams.close()   # end open HTTP streams now
            self._http.should_exit = True
        try:
            await asyncio.wait_for(self.ws_server.wait_closed(), timeout)
        except asyncio.TimeoutError:
            stuck = list(self.ws_server.all_connections)       # (``connections`` lists OPEN ones only)
            log.warning("%d WebSocket client(s) did not close within %.1f s; dropping them", len(stuck), timeout)
            for connection in stuck:
                connection.transport.abort()
            try:
                await asyncio.wait_for(self.ws_server.wait_closed(), 1.0)
            except asyncio.TimeoutError:
                pass
        if self._http_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._http_task), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                stuck = list(self._http.server_state.connections)
                log.warning("%d HTTP client(s) did not close within %.1f s; dropping them", len(stuck), timeout)
                for connection in stuck:
                    if connection.transport is not None:
                        connection.transport.abort()
                try:
                    await asyncio.wait_for(self._http_task, 1.0)
                except (asyncio.TimeoutError, asyncio.CancelledError):
                    self._http_task.cancel()
        await controlplane.stop(self.settings)
        if self.metrics.publisher is not None:
            self.metrics.publisher.close()   # --workers: this worker's last totals
        if self.write_deadline is not None:
            self.write_deadline.close()
        self.stopped.set()


class _RedactSecrets(logging.Filter):
    """Keep bearer tokens out of the log: at debug level ``websockets`` logs
    each handshake's request line (``?token=...``) and headers
    (``Authorization: Bearer ...``)."""

    _AUTH = re.compile(r"(?i)\b(authorization:\s*)\S.*")
    _QUERY = re.compile(r"([?&])([^&=\s]*)=([^&\s]*)")

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = self._AUTH.sub(r"\1<redacted>", msg)
        clean = self._QUERY.sub(lambda m: f"{m[1]}{m[2]}=<redacted>" if unquote(m[2]).lower() == "token"
                                else m[0], clean)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


_REDACT = _RedactSecrets()


def _cap_kernel_send_buffer(sock, settings: Settings) -> None:
    """Bound what the kernel holds for each client (accepted sockets inherit
    it from the listening one): ``send_buffer_bytes / 4`` (Linux doubles it
    for its bookkeeping) instead of its autotuned up to 4 MiB. Data queued
    for a slow client then waits seconds, not minutes: the 1001 of a graceful
    shutdown, and fresh samples of a ``drop`` subscription, reach it in time.
    Throughput is still up to that much per round trip (512 KiB: 10 MB/s at
    50 ms)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, max(1, settings.send_buffer_bytes // 4))


def _http_protocol(settings: Settings, deadline: WriteDeadline | None):
    """uvicorn's HTTP/1.1 protocol class with the request-head deadline
    (slowloris guard: uvicorn has none) and the write deadline, each when on."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from wsgen.server.http.header_timeout import protocol_class
    cls = protocol_class(settings.http_header_timeout_s) if settings.http_header_timeout_s > 0 else AutoHTTPProtocol
    return http_protocol_class(cls, deadline) if deadline is not None else cls


class _EmbeddedUvicorn:
    """uvicorn.Server that leaves signal handling to us."""

    def __new__(cls, config):
        import uvicorn

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):
                yield

        return Server(config)


async def start(settings: Settings) -> Running:
    """Start the servers on ``settings``' ports (0 = pick free ones)."""
    metrics = Metrics()
    if settings.data_dir is not None:             # replay's files and uploads (wsgen.engine.datasets)
        from pathlib import Path

        from wsgen.engine import datasets
        if not Path(settings.data_dir).is_dir():
            raise OSError(f"--data-dir {settings.data_dir}: not a directory")
        datasets.set_data_dir(settings.data_dir)
    await controlplane.start(settings, metrics)   # named streams and their log (scenario, Redis)
    # the catalogues (the ``list`` reply, /generators, /composite/presets) are built
    # once, 30-60 ms of JSON Schemas: here, not in the first client's request
    catalogue()
    composition_catalogue()
    gate = Gate(settings)
    # connections (either port) whose client takes no bytes for write_timeout_s are dropped
    deadline = WriteDeadline(settings.write_timeout_s, metrics) if settings.write_timeout_s > 0 else None
    http_server = http_task = None
    http_port = None
    if settings.http_port != 0:
        import uvicorn

        from wsgen.server.http.app import create_app
        from wsgen.server.http.websocket import Handoff
        handoff = Handoff()
        app = create_app(settings)
        app.state.metrics = metrics
        config = uvicorn.Config(app, host=settings.host, port=settings.http_port or 0, log_level="warning",
                                access_log=False, lifespan="off",
                                # uvicorn's own lines ("Invalid HTTP request received.") go through
                                # wsgen's log format (configure_logging), not uvicorn's "WARNING:  ..."
                                log_config=None,
                                # uvicorn has no timeout on reading a request head (slowloris)
                                http=_http_protocol(settings, deadline),
                                # connections (idle or half-sent requests included) past the
                                # limit get 503 instead of exhausting file descriptors
                                limit_concurrency=settings.max_http_connections,
                                # a backstop: stop() drops stuck clients at the grace period first
                                timeout_graceful_shutdown=settings.graceful_timeout_s + 2,
                                # upgrades to /ws and /ws/... become WebSocket server connections
                                ws=handoff.protocol_class())
        http_server = _EmbeddedUvicorn(config)
        # Bind here, so a busy port is a plain OSError ("cannot start: ...")
        # rather than uvicorn exiting inside its task.
        family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
        sock = socket.create_server((settings.host, settings.http_port or 0), family=family,
                                    reuse_port=settings.reuse_port)   # --workers: each worker binds the port
        # asyncio sets TCP_NODELAY only on sockets made with proto=IPPROTO_TCP, which
        # create_server's are not: without it every small response waited ~40 ms
        # (Nagle + delayed ACK between the header and body writes). Accepted sockets
        # inherit it from the listening one.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _cap_kernel_send_buffer(sock, settings)
        http_task = asyncio.create_task(http_server.serve(sockets=[sock]))
        while not http_server.started:
            if http_task.done():
                http_task.result()
                raise RuntimeError(f"HTTP server could not start on port {settings.http_port}")
            await asyncio.sleep(0.01)
        http_port = http_server.servers[0].sockets[0].getsockname()[1]
        gate.http_port = http_port
        app.state.ws_port = None
    handler, process_request = make_handler(settings, gate, metrics, deadline)
    ws_logger = logging.getLogger("wsgen.websockets")
    ws_logger.addFilter(_REDACT)   # once: addFilter ignores a filter already there
    ws_server = await serve(handler, settings.host, settings.port, reuse_port=settings.reuse_port,
                            process_request=process_request,
                            max_size=settings.max_message_bytes, compression=None,
                            ping_interval=settings.ping_interval_s or None, ping_timeout=settings.ping_timeout_s or None,
                            # a close (1001 at shutdown) waits for the reply as long as the grace period
                            write_limit=settings.send_buffer_bytes // 4, close_timeout=settings.graceful_timeout_s,
                            open_timeout=settings.open_timeout_s, logger=ws_logger)
    for listening in ws_server.sockets:
        _cap_kernel_send_buffer(listening, settings)
    ws_port = ws_server.sockets[0].getsockname()[1]
    gate.ws_port = ws_port
    if http_server is not None:
        http_server.config.app.state.ws_port = ws_port
        handoff.server = ws_server
    running = Running(settings, ws_server, ws_port, http_port, metrics, gate, http_server, http_task)
    running.write_deadline = deadline
    if http_server is not None:
        http_server.config.app.state.readiness = running.readiness
    if settings.redis_url and settings.named is not None:     # (the embedded log is always up)
        running.readiness.details["control_plane"] = settings.named.plane.status
    running.readiness.started()
    return running


async def serve_forever(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; return the exit status (0)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # first: a signal during start-up (the ports already open) stops gracefully
    # once started, instead of killing the process by the default action
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: sys.exit(1) if stop.is_set() else stop.set())
    running = await start(settings)
    # What start-up made (modules, catalogues, schemas: ~10^5 objects) lives
    # as long as the process: out of the collector's sight, a full collection
    # walks only what clients made since (it walked all of it: 40-80 ms of a
    # stalled event loop every few seconds under fan-out).
    gc.collect()
    gc.freeze()
    log.debug("wsgen serving WebSocket on %s%s", running.ws_url,
             f" and HTTP on {running.http_url}" if running.http_url else "")
    print(f"wsgen: WebSocket {running.ws_url}" + (f"  HTTP {running.http_url}" if running.http_url else ""),
          flush=True)
    await stop.wait()
    running.readiness.draining()
    if settings.drain_delay_s > 0:
        log.info("draining: /readyz is false; closing clients in %.1f s", settings.drain_delay_s)
        await asyncio.sleep(settings.drain_delay_s)
    log.info("shutting down")
    await running.stop()
    return 0


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # websockets logs every handshake failure and closed connection itself;
    # keep its noise for debug level.
    logging.getLogger("wsgen.websockets").setLevel(logging.DEBUG if level == "debug" else logging.ERROR)


def run(args) -> int:
    """Entry point of ``wsgen serve`` (argparse namespace from the CLI, whose
    options ``wsgen.server.config.Settings`` declares)."""
    settings = settings_from_args(args)
    from wsgen.server.workers import resolve_workers, supervise
    workers = resolve_workers(settings.workers)
    if workers > 1 and (settings.scenario or settings.admin_token) and not settings.redis_url:
        # each worker would keep its own log: other origins, changes seen by one worker only
        print("wsgen: cannot start: named streams (--scenario, --admin-token) with --workers need --redis-url, "
              "the log every worker follows", file=sys.stderr)
        return 2
    if workers > 1:
        return supervise(settings, workers)
    configure_logging(settings.log_level)
    try:
        return asyncio.run(serve_forever(settings))
    except (OSError, ScenarioError) as exc:
        print(f"wsgen: cannot start: {start_problem(exc, settings)}", file=sys.stderr)
        return 2


def start_problem(exc: BaseException, settings: Settings) -> str:
    """What went wrong at start, in one line; for a port in use, which
    option picks another."""
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        ports = [int(p) for p in re.findall(r"\b(\d{1,5})\)", str(exc))]
        if settings.http_port and settings.http_port in ports:
            flag, port = "--http-port", settings.http_port
        else:
            flag, port = "--port", settings.port
        free = "0 picks a free one" if flag == "--port" else "0 turns HTTP off"
        return (f"port {port} on {settings.host} is already in use (another wsgen serve?); stop that "
                f"process or pick another port with {flag} N ({free})")
    if isinstance(exc, socket.gaierror) or (isinstance(exc, OSError) and exc.errno == errno.EADDRNOTAVAIL):
        return (f"--host {settings.host}: {exc.strerror or exc}; give an address of this machine "
                "(127.0.0.1, the default; 0.0.0.0 for every interface) or a name that resolves to one")
    return str(exc)
