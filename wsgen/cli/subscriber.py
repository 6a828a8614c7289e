"""``wsgen sub`` and ``wsgen list``: print a stream, print the catalogue.

``wsgen sub <generator> [--<param> value ...] [-p name=value ...]``
    Subscribes on a server (``--url``, default ``$WSGEN_URL`` or
    ``ws://127.0.0.1:8765``) and prints samples to standard output as they
    arrive, flushed after every received block:

    * ``text``   one value per line, ``repr`` of the float (the shortest text
      that reads back to the same float64: full precision); a composition
      with channels: one JSON array per sample, a value per channel.
    * ``csv``    header ``seq,t,value`` plus ``,label`` (true/false, as the
      HTTP csv) for the anomaly
      kinds; ``t`` is the stream time in Unix seconds.
    * ``ndjson`` one JSON object per line: ``seq``, ``t``, ``value`` and, for
      the anomaly kinds, ``label`` (true/false).

    Parameters: any ``--name value`` (or ``--name=value``) the command does
    not know is a generator parameter (``-`` in the name reads as ``_``, so
    ``--sample-rate 50`` is ``sample_rate``); ``-p name=value`` works for
    every name, including those that clash with an option (``-p
    duration=60`` for ``count-per-duration``). Values are read as JSON
    (``3``, ``2.5``, ``true``) or else as text; the server validates them.

    Live control: a line on standard input such as ``frequency=5`` or
    ``frequency=5 amplitude=2`` updates the parameters (``speed=10`` or
    ``speed=max`` changes the speed); ``pause``, ``resume`` and ``quit`` do
    what they say. Acknowledgements (``wsgen: updated at seq N: ...``) and
    errors go to standard error, never into the data. At end of input the
    stream goes on.

    Ends after ``--count`` samples, after ``--duration`` seconds, on ``quit``,
    on Ctrl-C / SIGTERM (exit status 0, output flushed) or when standard
    output is closed (``| head``; exit 0, no message). A server error prints
    ``error <code>: <message>`` on standard error and exits 2; a server that
    cannot be reached exits 1. A dropped connection is resumed without gap or
    repeat (see :mod:`wsgen.client`).

    With ``--count`` and standard output not a terminal, a progress bar is
    drawn on standard error when that is a terminal and the capture is long
    (>= 1000 samples or >= 5 s expected).

``wsgen sub --spec FILE.json`` (or ``--spec '<json>'``)
    Subscribes to a composition (docs/compositions.md) instead of a named
    generator; no generator parameters then. ``csv`` and ``ndjson`` rows are
    those of the HTTP path's ``/composite`` (:class:`wsgen.protocol.lines.CompositeFormatter`):
    each delivered sample with its own ``seq`` and ``t`` (a gap jumps, a
    duplicate repeats, out-of-order goes down), ``value`` (``null`` / an
    empty csv field for a null fault), ``label`` (true/false) and
    ``events`` (ndjson: the event objects the sample lies in, a gap's on the
    first sample past it; csv: ``kind:id:first:last`` joined by ``;``).
    ``text`` prints ``null`` for a null fault (every line reads with
    ``json.loads``). ``--count`` counts delivered
    samples. A line typed on standard input may also be a JSON object: a
    partial spec applied as a live update (``{"noise": null}``).

``wsgen list [--url URL] [--json]``
    Every generator with its family and parameters (default, unit,
    description), from the local registry or, with ``--url``, from a server.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shlex
import signal
import sys
import threading
from typing import Any, TextIO

import orjson

#: Samples (or seconds) from which a ``--count`` capture gets a progress bar.
PROGRESS_MIN_SAMPLES = 1000
PROGRESS_MIN_SECONDS = 5.0


def default_url() -> str:
    from wsgen.client import DEFAULT_URL
    return os.environ.get("WSGEN_URL", DEFAULT_URL)


# -- argument parsing ------------------------------------------------------------

def parse_value(text: str) -> Any:
    """A parameter value from the command line: JSON if it parses as a
    number, boolean or null, else the text itself."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return value if isinstance(value, (int, float, bool)) or value is None else text


