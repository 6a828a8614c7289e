"""Server settings: one object, flat names with units where not obvious.

``Settings`` is the one source of the server's defaults, environment
variables and ``wsgen serve`` flags: a field that ``wsgen serve`` can set
declares them in its metadata (``option(...)``: flag, env var, parser,
help), and ``wsgen.cli`` generates the ``serve`` parser from
``settings_options()``; ``settings_from_args`` builds ``Settings`` back from
the parsed namespace. A field without ``option`` (``max_block``,
``send_buffer_bytes``, ...) is set in code only.

Environment variables are ``WSGEN_`` + the field's name without its
``_s`` unit suffix, upper case (``min_interval_s``: ``WSGEN_MIN_INTERVAL``).
Their text is checked by the option's parser as if given as the flag; a
flag given on the command line wins. Repeatable options (``--allow-origin``)
read a comma-separated list from the environment, and flags add to it.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable


def parse_seconds(text: str) -> float:
    """A duration in seconds: a finite number in [0, 86400]; raises
    ``argparse.ArgumentTypeError`` saying what is allowed."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.0 <= value <= 86400.0:      # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number of seconds in [0, 86400]")
    return value


def parse_port(text: str) -> int:
    """A TCP port: an integer in [0, 65535] (0 picks a free one); raises
    ``argparse.ArgumentTypeError`` saying what is allowed."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value}: a port is in [0, 65535] (0 picks a free one)")
    return value


#: Argument groups of ``wsgen serve --help``: title -> description.
GROUPS = {
    "named streams": "shared streams anchored to the wall clock (docs/protocol.md)",
    "recorded series": "replay of CSV / Parquet files (docs/protocol.md)",
}


@dataclass(frozen=True)
class Option:
    """How ``wsgen serve`` sets one ``Settings`` field.

    Attributes:
        flag: the long option (``--min-interval``); its argparse ``dest`` is
            the flag without dashes (``min_interval``).
        env: the environment variable giving the default (``WSGEN_...``).
        help: what the option does, with units (``wsgen serve --help``
            adds the env var).
        parse: text -> value, raising ``argparse.ArgumentTypeError`` (or
            ``ValueError``) on bad text; ``None`` keeps the text.
        choices: the values allowed, if a closed set.
        metavar: placeholder in the help.
        group: title of its argument group (``GROUPS``), ``None`` for the
            main list.
        repeat: the flag may repeat, each adding one item to a list; the
            env var is a comma-separated list.
        blank_is_none: an empty value (``--token ''``) means ``None``.
    """

    flag: str
    env: str
    help: str
    parse: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    group: str | None = None
    repeat: bool = False
    blank_is_none: bool = False

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


def option(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
           **kwargs: Any) -> Any:
    """A ``Settings`` field that ``wsgen serve`` sets: ``default`` (or
    ``default_factory``) as for ``dataclasses.field``; ``kwargs`` are
    ``Option``'s."""
    return field(default=default, default_factory=default_factory, metadata={"option": Option(**kwargs)})


