"""l2tcsv export: plaso's 17 columns, valid dates, MACB as plaso maps it, the CSV export's
formula and control-character safety, one line per event, deterministic bytes.

The case is real: ``irkit parse`` of the bundled EVTX, the bundled bodyfile, an osquery
results line carrying formulas and control characters, and two text logs plaso's own
parsers read (so the plaso rows' source mapping is plaso's)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from irkit.export.csv import restore
from irkit.export.l2tcsv import HEADER, PLACEHOLDER, l2t_row, macb, plaso_sources
from irkit.store.case import Case
from irkit.store.timeline import ORDER, Selection, TimelineFilter

from .conftest import DATA, EVIDENCE, run_irkit

L2T_HEADER = (
    "date,time,timezone,MACB,source,sourcetype,type,user,host,short,desc,version,filename,"
    "inode,notes,format,extra"
)
#: What must never reach a terminal raw; in l2tcsv no line break either (one event a line).
RAW_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
FILE_MACB = {
    "File Modified": "M...",
    "File Accessed": ".A..",
    "File Changed": "..C.",
    "File Created": "...B",
}
OSQUERY_COLUMNS = {
    "cmdline": "sh -c 'printf \x1b]0;owned\x07' \\x{1b} C:\\x64\\a\r\nnext\rover",
    "username": "=cmd|' /C calc'!A0",
    "path": "/bin/sh\x9b31m",
}
OSQUERY_HOST = '@SUM(1+1)*cmd|"/C calc"!A0'


def write_evidence(folder: Path) -> None:
    """The non-EVTX evidence: a bodyfile, an osquery line, a dpkg and an Apache log."""
    folder.mkdir()
    shutil.copy(DATA / "bodyfile" / "sample.body", folder / "sample.body")
    line = {
        "name": "process_events",
        "hostIdentifier": OSQUERY_HOST,
        "unixTime": "1714550400",
        "columns": OSQUERY_COLUMNS,
        "action": "added",
    }
    (folder / "osquery.log").write_text(json.dumps(line) + "\n", encoding="utf-8")
    (folder / "dpkg.log").write_text(
        "2016-08-03 15:25:53 install base-passwd:amd64 <none> 3.5.33\n"
        "2016-08-06 17:35:39 status installed linux-image-4.4.0-34-generic:amd64 4.4.0-34\n",
        encoding="utf-8",
    )
    (folder / "access.log").write_text(
        '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326\n',
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("l2tcsv")
    write_evidence(root / "more")
    case = root / "case"
    result = run_irkit("parse", str(EVIDENCE), str(root / "more"), "--case", str(case), "-q")
    assert result.returncode == 0, result.stderr
    return case


def export(case: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """``irkit timeline CASE -f l2tcsv ARGS``: raw bytes, no newline translation."""
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("IRKIT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "irkit", "timeline", str(case), "-f", "l2tcsv", *args],
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def written(case: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("l2tcsv-out") / "timeline.l2tcsv"
    result = export(case, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    return out.read_bytes()


@pytest.fixture(scope="module")
def rows(written: bytes) -> list[dict[str, str]]:
    table = list(csv.reader(io.StringIO(written.decode("utf-8"), newline="")))
    assert table[0] == list(HEADER)
    return [dict(zip(HEADER, row, strict=True)) for row in table[1:]]


def test_every_row_has_the_17_columns_and_a_valid_utc_date(written: bytes) -> None:
    text = written.decode("utf-8")
    assert text.startswith(L2T_HEADER + "\r\n")
    table = list(csv.reader(io.StringIO(text, newline="")))
    assert len(table) > 50
    for row in table:
        assert len(row) == 17, row
    # One event a line: no cell holds a line break, every line ends CRLF.
    assert text.count("\r\n") == len(table) and text.count("\n") == len(table)
    for row in table[1:]:
        when = dt.datetime.strptime(f"{row[0]} {row[1]}", "%m/%d/%Y %H:%M:%S")
        assert re.fullmatch(r"\d\d/\d\d/\d{4}", row[0]) and re.fullmatch(r"\d\d:\d\d:\d\d", row[1])
        assert when.year > 1970, row  # no placeholder in this case: every event has a time
        assert row[2] == "UTC" and row[11] == "2" and row[14] == "-"
        assert re.fullmatch(r"[M.][A.][C.][B.]", row[3])
        assert all(row), row  # an empty value is "-", as in plaso's output


def test_dates_are_the_cases_times_in_utc(case: Path, rows: list[dict[str, str]]) -> None:
    with Case(case, read_only=True) as store:
        times = store.db.execute(
            f"SELECT strftime(ts, '%m/%d/%Y %H:%M:%S') FROM timeline ORDER BY {ORDER}"
        ).fetchall()
    assert [f"{r['date']} {r['time']}" for r in rows] == [t for (t,) in times]


def test_macb_of_file_events(rows: list[dict[str, str]]) -> None:
    files = [r for r in rows if r["format"] == "bodyfile/bodyfile"]
    assert {r["type"] for r in files} == set(FILE_MACB)
    for row in files:
        assert row["MACB"] == FILE_MACB[row["type"]], row
        assert (row["source"], row["sourcetype"]) == ("FILE", "Bodyfile")
        assert row["filename"].endswith("sample.body")
    # /etc/empty.conf: mtime and ctime 1714550500, atime 1714560100, no crtime.
    conf = [r for r in files if r["inode"] == "131090"]
    assert sorted((r["MACB"], r["date"], r["time"]) for r in conf) == [
        ("..C.", "05/01/2024", "08:01:40"),
        (".A..", "05/01/2024", "10:41:40"),
        ("M...", "05/01/2024", "08:01:40"),
    ]
    assert all("path: /etc/empty.conf" in r["extra"] for r in conf)
    assert all("inode:" not in r["extra"] for r in conf)
    # Other events' descriptions set no letter.
    assert {r["MACB"] for r in rows if r["source"] == "EVT"} == {"...."}


def test_macb_is_plasos_mapping() -> None:
    """Every timestamp description plaso defines gives what plaso's output mediator gives."""
    from plaso.lib import definitions
    from plaso.output import mediator

    plaso = mediator.OutputMediator(None)
    descriptions = {
        value
        for name, value in vars(definitions).items()
        if name.startswith("TIME_DESCRIPTION_") and isinstance(value, str)
    }
    assert len(descriptions) > 30
    for desc in sorted(descriptions):
        expected = plaso.GetMACBRepresentation(
            SimpleNamespace(timestamp_desc=desc), SimpleNamespace(data_type="x:y")
        )
        assert macb(desc) == expected, desc
    assert macb("Event Logged") == macb("") == "...."


