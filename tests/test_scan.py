"""`irkit scan`, `irkit findings` and triage's scan, through the real command line."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import pytest

from irkit.errors import ExitCode

from .conftest import DIRTY, EVIDENCE, run_irkit


def _case(tmp_path: Path) -> Path:
    case = tmp_path / "case"
    result = run_irkit("parse", str(DIRTY), str(EVIDENCE), "--case", str(case), "-q")
    assert result.returncode == ExitCode.PARTIAL, result.stderr  # the dirty logs warn
    return case


def test_fail_on_gives_its_exit_code_only_when_a_finding_reaches_the_level(
    tmp_path: Path,
) -> None:
    case = _case(tmp_path)
    # sysmon.evtx holds Procmon opening LSASS with full access: a high finding.
    high = run_irkit("scan", str(case), "--fail-on", "high", "--json")
    assert high.returncode == ExitCode.FINDINGS, high.stderr
    data = json.loads(high.stdout)
    assert data["by_level"]["high"] >= 1
    assert data["findings_added"] == data["findings"] > 0
    assert set(data["detectors"]) == {"heuristic", "analytics"}
    critical = run_irkit("scan", str(case), "--fail-on", "critical", "--json")
    assert critical.returncode == ExitCode.OK, critical.stderr
    assert json.loads(critical.stdout)["findings_added"] == 0  # the same findings again
    bad = run_irkit("scan", str(case), "--fail-on", "severe")
    assert bad.returncode == ExitCode.USAGE and "not one of 'informational'" in bad.stderr


def test_findings_export_and_timeline_rows(tmp_path: Path) -> None:
    case = _case(tmp_path)
    assert run_irkit("scan", str(case), "-q").returncode == ExitCode.OK
    out = run_irkit("findings", str(case), "--format", "csv", "--min-level", "medium")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert rows and rows[0]["severity"] == "high"  # most severe first
    assert {r["severity"] for r in rows} <= {"medium", "high", "critical"}
    lsass = next(r for r in rows if r["rule"] == "lsass_access")
    assert lsass["detector"] == "heuristic"
    assert "attack.t1003.001" in lsass["attack"].split(",")
    assert int(lsass["count"]) >= 1 and lsass["event_uid"]
    timeline = run_irkit("timeline", str(case), "--format", "jsonl", "--source", "finding")
    found = [json.loads(line) for line in timeline.stdout.splitlines()]
    assert any(f["artifact"] == "lsass_access" for f in found)
    events = run_irkit("timeline", str(case), "--format", "jsonl", "--where",
                       f"uid = '{lsass['event_uid']}'")  # fmt: skip
    event = json.loads(events.stdout.splitlines()[0])
    assert event["source"] == "evtx" and event["datetime"] == lsass["first_seen"]


def test_triage_writes_findings_and_fails_on_request(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_irkit("triage", str(DIRTY), "--out", str(out), "--fail-on", "high", "--json")
    assert result.returncode == ExitCode.FINDINGS, result.stderr
    data = json.loads(result.stdout)
    assert data["scan"]["by_level"]["high"] >= 1
    with (out / "findings.csv").open(encoding="utf-8", newline="") as handle:
        assert any(r["rule"] == "lsass_access" for r in csv.DictReader(handle))
    quiet = run_irkit("triage", str(EVIDENCE), "--out", str(tmp_path / "o2"), "--no-scan", "-q")
    assert quiet.returncode == ExitCode.OK, quiet.stderr
    assert not (tmp_path / "o2" / "findings.csv").exists()


def test_a_scan_from_memory_finds_what_a_scan_of_the_parts_finds(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small case is scanned from one in-memory copy of its events; the findings (every
    # detector, Sigma included) are those of a scan over the Parquet parts.
    import contextlib
    import shutil
    from collections.abc import Iterator

    import irkit.store.registry as registry
    from irkit.detect.scan import ScanOptions, scan
    from irkit.store.case import Case

    case = _case(tmp_path)
    with Case(case) as store:
        before = store.db.execute("SELECT * FROM events ORDER BY uid").fetchall()
        with store.events_in_memory() as in_memory:
            assert in_memory
            assert store.db.execute("SELECT * FROM events ORDER BY uid").fetchall() == before
        with store.events_in_memory(max_bytes=0) as in_memory:
            assert not in_memory
        tables = store.db.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        assert ("_irkit_scan_events",) not in tables
        assert (
            "read_parquet"
            in store.db.execute(
                "SELECT sql FROM duckdb_views() WHERE view_name = 'events'"
            ).fetchall()[0][0]
        )
    other = tmp_path / "other"
    shutil.copytree(case, other)
    used: list[bool] = []
    original = Case.events_in_memory

    @contextlib.contextmanager
    def spy(self: Case, max_bytes: int | None = None) -> Iterator[bool]:
        with original(self, max_bytes) as in_memory:
            used.append(in_memory)
            yield in_memory

    monkeypatch.setattr(Case, "events_in_memory", spy)
    options = ScanOptions(sigma=[corpus / "sigma"])
    from_memory = scan(case, options)
    monkeypatch.setattr(registry, "IN_MEMORY_BYTES", 0)
    from_parts = scan(other, options)
    assert used == [True, False]
    assert from_memory.findings and len(from_memory.findings) == len(from_parts.findings)
    assert [dataclasses.asdict(f) for f in from_memory.findings] == [
        dataclasses.asdict(f) for f in from_parts.findings
    ]
