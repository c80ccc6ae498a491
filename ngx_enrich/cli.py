"""Command line: argument parsing only; the work happens in the pipeline modules."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import BinaryIO, NoReturn, TextIO

import orjson

from ngx_enrich import __version__, argtypes, build, catalog, explain, progress
from ngx_enrich.catalog import CatalogError
from ngx_enrich.io import WRITERS, pump, pump_msgpack, sniff, write_json_lines
from ngx_enrich.parse.logformat import ESCAPES, compile_log_format
from ngx_enrich.parse.nginxconf import read_nginx_conf_formats
from ngx_enrich.pipeline import Enricher, Options
from ngx_enrich.rules import load_checked
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


# Runnable examples shown at the end of each command's --help (from the repository root).
EXAMPLES: dict[str, tuple[str, ...]] = {
    PROG: (
        "ngx-enrich examples/logs/error.log",
        "ngx-enrich --schema ecs --lang zh examples/logs/access.log",
        "tail -F /var/log/nginx/error.log | ngx-enrich",
    ),
    f"{PROG} explain": (
        "ngx-enrich explain 502",
        'ngx-enrich explain "upstream sent too big header while reading response header '
        'from upstream"',
        'ngx-enrich explain --lang zh "$(sed -n 10p examples/logs/error.log)"',
    ),
    f"{PROG} rules": (
        "ngx-enrich rules | head -5",
        "ngx-enrich rules --check my-rules.toml && ngx-enrich --rules my-rules.toml error.log",
    ),
    f"{PROG} serve": (
        "ngx-enrich serve --to stdout --tag-prefix enriched",
        "ngx-enrich serve --listen 127.0.0.1:24225 --to forward://127.0.0.1:24224 "
        "--tag-prefix enriched",
    ),
    f"{PROG} follow": (
        "ngx-enrich follow --once --from-start examples/logs/error.log examples/logs/access.log",
        "ngx-enrich follow --state /var/lib/ngx-enrich/state.json /var/log/nginx/error.log",
    ),
    f"{PROG} report": (
        "ngx-enrich report examples/logs/error.log",
        "ngx-enrich report --format markdown --top 5 examples/logs/error.log "
        "examples/logs/access.log",
        "ngx-enrich report --format json --since '2026-11-29 18:24:27' examples/logs/error.log",
    ),
    f"{PROG} export": (
        "ngx-enrich export es-template --schema ecs",
        "ngx-enrich export json-schema",
    ),
}


class _Formatter(argparse.HelpFormatter):
    """Wraps the description as usual; the examples are shown line by line, as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return text
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *, prog: str, description: str) -> None:
        examples = "\n".join(f"  {line}" for line in EXAMPLES[prog])
        super().__init__(prog=prog, description=description, epilog=f"examples:\n{examples}",
                         formatter_class=_Formatter)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lang", choices=catalog.LANGS, default=catalog.LANGS[0],
                        help="language of explanations and hints (default: %(default)s)")
    parser.add_argument("--schema", choices=SCHEMAS, default="default",
                        help="output shape: default (ngx object), flat (ngx_* keys) or ecs")
    parser.add_argument("--key", default="ngx", help="name of the added object (default: ngx)")
    add_reading_options(parser)


def add_reading_options(parser: argparse.ArgumentParser) -> None:
    """How records are read: the raw line's key, extra rules, the access format."""
    parser.add_argument("--field", help="record key holding the raw Nginx line "
                        "(default: log, message or msg)")
    parser.add_argument("--rules", type=Path, action="append", default=[], metavar="FILE",
                        help="extra rules (TOML, same schema); they take precedence")
    parser.add_argument("--log-format", metavar="FORMAT",
                        help="Nginx log_format of the access lines (tried before the "
                        "built-in shapes)")
    parser.add_argument("--log-format-escape", choices=ESCAPES, default="default",
                        help="the escape= of --log-format (default: default)")
    parser.add_argument("--nginx-conf", type=Path, metavar="FILE",
                        help="take the log_format from this nginx.conf (includes followed)")
    parser.add_argument("--format-name", metavar="NAME",
                        help="which log_format of --nginx-conf (e.g. main, combined)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Explain Nginx error and access log records: "
                     "reads lines, writes JSON lines with an added category, explanation, "
                     "severity and hint. Subcommands: explain, rules, serve, follow "
                     "(see `ngx-enrich COMMAND --help`).")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__} ({build()})")
    _common(parser)
    parser.add_argument("--quiet-flush", type=argtypes.positive_seconds, default=0.2,
                        metavar="SECONDS",
                        help="emit a held-back multiline record after this much silence "
                        "(default: 0.2)")
    parser.add_argument("--no-multiline", action="store_true",
                        help="treat every physical line as its own record")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar on stderr (shown only when stderr is a terminal "
                        "and stdout is not)")
    parser.add_argument("--input", choices=("json", "msgpack", "auto"), default="json",
                        help="json (default): text lines, raw Nginx lines or JSON objects; "
                        "msgpack: a stream of maps (Fluentd exec_filter); auto: msgpack when "
                        "the first byte starts a msgpack map, else text")
    parser.add_argument("--output", choices=("json", "msgpack"), default="json",
                        help="JSON lines, or a stream of msgpack maps")
    parser.add_argument("--pad-to", type=argtypes.byte_count, default=0, metavar="BYTES",
                        help="when input pauses, pad the output with newlines to a multiple of "
                        "BYTES: set it to Fluentd exec_filter's stream_buffer_size with "
                        "--output json, so no record waits for the next block (default: off)")
    parser.add_argument("--event-time", choices=("line", "keep"), default="line",
                        help="line (default): where a record has the --time-key field and its "
                        "log line carries a time, that field is set to the line's time; keep: "
                        "leave it alone")
    parser.add_argument("--time-key", default="fluentd_time", metavar="KEY",
                        help="the field Fluentd's <inject>/<extract> carry the event time in "
                        "(default: fluentd_time)")
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="log files to read ('-' or none: standard input)")
    return parser


