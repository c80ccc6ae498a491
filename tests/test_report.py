"""`ngx-enrich report`: its counts are the filter's counts, in every format and window."""

from __future__ import annotations

import io
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
import unicodedata
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngx_enrich import catalog
from ngx_enrich.cli import Env, main
from ngx_enrich.report import command, parallel
from ngx_enrich.report.collect import Collector
from ngx_enrich.report.histogram import Histogram
from ngx_enrich.report.timeline import SHOWN, Clock
from ngx_enrich.report.topn import TopCounter

try:
    from report_inputs import write_mixed
except ImportError:
    from tests.report_inputs import write_mixed

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = [ROOT / "examples" / "logs" / "error.log", ROOT / "examples" / "logs" / "access.log"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _run(args: list[str], stdin: bytes | None = None) -> tuple[int, bytes, str]:
    out, err = io.BytesIO(), io.StringIO()
    if stdin is None:
        with open(os.devnull, "rb") as devnull:
            status = main(args, Env(stdin=devnull, stdout=out, stderr=err))
    else:
        read, write = os.pipe()
        os.write(write, stdin)  # small inputs only: fits the pipe buffer
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            status = main(args, Env(stdin=pipe, stdout=out, stderr=err))
    return status, out.getvalue(), err.getvalue()


def filtered(*args: str) -> list[dict[str, Any]]:
    """The `ngx` objects the filter writes for ARGS."""
    status, out, err = _run(list(args))
    assert status == 0, err
    return [orjson.loads(line)["ngx"] for line in out.splitlines()]


def reported(*args: str) -> dict[str, Any]:
    """`report --format json ARGS`, decoded."""
    status, out, err = _run(["report", "--format", "json", *args])
    assert status == 0, err
    return orjson.loads(out)


def expected_counts(records: list[dict[str, Any]]) -> dict[str, Counter[Any]]:
    return {
        "kinds": Counter(r["kind"] for r in records),
        "categories": Counter(r["category"] for r in records if "category" in r),
        "areas": Counter(r["area"] for r in records if "category" in r),
        "pairs": Counter((r["area"], r["category"]) for r in records if "category" in r),
        "reasons": Counter(r["parse_error"] for r in records if r["kind"] == "other"),
    }


def reported_counts(report: dict[str, Any]) -> dict[str, Counter[Any]]:
    categories: Counter[str] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    for row in report["categories"]:
        categories[row["category"]] += row["count"]
        pairs[row["area"], row["category"]] += row["count"]
    return {
        "kinds": Counter({k: n for k, n in report["kinds"].items() if n}),
        "categories": categories,
        "areas": Counter({a["area"]: a["count"] for a in report["areas"]}),
        "pairs": pairs,
        "reasons": Counter({r["value"]: r["count"] for r in report["other"]["reasons"]}),
    }


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mixed(tmp_path_factory.mktemp("report") / "mixed.log", 100_000)


@pytest.fixture(scope="module")
def mixed_filtered(mixed: Path) -> list[dict[str, Any]]:
    return filtered(str(mixed))


@pytest.fixture(scope="module")
def mixed_report(mixed: Path) -> dict[str, Any]:
    return reported("--top", "1000", str(mixed))


# counts equal the filter's


@pytest.mark.parametrize("files", [EXAMPLES[:1], EXAMPLES[1:], EXAMPLES],
                         ids=["error", "access", "both"])
def test_example_logs_count_as_the_filter_does(files: list[Path]) -> None:
    names = [str(f) for f in files]
    records = filtered(*names)
    report = reported("--top", "100", *names)
    assert reported_counts(report) == expected_counts(records)
    assert report["records"] == len(records)
    timed = sorted((r["time"] for r in records if "time" in r), key=epoch)
    assert (report["span"]["first"], report["span"]["last"]) == (timed[0], timed[-1])


def test_generated_mixed_log_counts_as_the_filter_does(
        mixed_filtered: list[dict[str, Any]], mixed_report: dict[str, Any]) -> None:
    expected = expected_counts(mixed_filtered)
    assert reported_counts(mixed_report) == expected
    assert set(expected["kinds"]) == {"error", "access", "other"}
    assert len(expected["reasons"]) >= 2  # garbage and empty lines at least
    assert mixed_report["records"] == len(mixed_filtered)
    assert mixed_report["uncategorised"] == sum(
        1 for r in mixed_filtered if r["kind"] != "other" and "category" not in r)
    # the multiline FastCGI records are one record each, as in the filter
    assert sum(1 for r in mixed_filtered if "Stack trace" in r.get("message", "")) == 34


def test_timelines_put_every_record_in_its_own_bucket(
        mixed_filtered: list[dict[str, Any]], mixed_report: dict[str, Any]) -> None:
    frame = mixed_report["timeline"]
    assert 1 <= frame["buckets"] <= SHOWN
    start, width = epoch(frame["start"]), frame["bucket_seconds"]
    by_area: dict[str, list[int]] = {}
    for r in mixed_filtered:
        if "category" in r and "time" in r:
            series = by_area.setdefault(r["area"], [0] * frame["buckets"])
            series[int((epoch(r["time"]) - start) // width)] += 1
    assert {a["area"]: a["timeline"] for a in mixed_report["areas"]} == by_area
    span = mixed_report["span"]
    assert start <= epoch(span["first"]) and epoch(span["last"]) < start + width * frame[
        "buckets"]
    for row in mixed_report["categories"]:
        timed = [r for r in mixed_filtered if r.get("category") == row["category"]
                 and r.get("area") == row["area"] and "time" in r]
        assert sum(row["timeline"]) == len(timed)
        assert row["first_seen"] == min((r["time"] for r in timed), key=epoch)
        assert row["last_seen"] == max((r["time"] for r in timed), key=epoch)


def _uri(ngx: dict[str, Any]) -> str | None:
    target = ngx.get("path") or (ngx.get("request") or "").partition(" ")[2].partition(" ")[0]
    return target.partition("?")[0] or None


def test_top_lists_are_bounded_and_honest(mixed_filtered: list[dict[str, Any]],
                                          mixed_report: dict[str, Any]) -> None:
    truth: dict[tuple[str, str, str], Counter[str]] = {}
    for r in mixed_filtered:
        if "category" not in r:
            continue
        key = (r["area"], r["category"])
        values = {"server": r.get("server") or r.get("vhost"), "host": r.get("host"),
                  "client": r.get("client") or r.get("remote_addr"), "uri": _uri(r)}
        for dimension, value in values.items():
            if value:
                truth.setdefault((*key, dimension), Counter())[value] += 1
    estimated = 0
    for row in mixed_report["categories"]:
        for dimension in ("server", "host", "client", "uri"):
            real = truth.get((row["area"], row["category"], dimension), Counter())
            listed = row["top"].get(dimension, [])
            assert [i["count"] for i in listed] == sorted((i["count"] for i in listed),
                                                          reverse=True)
            for item in listed:
                true = real[item["value"]]
                assert item["count"] - item["error"] <= true <= item["count"]
                estimated += bool(item["error"])
                if not item["error"]:
                    assert item["count"] == true
            if listed and not any(i["error"] for i in listed) and len(real) <= 1000:
                # never pruned: the list is the true top
                top = sorted(real.values(), reverse=True)[:len(listed)]
                assert [i["count"] for i in listed] == top
    assert estimated, "100,000 lines have more clients and URIs than are counted exactly"
    assert mixed_report["estimated"] is True


def test_access_figures_match_the_records(mixed_filtered: list[dict[str, Any]],
                                          mixed_report: dict[str, Any]) -> None:
    access = [r for r in mixed_filtered if r["kind"] == "access"]
    classes = Counter(f"{r['status'] // 100}xx" for r in access if "status" in r)
    shown = {c["class"]: c["count"] for c in mixed_report["access"]["status_classes"]}
    assert shown == classes
    for key, low, high in (("top_4xx_paths", 400, 499), ("top_5xx_paths", 500, 599)):
        truth = Counter(r["path"].partition("?")[0] for r in access
                        if low <= r.get("status", 0) <= high)
        listed = mixed_report["access"][key]
        assert listed and all(item["count"] - item["error"] <= truth[item["value"]]
                              <= item["count"] for item in listed)
    # the combined format has no upstream times
    assert mixed_report["access"]["upstream_response_time"] is None


def test_upstream_statuses_and_times_from_a_format_that_has_them() -> None:
    fmt = '$remote_addr [$time_local] "$request" $status rt=$request_time us="$upstream_status" ' \
          'ut="$upstream_response_time"'
    times = [0.004, 0.010, 0.012, 0.250, 1.900, 0.020, 0.030, 0.005, 0.007, 0.090]
    lines = [f'203.0.113.9 [29/Nov/2026:18:33:{i:02d} +0000] "GET /api/{i}?q=1 HTTP/1.1" '
             f'{502 if i % 3 else 200} rt={t + 0.001:.3f} us="{502 if i % 3 else 200}" '
             f'ut="{t:.3f}"' for i, t in enumerate(times)]
    status, out, err = _run(["report", "--format", "json", "--log-format", fmt],
                            stdin=("\n".join(lines) + "\n").encode())
    assert status == 0, err
    access = orjson.loads(out)["access"]
    assert {i["value"]: i["count"] for i in access["upstream_statuses"]} == {"502": 6, "200": 4}
    upstream = access["upstream_response_time"]
    ordered = sorted(times)
    assert upstream["count"] == len(times)
    assert upstream["mean"] == pytest.approx(sum(times) / len(times), abs=0.001)
    assert upstream["max"] == pytest.approx(max(times))
    assert ordered[4] <= upstream["p50"] <= ordered[4] * 1.13
    assert ordered[9] * 0.99 <= upstream["p95"] <= max(times)
    assert access["request_time"]["count"] == len(times)
    assert access["top_5xx_paths"][0]["value"].startswith("/api/")


def test_stdin_and_dash_read_like_a_file() -> None:
    data = EXAMPLES[0].read_bytes()
    from_file = reported(str(EXAMPLES[0]))
    for args in ([], ["-"]):
        status, out, err = _run(["report", "--format", "json", *args], stdin=data)
        assert status == 0, err
        from_stdin = orjson.loads(out)
        assert from_stdin["inputs"] == ["-"]
        assert {k: v for k, v in from_stdin.items() if k != "inputs"} == {
            k: v for k, v in from_file.items() if k != "inputs"}


def test_no_multiline_counts_as_the_filter_does(mixed: Path) -> None:
    joined = reported("--top", "100", str(mixed))["records"]
    split = reported("--top", "100", "--no-multiline", str(mixed))
    assert split["records"] > joined
    assert reported_counts(split) == expected_counts(filtered("--no-multiline", str(mixed)))


def _without_top_lists(report: dict[str, Any]) -> dict[str, Any]:
    """The report less what bounded summaries only estimate (top lists, estimate flag) and
    the example explanations of rows without a general text."""
    out = {k: v for k, v in report.items() if k not in ("estimated", "other", "access")}
    out["categories"] = [{k: v for k, v in row.items() if k not in ("top", "explanation")}
                         for row in report["categories"]]
    out["access"] = {k: v for k, v in report["access"].items() if not k.startswith("top_")
                     and k != "upstream_statuses"}
    out["other"] = report["other"]["count"]
    return out


def test_worker_processes_count_what_one_process_counts(
        mixed: Path, mixed_report: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    used: list[int] = []
    count_file = parallel.count_file

    def spy(fd: int, jobs: int, *args: Any) -> Any:
        used.append(jobs)
        return count_file(fd, jobs, *args)

    monkeypatch.setattr(parallel, "count_file", spy)
    one = reported("--top", "1000", "--jobs", "1", str(mixed))
    assert used == []
    three = reported("--top", "1000", "--jobs", "3", str(mixed))
    assert used == [3]
    assert _without_top_lists(one) == _without_top_lists(three)
    assert reported_counts(three) == reported_counts(one) == reported_counts(mixed_report)
    truth = {row["id"]: row for row in one["categories"]}
    for row in three["categories"]:
        for dimension, items in row["top"].items():
            exact = {i["value"]: i["count"] for i in truth[row["id"]]["top"][dimension]
                     if not i["error"]}
            for item in items:  # the merged estimate still bounds the true count
                if item["value"] in exact:
                    assert item["count"] - item["error"] <= exact[item["value"]] \
                        <= item["count"]


def test_blocks_are_dealt_in_turn_whatever_each_worker_reads(tmp_path: Path) -> None:
    # one reader is slow: dealing by the least unread input would hand it fewer blocks, and
    # the split (so the merged estimates) would change from run to run
    lines = [f"2026/11/29 18:24:{i % 60:02d} [error] 1#1: *{i} line {i:07d}"
             for i in range(60_000)]
    data = ("\n".join(lines) + "\n").encode()
    source = tmp_path / "blocks.log"
    source.write_bytes(data * 4)
    got: list[bytes] = [b"", b""]
    pipes = [os.pipe(), os.pipe()]

    def read(index: int, pause: float) -> None:
        chunks = []
        while chunk := os.read(pipes[index][0], 1 << 16):
            chunks.append(chunk)
            time.sleep(pause)
        got[index] = b"".join(chunks)

    readers = [threading.Thread(target=read, args=(0, 0.002)),
               threading.Thread(target=read, args=(1, 0.0))]
    for reader in readers:
        reader.start()
    with source.open("rb") as f:
        parallel._deal(f.fileno(), [pipes[0][1], pipes[1][1]],
                       lambda line: line.startswith("2026/"))
    for _, out in pipes:
        os.close(out)
    for reader in readers:
        reader.join()
    with source.open("rb") as f:
        blocks = list(parallel._blocks(f.fileno(), lambda line: line.startswith("2026/")))
    assert len(blocks) > 4
    assert got == [b"".join(blocks[0::2]), b"".join(blocks[1::2])]


def test_a_failed_worker_is_one_line_and_status_1(mixed: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Any, records: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(Collector, "add", broken)  # in the forked workers too
    status, out, err = _run(["report", "--jobs", "2", str(mixed)])
    assert (status, out) == (1, b"")
    assert err.count("\n") == 1 and "worker" in err and "Traceback" not in err


# window and top


def test_since_until_keep_the_records_of_the_window(
        mixed: Path, mixed_filtered: list[dict[str, Any]], mixed_report: dict[str, Any]) -> None:
    first = epoch(mixed_report["span"]["first"])
    since = datetime.fromtimestamp(first + 600).astimezone()
    until = datetime.fromtimestamp(first + 1200).astimezone()
    report = reported("--top", "1000", "--since", since.isoformat(),
                      "--until", until.strftime("%Y-%m-%d %H:%M:%S"), str(mixed))
    inside = [r for r in mixed_filtered
              if "time" in r and since.timestamp() <= epoch(r["time"]) < until.timestamp()]
    assert 0 < len(inside) < len(mixed_filtered) // 2
    assert reported_counts(report) == expected_counts(inside)
    window = report["window"]
    assert window["without_time"] == sum(1 for r in mixed_filtered if "time" not in r) > 0
    assert report["records"] + window["outside"] + window["without_time"] == len(mixed_filtered)
    assert since.timestamp() <= epoch(report["span"]["first"])
    assert epoch(report["span"]["last"]) < until.timestamp()
    assert not report["kinds"]["other"]  # no time of their own: left out of a window


def test_since_alone_and_minute_form() -> None:
    records = filtered(str(EXAMPLES[0]))
    report = reported("--since", "2026-11-29 18:24", str(EXAMPLES[0]))
    assert report["records"] == len(records)  # the whole log is after 18:24
    later = reported("--since", "2026-11-29T18:24:27+00:00", str(EXAMPLES[0]))
    assert later["records"] == sum(1 for r in records if r["time"] >= "2026-11-29T18:24:27")
    assert 0 < later["records"] < len(records)
    assert later["window"]["outside"] == len(records) - later["records"]


def test_top_limits_every_list(mixed: Path, mixed_report: dict[str, Any]) -> None:
    report = reported("--top", "2", str(mixed))
    assert len(report["top_problems"]) == 2
    assert report["top_problems"] == mixed_report["top_problems"][:2]
    lists = [items for row in report["categories"] for items in row["top"].values()]
    lists += [report["access"][k] for k in ("top_4xx_paths", "top_5xx_paths",
                                            "upstream_statuses")]
    lists.append(report["other"]["reasons"])
    assert lists and all(len(items) <= 2 for items in lists)
    assert any(len(items) == 2 for items in lists)
    full = {row["id"]: row for row in mixed_report["categories"]}
    for row in report["categories"]:
        for dimension, items in row["top"].items():
            assert items == full[row["id"]]["top"][dimension][:2]


def test_top_problems_put_the_most_severe_first(mixed_report: dict[str, Any]) -> None:
    rows = {row["id"]: row for row in mixed_report["categories"]}
    order = [tuple(-rows[i]["severities"].get(s, 0) for s in catalog.SEVERITIES)
             for i in mixed_report["top_problems"]]
    assert order == sorted(order)
    assert all(rows[i]["problem"] for i in mixed_report["top_problems"])
    assert not rows["other/success"]["problem"]  # 2xx access records are not problems


# languages and formats


def test_lang_zh_uses_the_catalogue(mixed_report: dict[str, Any]) -> None:
    report = reported("--lang", "zh", "--top", "100", *map(str, EXAMPLES))
    rules = {r.id: r for r in catalog.builtin().rules}
    statuses = {f"status_{s.code}": s for s in catalog.builtin().statuses.values()}
    checked = 0
    for row in report["categories"]:
        source = rules.get(row["rule"]) or statuses.get(row["rule"])
        static = source.text["zh"].static if source is not None else None
        if static is not None:
            assert row["explanation"] == static
            checked += 1
    assert checked >= 5
    words = catalog.report_words("zh")
    text = command.render(report, "text")
    for key in ("title", "areas", "categories", "details", "access"):
        assert words[key] in text
    assert catalog.report_words("en")["title"] not in text


def columns(line: str) -> int:
    """Terminal columns, counted independently of the renderer's own helper."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


@pytest.mark.parametrize("lang", catalog.LANGS)
def test_text_fits_80_columns(lang: str, mixed_report: dict[str, Any]) -> None:
    report = dict(mixed_report, lang=lang)
    small = reported("--lang", lang, *map(str, EXAMPLES))
    for data in (report, small):
        text = command.render(data, "text")
        assert "\x1b[" not in text
        widest = max(text.splitlines(), key=columns)
        assert columns(widest) <= 80, widest
        assert len(text.splitlines()) > 30


def test_markdown_has_tables(mixed_report: dict[str, Any]) -> None:
    text = command.render(mixed_report, "markdown")
    lines = text.splitlines()
    heads = [i for i, line in enumerate(lines) if re.fullmatch(r"\|(-{3}:?\|)+", lines[i + 1]
                                                               if i + 1 < len(lines) else "")]
    assert len(heads) >= 5
    for i in heads:  # every row of a table has the header's number of cells
        cells = lines[i].count(" | ") + 1
        rows = [line for line in lines[i + 2:] if line.startswith("|")]
        end = next((n for n, line in enumerate(lines[i + 2:]) if not line.startswith("|")),
                   len(rows))
        for row in lines[i + 2:i + 2 + end]:
            assert len(re.split(r"(?<!\\)\|", row)) - 2 == cells, row
    categories = next(i for i in heads if "category" in lines[i] and "first seen" in lines[i])
    count = next(n for n, line in enumerate(lines[categories + 2:]) if not line.startswith("|"))
    assert count == len(mixed_report["categories"])
    assert lines[0] == f"# {catalog.report_words('en')['title']}"


def test_every_format_renders_an_empty_log() -> None:
    for fmt in command.FORMATS:
        status, out, err = _run(["report", "--format", fmt], stdin=b"")
        assert status == 0, err
        assert out
    status, out, _ = _run(["report", "--format", "json"], stdin=b"")
    empty = orjson.loads(out)
    assert (empty["records"], empty["span"], empty["categories"]) == (0, None, [])


def _on_pty(args: list[str], env: dict[str, str]) -> bytes:
    """Run the CLI with stdout on a pseudo-terminal; what it printed there."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "ngx_enrich", *args], stdout=slave,
                            stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks)


def test_colour_on_a_terminal_unless_no_color() -> None:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    args = ["report", str(EXAMPLES[0])]
    coloured = _on_pty(args, env).decode()
    assert ANSI.search(coloured)
    plain = _on_pty(args, {**env, "NO_COLOR": "1"}).decode()
    assert "\x1b" not in plain
    assert ANSI.sub("", coloured) == plain
    assert "\x1b" not in subprocess.run([sys.executable, "-m", "ngx_enrich", *args], cwd=ROOT,
                                        capture_output=True, env=env, check=True).stdout.decode()


# exit statuses


def test_unusable_input_is_one_line_and_the_filters_status(tmp_path: Path) -> None:
    # cannot be opened: a bad file argument (2), as in the filter; cannot be read: 1
    for path, why, code in ((tmp_path / "missing.log", "No such file", 2),
                            (tmp_path, "directory", 1)):
        status, out, err = _run(["report", str(EXAMPLES[0]), str(path)])
        assert status == code
        assert out == b""
        assert err.count("\n") == 1 and str(path) in err and why in err, err
        filter_status, _, _ = _run([str(path)])
        assert filter_status == code


@pytest.mark.parametrize("args", [["--format", "pdf"], ["--since", "yesterday"],
                                  ["--top", "0"], ["--lang", "fr"],
                                  ["--since", "2026-11-29", "--until", "2026-11-28"],
                                  ["--nginx-conf", "/nonexistent.conf"]])
def test_bad_flags_are_status_2(args: list[str]) -> None:
    status, out, err = _run(["report", *args, str(EXAMPLES[0])])
    assert status == 2
    assert out == b"" and err.startswith("ngx-enrich: error: ") and err.count("\n") == 1


def test_ctrl_c_exits_130_without_traceback() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "ngx_enrich", "report"], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        proc.stdin.write(EXAMPLES[0].read_bytes())
        proc.stdin.flush()
        time.sleep(2)  # started and waiting for more input
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130
    assert b"Traceback" not in err and out == b""


# the bounded building blocks


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=3000), st.integers(4, 40))
def test_top_counter_never_undercounts_and_stays_bounded(values: list[int], cap: int) -> None:
    counter = TopCounter(cap)
    for v in values:
        counter.add(str(v))
        assert len(counter) <= cap
    truth = Counter(str(v) for v in values)
    for value, count, error in counter.top(cap):
        assert count - error <= truth[value] <= count
    heavy = [v for v, n in truth.items() if n > len(values) / (cap * 3 // 4 - 1)]
    assert set(heavy) <= set(counter)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1.7e9, 1.8e9), min_size=1, max_size=500))