def test_plaso_rows_take_plasos_source_mapping(rows: list[dict[str, str]]) -> None:
    from plaso.formatters import yaml_formatters_file

    folder = Path(yaml_formatters_file.__file__).parents[1] / "data" / "formatters"
    reader = yaml_formatters_file.YAMLFormattersFile()
    theirs = {
        f.data_type.lower(): f.source_mapping
        for path in sorted(folder.glob("*.yaml"))
        for f in reader.ReadFromFile(str(path))
    }
    assert plaso_sources() == theirs

    dpkg = [r for r in rows if r["format"] == "text/dpkg"]
    assert len(dpkg) == 2
    for row in dpkg:
        assert (row["source"], row["sourcetype"]) == theirs["linux:dpkg_log:entry"]
        assert row["type"] == "Added Time" and row["MACB"] == "...B"  # plaso: Added -> B
        assert row["filename"].endswith("dpkg.log")
        assert "parser:" not in row["extra"] and "data_type:" not in row["extra"]
        assert "message_body: " in row["extra"]
    apache = next(r for r in rows if r["format"] == "text/apache_access")
    assert (apache["source"], apache["sourcetype"]) == theirs["apache:access_log:entry"]
    assert (apache["date"], apache["time"]) == ("10/10/2000", "20:55:36")  # -0700 in UTC
    assert apache["user"] == "frank" and apache["MACB"] == "...."


