"""Server settings: one object, flat names with units where not obvious."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Settings:
    """Everything ``wsgen serve`` can be told.

    Attributes:
        host: address both servers bind to.
        port: WebSocket port (0 picks a free one).
        http_port: HTTP compatibility port (0 turns the HTTP server off;
            ``None`` in tests means "pick a free one").
        max_connections: WebSocket connections in total.
        max_connections_per_ip: WebSocket connections per client address.
        max_http_connections: open HTTP connections (streams, idle or
            half-sent requests); beyond, uvicorn answers 503.
        max_subscriptions: subscriptions per connection.
        min_interval_s: smallest sample interval accepted (other than 0).
        max_message_bytes: largest incoming WebSocket message (close 1009).
        tick_s: scheduler tick; samples due within one tick share a message.
        align_s: streams whose pace (interval / speed) is at most this many
            seconds start (and resume) on their connection's pacing grid, so
            that a connection's fast streams fall due together and one
            wake-up serves them all; their first sample may then come up to
            one pace later. 0 turns alignment off.
        max_block: most samples in one data message / HTTP chunk.
        send_buffer_bytes: per-connection output buffer budget in bytes: the
            socket's write high-water mark is a quarter of it (``send`` waits
            above that: backpressure ``block``; ``drop`` subscriptions skip
            what falls due while a send waits).
        graceful_timeout_s: seconds clients get to close on shutdown.
        drain_delay_s: seconds between SIGTERM and the start of the graceful
            shutdown, during which ``/readyz`` answers 503 and everything
            else keeps working (a load balancer stops sending new clients).
        ping_interval_s: WebSocket keepalive ping interval in seconds (None
            or 0 turns keepalive off).
        ping_timeout_s: seconds a pong may take before the connection is
            closed with 1011 (None or 0: no limit).
        write_timeout_s: a connection (either port) whose client has taken
            no bytes of the data waiting for it for this many seconds is
            aborted and its generators stopped (wsgen.server.liveness); 0 turns it off.
        open_timeout_s: seconds a client gets to complete the WebSocket
            handshake after connecting (None: no limit).
        http_header_timeout_s: seconds an HTTP client gets to send a request
            head (request line and headers), counted from connecting, or on
            a kept-alive connection from the first byte of the next request;
            past it the connection is closed (slowloris guard). A POST body
            (/composite) gets as long again after its head (422 past it).
            Answers and streams are not limited by it. 0 turns it off.
        token: bearer token required on every endpoint but /healthz, the page and its files (None: off).
        allow_origins: extra WebSocket origins allowed besides the server's
            own HTTP origin and clients sending no Origin.
        reuse_port: bind both ports with ``SO_REUSEPORT`` (set for each
            worker of ``wsgen serve --workers N``: the kernel spreads
            connections over the workers' sockets).
        allow_hosts: names accepted in the Host header (both ports) besides
            the loopback ones, when bound to a loopback address
            (DNS-rebinding guard; case-insensitive, without port).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    http_port: int | None = 8000
    log_level: str = "info"
    max_connections: int = 2000
    max_connections_per_ip: int = 1000
    max_http_connections: int = 4000
    max_subscriptions: int = 64
    min_interval_s: float = 0.0
    max_message_bytes: int = 65536
    tick_s: float = 0.002
    align_s: float = 0.05
    max_block: int = 8192
    send_buffer_bytes: int = 1 << 20
    graceful_timeout_s: float = 5.0
    drain_delay_s: float = 0.0
    reuse_port: bool = False
    ping_interval_s: float | None = 20.0
    ping_timeout_s: float | None = 20.0
    write_timeout_s: float = 30.0
    open_timeout_s: float | None = 10.0
    http_header_timeout_s: float = 10.0
    token: str | None = None
    allow_origins: list[str] = field(default_factory=list)
    allow_hosts: list[str] = field(default_factory=list)
    #: Named streams (wsgen.streams.named): a YAML scenario file to load at start.
    scenario: str | None = None
    #: Operator token: create, delete, update and inject named streams (None: operator changes off).
    admin_token: str | None = None
    #: Redis URL of the named streams' control plane (None: the log lives in this process).
    redis_url: str | None = None
    #: Seconds of stream time ahead at which an operator's change applies (every process the same seq).
    update_margin_s: float = 0.25
    #: Directory ``replay`` reads its files from and ``POST /datasets`` stores uploads in (None: neither;
    #: the built-in example still replays).
    data_dir: str | None = None
    #: Largest upload to ``POST /datasets``, in bytes (0: uploads off).
    max_upload_bytes: int = 16 << 20
    #: The process's named streams (set by serve.start; not a setting).
    named: Any = field(default=None, repr=False, compare=False)