def _token_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token", default=os.environ.get("WSGEN_TOKEN") or None,
                        help="bearer token, for a server started with --token (env WSGEN_TOKEN)")


def _refusal_message(exc: BaseException) -> str | None:
    """What the body a server refused a handshake with says, if anything:
    the ``message`` of a JSON body (the HTTP port says there where the
    WebSocket endpoint is), or a short text body (the WebSocket port names
    its generators), its first 300 characters."""
    response = getattr(exc, "response", None)
    body = getattr(response, "body", None)
    if not body:
        return None
    try:
        said = orjson.loads(body)
    except (ValueError, UnicodeDecodeError):
        try:
            text = " ".join(body.decode("utf-8").split())
        except UnicodeDecodeError:
            return None
        return (text[:300] + "...") if len(text) > 300 else text or None
    return said.get("message") if isinstance(said, dict) and isinstance(said.get("message"), str) else None


def _cannot_connect(args, exc: BaseException) -> str:
    """The line for a failed connection, with what to do about a 401."""
    line = f"wsgen: cannot connect to {args.url}: {exc}"
    said = _refusal_message(exc)
    if said:
        line += f" ({said})"
    if "401" in str(exc):
        line += ("; the server needs a bearer token: pass --token or set WSGEN_TOKEN" if not args.token
                 else "; the server refused this token")
    return line


def parse_assignments(tokens: list[str]) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``; raises ``ValueError``."""
    out: dict[str, Any] = {}
    for token in tokens:
        name, sep, value = token.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise ValueError(f"expected name=value, got {token!r}")
        out[name] = parse_value(value.strip())
    return out


def params_from_extras(extras: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Turn unknown ``--name value`` / ``--name=value`` pairs into params.

    Returns (params, what could not be read)."""
    params: dict[str, Any] = {}
    bad: list[str] = []
    i = 0
    while i < len(extras):
        token = extras[i]
        i += 1
        if not token.startswith("--") or len(token) == 2:
            bad.append(token)
            continue
        name, sep, value = token[2:].partition("=")
        if not sep:
            if i >= len(extras) or extras[i].startswith("--"):
                bad.append(token + " (needs a value)")
                continue
            value = extras[i]
            i += 1
        params[name.replace("-", "_")] = parse_value(value)
    return params, bad


