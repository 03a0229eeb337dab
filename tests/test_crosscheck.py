"""Cross-checking the two EVTX engines: small exact cases, then the whole shared corpus."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from irkit.ingest.crosscheck import CrossCheck, crosscheck_file, crosscheck_files
from irkit.sources.evtx import python_engine

CORPUS = Path(
    os.environ.get("IRKIT_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus")
)
DATA = Path(__file__).resolve().parent / "data"
NEW_USER = DATA / "evidence" / "new-user-security.evtx"


def _kinds(result: CrossCheck) -> tuple[list[str], list[str]]:
    return [w.kind for w in result.fast_warnings], [w.kind for w in result.python_warnings]


def test_small_files_exact_counts() -> None:
    paths = [
        NEW_USER,
        DATA / "dirty" / "System2.evtx",
        DATA / "evidence" / "dns_log_malformed.evtx",
        DATA / "dirty" / "sample_with_a_bad_chunk_magic.evtx",
    ]
    seen: list[CrossCheck] = []
    results = crosscheck_files(paths, workers=2, progress=seen.append)
    assert [r.path for r in results] == paths
    assert sorted(map(str, (r.path for r in seen))) == sorted(map(str, paths))

    new_user, system2, dns, bad_chunks = results
    assert (new_user.fast_records, new_user.python_records, new_user.agrees) == (4, 4, True)
    assert _kinds(new_user) == ([], [])
    assert (dns.fast_records, dns.python_records, dns.agrees) == (5, 5, True)

    # Cut at 200,000 bytes: python-evtx also reads the 89 whole records of the partial chunk.
    assert (system2.fast_records, system2.python_records, system2.agrees) == (194, 283, False)
    assert (system2.only_fast, system2.only_python) == ((), tuple(range(195, 284)))
    assert (system2.differing, system2.repeated, system2.error) == ((), (), "")
    assert _kinds(system2) == ([], ["bad-record"])  # record 284 is cut

    # Two bad chunks (both engines); chunk 7 holds 31 records after 16,752 zeroed bytes
    # that only python-evtx resumes at; zeroed tails of chunks 0 and 9.
    assert (bad_chunks.fast_records, bad_chunks.python_records) == (270, 301)
    assert bad_chunks.only_python == tuple(range(47675, 47706))
    assert (bad_chunks.only_fast, bad_chunks.differing) == ((), ())
    assert _kinds(bad_chunks) == (
        ["bad-chunk", "bad-chunk"],
        ["bad-record", "bad-chunk", "bad-record", "bad-record", "bad-chunk"],
    )


def test_repeated_record_ids_compare_as_multisets(tmp_path: Path) -> None:
    data = NEW_USER.read_bytes()
    path = tmp_path / "twice.evtx"
    path.write_bytes(data + data[4096 : 4096 + 65536])  # chunk 0 again, as chunk 1
    result = crosscheck_file(path)
    assert (result.fast_records, result.python_records) == (8, 8)
    assert result.repeated == (1, 2, 3, 4)
    assert (result.differing, result.agrees) == ((), True)


def _patched(change: Any) -> Any:
    real = python_engine.iter_python

    def iter_python(path: Path, ctx: Any) -> Iterator[Any]:
        for seen, row in enumerate(real(path, ctx)):
            row = change(seen, row)
            if row is not None:
                yield row

    return iter_python


def test_a_difference_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def change(seen: int, row: Any) -> Any:
        rid, ts, flat, n_system = row
        if rid == 2:
            flat = {**flat, "EventID": "9999"}
        if rid == 3:
            flat = {**flat, "SystemTime": "2001-01-01T00:00:00.000000Z"}
        if rid == 4:
            flat = {**flat, "SubjectUserName": "mallory"}
        return rid, ts, flat, n_system

    monkeypatch.setattr(python_engine, "iter_python", _patched(change))
    result = crosscheck_file(NEW_USER)
    assert result.differing == (
        (2, "EventID 4720 != 9999"),
        (3, "time 2013-10-23T16:22:39.973500Z != 2001-01-01T00:00:00.000000Z"),
        (4, "fields differ: SubjectUserName"),
    )
    assert not result.agrees


def test_a_repeated_id_seen_once_by_one_engine_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = NEW_USER.read_bytes()
    path = tmp_path / "twice.evtx"
    path.write_bytes(data + data[4096 : 4096 + 65536])
    monkeypatch.setattr(
        python_engine, "iter_python", _patched(lambda seen, row: None if seen == 5 else row)
    )
    result = crosscheck_file(path)
    assert (result.fast_records, result.python_records) == (8, 7)
    assert result.differing == ((2, "repeated id: 2 records (fast) != 1 (python-evtx)"),)
    assert result.repeated == (1, 2, 3, 4)


def test_records_one_engine_cannot_render_are_listed(tmp_path: Path) -> None:
    """One byte: the element name ``Computer`` made ``\x01omputer``. pyevtx-rs writes the
    control character into its JSON unescaped; irkit skips those records with a warning
    (they are not lost silently) and python-evtx reads them all."""
    data = bytearray(NEW_USER.read_bytes())
    data[data.find("Computer".encode("utf-16-le"))] = 0x01
    path = tmp_path / "control.evtx"
    path.write_bytes(bytes(data))
    result = crosscheck_file(path)
    assert result.error == ""
    assert (result.fast_records, result.python_records) == (0, 4)
    assert len(result.only_python) == 4
    assert sum("JSON is broken" in w.message for w in result.fast_warnings) == 4
    assert not result.agrees


def test_bad_files_are_reported_not_raised(tmp_path: Path) -> None:
    text = tmp_path / "notes.evtx"
    text.write_text("not an event log\n" * 100)
    missing = tmp_path / "gone.evtx"
    results = crosscheck_files([text, missing], workers=2)
    assert [r.path for r in results] == [text, missing]
    for result in results:
        assert (result.fast_records, result.python_records, result.agrees) == (0, 0, False)
        assert "fast engine cannot read the file" in result.error
        assert "python-evtx engine cannot read the file" in result.error


SAMPLES = "omerbenamram-evtx/samples/"
RDP = SAMPLES + "2-vss_0-Microsoft-Windows-RemoteDesktopServices-RdpCoreTS%4Operational.evtx"
RCM = (
    SAMPLES + "2-vss_0-Microsoft-Windows-TerminalServices-RemoteConnectionManager%4Operational.evtx"
)

#: Every corpus file where the engines disagree, as measured (pyevtx-rs 0.14.0, python-evtx
#: 0.8.1): file -> (fast records, python-evtx records, only fast, only python-evtx, differing).
#: python-evtx reads more in each: past a damaged record it resumes at the next intact
#: one, and it reads the partial last chunk of a file cut short.
DISAGREEMENTS = {
    # a VSS copy: after two records with values past their end, 58 records of reused space
    RDP: (1910, 1968, 0, 58, 0),
    # a VSS copy: after a record with a bad token, 21 older records (401576-401596)
    RCM: (1774, 1795, 0, 21, 0),
    # record 3 has size 0; records 4-117 follow intact
    SAMPLES + "sample-with-zero-data-size-event.evtx": (335, 449, 0, 114, 0),
    # chunk 7: records 47675-47705 after 16,752 zeroed bytes
    SAMPLES + "sample_with_a_bad_chunk_magic.evtx": (270, 301, 0, 31, 0),
    # cut at 200,000 bytes: records 195-283 in the partial chunk
    "plaso-evtx/test_data/evtx/System2.evtx": (194, 283, 0, 89, 0),
}

#: Files with warnings: file -> (fast engine warnings, python-evtx warnings).
WARNINGS = {
    RDP: (4, 9),
    RCM: (2, 2),
    # the chunk headers declare 20 records; 6 and 17 are there, the rest zeroed
    SAMPLES + "Microsoft-Windows-HelloForBusiness%4Operational.evtx": (0, 1),
    SAMPLES + "Microsoft-Windows-LanguagePackSetup%4Operational.evtx": (0, 1),
    SAMPLES + "sample-with-zero-data-size-event.evtx": (1, 1),
    SAMPLES + "sample_with_a_bad_chunk_magic.evtx": (2, 5),
    SAMPLES + "sysmon.evtx": (8, 8),
    "plaso-evtx/test_data/evtx/System2.evtx": (0, 1),
}


@pytest.mark.corpus
@pytest.mark.slow
def test_whole_corpus() -> None:
    paths = sorted(CORPUS.rglob("*.evtx"))
    if not paths:
        pytest.skip(f"shared corpus not found at {CORPUS} (set IRKIT_CORPUS)")
    results = crosscheck_files(paths, workers=2)
    assert len(results) == len(paths) == 308
    assert [r.path for r in results] == paths

    def name(result: CrossCheck) -> str:
        return result.path.relative_to(CORPUS).as_posix()

    assert [(name(r), r.error) for r in results if r.error] == []
    disagreements = {
        name(r): (
            r.fast_records,
            r.python_records,
            len(r.only_fast),
            len(r.only_python),
            len(r.differing),
        )
        for r in results
        if not r.agrees
    }
    assert disagreements == DISAGREEMENTS
    warnings = {
        name(r): (len(r.fast_warnings), len(r.python_warnings))
        for r in results
        if r.fast_warnings or r.python_warnings
    }
    assert warnings == WARNINGS
    assert all(r.python_records >= r.fast_records for r in results)
    assert [name(r) for r in results if r.only_fast or r.differing or r.repeated] == []
    assert sum(r.fast_records for r in results) == 37847
    assert sum(r.python_records for r in results) == 38160
