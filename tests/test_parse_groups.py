"""Small logs parsed in groups (issue #18): many files to a worker task and one shared
spool part, with the same case as one file at a time, bad files still counted, and the
rows of a file that is not stored taken back out of the part it shares."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import duckdb
import psutil
import pytest

from irkit.errors import ExitCode
from irkit.ingest.batch import IngestBatch
from irkit.ingest.discovery import discover
from irkit.ingest.options import ParseOptions
from irkit.ingest.parse import parse_evidence
from irkit.ingest.summary import ParseSummary, Progress
from irkit.ingest.worker import parse_group
from irkit.store.case import Case
from irkit.store.spool import GROUPED, GroupWriter, drop_evidence
from tests.bench import tile_evtx

from .conftest import DIRTY, EVIDENCE


def evidence_folder(tmp_path: Path) -> Path:
    """The bundled samples, clean and dirty, and one file that is EVTX by its first bytes
    only (pyevtx-rs cannot read it): eight logs, small enough to be grouped."""
    folder = tmp_path / "logs"
    folder.mkdir()
    for source in [*sorted(EVIDENCE.iterdir()), *sorted(DIRTY.iterdir())]:
        shutil.copyfile(source, folder / source.name)
    (folder / "garbage.evtx").write_bytes(b"ElfFile\x00" + bytes(100))  # a cut header
    return folder


def stable(summary: ParseSummary) -> dict[str, object]:
    """A run's summary without what differs from run to run (id, case, timings)."""
    volatile = {"run_id", "case", "seconds", "events_per_second", "mb_per_second"}
    return {k: v for k, v in summary.as_dict().items() if k not in volatile | {"peak_rss_bytes"}}


def case_rows(case: Path) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The case's evidence rows (without run and time) and every event, sorted."""
    with Case(case, read_only=True) as store:
        evidence = store.db.execute(
            """SELECT sha256, path, size, kind, engine, status, records, skipped_chunks,
                      skipped_records, warnings FROM evidence ORDER BY path"""
        ).fetchall()
        events = store.db.execute(
            "SELECT * EXCLUDE (host) FROM events ORDER BY uid, evidence"
        ).fetchall()
    return evidence, events


@pytest.mark.parametrize("workers", [1, 2])
def test_groups_store_what_one_file_at_a_time_stores(tmp_path: Path, workers: int) -> None:
    folder = evidence_folder(tmp_path)
    grouped = ParseOptions(workers=workers, group_bytes=64 << 20)
    alone = ParseOptions(workers=workers, group_file_max=0)  # every log a task of its own
    first = parse_evidence([folder], tmp_path / "grouped", grouped)
    second = parse_evidence([folder], tmp_path / "alone", alone)
    assert stable(first) == stable(second)
    assert first.files_failed == 1 and first.records > 0
    assert case_rows(tmp_path / "grouped") == case_rows(tmp_path / "alone")
    with Case(tmp_path / "grouped", read_only=True) as store:
        shared = store.db.execute(
            "SELECT file, count(*), sum(rows) FROM parts GROUP BY file"
        ).fetchall()
    # Fewer parts than logs, each shared; the log that failed has no rows in any.
    assert all(name.endswith(GROUPED) for name, _, _ in shared)
    assert len(shared) < 7 and sum(files for _, files, _ in shared) == 7
    assert sum(rows for _, _, rows in shared) == first.records


def test_a_file_that_fails_in_a_group_takes_its_rows_back(tmp_path: Path) -> None:
    folder = evidence_folder(tmp_path)
    candidates, _, _ = discover([folder])
    candidates.sort(key=lambda c: c.display)
    members = parse_group(candidates, str(tmp_path / "spool"), frozenset(), ParseOptions())
    bad = next(m for m in members if m.path.endswith("garbage.evtx"))
    assert bad.status == "failed" and bad.records == 0 and bad.spool == []
    assert any(w.kind == "unreadable" for w in bad.warnings)
    parts = {part for m in members for part in m.spool}
    assert len(parts) == 1
    rows = duckdb.execute(
        f"SELECT evidence, count(*) FROM read_parquet('{parts.pop()}') GROUP BY 1"
    ).fetchall()
    assert dict(rows) == {m.path: m.records for m in members if m.records}