class _SubParser(argparse.ArgumentParser):
    """Parser of ``wsgen sub``: unknown ``--name value`` pairs become
    ``args.extra_params`` instead of errors."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        params, bad = params_from_extras(extras)
        if bad:
            self.error("unrecognized arguments: " + " ".join(bad))
        namespace.extra_params = params
        return namespace, []


def _protocol_rule(rule: str):
    """An argparse type: the protocol's text rule ``rule`` (``speed_from_text``
    or ``seed_from_text`` of :mod:`wsgen.protocol.messages`); speed max stays "max"."""
    def convert(text: str) -> float | int | str:
        from wsgen.protocol import messages
        try:
            value = getattr(messages, rule)(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{exc}, got {text!r}") from None
        return "max" if value == float("inf") else value
    return convert


def _positive(kind):
    def convert(text: str):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return convert


def configure_sub(parser: argparse.ArgumentParser) -> None:
    """Add the ``wsgen sub`` arguments to ``parser`` (an argparse sub-parser)."""
    parser.__class__ = _SubParser
    parser.allow_abbrev = False   # an unknown --name is a parameter, never an abbreviation
    parser.description = ("Subscribe to a generator and print its samples. Unknown --name value pairs are "
                          "generator parameters (e.g. --amplitude 3). While it runs, type name=value, "
                          "pause, resume or quit on standard input.")
    parser.add_argument("generator", nargs="?", help="generator name (see 'wsgen list'); omit with --spec")
    parser.add_argument("--stream", metavar="NAME",
                        help="subscribe to a named stream (shared by every subscriber; see GET /streams), "
                             "from the live sample or --start-seq; no generator, parameters or seed then")
    parser.add_argument("--start-seq", type=int, metavar="SEQ", help="with --stream: start this far back "
                                                                       "(within the stream's history)")
    parser.add_argument("--admin-token", default=os.environ.get("WSGEN_ADMIN_TOKEN") or None,
                        help="with --stream: the operator token; lines typed then change the stream for "
                             "everyone (name=value ..., inject KIND name=value ... duration=S)")
    parser.add_argument("--spec", metavar="FILE.json|JSON",
                        help="subscribe to a composition: a JSON file, or the JSON itself (docs/compositions.md)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a generator parameter (repeatable)")
    parser.add_argument("--format", choices=["text", "csv", "ndjson"], default="text",
                        help="text: one value per line (full precision); csv: seq,t,value[,label]; "
                             "ndjson: {seq,t,value[,label]} per line")
    parser.add_argument("--count", type=_positive(int), help="stop after N samples")
    parser.add_argument("--duration", type=_positive(float), help="stop after S seconds")
    parser.add_argument("--seed", type=_protocol_rule("seed_from_text"),
                        help="seed of the random streams (default: drawn, shown on stderr)")
    parser.add_argument("--url", default=default_url(), help="server address (env WSGEN_URL; default %(default)s)")
    _token_option(parser)
    parser.add_argument("--speed", type=_protocol_rule("speed_from_text"), default=1.0,
                        help="delivery speed factor, or 'max' (default 1)")
    parser.add_argument("--binary", action="store_true", help="binary frames on the wire (same values)")
    parser.add_argument("--backpressure", choices=["block", "drop"], default="block",
                        help="when this reader is slow, the server waits (block) or skips samples (drop)")
    parser.add_argument("--max-lag", type=_positive(float), metavar="SECONDS",
                        help="with --backpressure drop: skip samples that would arrive more than this late "
                             "(server default 1)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no status lines on stderr (errors still)")
    parser.add_argument("--defaults", action="store_true",
                        help="start from the generator's defaults (the original service's: one sample a second) "
                             "instead of its lively demo values (see 'wsgen list')")
    parser.set_defaults(func=run_sub)


def configure_list(parser: argparse.ArgumentParser) -> None:
    """Add the ``wsgen list`` arguments to ``parser``."""
    parser.description = "List every generator with its family and parameters (default, unit, description)."
    parser.add_argument("--url", help="ask this server (ws://...) instead of the local registry")
    _token_option(parser)
    parser.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    parser.set_defaults(func=run_list)


def _eprint(*parts: Any) -> None:
    try:
        print(*parts, file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):
        pass


def _print_error(exc) -> None:
    _eprint(f"error {exc.code}: {exc.message}")


# -- output ------------------------------------------------------------------------

class Output:
    """Formats blocks onto a text stream (``text``, ``csv`` or ``ndjson``)."""

    def __init__(self, fmt: str, stream: TextIO, labels: bool | None = None, composition: bool = False,
                 channels: list[str] | None = None) -> None:
        self.fmt = fmt
        self.stream = stream
        self.labels = True if composition else labels
        self._started = False
        self._composite = None
        self.channels = channels
        if channels and fmt != "text":    # a composition with channels: the HTTP rows (wsgen.protocol.channel_lines)
            from wsgen.protocol.channel_lines import ChannelFormatter
            self._composite = ChannelFormatter(fmt, channels)
        elif composition and fmt in ("csv", "ndjson"):
            from wsgen.protocol.lines import CompositeFormatter
            self._composite = CompositeFormatter(fmt)

    def start(self, labels: bool | None = None) -> None:
        """Write the header (csv) once; ``labels``: whether a label column
        is wanted (None: decide from the first block)."""
        if labels is not None:
            self.labels = labels
        if self._started or self.labels is None:
            return
        self._started = True
        if self.fmt == "csv":
            if self.channels:
                from wsgen.protocol.channel_lines import header
                self.stream.write(header("csv", self.channels).decode())
            else:
                from wsgen.protocol.lines import header
                self.stream.write(header("csv", bool(self.labels), events=self._composite is not None).decode())

    def write(self, block) -> None:
        if not self._started:
            self.start(block.labels is not None if self.labels is None else self.labels)
        if self._composite is not None:
            self.stream.write(self._composite(block, block.timestamps).decode("utf-8"))
            self.stream.flush()
            return
        if self.fmt == "text":      # full precision (the HTTP text has three decimals)
            if block.values.ndim == 2:      # channels: one JSON array per sample, a value per channel
                text = "".join("[" + ",".join(["null" if v != v else repr(v) for v in row]) + "]\n"
                               for row in block.values.tolist())
            else:
                text = "".join("null\n" if v != v else f"{v!r}\n" for v in block.values.tolist())
        else:                       # the HTTP rows (wsgen.protocol.lines)
            from wsgen.protocol import lines
            if not self.labels and block.labels is not None:
                block = dataclasses.replace(block, labels=None)
            encode = lines.csv if self.fmt == "csv" else lines.ndjson
            text = encode(block, block.timestamps, block.seqs).decode("ascii")
        self.stream.write(text)
        self.stream.flush()


def want_progress(count: int | None, interval: float | None, speed: float | str, stdout_tty: bool,
                  stderr_tty: bool) -> bool:
    """Whether a ``--count`` capture shows a progress bar on stderr."""
    if not count or stdout_tty or not stderr_tty:
        return False
    if count >= PROGRESS_MIN_SAMPLES:
        return True
    if speed == "max" or not interval:
        return False
    return count * interval / float(speed) >= PROGRESS_MIN_SECONDS


def _isatty(stream) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):
        return False


# -- stdin commands ------------------------------------------------------------------

def _start_stdin_reader(loop: asyncio.AbstractEventLoop, lines: "asyncio.Queue[str | None]") -> None:
    """Read standard input in a daemon thread; post each line (and None at
    end of input) to ``lines``. Uses the raw file descriptor, so no lock of
    ``sys.stdin`` is held at exit."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        return

    def post(item):
        with contextlib.suppress(RuntimeError):   # loop closed
            loop.call_soon_threadsafe(lines.put_nowait, item)

    def read() -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                if buf.strip():
                    post(buf.decode(errors="replace"))
                post(None)
                return
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for line in complete:
                post(line.decode(errors="replace"))

    threading.Thread(target=read, name="wsgen-stdin", daemon=True).start()


