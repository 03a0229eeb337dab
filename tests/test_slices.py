"""A big EVTX file is parsed as slices by several workers: same events as one pass."""

from __future__ import annotations

from pathlib import Path

from irkit.ingest.options import ParseOptions
from irkit.ingest.parse import parse_evidence
from irkit.store.case import Case

from .conftest import DIRTY, EVIDENCE


def events(case: Path) -> list[tuple[object, ...]]:
    with Case(case, read_only=True) as store:
        db = store.db
        return db.execute(
            "SELECT uid, ts, event_id, record, fields::VARCHAR, message FROM events ORDER BY uid"
        ).fetchall()


def test_sliced_parse_equals_whole_parse(tmp_path: Path) -> None:
    whole = parse_evidence([DIRTY / "sysmon.evtx"], tmp_path / "whole", ParseOptions(workers=1))
    sliced = parse_evidence(
        [DIRTY / "sysmon.evtx"],
        tmp_path / "sliced",
        ParseOptions(workers=2, slice_bytes=0, slice_chunks=3),
    )
    assert sliced.files_parsed == 1 and sliced.files[0].sliced
    assert whole.records == sliced.records == 358
    assert whole.skipped_chunks == sliced.skipped_chunks == 8
    assert sorted(w.kind for w in whole.warnings) == sorted(w.kind for w in sliced.warnings)
    assert events(tmp_path / "whole") == events(tmp_path / "sliced")


def test_repeated_record_ids_across_slices_get_unique_keys(tmp_path: Path) -> None:
    data = (EVIDENCE / "new-user-security.evtx").read_bytes()
    header, chunk = data[:4096], data[4096 : 4096 + 65536]
    evidence = tmp_path / "ev"
    evidence.mkdir()
    (evidence / "twice.evtx").write_bytes(header + chunk + chunk)  # the same records twice
    summary = parse_evidence(
        [evidence], tmp_path / "case", ParseOptions(workers=2, slice_bytes=0, slice_chunks=1)
    )
    assert summary.records == 8
    rows = events(tmp_path / "case")
    assert len({row[0] for row in rows}) == 8, "uids are unique"
    assert len({row[3] for row in rows}) == 8, "record keys are unique"
    again = parse_evidence(
        [evidence], tmp_path / "case", ParseOptions(workers=2, slice_bytes=0, slice_chunks=1)
    )
    assert again.events_added == 0


def test_interrupted_big_file_ingest_is_undone_on_next_open(tmp_path: Path) -> None:
    """A run killed between slices leaves rows marked as being ingested: they go away."""
    from irkit.store.case import Case

    case_dir = tmp_path / "case"
    parse_evidence([DIRTY / "sysmon.evtx"], case_dir, ParseOptions(workers=1))
    with Case(case_dir) as case:
        sha = case.db.execute("SELECT sha256 FROM evidence").fetchone()[0]
        # What a killed run leaves: the slice rows, the mark, no evidence row.
        case.db.execute("DELETE FROM evidence")
        case.db.execute("INSERT INTO ingesting VALUES (?)", [sha])
    with Case(case_dir) as case:
        assert case.count() == 0
    again = parse_evidence([DIRTY / "sysmon.evtx"], case_dir, ParseOptions(workers=1))
    assert again.events_added == 358


def test_a_killed_runs_spool_is_removed_by_the_next_run(tmp_path: Path) -> None:
    """SIGKILL skips every cleanup: the parts it spooled go at the next parse."""
    case_dir = tmp_path / "case"
    parse_evidence([EVIDENCE / "new-user-security.evtx"], case_dir, ParseOptions(workers=1))
    dead = case_dir / "spool" / "0123456789abcdef"
    dead.mkdir(parents=True)
    (dead / "0000-part-00000.parquet").write_bytes(b"PAR1")
    (case_dir / "spool" / "hash-0123456789ab-00000.parquet").write_bytes(b"PAR1")
    again = parse_evidence([EVIDENCE / "new-user-security.evtx"], case_dir, ParseOptions(workers=1))
    assert again.events_added == 0
    assert not (case_dir / "spool").exists()


def test_only_slices_sharing_record_ids_are_rewritten() -> None:
    from irkit.store.spool import slices_sharing_ids

    assert slices_sharing_ids([[(1, 10)], [(11, 20)], [(21, 30)]]) == set()
    # Slice 1 repeats id 5 inside itself only: keyed apart by the parser, not a collision.
    assert slices_sharing_ids([[(1, 4)], [(5, 9), (5, 5)], [(10, 12)]]) == set()
    assert slices_sharing_ids([[(1, 10)], [(11, 20)], [(3, 3), (21, 30)]]) == {0, 2}
    assert slices_sharing_ids([[(1, 100)], [(101, 200)], [(150, 150)], [(50, 50)]]) == {
        0,
        1,
        2,
        3,
    }
    assert slices_sharing_ids([[], [(1, 2)], []]) == set()


def test_recover_reads_a_sliced_log_too(tmp_path: Path) -> None:
    """--recover on a big log parsed as slices adds what it adds to the log read whole
    (the slices' record ids say what the fast engine read); it used to add nothing."""
    whole = parse_evidence([DIRTY], tmp_path / "whole", ParseOptions(workers=1, recover=True))
    sliced = parse_evidence(
        [DIRTY],
        tmp_path / "sliced",
        ParseOptions(workers=2, slice_bytes=0, slice_chunks=3, recover=True),
    )
    assert all(f.sliced for f in sliced.files)
    assert whole.records == sliced.records == 358 + 301 + 283
    assert whole.files_recovered == sliced.files_recovered == 3
    assert events(tmp_path / "whole") == events(tmp_path / "sliced")
    again = parse_evidence(
        [DIRTY], tmp_path / "sliced", ParseOptions(workers=2, slice_bytes=0, recover=True)
    )
    assert again.events_added == 0 and again.files_recovered == 0
