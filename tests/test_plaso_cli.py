"""plaso through the command line: the bundled samples in ``tests/data/plaso`` parsed and
triaged, and the options that change what plaso does (``--year``, ``--timezone``,
``--plaso-parsers``)."""

from __future__ import annotations

import collections
import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

from irkit.store.case import Case

from .conftest import DATA, run_irkit

SAMPLES = DATA / "plaso"
SYSLOG = SAMPLES / "syslog_ssh.log"


def _parse(*args: str) -> tuple[int, dict[str, Any], str]:
    result = run_irkit("parse", *args, "--json")
    data = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, data, result.stderr


def _rows(case: Path, where: str = "TRUE") -> list[tuple[Any, ...]]:
    with Case(case, read_only=True) as store:
        return store.db.execute(
            f"SELECT ts, ts_desc, artifact, evidence FROM events WHERE {where} ORDER BY ALL"
        ).fetchall()


def test_triage_reads_the_plaso_samples_into_the_timeline(tmp_path: Path) -> None:
    case = tmp_path / "case"
    result = run_irkit("triage", str(SAMPLES), "--case", str(case), "--json")
    assert result.returncode in (0, 3), result.stderr
    data = json.loads(result.stdout)
    families = data["records_by_family"]
    assert families["Linux"] > 0 and families["Windows execution and files"] > 0
    with (case / "timeline.csv").open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    artifacts = collections.Counter(r["artifact"] for r in rows if r["source"] == "plaso")
    assert {"prefetch", "lnk", "text/dpkg", "text/syslog_traditional"} <= set(artifacts)
    storage = [r for r in rows if r["source"] == "plaso-storage"]
    assert len(storage) == 3  # pinfo_test.plaso: pinfo counts 3 events
    assert all(r["datetime"] and r["message"] for r in rows)


def test_year_sets_the_year_of_a_yearless_log(tmp_path: Path) -> None:
    code, data, stderr = _parse(str(SYSLOG), "--case", str(tmp_path / "a"), "--year", "2015")
    assert code == 0, stderr
    assert not data["errors_by_file"]  # no assumed-year warning
    years = {ts.year for ts, *_ in _rows(tmp_path / "a")}
    assert years == {2015}
    code, data, _ = _parse(str(SYSLOG), "--case", str(tmp_path / "b"))
    kinds = [m.split(":")[0] for m in data["errors_by_file"][str(SYSLOG)]]
    assert code == 3 and kinds == ["assumed-year"]


def test_timezone_moves_local_times_to_utc(tmp_path: Path) -> None:
    _parse(str(SYSLOG), "--case", str(tmp_path / "utc"), "--year", "2015")
    code, _, stderr = _parse(
        str(SYSLOG), "--case", str(tmp_path / "berlin"), "--year", "2015",
        "--timezone", "Europe/Berlin",
    )  # fmt: skip
    assert code == 0, stderr
    utc = [ts for ts, *_ in _rows(tmp_path / "utc")]
    berlin = [ts for ts, *_ in _rows(tmp_path / "berlin")]
    assert len(utc) == len(berlin) > 0
    # The same wall-clock times read in Berlin are one or two hours earlier in UTC.
    assert {a - b for a, b in zip(utc, berlin, strict=True)} <= {
        dt.timedelta(hours=1),
        dt.timedelta(hours=2),
    }


def test_plaso_parsers_filter_what_plaso_runs(tmp_path: Path) -> None:
    code, data, stderr = _parse(
        str(SAMPLES), "--case", str(tmp_path / "case"), "--plaso-parsers", "prefetch"
    )
    assert code == 0, stderr
    plaso = _rows(tmp_path / "case", "source = 'plaso'")
    assert plaso and {artifact for _, _, artifact, _ in plaso} == {"prefetch"}
    assert str(SAMPLES / "dpkg.log") in data["not_recognised"]


def test_bad_plaso_options_are_usage_errors(tmp_path: Path) -> None:
    for option, value in (("--year", "12"), ("--timezone", "Mars/Olympus"), (
        "--plaso-parsers", "no_such_parser"
    )):  # fmt: skip
        result = run_irkit("parse", str(SYSLOG), "--case", str(tmp_path / "c"), option, value)
        assert result.returncode == 2, (option, result.stderr)
        assert result.stderr.startswith("irkit: "), result.stderr
        assert "Traceback" not in result.stderr
