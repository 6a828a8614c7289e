"""Command line: ``wsgen serve | list | sub | bench``.

Argument parsing only; each command's work lives in its own module.
"""
from __future__ import annotations

import argparse
import os
import sys


def _one_of(choices: tuple[str, ...]):
    """An argparse ``type`` accepting one of ``choices``, else saying which."""
    def check(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(choices)})")
        return text
    return check


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """Add one option per ``Settings`` field that declares one
    (``wsgen.server.config.option``): its flag, parser, choices and help,
    with its env var named in the help. The default is the env var's text
    (argparse checks it with the option's parser, as if given as the flag;
    a repeatable option's env var is a comma-separated list), else the
    field's default."""
    from wsgen.server.config import GROUPS, default_of, settings_options

    groups = {}       # title -> argument group
    for f, opt in settings_options():
        target = parser
        if opt.group is not None:
            if opt.group not in groups:
                groups[opt.group] = parser.add_argument_group(opt.group, GROUPS[opt.group])
            target = groups[opt.group]
        text = os.environ.get(opt.env)
        kwargs: dict = {"metavar": opt.metavar}
        if opt.repeat:
            kwargs["action"] = "append"
            kwargs["default"] = [item for item in text.split(",") if item] if text is not None else default_of(f)
            kwargs["help"] = f"{opt.help} (repeatable; env {opt.env}, comma-separated)"
        else:
            kwargs["default"] = text if text is not None else default_of(f)
            kwargs["help"] = f"{opt.help} ({_default_text(opt.help, default_of(f))}env {opt.env})"
            if opt.parse is not None:
                kwargs["type"] = opt.parse
            if opt.choices is not None:     # checked in ``type`` too: argparse does not check a default's choice
                kwargs["choices"] = list(opt.choices)
                kwargs["type"] = _one_of(opt.choices)
        target.add_argument(opt.flag, **kwargs)


def _default_text(help_text: str, default) -> str:
    """``"default 5; "`` for the help of an option whose default is a value
    its help does not already name (``--graceful-timeout``: ``default 5``),
    else ``""``."""
    if default is None or "default" in help_text:
        return ""
    if isinstance(default, float):
        default = f"{default:g}"
    return f"default {default}; "


def build_parser() -> argparse.ArgumentParser:
    from wsgen import __version__

    parser = argparse.ArgumentParser(prog="wsgen", description="Synthetic time-series streams over WebSocket and HTTP.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print wsgen's version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the WebSocket and HTTP servers",
                           description="Run the WebSocket server (default ws://127.0.0.1:8765) and the HTTP "
                                       "compatibility server (default http://127.0.0.1:8000).")
    add_settings_options(serve)      # every flag, env var and default: wsgen.server.config.Settings
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
