"""`ngx-enrich report`: arguments and the run: read -> enrich -> count -> render.

Lines are read and enriched exactly as the filter does (`io.pump` with the enricher's
multiline joiner, or `io.pump_msgpack`); instead of being written, every batch of enriched
records goes to the collector.
"""

from __future__ import annotations

import argparse
import io
import os
from typing import Any, BinaryIO

from ngx_enrich import argtypes, catalog, progress
from ngx_enrich.cli import PROG, Env, Exit, UsageError, add_reading_options, make_enricher
from ngx_enrich.io import pump, pump_msgpack, sniff
from ngx_enrich.pipeline import Enricher
from ngx_enrich.report import parallel, render_html, render_json, render_markdown, render_text
from ngx_enrich.report.collect import Collector
from ngx_enrich.report.topn import CAP
from ngx_enrich.report.window import moment

FORMATS = ("text", "json", "markdown", "html")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The report's options: output, window, and the filter's parsing options."""
    parser.add_argument("--format", choices=FORMATS, default="text",
                        help="text (default: 80 columns, coloured on a terminal unless "
                        "NO_COLOR is set), json (the data the others are drawn from), "
                        "markdown, or html (one self-contained page)")
    parser.add_argument("--since", type=moment, metavar="TIME",
                        help="only records at or after TIME (ISO 8601 or 'YYYY-MM-DD "
                        "HH:MM[:SS]', local zone unless given); records without a time "
                        "are left out")
    parser.add_argument("--until", type=moment, metavar="TIME",
                        help="only records before TIME (same forms as --since)")
    parser.add_argument("--top", type=argtypes.count, default=10, metavar="N",
                        help="how many problems, paths, clients, ... to list (default: 10)")
    parser.add_argument("--lang", choices=catalog.LANGS, default=catalog.LANGS[0],
                        help="language of the report, explanations and hints "
                        "(default: %(default)s)")
    parser.add_argument("--jobs", type=argtypes.count, metavar="N",
                        help="worker processes for a large file (default: the processors "
                        "available, at most 4; 1: one process)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar on stderr (it is shown only on a terminal)")
    add_reading_options(parser)
    parser.add_argument("--no-multiline", action="store_true",
                        help="treat every physical line as its own record")
    parser.add_argument("--input", choices=("json", "msgpack", "auto"), default="json",
                        help="json (default): text lines; msgpack: a stream of maps; auto: "
                        "msgpack when the first byte starts a msgpack map")
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="log files to read ('-' or none: standard input)")
    # what the filter's enricher options need and the report fixes
    parser.set_defaults(schema="default", key="ngx")


def run(args: argparse.Namespace, env: Env) -> int:
    """Read every input, count, print the report; 1 when an input cannot be read."""
    if args.since is not None and args.until is not None and args.since >= args.until:
        raise UsageError("--since must be before --until")
    enricher = make_enricher(args)
    names = list(args.files) or ["-"]
    fds: list[int] = []
    opened: list[int] = []
    try:
        for name in names:
            if name == "-":
                fds.append(env.stdin.fileno())
                continue
            try:
                opened.append(os.open(name, os.O_RDONLY))
            except OSError as exc:  # as in the filter: a file argument that cannot be used
                raise UsageError(f"cannot open {name}: {exc.strerror}") from None
            fds.append(opened[-1])

        def make() -> Collector:
            return Collector(enricher.classifier.catalog, args.lang, args.since, args.until,
                             cap=max(CAP, 4 * args.top))

        collector = make()
        jobs = args.jobs or parallel.default_jobs()
        shown = progress.wanted(env.stderr, args.quiet)
        with progress.Progress(fds, names, env.stderr, shown) as bar:
            for fd, name in zip(fds, names, strict=True):
                try:
                    workers = parallel.jobs_for(fd, jobs) if args.input == "json" else 1
                    if workers > 1:
                        collector.merge(parallel.count_file(fd, workers, enricher, make,
                                                            not args.no_multiline))
                    else:
                        _read(fd, args, enricher, collector)
                except OSError as exc:
                    return _failed(env, f"cannot read {name}: {exc.strerror}")
                except parallel.WorkerFailed as exc:
                    return _failed(env, f"{name}: {exc}")
                finally:
                    bar.done(fd)
    finally:
        for fd in opened:
            os.close(fd)
    report = collector.summary(args.top, names)
    env.stdout.write(render(report, args.format, color=_color(env.stdout)).encode())
    env.stdout.flush()
    return Exit.OK


def render(report: dict[str, Any], fmt: str, color: bool = False) -> str:
    """The report in one of FORMATS, with the catalogue's words for its language."""
    if fmt == "json":
        return render_json.render(report)
    words = catalog.report_words(report["lang"])
    if fmt == "markdown":
        return render_markdown.render(report, words)
    if fmt == "html":
        return render_html.render(report, words)
    return render_text.render(report, words, color=color)


def _read(fd: int, args: argparse.Namespace, enricher: Enricher, collector: Collector) -> None:
    """One input into the collector, read and enriched as the filter reads it."""
    sink = io.BytesIO()

    def count(_out: BinaryIO, records: list[dict[str, Any]]) -> None:
        collector.add(records)

    kind, first = sniff(fd) if args.input == "auto" else (args.input, b"")
    if kind == "msgpack":
        pump_msgpack(fd, enricher.enrich_value, sink, count, first)
    else:
        joiner = None if args.no_multiline else enricher.joiner()
        pump(fd, enricher.enrich_line, sink, joiner, write=count, first=first)


def _color(stdout: BinaryIO) -> bool:
    """Colour on a terminal, unless NO_COLOR is set (to anything but empty)."""
    try:
        tty = stdout.isatty()
    except (OSError, ValueError):
        return False
    return tty and not os.environ.get("NO_COLOR")


def _failed(env: Env, message: str) -> int:
    env.stderr.write(f"{PROG}: error: {message}\n")
    return Exit.ERROR