def test_group_writer_cuts_parts_between_files_only(tmp_path: Path) -> None:
    writer = GroupWriter(tmp_path, "g", batch=3)
    row = ("2024-01-01T00:00:00Z", "Event Logged", "Security", "h", "u", "1", "m", b"{}")
    places = []
    for name, count in (("a", 2), ("b", 4), ("failed", 2), ("c", 1)):
        writer.begin(("evtx", name, name * 64))
        for number in range(count):
            writer.add((*row, f"{name}{number}"))
        if name == "failed":
            writer.abandon()
            continue
        places.append((name, writer.end()))
    writer.close()
    assert places == [("a", 0), ("b", 0), ("c", 1)]  # b's 4 rows are not cut
    first = duckdb.execute(f"SELECT evidence, count(*) FROM '{writer.parts[0]}' GROUP BY 1")
    assert sorted(first.fetchall()) == [("a", 2), ("b", 4)]
    last = duckdb.execute(f"SELECT evidence, record FROM '{writer.parts[1]}'").fetchall()
    assert last == [("c", "c0")]


def test_a_copy_found_only_once_hashed_leaves_the_shared_part(tmp_path: Path) -> None:
    """Two files with the same bytes parsed in one group (their copy was not seen before
    they were hashed): the case takes the first; the second's rows leave the part."""
    folder = tmp_path / "logs"
    folder.mkdir()
    sample = EVIDENCE / "new-user-security.evtx"
    shutil.copyfile(sample, folder / "a.evtx")
    shutil.copyfile(sample, folder / "b.evtx")
    candidates, _, _ = discover([folder])
    spool = tmp_path / "case" / "spool" / "run"
    options = ParseOptions()
    members = parse_group(candidates, str(spool), frozenset(), options)
    assert members[0].sha256 == members[1].sha256 and members[0].spool == members[1].spool
    summary = ParseSummary(run_id=uuid.uuid4().hex, case=str(tmp_path / "case"))
    with Case(tmp_path / "case", create=True) as case:
        case.pause()
        batch = IngestBatch(case, summary, summary.run_id, set(), options, Progress())
        for stats in members:
            batch.add(stats)
        batch.flush()
    assert summary.files_parsed == 1 and summary.files_already == 1
    with Case(tmp_path / "case", read_only=True) as store:
        assert store.db.execute("SELECT DISTINCT evidence FROM events").fetchall() == [
            (str(folder / "a.evtx"),)
        ]
        assert store.count() == members[0].records


def test_drop_evidence_removes_a_part_left_empty(tmp_path: Path) -> None:
    writer = GroupWriter(tmp_path, "g")
    writer.begin(("evtx", "only", "0" * 64))
    writer.add(("2024-01-01T00:00:00Z", "Event Logged", "S", "h", "u", "1", "m", b"{}", "1"))
    writer.end()
    writer.close()
    assert not drop_evidence(writer.parts[0], {"only"})
    assert not Path(writer.parts[0]).exists()


def test_a_killed_worker_costs_no_file_of_its_group(tmp_path: Path) -> None:
    """The kernel kills a worker parsing a group: the group's files are parsed again, one
    by one and alone, and every file of the folder is in the case."""
    from .test_parse_run import busy_worker, start, wait_for

    folder = tmp_path / "ev"
    folder.mkdir()
    records = 0
    for chunks in range(1, 25):  # one chunk more each: no two are copies
        size = tile_evtx.HEADER_SIZE + chunks * tile_evtx.CHUNK_SIZE
        records += tile_evtx.tile(folder / f"log{chunks:02}.evtx", size, [EVIDENCE]).records
    case = tmp_path / "case"
    process = start("parse", str(folder), "--case", str(case), "--evtx-engine", "python-evtx")
    victim: list[psutil.Process] = []
    wait_for(busy_worker(process.pid, victim, set()), process, "a worker parsing a group")
    victim[0].kill()
    _, err = process.communicate(timeout=300)
    assert process.returncode == ExitCode.OK, err
    assert "worker-died" not in err
    with Case(case, read_only=True) as store:
        assert store.count() == records
        assert store.db.execute("SELECT count(*) FROM evidence").fetchall() == [(24,)]
