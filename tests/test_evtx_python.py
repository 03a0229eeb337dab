"""The python-evtx engine gives the fast engine's flat fields, record for record.

On real files from the shared corpus (skipped when it is absent): for every record id both
engines read, the flat field dicts, their key order, ``n_system`` and the header time are
equal; the record counts are the ones measured, and on dirty files python-evtx reads at
least what the inventory (made with pyevtx-rs) lists. The bundled samples in
``tests/data`` check the same without the corpus, plus damaged and unreadable input.
"""

from __future__ import annotations

import csv
import functools
import os
import random
import re
from collections.abc import Callable
from pathlib import Path

import Evtx.Evtx as evtx_file  # noqa: N813
import orjson
import pytest

from irkit.model import FileStats
from irkit.sources.base import ParseContext
from irkit.sources.evtx import flatten_event, header_time, iter_fast, python_engine
from irkit.sources.evtx.python_engine import iter_python

CORPUS = Path(
    os.environ.get("IRKIT_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus")
)
DATA = Path(__file__).resolve().parent / "data"

#: Flat fields left out of the comparison. None: over all 308 corpus files (37,847 records
#: both engines read) every flat dict is equal, key for key and in the same order. The
#: only JSON-level difference (LanguagePackSetup record 17: a zero-filled nested BinXML
#: value that pyevtx-rs writes as ``"Event": null``) is dropped by ``flatten_event``.
EXCLUDED_FIELDS: frozenset[str] = frozenset()

#: file -> (fast records, python-evtx records, ids only python-evtx reads, ids only the
#: fast engine reads, python-evtx skipped chunks, skipped records, status), as measured.
EXPECTED: dict[str, tuple[int, int, int, int, int, int, str]] = {
    # Security: UserData LogFileCleared (1102), 4663 object access
    "EVTX-ATTACK-SAMPLES/Defense Evasion/DE_1102_security_log_cleared.evtx": (
        112, 112, 0, 0, 0, 0, "ok",
    ),
    # Sysmon: GUIDs, booleans, hashes
    "EVTX-ATTACK-SAMPLES/AutomatedTestingTools/PanacheSysmon_vs_AtomicRedTeam01.evtx": (
        565, 565, 0, 0, 0, 0, "ok",
    ),
    # Application, unnamed <Data> and Binary
    "EVTX-ATTACK-SAMPLES/Credential Access/MSSQL_multiple_failed_logon_EventID_18456.evtx": (
        10, 10, 0, 0, 0, 0, "ok",
    ),
    # PowerShell/Operational 4104 script blocks
    "EVTX-ATTACK-SAMPLES/Credential Access/Powershell_4104_MiniDumpWriteDump_Lsass.evtx": (
        4, 4, 0, 0, 0, 0, "ok",
    ),
    # System: EventID Qualifiers, string arrays expanded into Data_N, UserData
    "omerbenamram-evtx/samples/system.evtx": (1881, 1881, 0, 0, 0, 0, "ok"),
    # forwarded event: BinXML without a template (python-evtx's xml() cannot read it)
    "omerbenamram-evtx/samples/MSExchange_Management_wec.evtx": (1, 1, 0, 0, 0, 0, "ok"),
    # CAPI2: UserData without a template, repeated elements (Certificate_1, …), entities
    "omerbenamram-evtx/samples/E_Windows_system32_winevt_logs_Microsoft-Windows-CAPI2%4Operational.evtx": (  # noqa: E501
        340, 340, 0, 0, 0, 0, "ok",
    ),
    # booleans stored as 8, 16, 65536
    "omerbenamram-evtx/samples/sample-with-irregular-bool-values.evtx": (
        3028, 3028, 0, 0, 0, 0, "ok",
    ),
    # a string with an unpaired UTF-16 surrogate
    "python-evtx/tests/data/issue_43.evtx": (1730, 1730, 0, 0, 0, 0, "ok"),
    # dirty header (1 chunk declared, 17 present), 8 bad chunks
    "omerbenamram-evtx/samples/sysmon.evtx": (358, 358, 0, 0, 8, 0, "partial"),
    # 2 bad chunks; chunk 7 resumes after 16,752 zeroed bytes (31 records); 166 declared
    # records zeroed in chunks 0, 7 and 9
    "omerbenamram-evtx/samples/sample_with_a_bad_chunk_magic.evtx": (
        270, 301, 31, 0, 2, 166, "partial",
    ),
    # record 3 has size 0: both python-evtx and pyevtx-rs stop there; records 4-117 intact
    "omerbenamram-evtx/samples/sample-with-zero-data-size-event.evtx": (
        335, 449, 114, 0, 0, 1, "partial",
    ),
    # a VSS copy: two records with values past their end, then reused space (58 records)
    "omerbenamram-evtx/samples/2-vss_0-Microsoft-Windows-RemoteDesktopServices-RdpCoreTS%4Operational.evtx": (  # noqa: E501
        1910, 1968, 58, 0, 0, 9, "partial",
    ),
    # cut at 200,000 bytes: 89 whole records in the partial chunk, record 284 cut
    "plaso-evtx/test_data/evtx/System2.evtx": (194, 283, 89, 0, 0, 1, "partial"),
}  # fmt: skip