async def _command(sub, line: str, stop: asyncio.Event, quiet: bool) -> None:
    """Apply one line typed on standard input."""
    from wsgen.client import ServerError
    line = line.strip()
    if not line or line.startswith("#"):
        return
    word = line.lower()
    try:
        if getattr(sub, "stream", None) is not None and word not in ("quit", "exit", "q", "pause", "resume"):
            await _operator_command(sub, line)
            return
        if line.startswith("{"):
            try:
                changes = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                _eprint(f"wsgen: cannot read {line!r}: {exc}")
                return
            seq = await sub.update(changes)
            _eprint(f"wsgen: updated at seq {seq}: {line}")
        elif word in ("quit", "exit", "q"):
            stop.set()
        elif word == "pause":
            seq = await sub.pause()
            _eprint(f"wsgen: paused at seq {seq}")
        elif word == "resume":
            seq = await sub.resume()
            _eprint(f"wsgen: resumed at seq {seq}")
        else:
            try:
                changes = parse_assignments(shlex.split(line))
            except ValueError as exc:
                _eprint(f"wsgen: cannot read {line!r}: {exc}; type name=value ..., pause, resume or quit")
                return
            speed = changes.pop("speed", None)
            seq = await sub.update(changes, speed=speed)
            shown = " ".join(f"{k}={v}" for k, v in ({**changes, "speed": speed} if speed is not None
                                                      else changes).items())
            _eprint(f"wsgen: updated at seq {seq}: {shown}")
    except ServerError as exc:
        _print_error(exc)


