"""CSV and JSONL export: Timesketch's rules, formula injection, Excel, round trips."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irkit.export.base import column_name, json_text
from irkit.export.csv import (
    EXCEL_CELL_MAX,
    CsvWriter,
    cut_for_excel,
    escape_controls,
    neutralise,
    restore,
    unescape_controls,
)
from irkit.store.case import Case

from .conftest import DIRTY, EVIDENCE, REPO, run_irkit

TIMESKETCH_MANDATORY = ("datetime", "timestamp_desc", "message")

#: What must never reach a terminal raw: C0 but tab and LF (a CR only before LF), DEL, C1.
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
CONTROL_TEXT = st.text(
    st.one_of(
        st.characters(exclude_categories=["Cs"]),
        st.sampled_from(["\\", "x", "{", "}", "1", "b", "'", "=", "\r", "\n", "\x1b", "\x9b"]),
    )
)


@pytest.fixture(scope="module")
def sample_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    case = tmp_path_factory.mktemp("export") / "case"
    result = run_irkit("parse", str(EVIDENCE), str(DIRTY), "--case", str(case), "-q")
    assert result.returncode == 3, result.stderr
    return case


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def assert_timesketch_ready(header: list[str], rows: list[list[str]]) -> None:
    """Timesketch's CSV rules: mandatory columns first, every datetime parseable with an offset."""
    assert tuple(header[:3]) == TIMESKETCH_MANDATORY
    assert header[3] == "timestamp"
    assert len(header) == len(set(header)), "duplicate column names"
    assert len(header) < 200, "bounded column count (Timesketch mapping limit)"
    for row in rows:
        assert len(row) == len(header)
        when = dt.datetime.fromisoformat(row[0])
        assert when.utcoffset() == dt.timedelta(0)
        assert row[0].endswith("+00:00") and "." in row[0] and len(row[0].split(".")[1]) == 12
        assert int(row[3]) == (when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(
            microseconds=1
        )
        assert row[1] and row[2]


def assert_no_formula(rows: list[list[str]]) -> None:
    for row in rows:
        for index, cell in enumerate(row):
            if index in (0, 3):
                continue
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (index, cell)


def test_csv_export_is_timesketch_ready_and_deterministic(
    sample_case: Path, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    for out in (first, second):
        result = run_irkit("timeline", str(sample_case), "--format", "csv", "-o", str(out))
        assert result.returncode == 0, result.stderr
    assert first.read_bytes() == second.read_bytes()
    header, rows = read_csv(first)
    assert len(rows) == 27 + 358 + 270 + 194
    assert_timesketch_ready(header, rows)
    assert_no_formula(rows)
    assert b"\r\n" in first.read_bytes()[:4096]
    ordered = [(r[0], r[6], r[9]) for r in rows]
    assert ordered == sorted(ordered, key=lambda x: x[0])


def test_filters(sample_case: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.csv"
    result = run_irkit(
        "timeline",
        str(sample_case),
        "--format",
        "csv",
        "-o",
        str(out),
        "--event-id",
        "4624",
        "--from",
        "2015-08-08T02:06:20",
        "--to",
        "2015-08-08T03:00:00Z",
    )
    assert result.returncode == 0, result.stderr
    header, rows = read_csv(out)
    assert rows
    for row in rows:
        assert row[header.index("event_id")] == "4624"
        assert "2015-08-08T02:06:20" <= row[0] <= "2015-08-08T03:00:00"
    result = run_irkit(
        "timeline",
        str(sample_case),
        "--format",
        "jsonl",
        "--search",
        "ping.EXE",
        "--where",
        "host = 'DESKTOP-2KGM189'",
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines and all("ping.exe" in json.dumps(x).lower() for x in lines)
    assert all(isinstance(x["timestamp"], int) for x in lines)


def test_bad_where_is_a_usage_error(sample_case: Path) -> None:
    result = run_irkit("timeline", str(sample_case), "--where", "nonsense_column = 1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "not valid SQL" in result.stderr
    result = run_irkit("timeline", str(sample_case), "--from", "yesterday")
    assert result.returncode == 2 and "ISO 8601" in result.stderr


def test_excel_mode_has_bom_and_cuts_long_cells() -> None:
    out = io.StringIO()
    long_cell = "A" * (EXCEL_CELL_MAX + 100)
    CsvWriter(excel=True).write_rows(
        ["datetime", "timestamp_desc", "message", "timestamp", "b"],
        [["2020-01-01T00:00:00.000000+00:00", "d", "m", "0", long_cell]],
        out,
    )
    text = out.getvalue()
    assert text.startswith("\ufeff")
    row = list(csv.reader(io.StringIO(text[1:])))[1]
    assert len(row[4]) <= EXCEL_CELL_MAX
    assert row[4].endswith("chars]") and "[irkit: cut" in row[4]
    assert cut_for_excel("short") == "short"


@pytest.mark.parametrize(
    "cell", ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\r\nx", "'=1", "''-"]
)
def test_formula_cells_are_neutralised(cell: str) -> None:
    assert neutralise(cell) == "'" + cell
    assert restore(neutralise(cell)) == cell
    assert neutralise("plain") == "plain"
    assert neutralise("'quoted") == "'quoted"


def test_a_lone_cr_is_escaped_not_prefixed() -> None:
    # A CR that ends no line moves a terminal's cursor back over the text: escaped, and
    # the cell then no longer begins with it.
    assert neutralise("\r=1") == "\\x{0d}=1"
    assert neutralise("a\r\nb") == "a\r\nb"


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("ls \x1b[2J\x07", "ls \\x{1b}[2J\\x{07}"),
        (
            "\x00\x08\x0b\x0c\x1f\x7f\x80\x9b\x9f",
            "".join(f"\\x{{{c:02x}}}" for c in (0, 8, 11, 12, 31, 127, 128, 155, 159)),
        ),
        ("tab\tand\nnewline\r\n", "tab\tand\nnewline\r\n"),
        (
            "C:\\Windows\\x64\\a.exe \\\\srv\\share \\xff \\x{",
            "C:\\Windows\\x64\\a.exe \\\\srv\\share \\xff \\x{",
        ),
        ("literal \\x{1b} and \\X{1B}", "literal \\x{5c}x{1b} and \\X{1B}"),
        ("\\\x1b", "\\\\x{1b}"),
        ("\u00a0\u202e\u2028", "\u00a0\u202e\u2028"),
    ],
)
def test_control_escape_is_exact_and_reversible(text: str, escaped: str) -> None:
    assert escape_controls(text) == escaped
    assert unescape_controls(escaped) == text


def test_field_column_names_never_clash() -> None:
    assert column_name("message") == "field_message"
    assert column_name("User") == "field_User"  # 'user' is ours, any case
    assert column_name("_id") == "field__id"
    assert column_name("Image") == "Image"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.text(), min_size=2, max_size=2), max_size=5))