@dataclass
class Settings:
    """Everything ``wsgen serve`` can be told.

    Attributes:
        host: address both servers bind to.
        port: WebSocket port (0 picks a free one).
        http_port: HTTP compatibility port (0 turns the HTTP server off;
            ``None`` in tests means "pick a free one").
        log_level: ``debug``, ``info``, ``warning`` or ``error``.
        workers: ``wsgen serve``'s worker processes sharing both ports: a
            whole number in [1, 1024] or ``auto`` (one per usable CPU), checked by
            ``wsgen.server.workers.resolve_workers``.
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
        token: bearer token required on every endpoint but /healthz, /readyz, the page and its files (None: off).
        allow_origins: extra WebSocket origins allowed besides the server's
            own HTTP origin and clients sending no Origin.
        reuse_port: bind both ports with ``SO_REUSEPORT`` (set for each
            worker of ``wsgen serve --workers N``: the kernel spreads
            connections over the workers' sockets).
        allow_hosts: names accepted in the Host header (both ports) besides
            the loopback ones, when bound to a loopback address
            (DNS-rebinding guard; case-insensitive, without port).
    """

    host: str = option("127.0.0.1", flag="--host", env="WSGEN_HOST", help="address to bind")
    port: int = option(8765, flag="--port", env="WSGEN_PORT", parse=parse_port,
                       help="WebSocket port, 0 picks a free one")
    http_port: int | None = option(8000, flag="--http-port", env="WSGEN_HTTP_PORT", parse=parse_port,
                                   help="HTTP port; 0 turns the HTTP server off")
    log_level: str = option("info", flag="--log-level", env="WSGEN_LOG_LEVEL",
                            choices=("debug", "info", "warning", "error"), help="log level")
    workers: str = option("1", flag="--workers", env="WSGEN_WORKERS", metavar="N|auto",
                          help="worker processes sharing both ports (SO_REUSEPORT); auto: one per CPU this "
                               "process may use (its affinity; a container's CPU limit); default 1")
    max_connections: int = option(2000, flag="--max-connections", env="WSGEN_MAX_CONNECTIONS", parse=int,
                                  help="WebSocket connections in total")
    max_connections_per_ip: int = option(1000, flag="--max-connections-per-ip", env="WSGEN_MAX_CONNECTIONS_PER_IP",
                                         parse=int, help="WebSocket connections per client address")
    max_http_connections: int = option(4000, flag="--max-http-connections", env="WSGEN_MAX_HTTP_CONNECTIONS",
                                       parse=int, help="open HTTP connections (streams, idle or half-sent "
                                                       "requests); beyond: 503")
    max_subscriptions: int = option(64, flag="--max-subscriptions", env="WSGEN_MAX_SUBSCRIPTIONS", parse=int,
                                    help="subscriptions per connection")
    min_interval_s: float = option(0.0, flag="--min-interval", env="WSGEN_MIN_INTERVAL", parse=parse_seconds,
                                   help="smallest sample interval accepted in seconds, other than 0 (unpaced)")
    max_message_bytes: int = option(65536, flag="--max-message-bytes", env="WSGEN_MAX_MESSAGE_BYTES", parse=int,
                                    help="largest incoming WebSocket message; larger ones close with 1009")
    tick_s: float = option(0.002, flag="--tick", env="WSGEN_TICK", parse=parse_seconds,
                           help="scheduler tick in seconds: samples due within one tick go out in one message")
    align_s: float = option(0.05, flag="--align", env="WSGEN_ALIGN", parse=parse_seconds,
                            help="streams paced at most this many seconds apart start on their connection's "
                                 "grid, so they fall due together (first sample up to one pace later); 0: off")
    max_block: int = 8192
    send_buffer_bytes: int = 1 << 20
    graceful_timeout_s: float = option(5.0, flag="--graceful-timeout", env="WSGEN_GRACEFUL_TIMEOUT",
                                       parse=parse_seconds,
                                       help="seconds to wait for clients to close on shutdown")
    drain_delay_s: float = option(0.0, flag="--drain-delay", env="WSGEN_DRAIN_DELAY", parse=parse_seconds,
                                  help="seconds between SIGTERM and closing clients, while /readyz answers 503 so "
                                       "that load balancers stop sending new ones")
    reuse_port: bool = False
    ping_interval_s: float | None = option(20.0, flag="--ping-interval", env="WSGEN_PING_INTERVAL",
                                           parse=parse_seconds,
                                           help="seconds between WebSocket keepalive pings; 0 turns keepalive off")
    ping_timeout_s: float | None = option(20.0, flag="--ping-timeout", env="WSGEN_PING_TIMEOUT", parse=parse_seconds,
                                          help="seconds a keepalive pong may take before the connection closes "
                                               "with 1011; 0: no limit")
    write_timeout_s: float = option(30.0, flag="--write-timeout", env="WSGEN_WRITE_TIMEOUT", parse=parse_seconds,
                                    help="seconds a client may take no bytes of the data waiting for it before its "
                                         "connection (either port) is dropped; slow readers that still read are "
                                         "kept. 0: off")
    open_timeout_s: float | None = 10.0
    http_header_timeout_s: float = option(10.0, flag="--http-header-timeout", env="WSGEN_HTTP_HEADER_TIMEOUT",
                                          parse=parse_seconds,
                                          help="seconds an HTTP client gets to send its request line and headers "
                                               "(from connecting, or from the first byte of its next request); "
                                               "slower ones are disconnected. 0: off")
    token: str | None = option(None, flag="--token", env="WSGEN_TOKEN", blank_is_none=True,
                               help="bearer token required on every endpoint but /healthz, /readyz, the page and "
                                    "its files (default: none, open for local use)")
    allow_origins: list[str] = option(default_factory=list, flag="--allow-origin", env="WSGEN_ALLOW_ORIGINS",
                                      repeat=True, metavar="ORIGIN",
                                      help="another origin whose pages may open WebSockets and read the HTTP "
                                           "streams (CORS); '*' allows any. The server's own HTTP origin and "
                                           "clients sending no Origin are always allowed")
    allow_hosts: list[str] = option(default_factory=list, flag="--allow-host", env="WSGEN_ALLOW_HOSTS",
                                    repeat=True, metavar="NAME",
                                    help="a name accepted in the Host header besides localhost and loopback "
                                         "addresses, on a loopback-bound server")
    #: Named streams (wsgen.streams.named): a YAML scenario file to load at start.
    scenario: str | None = option(None, flag="--scenario", env="WSGEN_SCENARIO", metavar="FILE.yaml",
                                  group="named streams", help="YAML file of named streams to define at start")
    #: Operator token: create, delete, update and inject named streams (None: operator changes off).
    admin_token: str | None = option(None, flag="--admin-token", env="WSGEN_ADMIN_TOKEN", blank_is_none=True,
                                     group="named streams",
                                     help="operator token: create, delete, update and inject named streams "
                                          "(default: none, operator changes off)")
    #: Redis URL of the named streams' control plane (None: the log lives in this process).
    redis_url: str | None = option(None, flag="--redis-url", env="WSGEN_REDIS_URL", blank_is_none=True,
                                   metavar="URL", group="named streams",
                                   help="redis://host:port: keep the named streams' definitions and updates in "
                                        "Redis, shared by every replica (default: in this process)")
    #: Seconds of stream time ahead at which an operator's change applies (every process the same seq).
    update_margin_s: float = option(0.25, flag="--update-margin", env="WSGEN_UPDATE_MARGIN", parse=parse_seconds,
                                    group="named streams",
                                    help="seconds of stream time ahead at which an operator's change applies, "
                                         "the same seq on every replica")
    #: Directory ``replay`` reads its files from and ``POST /datasets`` stores uploads in (None: neither;
    #: the built-in example still replays).
    data_dir: str | None = option(None, flag="--data-dir", env="WSGEN_DATA_DIR", metavar="DIR",
                                  group="recorded series",
                                  help="directory replay reads files from and POST /datasets stores uploads in "
                                       "(default: none, only the built-in example replays)")
    #: Largest upload to ``POST /datasets``, in bytes (0: uploads off).
    max_upload_bytes: int = option(16 << 20, flag="--max-upload-bytes", env="WSGEN_MAX_UPLOAD_BYTES", parse=int,
                                   metavar="BYTES", group="recorded series",
                                   help="largest upload to POST /datasets (0: uploads off; default 16 MiB)")
    #: The process's named streams (set by serve.start; not a setting).
    named: Any = field(default=None, repr=False, compare=False)


def settings_options() -> list[tuple[dataclasses.Field, Option]]:
    """The ``Settings`` fields that ``wsgen serve`` sets, in declaration
    order, each with its ``Option``."""
    return [(f, f.metadata["option"]) for f in dataclasses.fields(Settings) if "option" in f.metadata]


def default_of(f: dataclasses.Field) -> Any:
    """A field's default value (a fresh one for a ``default_factory``)."""
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def settings_from_args(args: argparse.Namespace) -> Settings:
    """``Settings`` from a namespace parsed by ``wsgen serve``'s generated
    parser (one attribute per option, named by its ``dest``); fields the
    namespace lacks keep their defaults."""
    values = {}
    for f, opt in settings_options():
        if not hasattr(args, opt.dest):
            continue
        value = getattr(args, opt.dest)
        if opt.repeat:
            value = list(value or [])
        elif opt.blank_is_none and not value:
            value = None
        values[f.name] = value
    return Settings(**values)
