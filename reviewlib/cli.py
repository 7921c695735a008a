"""The ``reviewlib`` command: a thin layer over the Python API.

Each subcommand lives in the module that does its work; that module defines
``configure_parser(parser)`` (its options) and ``run_cli(args) -> int``.  Only
the chosen subcommand's module is imported, so ``reviewlib --help`` is quick.

Errors derived from :class:`reviewlib.errors.ReviewlibError` print one line on
stderr and exit non-zero; ``--debug`` shows the traceback as well.  So do
operating-system and SQLite errors (a read-only or full disk, a directory where
a file is expected): :mod:`reviewlib.oserrors` gives their line, exit code 1.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sqlite3
import sys

from . import __version__
from .errors import ReviewlibError

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "fetch": ("reviewlib.retrieval.fetch", "search PubMed and fetch every matching record into a folder (resumable)"),
    "registry": ("reviewlib.retrieval.registry",
                 "search ClinicalTrials.gov and fetch every matching trial into a folder (resumable)"),
    "run": ("reviewlib.pipeline", "run a review's notebooks with papermill and render HTML into results/"),
    "simulate": ("reviewlib.screening.simulation", "simulate prioritised screening on a labelled dataset (WSS@95, RRF@10)"),
    "decisions": ("reviewlib.screening.decisions", "export or import screening decisions as CSV"),
    "dedup": ("reviewlib.screening.dedup", "deduplicate a store's records; mark groups as (not) duplicates"),
    "extract": ("reviewlib.evidence.extraction", "extract study characteristics from records into an evidence CSV"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only ``command``'s module is imported and configured."""
    parser = argparse.ArgumentParser(prog="reviewlib", description="Reproducible systematic reviews on PubMed.")
    parser.add_argument("--version", action="version", version=f"reviewlib {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks and debug logging")
        if name == command:
            importlib.import_module(module).configure_parser(p)
    return parser


def _chosen(argv: list[str]) -> str | None:
    return next((a for a in argv if a in COMMANDS), None)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``reviewlib`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    command = _chosen(argv)
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s" if debug else "%(message)s")
    try:
        parser = build_parser(command)
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help(sys.stderr)
            return 2
        module = importlib.import_module(COMMANDS[args.command][0])
        return int(module.run_cli(args) or 0)
    except ReviewlibError as exc:
        if debug:
            logging.exception("reviewlib %s failed", command)
        print(f"reviewlib {command or ''}: error: {exc}".replace("  ", " "), file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        from .oserrors import describe
        return _fail(command, describe(exc), debug)
    except sqlite3.Error as exc:
        from .oserrors import describe_sqlite
        return _fail(command, describe_sqlite(exc), debug)
    except KeyboardInterrupt:
        print(f"reviewlib {command or ''}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def _fail(command: str | None, line: str, debug: bool) -> int:
    if debug:
        logging.exception("reviewlib %s failed", command)
    print(f"reviewlib {command or ''}: error: {line}".replace("  ", " "), file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