async def _operator_command(sub, line: str) -> None:
    """A line typed while reading a named stream: an operator change (with
    ``--admin-token``). ``name=value ...`` or a JSON object updates the
    stream's parameters; ``inject KIND [name=value ...] [duration=S]`` lays
    an anomaly over it for S seconds. Prints the seq it applies from (on
    every replica). Raises :class:`wsgen.client.ServerError`."""
    token = getattr(sub, "admin_token", None)
    if not token:
        _eprint(f"wsgen: changing {sub.stream} needs the operator token: --admin-token (or WSGEN_ADMIN_TOKEN)")
        return
    client = sub._client
    try:
        if line.startswith("{"):
            reply = await client.update_stream(sub.stream, orjson.loads(line), token)
        elif line.lower().startswith("inject"):
            words = shlex.split(line)[1:]
            if not words or "=" in words[0]:
                raise ValueError("inject needs a kind: inject level-shift height=5 duration=60")
            options = parse_assignments(words[1:])
            duration = options.pop("duration", None)
            reply = await client.inject_stream(sub.stream, {"kind": words[0], **options}, token, duration=duration)
        else:
            reply = await client.update_stream(sub.stream, parse_assignments(shlex.split(line)), token)
    except (ValueError, orjson.JSONDecodeError) as exc:
        _eprint(f"wsgen: cannot read {line!r}: {exc}; type name=value ..., inject KIND name=value ... "
                "duration=S, pause, resume or quit")
        return
    _eprint(f"wsgen: {reply['op']} of {sub.stream} applies from seq {reply['seq']}")


async def _commands(sub, lines: "asyncio.Queue[str | None]", stop: asyncio.Event, quiet: bool) -> None:
    while True:
        line = await lines.get()
        if line is None:
            return   # end of input: keep streaming
        await _command(sub, line, stop, quiet)


# -- wsgen sub -------------------------------------------------------------------------

async def _consume(sub, out: Output, count: int | None, bar) -> None:
    got = 0
    async for block in sub:
        if count is not None and got + len(block) >= count:
            block = block.slice(0, count - got)
            out.write(block)
            if bar is not None:
                bar.update(len(block))
            return
        out.write(block)
        got += len(block)
        if bar is not None:
            bar.update(len(block))


async def _unless_stopped(coro, stop: asyncio.Event) -> tuple[bool, Any]:
    """Run ``coro`` unless ``stop`` is set first (Ctrl-C while connecting):
    (True, its result) or (False, None)."""
    task = asyncio.ensure_future(coro)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False, None
    return True, task.result()


