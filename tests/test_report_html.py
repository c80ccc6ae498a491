"""`report --format html` in a real headless Chromium: it draws, its script runs, and the
figures on the page are those of `--format json` for the same input."""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest

from ngx_enrich.cli import Env, main

try:
    from report_inputs import write_mixed
except ImportError:
    from tests.report_inputs import write_mixed

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = [ROOT / "examples" / "logs" / "error.log", ROOT / "examples" / "logs" / "access.log"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or (
    "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                "(Debian package chromium)")


def _report(fmt: str, *args: str) -> bytes:
    out, err = io.BytesIO(), io.StringIO()
    with open(os.devnull, "rb") as devnull:
        status = main(["report", "--format", fmt, *args], Env(stdin=devnull, stdout=out,
                                                              stderr=err))
    assert status == 0, err.getvalue()
    return out.getvalue()


def chromium(page: Path, profile: Path, *action: str) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--window-size=1200,2000", *action,
         page.as_uri()], capture_output=True, timeout=120, check=True)


class _Elements(HTMLParser):
    """Every element's tag and attributes, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))


def elements(dom: str) -> list[tuple[str, dict[str, str]]]:
    parser = _Elements()
    parser.feed(dom)
    return parser.elements


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the RGB(A) rows of an 8-bit PNG, unfiltered (no imaging library)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) \
                    & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, [bytes(r[i:i + 3]) for r in rows for i in range(0, stride, bpp)]


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("html")
    hostile = tmp / "hostile.log"
    hostile.write_text(
        '203.0.113.9 - - [29/Nov/2026:18:24:28 +0000] "GET /<script>alert(1)</script>'
        '<img/src=x/onerror=alert(2)> HTTP/1.1" 404 153 "-" "<b>bold</b>"\n')
    mixed = write_mixed(tmp / "mixed.log", 20_000)
    out = {}
    for name, files in (("examples", [*EXAMPLES, hostile]), ("mixed", [mixed])):
        args = [str(f) for f in files]
        page = tmp / f"{name}.html"
        page.write_bytes(_report("html", *args))
        report = orjson.loads(_report("json", *args))
        dom = chromium(page, tmp / f"profile-{name}", "--dump-dom").stdout.decode()
        out[name] = {"page": page, "report": report, "dom": dom, "tmp": tmp}
    return out


@pytest.mark.parametrize("name", ["examples", "mixed"])
def test_page_shows_the_json_figures(pages: dict[str, Any], name: str) -> None:
    report, dom = pages[name]["report"], pages[name]["dom"]
    found = elements(dom)
    assert ("html", {"lang": "en", "data-ready": "1"}) in found  # the script ran
    summary = next(a for t, a in found if a.get("id") == "summary")
    assert int(summary["data-records"]) == report["records"]
    for kind, n in report["kinds"].items():
        assert int(summary[f"data-{kind}"]) == n
    span = next(a for t, a in found if a.get("id") == "span")
    assert (span["data-first"], span["data-last"]) == (report["span"]["first"],
                                                       report["span"]["last"])
    areas = [(a["data-area"], int(a["data-count"])) for t, a in found
             if t == "article" and "data-area" in a]
    assert areas == [(a["area"], a["count"]) for a in report["areas"]]
    bars = [a for t, a in found if t == "g" and "bar" in a.get("class", "")]
    rows = {r["id"]: r for r in report["categories"]}
    top = rows[report["top_problems"][0]]
    assert (bars[0]["data-category"], int(bars[0]["data-count"])) == (top["category"],
                                                                      top["count"])
    assert len(bars) == len(report["top_problems"])
    table = [(a["data-category"], int(a["data-count"])) for t, a in found
             if t == "tr" and "data-category" in a]
    assert Counter(table) == Counter((r["category"], r["count"]) for r in report["categories"])


def test_page_is_self_contained_and_escapes_log_text(pages: dict[str, Any]) -> None:
    source = pages["examples"]["page"].read_text()
    assert len(re.findall(r"<script\b", source)) == 1
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|@import|url\(""", source)
    found = elements(pages["examples"]["dom"])
    assert [t for t, _ in found].count("script") == 1
    assert not any(t in ("img", "b") for t, _ in found)
    assert "/&lt;script&gt;alert(1)&lt;/script&gt;" in pages["examples"]["dom"]


def test_clicking_a_heading_sorts_the_table(pages: dict[str, Any]) -> None:
    tmp, report = pages["mixed"]["tmp"], pages["mixed"]["report"]
    clicks = {"asc": 1, "desc": 2}
    counts = sorted(r["count"] for r in report["categories"])
    assert counts != sorted(counts, reverse=True)
    for order, times in clicks.items():
        page = tmp / f"sorted-{order}.html"
        click = "document.querySelector('#categories th[data-key=count]').click();" * times
        page.write_text(pages["mixed"]["page"].read_text().replace(
            "</body>", f"<script>{click}</script></body>"))
        dom = chromium(page, tmp / f"profile-sort-{order}", "--dump-dom").stdout.decode()
        shown = [int(a["data-count"]) for t, a in elements(dom)
                 if t == "tr" and "data-category" in a]
        assert shown == (counts if order == "asc" else counts[::-1])
        heading = next(a for t, a in elements(dom) if a.get("data-key") == "count")
        assert heading["aria-sort"] == ("ascending" if order == "asc" else "descending")


def test_screenshot_is_not_blank(pages: dict[str, Any]) -> None:
    tmp = pages["examples"]["tmp"]
    shot = tmp / "examples.png"
    chromium(pages["examples"]["page"], tmp / "profile-shot", f"--screenshot={shot}")
    width, height, pixels = png_pixels(shot.read_bytes())
    assert (width, height) == (1200, 2000)
    colours = Counter(pixels)
    _, most = colours.most_common(1)[0]
    assert len(colours) > 50  # text, charts and chips, not a flat page
    assert most / len(pixels) < 0.9
    # the severity colours of the charts are on the page
    reds = sum(n for (r, g, b), n in colours.items() if r > 180 and g < 80 and b < 80)
    assert reds > 200