def _explain_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=f"{PROG} explain", description="Explain one log line, status code "
                     "or message in plain words.")
    _common(parser)
    parser.add_argument("text", nargs="+", help="a log line, a status code or a message")
    return parser


def _rules_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=f"{PROG} rules", description="List the catalogue's rules, or check "
                     "a rules file.")
    parser.add_argument("--rules", type=Path, action="append", default=[], metavar="FILE",
                        help="extra rules to include in the listing")
    parser.add_argument("--check", type=Path, metavar="FILE",
                        help="validate a rules file and print every problem")
    return parser


def _enriching_parser(name: str, module: str, description: str,
                      ) -> Callable[[], argparse.ArgumentParser]:
    """A subcommand parser: the enrichment options plus the module's own."""

    def build() -> argparse.ArgumentParser:
        parser = _Parser(prog=f"{PROG} {name}", description=description)
        _common(parser)
        importlib.import_module(module).add_arguments(parser)
        return parser

    return build


def _report_parser() -> argparse.ArgumentParser:
    from ngx_enrich.report import command

    parser = _Parser(prog=f"{PROG} report", description="Summarise what is wrong in a log: "
                     "counts by area and category with severity, first and last seen, "
                     "timelines, top upstreams, clients, hosts and URIs, and what the top "
                     "problems mean. Reads files or standard input as the filter does.")
    command.add_arguments(parser)
    return parser


def _export_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=f"{PROG} export", description="Print a generated artefact: the "
                     "Elasticsearch index template or the JSON Schema of the output.")
    parser.add_argument("what", choices=("es-template", "json-schema"))
    parser.add_argument("--schema", choices=SCHEMAS, default="default")
    parser.add_argument("--key", default="ngx")
    return parser


def access_format(args: argparse.Namespace) -> tuple[str, str] | None:
    """The custom access format of --log-format or --nginx-conf/--format-name, checked."""
    if args.log_format is not None and args.nginx_conf is not None:
        raise UsageError("--log-format and --nginx-conf exclude each other")
    if (args.nginx_conf is None) != (args.format_name is None):
        raise UsageError("--nginx-conf and --format-name go together")
    if args.log_format is not None:
        fmt = (args.log_format, args.log_format_escape)
    elif args.nginx_conf is not None:
        try:
            formats = read_nginx_conf_formats(args.nginx_conf)
        except OSError as exc:
            raise UsageError(f"cannot read {args.nginx_conf}: {exc.strerror}") from None
        if args.format_name not in formats:
            raise UsageError(f"no log_format {args.format_name!r} in {args.nginx_conf} "
                             f"(known: {', '.join(sorted(formats))})")
        fmt = formats[args.format_name]
    else:
        return None
    try:
        compile_log_format(*fmt)
    except ValueError as exc:
        raise UsageError(f"log_format: {exc}") from None
    return fmt


def options_from(args: argparse.Namespace, encoded: bool = False) -> Options:
    time_key = None
    if getattr(args, "event_time", "keep") == "line" and getattr(args, "time_key", None):
        time_key = args.time_key
    return Options(lang=args.lang, schema=args.schema, key=args.key, field=args.field,
                   rules=tuple(args.rules), access_format=access_format(args),
                   time_key=time_key, encoded=encoded)


