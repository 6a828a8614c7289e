"""Command line: ``wsgen serve | list | sub | bench``.

Argument parsing only; each command's work lives in its own module.
"""
from __future__ import annotations

import argparse
import os
import sys


def _env(name: str, default):
    """The environment's text for ``name`` (argparse converts and checks it
    with the option's ``type``, as if given on the command line), else
    ``default``."""
    return os.environ.get(name, default)


def _seconds(text: str) -> float:
    """A duration in seconds: a finite number in [0, 86400]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.0 <= value <= 86400.0:      # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{text!r}: must be a number of seconds in [0, 86400]")
    return value


def _port(text: str) -> int:
    """A TCP port: an integer in [0, 65535] (0 picks a free one)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value}: a port is in [0, 65535] (0 picks a free one)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsgen", description="Synthetic time-series streams over WebSocket and HTTP.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the WebSocket and HTTP servers",
                           description="Run the WebSocket server (default ws://127.0.0.1:8765) and the HTTP "
                                       "compatibility server (default http://127.0.0.1:8000).")
    serve.add_argument("--host", default=_env("WSGEN_HOST", "127.0.0.1"), help="address to bind (env WSGEN_HOST)")
    serve.add_argument("--port", type=_port, default=_env("WSGEN_PORT", 8765), help="WebSocket port, 0 picks a free one (env WSGEN_PORT)")
    serve.add_argument("--http-port", type=_port, default=_env("WSGEN_HTTP_PORT", 8000),
                       help="HTTP port; 0 turns the HTTP server off (env WSGEN_HTTP_PORT)")
    serve.add_argument("--log-level", default=_env("WSGEN_LOG_LEVEL", "info"),
                       choices=["debug", "info", "warning", "error"], help="log level (env WSGEN_LOG_LEVEL)")
    serve.add_argument("--max-connections", type=int, default=_env("WSGEN_MAX_CONNECTIONS", 2000))
    serve.add_argument("--max-subscriptions", type=int, default=_env("WSGEN_MAX_SUBSCRIPTIONS", 64),
                       help="subscriptions per connection")
    serve.add_argument("--min-interval", type=_seconds, default=_env("WSGEN_MIN_INTERVAL", 0.0),
                       help="smallest sample interval accepted in seconds, other than 0 (unpaced)")
    serve.add_argument("--max-message-bytes", type=int, default=_env("WSGEN_MAX_MESSAGE_BYTES", 65536),
                       help="largest incoming WebSocket message; larger ones close with 1009")
    serve.add_argument("--tick", type=_seconds, default=_env("WSGEN_TICK", 0.002),
                       help="scheduler tick in seconds: samples due within one tick go out in one message")
    serve.add_argument("--align", type=_seconds, default=_env("WSGEN_ALIGN", 0.05),
                       help="streams paced at most this many seconds apart start on their connection's "
                            "grid, so they fall due together (first sample up to one pace later); 0: off")
    serve.add_argument("--graceful-timeout", type=_seconds, default=_env("WSGEN_GRACEFUL_TIMEOUT", 5.0),
                       help="seconds to wait for clients to close on shutdown")
    serve.add_argument("--workers", default=_env("WSGEN_WORKERS", "1"), metavar="N|auto",
                       help="worker processes sharing both ports (SO_REUSEPORT); auto: one per CPU; "
                            "default 1 (env WSGEN_WORKERS)")
    serve.add_argument("--drain-delay", type=_seconds, default=_env("WSGEN_DRAIN_DELAY", 0.0),
                       help="seconds between SIGTERM and closing clients, while /readyz answers 503 so that "
                            "load balancers stop sending new ones (env WSGEN_DRAIN_DELAY)")
    serve.add_argument("--http-header-timeout", type=_seconds, default=_env("WSGEN_HTTP_HEADER_TIMEOUT", 10.0),
                       help="seconds an HTTP client gets to send its request line and headers (from connecting, "
                            "or from the first byte of its next request); slower ones are disconnected. 0: off")
    serve.add_argument("--max-connections-per-ip", type=int, default=_env("WSGEN_MAX_CONNECTIONS_PER_IP", 1000),
                       help="WebSocket connections per client address")
    serve.add_argument("--max-http-connections", type=int, default=_env("WSGEN_MAX_HTTP_CONNECTIONS", 4000),
                       help="open HTTP connections (streams, idle or half-sent requests); beyond: 503")
    serve.add_argument("--token", default=os.environ.get("WSGEN_TOKEN"),
                       help="bearer token required on every endpoint but /healthz, the page and its files (env WSGEN_TOKEN; "
                            "default: none, open for local use)")
    serve.add_argument("--allow-origin", action="append",
                       default=[o for o in os.environ.get("WSGEN_ALLOW_ORIGINS", "").split(",") if o],
                       metavar="ORIGIN", help="another origin whose pages may open WebSockets and read the HTTP "
                                              "streams (CORS) (repeatable; env WSGEN_ALLOW_ORIGINS, "
                                              "comma-separated; '*' allows any). The server's own HTTP origin "
                                              "and clients sending no Origin are always allowed")
    serve.add_argument("--write-timeout", type=_seconds, default=_env("WSGEN_WRITE_TIMEOUT", 30.0),
                       help="seconds a client may take no bytes of the data waiting for it before its connection "
                            "(either port) is dropped; slow readers that still read are kept. 0: off")
    serve.add_argument("--ping-interval", type=_seconds, default=_env("WSGEN_PING_INTERVAL", 20.0),
                       help="seconds between WebSocket keepalive pings; 0 turns keepalive off")
    serve.add_argument("--ping-timeout", type=_seconds, default=_env("WSGEN_PING_TIMEOUT", 20.0),
                       help="seconds a keepalive pong may take before the connection closes with 1011; 0: no limit")
    serve.add_argument("--allow-host", action="append",
                       default=[h for h in os.environ.get("WSGEN_ALLOW_HOSTS", "").split(",") if h],
                       metavar="NAME", help="a name accepted in the Host header besides localhost and loopback "
                                            "addresses, on a loopback-bound server (repeatable; env "
                                            "WSGEN_ALLOW_HOSTS, comma-separated)")
    named = serve.add_argument_group("named streams", "shared streams anchored to the wall clock (docs/protocol.md)")
    named.add_argument("--scenario", default=os.environ.get("WSGEN_SCENARIO"), metavar="FILE.yaml",
                       help="YAML file of named streams to define at start (env WSGEN_SCENARIO)")
    named.add_argument("--admin-token", default=os.environ.get("WSGEN_ADMIN_TOKEN"),
                       help="operator token: create, delete, update and inject named streams (env "
                            "WSGEN_ADMIN_TOKEN; default: none, operator changes off)")
    named.add_argument("--redis-url", default=os.environ.get("WSGEN_REDIS_URL"), metavar="URL",
                       help="redis://host:port: keep the named streams' definitions and updates in Redis, shared "
                            "by every replica (env WSGEN_REDIS_URL; default: in this process)")
    named.add_argument("--update-margin", type=_seconds, default=_env("WSGEN_UPDATE_MARGIN", 0.25),
                       help="seconds of stream time ahead at which an operator's change applies, the same seq "
                            "on every replica (env WSGEN_UPDATE_MARGIN)")
    data = serve.add_argument_group("recorded series", "replay of CSV / Parquet files (docs/protocol.md)")
    data.add_argument("--data-dir", default=os.environ.get("WSGEN_DATA_DIR"), metavar="DIR",
                      help="directory replay reads files from and POST /datasets stores uploads in "
                           "(env WSGEN_DATA_DIR; default: none, only the built-in example replays)")
    data.add_argument("--max-upload-bytes", type=int, default=_env("WSGEN_MAX_UPLOAD_BYTES", 16 << 20),
                      metavar="BYTES", help="largest upload to POST /datasets (0: uploads off; "
                                            "env WSGEN_MAX_UPLOAD_BYTES; default 16 MiB)")
    serve.set_defaults(func=_serve)

    from wsgen.cli import subscriber
    subscriber.configure_sub(sub.add_parser("sub", help="print a stream's samples (text, csv, ndjson)"))
    subscriber.configure_list(sub.add_parser("list", help="list the generators and their parameters"))

    from wsgen.cli import score as score_cli
    score_cli.configure(sub.add_parser("score", help="score a detector's alarms (CSV) against a stream, offline",
                                       description=score_cli.__doc__.strip().splitlines()[0]))

    from wsgen import bench
    bench.configure(sub.add_parser("bench", help="benchmarks that print numbers (generators, server, HTTP)",
                                   description=bench.__doc__.strip().splitlines()[0]))
    return parser


def _serve(args) -> int:
    from wsgen.server.serve import run
    return run(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
