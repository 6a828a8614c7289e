"""Benchmarks that print numbers: ``wsgen bench <scenario>``."""
from __future__ import annotations


def configure(parser) -> None:
    """Add the bench sub-commands to ``parser`` (an argparse parser)."""
    parser.set_defaults(func=lambda args: parser.print_help())