def test_irkit_sources_columns(rows: list[dict[str, str]]) -> None:
    evtx = [r for r in rows if r["source"] == "EVT"]
    assert evtx and all(r["sourcetype"] == "WinEVTX" for r in evtx)
    assert {r["format"] for r in evtx} >= {"evtx/Security"}
    long = next(r for r in evtx if len(r["desc"]) > 80)
    assert long["short"] == long["desc"][:77] + "..." and len(long["short"]) == 80
    for row in rows:  # the short message is the evidence's text cut, then made safe
        desc, short = restore(row["desc"]), restore(row["short"])
        assert short == desc or (len(short) == 80 and short == desc[:77] + "..."), row
    first = next(r for r in evtx if r["filename"].endswith("new-user-security.evtx"))
    assert first["host"] == "IE8Win7" and "Channel: Security" in first["extra"]
    keys = [part.split(": ", 1)[0] for part in first["extra"].split("; ")]
    assert keys == sorted(keys)


def test_formulas_neutralised_and_controls_escaped(
    written: bytes, rows: list[dict[str, str]]
) -> None:
    assert not RAW_CONTROL.search(written.decode("utf-8").replace("\r\n", ""))
    row = next(r for r in rows if r["sourcetype"] == "osquery")
    assert row["host"] == "'" + OSQUERY_HOST
    assert row["user"] == "'=cmd|' /C calc'!A0"
    assert restore(row["user"]) == OSQUERY_COLUMNS["username"]
    assert restore(row["host"]) == OSQUERY_HOST
    # Control characters as in the CSV export, and line breaks too: one event a line.
    assert (
        "cmdline: sh -c 'printf \\x{1b}]0;owned\\x{07}' \\x{5c}x{1b} C:\\x64\\a\\x{0d}\\x{0a}"
        "next\\x{0d}over" in row["extra"]
    )
    assert "path: /bin/sh\\x{9b}31m" in row["extra"]
    extra = restore(row["extra"])
    for key, value in OSQUERY_COLUMNS.items():
        assert f"{key}: {value}" in extra
    for cells in rows:
        for name, cell in cells.items():
            assert cell == "-" or not cell.startswith(("=", "+", "-", "@", "\t", "\r")), name


def test_same_case_same_bytes(case: Path, written: bytes, tmp_path: Path) -> None:
    again = tmp_path / "again.l2tcsv"
    result = export(case, "-o", str(again))
    assert result.returncode == 0, result.stderr
    assert again.read_bytes() == written


def test_output_dash_is_stdout(case: Path, written: bytes, tmp_path: Path) -> None:
    dash = export(case, "-o", "-", cwd=tmp_path)
    plain = export(case, cwd=tmp_path)
    assert dash.returncode == 0, dash.stderr
    assert list(tmp_path.iterdir()) == []
    assert dash.stdout == plain.stdout == written


def test_nothing_matched_is_the_header_alone(case: Path) -> None:
    result = export(case, "--host", "no-such-host")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == L2T_HEADER + "\r\n"
    assert b"0 events matched" in result.stderr


def test_table_with_output_names_l2tcsv(case: Path, tmp_path: Path) -> None:
    result = run_irkit("timeline", str(case), "-o", str(tmp_path / "t.csv"))
    assert result.returncode == 2 and "l2tcsv" in result.stderr


def test_a_row_without_a_usable_time_gets_a_valid_placeholder_date(case: Path) -> None:
    """The store allows a NULL ``ts`` (and DuckDB times past year 9999): such a row is
    still written, with the placeholder date and a note."""
    with Case(case, read_only=True) as store:
        row = next(Selection.of(store, TimelineFilter(sources=["bodyfile"])).rows())
    cells, placeholder = l2t_row(row)
    assert not placeholder and cells[14] == "-"
    for micros in (None, 400_000 * 365 * 86_400_000_000, -70_000 * 365 * 86_400_000_000):
        cells, placeholder = l2t_row((None, *row[1:3], micros, *row[4:]))
        assert placeholder and len(cells) == 17
        assert (cells[0], cells[1]) == PLACEHOLDER
        dt.datetime.strptime(f"{cells[0]} {cells[1]}", "%m/%d/%Y %H:%M:%S")
        assert "placeholder" in cells[14]
    cells, placeholder = l2t_row((None, *row[1:3], -11_644_473_600_000_000, *row[4:]))
    assert not placeholder and (cells[0], cells[1]) == ("01/01/1601", "00:00:00")