async def sub_main(args, params: dict[str, Any], stdout: TextIO | None = None) -> int:
    """The work of ``wsgen sub``; returns the exit status."""
    from websockets.exceptions import InvalidHandshake

    from wsgen.client import BadURL, Client, ConnectionLost, ServerError

    try:
        client = Client(args.url, token=args.token)
    except BadURL as exc:
        _eprint(f"wsgen: --url: {exc}")
        return 2
    stdout = stdout or sys.stdout
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    try:
        done, _ = await _unless_stopped(client.connect(), stop)
        if not done:
            return 0
    except (OSError, InvalidHandshake, asyncio.TimeoutError) as exc:
        _eprint(_cannot_connect(args, exc))
        return 1
    if getattr(args, "demo_note", None):
        _eprint(args.demo_note)
    tasks: list[asyncio.Task] = []
    bar = None
    try:
        composition = getattr(args, "composition", None)
        if getattr(args, "stream", None) is not None:
            subscribing = client.subscribe_stream(args.stream, start_seq=args.start_seq,
                                                  backpressure=args.backpressure,
                                                  encoding="binary" if args.binary else "json")
        else:
            subscribing = client.subscribe(composition if composition is not None else args.generator, params,
                                           seed=args.seed, speed=args.speed,
                                           backpressure=args.backpressure,
                                           encoding="binary" if args.binary else "json",
                                           max_lag=getattr(args, "max_lag", None))
        try:
            done, sub = await _unless_stopped(subscribing, stop)
        except ServerError as exc:
            _print_error(exc)
            return 2
        if not done:
            return 0
        sub.admin_token = getattr(args, "admin_token", None)   # (named streams: operator lines)
        if not args.quiet:
            _eprint(f"wsgen: subscribed {sub.generator} seed={sub.seed} from seq {sub.first_seq} "
                    f"(interval {sub.interval} s, speed {sub.speed})")
        labels = None
        from wsgen.engine import GENERATORS
        if getattr(sub, "stream", None) is None and sub.generator in GENERATORS:   # (named: the data say)
            spec = GENERATORS[sub.generator]
            labelled = getattr(spec.cls, "labelled", None)    # replay: labelled when it has a label_column
            labels = spec.anomalous or bool(labelled and labelled(sub.params or {}))
        out = Output(args.format, stdout, labels, composition=sub.composition,
                     channels=(sub.params or {}).get("channels") if sub.composition else None)
        out.start()
        if want_progress(args.count, sub.interval, sub.speed, _isatty(stdout), _isatty(sys.stderr)):
            from tqdm import tqdm
            try:
                columns, rows = os.get_terminal_size(sys.stderr.fileno())
            except OSError:
                columns = rows = 0
            # a terminal of unknown size reports 0 x 0, which would hide the bar
            bar = tqdm(total=args.count, unit="sample", file=sys.stderr, leave=True,
                       ncols=columns if columns >= 40 else 80, nrows=rows if rows >= 2 else 24)
        lines: asyncio.Queue = asyncio.Queue()
        _start_stdin_reader(loop, lines)
        consume = asyncio.create_task(_consume(sub, out, args.count, bar))
        commands = asyncio.create_task(_commands(sub, lines, stop, args.quiet))
        stopper = asyncio.create_task(stop.wait())
        tasks = [consume, commands, stopper]
        await asyncio.wait([consume, stopper], timeout=args.duration, return_when=asyncio.FIRST_COMPLETED)
        if consume.done() and not consume.cancelled():
            exc = consume.exception()
            if isinstance(exc, BrokenPipeError):
                _silence_stdout()
                return 0
            if isinstance(exc, ServerError):
                _print_error(exc)
                return 2
            if isinstance(exc, ConnectionLost):
                _eprint(f"wsgen: {exc}")
                return 1
            if exc is not None:
                raise exc
        try:
            stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
        return 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if bar is not None:
            bar.close()
        await client.close()


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the final flush at
    exit does not complain."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def read_spec(text: str) -> dict[str, Any]:
    """A composition from ``--spec``: JSON text (starting with ``{``) or
    the path of a JSON file; raises ``ValueError``."""
    source = text.strip()
    if not source.startswith("{"):
        try:
            with open(text, "rb") as f:
                source = f.read()
        except OSError as exc:
            raise ValueError(f"cannot read {text!r}: {exc.strerror or exc}") from None
    try:
        spec = orjson.loads(source)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise ValueError("must be a JSON object (a composition)")
    return spec


def run_sub(args) -> int:
    """Entry point of ``wsgen sub``."""
    try:
        options = parse_assignments(args.param)
    except ValueError as exc:
        _eprint(f"wsgen sub: -p {exc}")
        return 2
    params = {**args.extra_params, **options}
    args.composition = None
    if getattr(args, "stream", None) is not None:
        if args.generator is not None or args.spec is not None or params or args.seed is not None or \
                args.speed != 1.0 or getattr(args, "max_lag", None) is not None:
            _eprint("wsgen sub: --stream subscribes to a named stream: give no generator name, --spec, "
                    "parameters, --seed, --speed or --max-lag (the stream has its own, at the wall clock)")
            return 2
    elif args.spec is not None:
        if args.generator is not None or params or args.binary:
            _eprint("wsgen sub: --spec subscribes to a composition: give no generator name, no parameters "
                    "and no --binary")
            return 2
        try:
            args.composition = read_spec(args.spec)
        except ValueError as exc:
            _eprint(f"wsgen sub: --spec: {exc}")
            return 2
    elif args.generator is None:
        _eprint("wsgen sub: give a generator name, or --spec FILE.json for a composition")
        return 2
    elif not args.defaults:
        notes: list[str] = []
        params = with_demo(args.generator, params, notes.append)
        args.demo_note = None if args.quiet else "".join(notes) or None   # said once connected
    try:
        return asyncio.run(sub_main(args, params))
    except KeyboardInterrupt:   # before the signal handler was installed
        return 0
    except BrokenPipeError:
        _silence_stdout()
        return 0