def test_any_text_survives_csv(cells: list[list[str]]) -> None:
    rows = [["2020-01-01T00:00:00.000000+00:00", "desc", "msg", "0", *pair] for pair in cells]
    out = io.StringIO()
    CsvWriter().write_rows(
        ["datetime", "timestamp_desc", "message", "timestamp", "a", "b"],
        [list(r) for r in rows],
        out,
    )
    text = out.getvalue()
    assert not RAW_CONTROL.search(text.replace("\r\n", "\n"))
    back = list(csv.reader(io.StringIO(text, newline="")))[1:]
    assert len(back) == len(rows)
    for original, read in zip(rows, back, strict=True):
        for index, (want, got) in enumerate(zip(original, read, strict=True)):
            if index in (0, 3):
                assert got == want
            else:
                assert restore(got) == want
                assert got == neutralise(want)


@settings(max_examples=500, deadline=None)
@given(CONTROL_TEXT)
def test_neutralise_round_trips_any_text(text: str) -> None:
    cell = neutralise(text)
    assert restore(cell) == text
    assert not RAW_CONTROL.search(cell.replace("\r\n", "\n"))
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(CONTROL_TEXT, CONTROL_TEXT, max_size=4))
def test_json_text_has_no_raw_control(value: dict[str, str]) -> None:
    text = json_text(value, sort_keys=True)
    assert not RAW_CONTROL.search(text)
    assert "\n" not in text
    assert json.loads(text) == value


