"""Command line: argument parsing only; the work happens in the pipeline modules."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import BinaryIO, NoReturn, TextIO

from ngx_enrich import __version__
from ngx_enrich.catalog import CatalogError
from ngx_enrich.io import pump
from ngx_enrich.pipeline import Enricher, Options
from ngx_enrich.shape import SCHEMAS

PROG = "ngx-enrich"


class Exit(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    INTERRUPTED = 130


@dataclass
class Env:
    """Where the command reads and writes; tests pass their own."""

    stdin: BinaryIO = field(default_factory=lambda: sys.stdin.buffer)
    stdout: BinaryIO = field(default_factory=lambda: sys.stdout.buffer)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)


class UsageError(Exception):
    """A bad flag or argument: one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lang", choices=("en", "zh"), default="en",
                        help="language of explanations and hints (default: en)")
    parser.add_argument("--schema", choices=SCHEMAS, default="default",
                        help="output shape: default (ngx object), flat (ngx_* keys) or ecs")
    parser.add_argument("--key", default="ngx", help="name of the added object (default: ngx)")
    parser.add_argument("--field", help="record key holding the raw Nginx line "
                        "(default: log, message or msg)")
    parser.add_argument("--rules", type=Path, action="append", default=[], metavar="FILE",
                        help="extra rules (TOML, same schema); they take precedence")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Explain Nginx error and access log records: "
                     "reads lines, writes JSON lines with an added category, explanation, "
                     "severity and hint.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _common(parser)
    parser.add_argument("--quiet-flush", type=float, default=0.2, metavar="SECONDS",
                        help="emit a held-back multiline record after this much silence "
                        "(default: 0.2)")
    parser.add_argument("--no-multiline", action="store_true",
                        help="treat every physical line as its own record")
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="log files to read ('-' or none: standard input)")
    return parser


def options_from(args: argparse.Namespace) -> Options:
    return Options(lang=args.lang, schema=args.schema, key=args.key, field=args.field,
                   rules=tuple(args.rules))


def _open_inputs(files: Sequence[str], env: Env) -> list[int]:
    fds = []
    for name in files or ["-"]:
        if name == "-":
            fds.append(env.stdin.fileno())
            continue
        try:
            fds.append(os.open(name, os.O_RDONLY))
        except OSError as exc:
            raise UsageError(f"cannot open {name}: {exc.strerror}") from None
    return fds


def run_filter(args: argparse.Namespace, env: Env) -> int:
    """The default command: enrich lines from files or stdin to stdout."""
    fds = _open_inputs(args.files, env)
    enricher = Enricher(options_from(args))
    for fd in fds:
        pump(fd, enricher.enrich_line, env.stdout, quiet=args.quiet_flush,
             multiline=not args.no_multiline)
    return Exit.OK


def main(argv: Sequence[str] | None = None, env: Env | None = None) -> int:
    """Run the command line; returns the exit status."""
    env = env or Env()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        return run_filter(args, env)
    except UsageError as exc:
        env.stderr.write(f"{PROG}: error: {exc}\n")
        return Exit.USAGE
    except CatalogError as exc:
        for problem in exc.problems:
            env.stderr.write(f"{PROG}: rules: {problem}\n")
        return Exit.USAGE


def entry() -> NoReturn:
    """Console-script entry point: pipes and Ctrl-C end quietly."""
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other filters do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        status = Exit.OK
    except KeyboardInterrupt:
        status = Exit.INTERRUPTED
    sys.exit(status)