def test_clock_keeps_every_count_in_its_bucket(times: list[float]) -> None:
    clock = Clock(slots=16)
    series = clock.series()
    for t in times:
        series[clock.slot(t)] += 1
    frame = clock.frame(shown=6)
    assert frame is not None and 1 <= frame.buckets <= 6
    shown = frame.view(series)
    assert sum(shown) == len(times)
    expected = [0] * frame.buckets
    for t in times:
        expected[int((t - frame.start) // frame.width)] += 1
    assert shown == expected
    assert frame.start <= min(times) and max(times) < frame.start + frame.width * frame.buckets


def test_histogram_percentiles_are_close() -> None:
    import random

    rnd = random.Random(3)
    values = [rnd.lognormvariate(-3, 1.2) for _ in range(20_000)]
    hist = Histogram()
    for v in values:
        hist.add(v)
    ordered = sorted(values)
    for q in (0.5, 0.95):
        exact = ordered[int(q * len(values)) - 1]
        assert exact <= hist.quantile(q) <= exact * 1.13
    assert len(hist.buckets) < 200  # fixed, whatever the input


def test_report_words_have_every_key_in_every_language(tmp_path: Path) -> None:
    words = catalog.read_report_words()
    assert set(words) == set(catalog.LANGS)
    assert set(words["en"]) == set(words["zh"])
    text = (catalog.HERE / "report.toml").read_text().replace('title = "Nginx 日志报告"\n', "")
    bad = tmp_path / "report.toml"
    bad.write_text(text)
    with pytest.raises(catalog.CatalogError) as failed:
        catalog.read_report_words(bad)
    assert failed.value.problems == ["report.toml: [zh] title: missing or empty"]