@settings(max_examples=200, deadline=None)
@given(CONTROL_TEXT)
def test_docs_restore_recipe_is_the_real_one(text: str) -> None:
    doc = (REPO / "docs" / "export.md").read_text()
    namespace: dict[str, object] = {}
    exec(doc.split("```python\n", 1)[1].split("```", 1)[0], namespace)
    recipe = namespace["restore"]
    assert callable(recipe)
    cell = neutralise(text)
    assert recipe(cell) == restore(cell) == text


def write_controlled_evidence(folder: Path) -> dict[str, str]:
    """An osquery results line and a bodyfile line whose text holds ESC, BEL, C1 and the
    rest; returns the osquery columns as the case must keep them."""
    folder.mkdir()
    columns = {
        "cmdline": "sh -c 'printf \x1b]0;owned\x07\x1b[2J' \\x{1b} C:\\x64\\a\r\nnext\rover",
        "path": "/bin/sh\x9b31m",
        "parent": '=HYPERLINK("http://x")',
        "pid": "42",
        "e\x1bvil": "x",
    }
    line = {
        "name": "process_events",
        "hostIdentifier": "web01\x1b[8m",
        "unixTime": "1714550400",
        "columns": columns,
        "action": "added",
    }
    (folder / "osquery.log").write_text(json.dumps(line) + "\n")
    (folder / "files.body").write_bytes(
        b"0|/tmp/evil\x1b[31mred\x07|131|r/rrw-r--r--|0|0|10|1714550400|1714550400|1714550400|0\n"
    )
    return columns


def test_control_characters_are_escaped_in_every_export(tmp_path: Path) -> None:
    columns = write_controlled_evidence(tmp_path / "evidence")
    case = tmp_path / "case"
    parsed = run_irkit("parse", str(tmp_path / "evidence"), "--case", str(case), "-q")
    assert parsed.returncode == 0, parsed.stderr
    # The case keeps the original text.
    with Case(case, read_only=True) as store:
        kept = store.db.execute(
            "SELECT fields->>'cmdline', host FROM events WHERE source = 'osquery'"
        ).fetchall()
        path = store.db.execute(
            "SELECT DISTINCT fields->>'path' FROM events WHERE source = 'bodyfile'"
        ).fetchall()
    assert kept == [(columns["cmdline"], "web01\x1b[8m")]
    assert path == [("/tmp/evil\x1b[31mred\x07",)]

    outputs = {}
    for fmt in ("csv", "jsonl", "bodyfile", "table"):
        result = subprocess_bytes(case, fmt)
        text = result.decode("utf-8")
        assert not RAW_CONTROL.search(text.replace("\r\n", "\n")), fmt
        outputs[fmt] = text

    # CSV: every cell restores to the case's text; formulas still neutralised.
    header, *rows = list(csv.reader(io.StringIO(outputs["csv"], newline="")))
    osquery_row = next(dict(zip(header, r, strict=True)) for r in rows if r[4] == "osquery")
    assert osquery_row["cmdline"] == (
        "sh -c 'printf \\x{1b}]0;owned\\x{07}\\x{1b}[2J' \\x{5c}x{1b} C:\\x64\\a\r\nnext\\x{0d}over"
    )
    assert osquery_row["parent"] == '\'=HYPERLINK("http://x")'
    assert "e\\x{1b}vil" in header
    for name, value in columns.items():
        assert restore(osquery_row[neutralise(name)]) == value, name
    assert restore(osquery_row["host"]) == "web01\x1b[8m"
    file_row = next(dict(zip(header, r, strict=True)) for r in rows if r[4] == "bodyfile")
    assert restore(file_row["path"]) == "/tmp/evil\x1b[31mred\x07"

    # JSONL: JSON's escapes, C1 included; parsing gives the case's text back.
    events = [json.loads(line) for line in outputs["jsonl"].splitlines()]
    event = next(e for e in events if e["source"] == "osquery")
    assert {k: event[k] for k in columns} == columns
    assert "\\u009b" in outputs["jsonl"] and "\\u001b" in outputs["jsonl"]

    # bodyfile: its own escapes (irkit, plaso and mactime read them).
    assert "/tmp/evil\\x1b[31mred\\x07|" in outputs["bodyfile"]
    # table: escaped for the terminal.
    assert "web01\\x1b" in outputs["table"]


def subprocess_bytes(case: Path, fmt: str) -> bytes:
    """The raw bytes irkit writes on stdout (no newline translation)."""
    import os
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "irkit", "timeline", str(case), "-f", fmt],
        capture_output=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout
