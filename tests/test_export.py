"""CSV and JSONL export: Timesketch's rules, formula injection, Excel, round trips."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irkit.export.base import column_name
from irkit.export.csv import EXCEL_CELL_MAX, FORMULA_START, CsvWriter, cut_for_excel, neutralise

from .conftest import DIRTY, EVIDENCE, run_irkit

TIMESKETCH_MANDATORY = ("datetime", "timestamp_desc", "message")


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


@pytest.mark.parametrize("cell", ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_formula_cells_are_neutralised(cell: str) -> None:
    assert neutralise(cell) == "'" + cell
    assert neutralise("plain") == "plain"


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
    back = list(csv.reader(io.StringIO(out.getvalue(), newline="")))[1:]
    assert len(back) == len(rows)
    for original, read in zip(rows, back, strict=True):
        for index, (want, got) in enumerate(zip(original, read, strict=True)):
            if index not in (0, 3) and want.startswith(FORMULA_START):
                assert got == "'" + want
            else:
                assert got == want
