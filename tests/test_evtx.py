"""The EVTX source on real files: counts, zero warnings, whole expected records."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from irkit.model import FileStats
from irkit.sources.base import ParseContext, Row
from irkit.sources.evtx import EvtxSource, RecordKeys, flatten_event, header_time

from .conftest import DIRTY, EVIDENCE


class ListSink(list[Row]):
    def add(self, row: Row) -> None:
        self.append(row)


def parse(path: Path, engine: str = "evtx") -> tuple[ListSink, FileStats]:
    stats = FileStats(path=str(path))
    ctx = ParseContext(path, path.name, "0" * 64, stats, {"evtx_engine": engine})
    sink = ListSink()
    EvtxSource().parse(ctx, sink)
    return sink, stats


def test_new_user_security_counts_and_whole_record() -> None:
    rows, stats = parse(EVIDENCE / "new-user-security.evtx")
    assert (len(rows), stats.warnings, stats.status) == (4, [], "ok")
    first = rows[0]
    ts, ts_desc, artifact, host, _user, event_id, message, fields, record = first
    assert (ts_desc, artifact) == ("Event Logged", "Security")
    flat = orjson.loads(fields)
    assert flat["EventID"] == event_id
    assert flat["Channel"] == "Security"
    assert flat["Provider_Name"] == "Microsoft-Windows-Security-Auditing"
    assert flat["EventRecordID"] == record
    assert ts == flat["SystemTime"] and ts.endswith("Z")
    assert host == flat["Computer"]
    assert message.startswith(f"{event_id} Security: ")
    assert "\n" not in message


def test_truncated_file_yields_every_complete_record() -> None:
    rows, stats = parse(DIRTY / "System2.evtx")
    assert len(rows) == 194
    assert stats.status == "partial"
    assert [w.kind for w in stats.warnings] == ["truncated"]
    assert "ends 64832 bytes into chunk 2" in stats.warnings[0].message
    assert {r[2] for r in rows} == {"Security"}


def test_dirty_sysmon_bad_chunks_are_counted_warnings() -> None:
    rows, stats = parse(DIRTY / "sysmon.evtx")
    assert len(rows) == 358
    assert stats.skipped_chunks == 8
    assert stats.status == "partial"
    assert all(w.kind == "bad-chunk" and "chunk" in w.message for w in stats.warnings)
    assert len(stats.warnings) == 8
    flat = orjson.loads(rows[0][7])
    # A whole Sysmon process-creation record, flattened to Sigma names.
    assert flat["EventID"] == "1"
    assert flat["Image"] == "C:\\Windows\\SysWOW64\\PING.EXE"
    assert flat["CommandLine"] == "ping  -n 6 127.0.0.1 "
    assert flat["ParentImage"] == "C:\\Windows\\SysWOW64\\cmd.exe"
    assert flat["ProcessId"] == "9112"
    assert flat["Provider_Guid"] == "5770385F-C22A-43E0-BF4C-06F5698FFBD9"
    assert flat["UserID"] == "S-1-5-18"
    assert rows[0][0] == "2017-12-26T13:10:29.136879Z"
    assert rows[0][4] == "NT AUTHORITY\\SYSTEM"


def test_bad_chunk_magic_file() -> None:
    rows, stats = parse(DIRTY / "sample_with_a_bad_chunk_magic.evtx")
    assert len(rows) == 270
    assert stats.skipped_chunks == 2 + 10  # two garbage chunks, ten zeroed inside the count
    kinds = sorted({w.kind for w in stats.warnings})
    assert kinds == ["bad-checksum", "bad-chunk", "zeroed-chunk"]


def test_eventid_with_qualifiers_is_an_integer() -> None:
    event = {
        "System": {
            "Provider": {
                "#attributes": {
                    "Name": "Service Control Manager",
                    "Guid": "{555908d1-a6d7-4695-8e1e-26931d2012f4}",
                }
            },
            "EventID": {"#attributes": {"Qualifiers": 16384}, "#text": 7036},
            "TimeCreated": {"#attributes": {"SystemTime": "2010-11-21T03:55:59.626427Z"}},
            "Execution": {"#attributes": {"ProcessID": 492, "ThreadID": 1188}},
            "Security": None,
            "Channel": "System",
        },
        "EventData": {"param1": "Windows Event Log", "param2": "stopped", "Binary": "6500760065"},
    }
    flat, n_system = flatten_event(event)
    assert flat["EventID"] == "7036"
    assert flat["EventID_Qualifiers"] == "16384"
    assert flat["Provider_Guid"] == "555908D1-A6D7-4695-8E1E-26931D2012F4"
    assert flat["ProcessID"] == "492"
    assert flat["Binary"] == "6500760065"
    assert "UserID" not in flat
    assert list(flat)[n_system:] == ["param1", "param2", "Binary"]


def test_unnamed_data_and_userdata_paths() -> None:
    event = {
        "System": {"EventID": 1102, "Channel": "Security"},
        "EventData": {"Data": {"#text": ["a", "", 3]}},
        "UserData": {
            "LogFileCleared": {
                "#attributes": {
                    "xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog"
                },
                "SubjectUserName": "bob",
                "Nested": {"Deep": True},
            }
        },
    }
    flat, _ = flatten_event(event)
    assert flat["Data_1"] == "a" and flat["Data_2"] == "" and flat["Data_3"] == "3"
    assert flat["LogFileCleared.SubjectUserName"] == "bob"
    assert flat["LogFileCleared.Nested.Deep"] == "true"
    assert not any("xmlns" in key for key in flat)


def test_header_time_is_only_a_fallback() -> None:
    assert header_time("2017-12-26T13:10:29.1368792Z UTC") == "2017-12-26T13:10:29.136879+00:00"


def test_record_keys_unique_for_repeats() -> None:
    keys = RecordKeys()
    got = [keys.key(rid) for rid in (5, 6, 7, 1, 2, 6, 8, 1)]
    assert got == ["5", "6", "7", "1", "2", "6#6", "8", "1#8"]
    assert len(set(got)) == len(got)


@pytest.mark.parametrize(
    "name", ["issue_38.evtx", "dns_log_malformed.evtx", "Application_no_crc32.evtx"]
)
def test_bundled_samples_read_cleanly(name: str) -> None:
    rows, stats = parse(EVIDENCE / name)
    assert rows and stats.warnings == []
    assert all(r[0] for r in rows), "every record has a SystemTime"


def test_broken_engine_json_is_a_skipped_record_not_a_crash(tmp_path: Path) -> None:
    """One damaged byte in a name makes pyevtx-rs emit invalid JSON for that record."""
    data = bytearray((EVIDENCE / "new-user-security.evtx").read_bytes())
    data[0x164E] = 0x01  # the 'C' of 'Computer' in the chunk's string table
    damaged = tmp_path / "damaged.evtx"
    damaged.write_bytes(bytes(data))
    rows, stats = parse(damaged)
    assert stats.status == "partial"
    assert stats.skipped_records + len(rows) == 4
    assert stats.skipped_records >= 1
    assert any(w.kind == "bad-record" and "JSON" in w.message for w in stats.warnings)