def with_demo(name: str, params: dict[str, Any], say=None) -> dict[str, Any]:
    """``params`` over the demo values of generator ``name`` (the catalogue's
    ``demo``; none for a name this package does not know); ``say`` gets a
    line naming the demo values used."""
    from wsgen.engine import GENERATORS
    spec = GENERATORS.get(name)
    if spec is None:
        return params
    model = spec.params_model
    given = {model.aliases.get(k, k) for k in params}      # data_interval given: no demo interval
    used = {k: v for k, v in spec.demo.items() if k not in given}
    if used and say is not None:
        say("wsgen: demo values " + " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                               for k, v in used.items())
            + " (lively, not the defaults; --defaults starts from the original service's)")
    return {**used, **params}


# -- wsgen list ----------------------------------------------------------------------------

def _fmt_default(value: Any) -> str:
    if value is None:
        return "-"
    return repr(value) if isinstance(value, float) else str(value)


def format_catalogue(catalogue: list[dict[str, Any]]) -> str:
    """Human-readable catalogue: per generator a header line
    ``name  (family[, labelled])  description`` and one line per parameter:
    ``name  default unit  demo value  description`` (the demo column: the
    lively value ``wsgen sub`` and the page start from, where it differs)."""
    lines: list[str] = ["Defaults are the original service's (one sample a second); 'demo' values are lively "
                        "ones (20 samples/s) that wsgen sub and the page start from (wsgen sub --defaults: not).",
                        ""]
    for gen in catalogue:
        demo = gen.get("demo") or {}
        schema = gen.get("params_schema", {})
        props: dict[str, dict] = schema.get("properties", {})
        family = gen.get("family", "?") + (", labelled" if gen.get("anomalous") else "")
        description = str(gen.get("description", "")).replace("``", "")
        lines.append(f"{gen['name']}  ({family})  {description}".rstrip())
        rows = []
        for name, prop in props.items():
            default = _fmt_default(prop.get("default"))
            unit = prop.get("unit", "")
            shown = f"demo {_fmt_default(demo[name])}" if name in demo else ""
            rows.append((name, f"{default} {unit}".strip(), shown, prop.get("description", "")))
        w1 = max((len(r[0]) for r in rows), default=0)
        w2 = max((len(r[1]) for r in rows), default=0)
        w3 = max((len(r[2]) for r in rows), default=0)
        for name, default, shown, desc in rows:
            lines.append(f"    {name:<{w1}}  {default:<{w2}}  {shown:<{w3}}  {desc}".rstrip())
        lines.append("")
    return "\n".join(lines)


async def _remote_catalogue(url: str, token: str | None) -> list[dict[str, Any]]:
    from wsgen.client import Client
    async with Client(url, reconnect=False, token=token) as c:
        return await c.list()


def run_list(args) -> int:
    """Entry point of ``wsgen list``."""
    if args.url:
        from websockets.exceptions import InvalidHandshake

        from wsgen.client import BadURL, ServerError
        try:
            cat = asyncio.run(_remote_catalogue(args.url, args.token))
        except BadURL as exc:
            _eprint(f"wsgen: --url: {exc}")
            return 2
        except ServerError as exc:
            _print_error(exc)
            return 2
        except (OSError, InvalidHandshake, asyncio.TimeoutError) as exc:
            _eprint(_cannot_connect(args, exc))
            return 1
    else:
        from wsgen.engine import catalogue
        cat = catalogue()
    try:
        if args.json:
            sys.stdout.write(orjson.dumps(cat, option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            sys.stdout.write(format_catalogue(cat))
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    return 0