def make_enricher(args: argparse.Namespace, encoded: bool = False) -> Enricher:
    """An enricher for the options; user rules are checked sample by sample. `encoded`: its
    records go to orjson alone."""
    cat = load_checked(args.rules) if args.rules else None
    return Enricher(options_from(args, encoded), cat)


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
    enricher = make_enricher(args, encoded=args.output == "json")
    shown = progress.wanted(env.stderr, args.quiet) and not env.stdout.isatty()
    names = args.files or ["-"]
    with progress.Progress(fds, names, env.stderr, shown) as bar:
        for fd, name in zip(fds, names, strict=True):
            try:
                _pump_one(fd, args, enricher, env)
            except BrokenPipeError:
                raise  # the reader went away: `entry` ends quietly
            except OSError as exc:  # a directory, a read error: what came before is written
                env.stderr.write(f"{PROG}: error: cannot read {name}: {exc.strerror}\n")
                return Exit.ERROR
            finally:
                bar.done(fd)
                if fd != env.stdin.fileno():
                    os.close(fd)
    return Exit.OK


def _pump_one(fd: int, args: argparse.Namespace, enricher: Enricher, env: Env) -> None:
    """One input: msgpack maps or text lines."""
    write = WRITERS[args.output]
    kind, first = sniff(fd) if args.input == "auto" else (args.input, b"")
    if kind == "msgpack":
        pump_msgpack(fd, enricher.enrich_value, env.stdout, write, first)
    else:
        joiner = None if args.no_multiline else enricher.joiner()
        pump(fd, enricher.enrich_line, env.stdout, joiner, quiet=args.quiet_flush, write=write,
             first=first, pad_to=args.pad_to)


def run_explain(args: argparse.Namespace, env: Env) -> int:
    enricher = make_enricher(args)
    record = explain.as_record(" ".join(args.text), enricher)
    text = explain.render(record, args.lang, enricher.classifier.catalog.phrases[args.lang])
    env.stdout.write(text.encode())
    return Exit.OK


def run_rules(args: argparse.Namespace, env: Env) -> int:
    if args.check is not None:
        if not args.check.is_file():
            raise UsageError(f"cannot open {args.check}: No such file")
        try:
            cat = load_checked([args.check])
        except CatalogError as exc:
            for problem in exc.problems:
                env.stderr.write(f"{problem}\n")
            env.stderr.write(f"{args.check}: {len(exc.problems)} problem(s)\n")
            return Exit.ERROR
        count = sum(1 for r in cat.rules if r.origin == args.check.name)
        env.stdout.write(f"{args.check}: {count} rules, no problems\n".encode())
        return Exit.OK
    cat = load_checked(args.rules) if args.rules else catalog.builtin()
    rows = [f"{r.id}\t{r.category}\t{r.area}\t{r.severity}" for r in cat.rules]
    env.stdout.write(("id\tcategory\tarea\tseverity\n" + "\n".join(rows) + "\n").encode())
    return Exit.OK


def run_serve(args: argparse.Namespace, env: Env) -> int:
    from ngx_enrich.forward import command

    return command.run(args, make_enricher(args, encoded=command.writes_json(args)))


def run_follow(args: argparse.Namespace, env: Env) -> int:
    from ngx_enrich import follow

    enricher = make_enricher(args)
    meter = None
    if args.metrics is not None:
        from ngx_enrich.metrics import Metrics

        meter = Metrics.for_enricher(enricher, files=args.files)
    return follow.run(args, enricher.enrich_line,
                      lambda records: write_json_lines(env.stdout, records),
                      joiner=enricher.joiner, meter=meter)


def run_report(args: argparse.Namespace, env: Env) -> int:
    from ngx_enrich.report import command

    return command.run(args, env)


def run_export(args: argparse.Namespace, env: Env) -> int:
    from ngx_enrich.export import templates

    if args.what == "es-template":
        doc = templates.es_template(args.key, args.schema)
    else:
        doc = templates.json_schema(args.key)
    env.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    return Exit.OK


COMMANDS: dict[str, tuple[Callable[[], argparse.ArgumentParser],
                          Callable[[argparse.Namespace, Env], int]]] = {
    "explain": (_explain_parser, run_explain),
    "rules": (_rules_parser, run_rules),
    "serve": (_enriching_parser("serve", "ngx_enrich.forward.command",
                                "Forward-protocol processor: receive events, enrich them, "
                                "hand them on, then acknowledge."), run_serve),
    "follow": (_enriching_parser("follow", "ngx_enrich.follow",
                                 "Follow Nginx log files like tail -F and write enriched JSON "
                                 "lines (a source for Fluent Bit in_exec)."), run_follow),
    "export": (_export_parser, run_export),
    "report": (_report_parser, run_report),
}


def main(argv: Sequence[str] | None = None, env: Env | None = None) -> int:
    """Run the command line; returns the exit status."""
    env = env or Env()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in COMMANDS:
            make_parser, run = COMMANDS[argv[0]]
            return run(make_parser().parse_args(argv[1:]), env)
        return run_filter(build_parser().parse_args(argv), env)
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