#: What the selection must exercise: name -> test on a flat dict both engines agree on.
FEATURES: dict[str, Callable[[dict[str, str]], bool]] = {
    "EventID with Qualifiers": lambda f: "EventID_Qualifiers" in f,
    "unnamed Data": lambda f: "Data_1" in f,
    "string array expanded": lambda f: "Data_2" in f and f.get("EventID") == "6009",
    "UserData LogFileCleared (1102)": lambda f: "LogFileCleared.SubjectUserName" in f,
    "UserData without a template": lambda f: any(k.startswith("X509Objects.") for k in f),
    "repeated element": lambda f: any(re.search(r"[A-Za-z]_\d+\.", k) for k in f),
    "Binary as hex": lambda f: bool(re.fullmatch(r"[0-9A-F]+", f.get("Binary", "-"))),
    "GUID in EventData": lambda f: bool(re.fullmatch(r"[0-9A-F-]{36}", f.get("ProcessGuid", ""))),
    "HexInt64 unpadded": lambda f: f.get("LogonId", "").startswith("0x") and len(f["LogonId"]) < 18,
    "boolean": lambda f: f.get("Initiated") in ("true", "false"),
    "irregular boolean": lambda f: f.get("IsMachine") == "16",
    "ActivityID": lambda f: "ActivityID" in f,
    "PowerShell script block": lambda f: "ScriptBlockText" in f,
}

Read = dict[int, list[tuple[str, list[tuple[str, str]], int]]]


def _context(path: Path) -> ParseContext:
    return ParseContext(path, path.name, "", FileStats(path=str(path)))


@functools.cache
def read_both(path: Path) -> tuple[Read, Read, FileStats]:
    """Both engines' records by header record id, and python-evtx's stats."""
    fast: Read = {}
    for rid, ts, event in iter_fast(path, _context(path)):
        flat, n_system = flatten_event(event)
        fast.setdefault(rid, []).append((header_time(ts), _items(flat), n_system))
    ctx = _context(path)
    python: Read = {}
    for rid, ts, flat, n_system in iter_python(path, ctx):
        python.setdefault(rid, []).append((ts, _items(flat), n_system))
    return fast, python, ctx.stats


def _items(flat: dict[str, str]) -> list[tuple[str, str]]:
    return [(key, value) for key, value in flat.items() if key not in EXCLUDED_FIELDS]


def _assert_same_records(fast: Read, python: Read) -> None:
    for rid in sorted(fast.keys() & python.keys()):
        assert sorted(python[rid]) == sorted(fast[rid]), f"record {rid}"


@pytest.mark.corpus
@pytest.mark.parametrize("name", list(EXPECTED), ids=lambda name: Path(name).name)
def test_engines_agree_record_for_record(name: str) -> None:
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"shared corpus not found at {CORPUS} (set IRKIT_CORPUS)")
    fast, python, stats = read_both(path)
    counts = (
        sum(map(len, fast.values())),
        sum(map(len, python.values())),
        len(python.keys() - fast.keys()),
        len(fast.keys() - python.keys()),
        stats.skipped_chunks,
        stats.skipped_records,
        stats.status,
    )
    assert counts == EXPECTED[name]
    _assert_same_records(fast, python)


@pytest.mark.corpus
def test_the_selection_covers_the_tricky_fields() -> None:
    paths = [CORPUS / name for name in EXPECTED]
    if not all(path.is_file() for path in paths):
        pytest.skip(f"shared corpus not found at {CORPUS} (set IRKIT_CORPUS)")
    seen = dict.fromkeys(FEATURES, 0)
    for path in paths:
        fast, python, _ = read_both(path)
        for rid in fast.keys() & python.keys():
            flat = dict(python[rid][0][1])
            for feature, test in FEATURES.items():
                seen[feature] += test(flat)
    assert [feature for feature, count in seen.items() if not count] == []


