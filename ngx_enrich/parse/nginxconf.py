"""The `log_format`s an nginx.conf defines, with its `include`s followed."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

from ngx_enrich.parse.logformat import COMBINED

_CONF_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}
_MAX_INCLUDE_DEPTH = 16


def _conf_unescape(word: str) -> str:
    """Nginx's unescaping of a token: \\" \\' \\\\ \\t \\r \\n; other backslashes stay."""
    if "\\" not in word:
        return word
    out: list[str] = []
    i, n = 0, len(word)
    while i < n:
        ch = word[i]
        if ch == "\\" and i + 1 < n and word[i + 1] in _CONF_ESCAPES:
            out.append(_CONF_ESCAPES[word[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _conf_tokens(text: str) -> Iterator[tuple[str, bool]]:
    """(text, is_separator) of a configuration text: words (unescaped) and `;`, `{`, `}`."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif ch == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif ch in ";{}":
            yield ch, True
            i += 1
        elif ch in "\"'":
            start = i = i + 1
            while i < n and text[i] != ch:
                i += 2 if text[i] == "\\" else 1
            yield _conf_unescape(text[start:i]), False
            i += 1
        else:
            start = i
            while i < n:
                c = text[i]
                if c == "\\":
                    i += 2
                elif c == "{" and text[i - 1] == "$":
                    i += 1
                elif c in " \t\r\n;{":
                    break
                else:
                    i += 1
            yield _conf_unescape(text[start:i]), False


def _conf_directives(path: Path, conf_dir: Path, stack: tuple[Path, ...] = ()
                     ) -> Iterator[tuple[list[str], str]]:
    """(words, terminator) of each directive, with `include`d files spliced in.

    A file already being read (an include loop) is skipped, as is a nesting deeper than 16.
    """
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError:
        if not stack:
            raise
        return
    stack = (*stack, path.resolve())
    words: list[str] = []
    for token, separator in _conf_tokens(text):
        if not separator:
            words.append(token)
            continue
        end = token
        if end == ";" and len(words) == 2 and words[0] == "include":
            if len(stack) <= _MAX_INCLUDE_DEPTH:
                pattern = words[1] if Path(words[1]).is_absolute() else str(conf_dir / words[1])
                found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
                for name in found:
                    if Path(name).resolve() not in stack:
                        yield from _conf_directives(Path(name), conf_dir, stack)
        else:
            yield words, end
        words = []


def read_nginx_conf_formats(path: Path) -> dict[str, tuple[str, str]]:
    """`log_format` definitions of an nginx.conf and its includes: name -> (format, escape).

    Relative `include` paths resolve against the directory of `path`, as Nginx does for
    its main file. Includes that cannot be read are skipped. `combined` is always known;
    formats of the `stream` block only fill names `http` does not define.
    """
    path = Path(path)
    http: dict[str, tuple[str, str]] = {}
    stream: dict[str, tuple[str, str]] = {}
    blocks: list[str] = []
    for words, end in _conf_directives(path, path.resolve().parent):
        if end == "{":
            blocks.append(words[0] if words else "")
        elif end == "}":
            if blocks:
                blocks.pop()
        elif len(words) >= 3 and words[0] == "log_format":
            args = words[2:]
            escape = "default"
            if args[0].startswith("escape=") and len(args) > 1:
                escape, args = args[0][7:], args[1:]
            target = stream if "stream" in blocks else http
            target.setdefault(words[1], ("".join(args), escape))
    return {**stream, "combined": (COMBINED, "default"), **http}