def _inventory(path: Path) -> dict[str, int]:
    """``_evtx_inventory.tsv`` of one corpus folder: file -> records pyevtx-rs read."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t")
        return {f"{path.parent.name}/{row['path']}": int(row["records"]) for row in rows}


@pytest.mark.corpus
def test_python_evtx_reads_at_least_the_inventory_on_dirty_files() -> None:
    dirty = {
        "omerbenamram-evtx/samples/sysmon.evtx": 358,
        "omerbenamram-evtx/samples/sample_with_a_bad_chunk_magic.evtx": 301,
        "omerbenamram-evtx/samples/sample-with-zero-data-size-event.evtx": 449,
        "omerbenamram-evtx/samples/2-vss_0-Microsoft-Windows-RemoteDesktopServices-RdpCoreTS%4Operational.evtx": 1968,  # noqa: E501
        "plaso-evtx/test_data/evtx/System2.evtx": 283,
    }
    if not (CORPUS / "omerbenamram-evtx" / "_evtx_inventory.tsv").is_file():
        pytest.skip(f"shared corpus not found at {CORPUS} (set IRKIT_CORPUS)")
    inventory = {
        **_inventory(CORPUS / "omerbenamram-evtx" / "_evtx_inventory.tsv"),
        **_inventory(CORPUS / "plaso-evtx" / "_evtx_inventory.tsv"),
    }
    measured = {name: sum(map(len, read_both(CORPUS / name)[1].values())) for name in dirty}
    assert measured == dirty
    assert {name: inventory[name] for name in dirty} == {
        "omerbenamram-evtx/samples/sysmon.evtx": 358,
        "omerbenamram-evtx/samples/sample_with_a_bad_chunk_magic.evtx": 270,
        "omerbenamram-evtx/samples/sample-with-zero-data-size-event.evtx": 335,
        "omerbenamram-evtx/samples/2-vss_0-Microsoft-Windows-RemoteDesktopServices-RdpCoreTS%4Operational.evtx": 1910,  # noqa: E501
        "plaso-evtx/test_data/evtx/System2.evtx": 194,
    }
    assert all(measured[name] >= inventory[name] for name in dirty)


@pytest.mark.corpus
def test_records_only_python_evtx_reads_are_whole_records() -> None:
    """What the fast engine misses is real: the ids run on, each record names itself."""
    path = CORPUS / "plaso-evtx/test_data/evtx/System2.evtx"
    if not path.is_file():
        pytest.skip(f"shared corpus not found at {CORPUS} (set IRKIT_CORPUS)")
    fast, python, _ = read_both(path)
    extra = sorted(python.keys() - fast.keys())
    assert extra == list(range(195, 284))
    for rid in extra:
        ((_, items, _),) = python[rid]
        flat = dict(items)
        assert (flat["EventRecordID"], flat["Channel"]) == (str(rid), "Security")
    times = sorted(dict(python[rid][0][1])["SystemTime"] for rid in extra)
    assert (times[0], times[-1]) == ("2015-08-09T09:17:38.765625Z", "2015-08-24T11:39:15.171875Z")


@pytest.mark.corpus
def test_plain_python_evtx_stops_at_the_header_chunk_count() -> None:
    """Why iter_python reads inactive chunks: the dirty header of sysmon.evtx counts one."""
    path = CORPUS / "omerbenamram-evtx/samples/sysmon.evtx"
    if not path.is_file():
        pytest.skip(f"shared corpus not found at {CORPUS} (set IRKIT_CORPUS)")
    with evtx_file.Evtx(str(path)) as log:
        header = log.get_file_header()
        assert (header.chunk_count(), header.is_dirty()) == (1, True)
        assert sum(1 for _ in log.records()) == 41
        assert sum(1 for chunk in header.chunks(include_inactive=True)) == 17
    assert sum(map(len, read_both(path)[1].values())) == 358


# --------------------------------------------------------------------------- no corpus


BUNDLED = sorted((DATA / "evidence").glob("*.evtx")) + sorted((DATA / "dirty").glob("*.evtx"))


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_engines_agree_on_the_bundled_samples(path: Path) -> None:
    fast, python, _ = read_both(path)
    assert fast.keys() <= python.keys()
    _assert_same_records(fast, python)


def test_new_user_security_whole_record() -> None:
    path = DATA / "evidence" / "new-user-security.evtx"
    ctx = _context(path)
    rows = list(iter_python(path, ctx))
    assert (len(rows), ctx.stats.warnings, ctx.stats.status) == (4, [], "ok")
    rid, ts, flat, n_system = rows[0]
    assert (rid, ts, n_system) == (1, "2013-10-23T16:22:39.973500+00:00", 14)
    assert flat == {
        "Provider_Name": "Microsoft-Windows-Security-Auditing",
        "Provider_Guid": "54849625-5478-4994-A5BA-3E3B0328C30D",
        "EventID": "4728",
        "Version": "0",
        "Level": "0",
        "Task": "13826",
        "Opcode": "0",
        "Keywords": "0x8020000000000000",
        "SystemTime": "2013-10-23T16:22:39.973500Z",
        "EventRecordID": "111",
        "ProcessID": "508",
        "ThreadID": "1032",
        "Channel": "Security",
        "Computer": "IE8Win7",
        "MemberName": "-",
        "MemberSid": "S-1-5-21-3463664321-2923530833-3546627382-1000",
        "TargetUserName": "None",
        "TargetDomainName": "IE8Win7",
        "TargetSid": "S-1-5-21-3463664321-2923530833-3546627382-513",
        "SubjectUserSid": "S-1-5-18",
        "SubjectUserName": "WIN-QALA5Q3KJ43$",
        "SubjectDomainName": "WORKGROUP",
        "SubjectLogonId": "0x3e7",
        "PrivilegeList": "-",
    }
    assert list(flat)[:n_system][-1] == "Computer"


def test_truncated_file_is_read_into_its_partial_chunk() -> None:
    path = DATA / "dirty" / "System2.evtx"
    ctx = _context(path)
    rows = list(iter_python(path, ctx))
    assert [rid for rid, *_ in rows] == list(range(1, 284))
    assert (ctx.stats.status, ctx.stats.skipped_records) == ("partial", 1)
    assert [w.kind for w in ctx.stats.warnings] == ["bad-record"]
    assert "record 284 at 0x30bd8 is cut off by EOF" in ctx.stats.warnings[0].message


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty", b""),
        ("text", b"not an event log\n" * 300),
        ("short-header", b"ElfFile\x00" + bytes(7)),
    ],
)
def test_unreadable_input_is_one_warning(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / f"{name}.evtx"
    path.write_bytes(data)
    ctx = _context(path)
    assert list(iter_python(path, ctx)) == []
    assert ctx.stats.status == "failed"
    assert [w.kind for w in ctx.stats.warnings] == ["unreadable"]


def test_missing_file_is_one_warning(tmp_path: Path) -> None:
    ctx = _context(tmp_path / "gone.evtx")
    assert list(iter_python(tmp_path / "gone.evtx", ctx)) == []
    assert (ctx.stats.status, [w.kind for w in ctx.stats.warnings]) == ("failed", ["unreadable"])


def test_header_without_chunks_is_an_empty_log(tmp_path: Path) -> None:
    path = tmp_path / "header.evtx"
    path.write_bytes((DATA / "evidence" / "new-user-security.evtx").read_bytes()[:4096])
    ctx = _context(path)
    assert list(iter_python(path, ctx)) == []
    assert (ctx.stats.status, ctx.stats.warnings) == ("ok", [])


def test_damaged_bytes_never_raise(tmp_path: Path) -> None:
    """Bytes overwritten anywhere, files cut anywhere: warnings, never an exception."""
    source = (DATA / "evidence" / "new-user-security.evtx").read_bytes()
    rng = random.Random(20240601)
    path = tmp_path / "damaged.evtx"
    outcomes = {"ok": 0, "partial": 0, "failed": 0}
    for _ in range(150):
        data = bytearray(source)
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(data))
            data[at : at + rng.choice((1, 2, 4, 8, 64))] = rng.randbytes(8)
        if rng.random() < 0.1:
            data = data[: rng.randrange(len(data))]
        path.write_bytes(bytes(data))
        ctx = _context(path)
        for rid, ts, flat, n_system in iter_python(path, ctx):
            assert isinstance(rid, int) and isinstance(ts, str)
            assert 0 <= n_system <= len(flat)
            orjson.dumps(flat)  # what EvtxSource stores: no lone surrogate, only str
        outcomes[ctx.stats.status] += 1
    assert outcomes["partial"] > 0 and outcomes["ok"] > 0


def test_a_record_that_fails_is_skipped_and_reading_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = 0
    real = python_engine.event_of

    def flaky(roots: list[object]) -> object:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ValueError("broken on purpose")
        return real(roots)  # type: ignore[arg-type]

    monkeypatch.setattr(python_engine, "event_of", flaky)
    path = DATA / "evidence" / "new-user-security.evtx"
    ctx = _context(path)
    rows = list(iter_python(path, ctx))
    assert [rid for rid, *_ in rows] == [1, 3, 4]
    assert (ctx.stats.status, ctx.stats.skipped_records) == ("partial", 1)
    assert [w.kind for w in ctx.stats.warnings] == ["bad-record"]
    assert "broken on purpose" in ctx.stats.warnings[0].message


def test_keyboard_interrupt_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(event: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(python_engine, "flatten_event", interrupt)
    path = DATA / "evidence" / "new-user-security.evtx"
    with pytest.raises(KeyboardInterrupt):
        list(iter_python(path, _context(path)))
