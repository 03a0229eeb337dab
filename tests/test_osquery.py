"""The osquery source on real results logs, in every shape osquery writes them."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard

from irkit.artifacts import artifacts_dir
from irkit.errors import IrkitError
from irkit.model import FileStats
from irkit.sources import sniff
from irkit.sources.base import ParseContext, Row
from irkit.sources.osquery import OsquerySource
from irkit.sources.osquery_format import HEAD
from irkit.sources.osquery_tables import TableCatalog, load_tables, short_query
from irkit.sources.osquery_values import calendar_micros, text

from .conftest import DATA, corpus_path, run_irkit

OSQ = DATA / "osquery"
BEATS_TEST = OSQ / "test.log"
EXCERPT = OSQ / "osqueryd.results.ubuntu-excerpt.log"
MAIN_DESCS = {"osquery added", "osquery removed", "osquery snapshot"}


class ListSink:
    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(self, row: Row) -> None:
        self.rows.append(row)


def parse(path: Path, collected_at: str = "") -> tuple[list[Row], FileStats]:
    stats = FileStats(str(path))
    ctx = ParseContext(path, str(path), "", stats, collected_at=collected_at)
    sink = ListSink()
    OsquerySource().parse(ctx, sink)
    return sink.rows, stats


def fields(row: Row) -> dict[str, str]:
    loaded: dict[str, str] = orjson.loads(row[7])
    return loaded


def utc(seconds: int | str) -> str:
    when = dt.datetime.fromtimestamp(int(seconds), dt.UTC)
    return when.isoformat(timespec="microseconds")


def sniffs(path: Path) -> bool:
    with path.open("rb") as handle:
        found = sniff(handle.read(4096), path)
    return found is not None and found.name == "osquery"


@pytest.fixture(scope="module")
def osquery_corpus() -> Path:
    path = corpus_path() / "osquery-samples"
    if not path.is_dir():
        pytest.skip(f"osquery samples not found at {path} (set IRKIT_CORPUS)")
    return path


def corpus_logs(root: Path) -> dict[str, Path]:
    beats = root / "elastic-beats" / "filebeat" / "module" / "osquery" / "result" / "test"
    return {
        "integrations": root
        / "elastic-integrations/packages/osquery/_dev/deploy/docker/sample_logs/osquery.log",
        "beats-test": beats / "test.log",
        "ubuntu": beats / "osqueryd.results.sample.log",
    }


# --- every line of the real samples -----------------------------------------------------------


@pytest.mark.parametrize(
    ("which", "lines", "extra"),
    [("integrations", 10, 10), ("beats-test", 2, 0), ("ubuntu", 500, 2)],
)
def test_every_line_of_the_corpus_samples_is_an_event(
    osquery_corpus: Path, which: str, lines: int, extra: int
) -> None:
    path = corpus_logs(osquery_corpus)[which]
    assert sniffs(path)
    rows, stats = parse(path)
    assert stats.warnings == [] and stats.skipped_records == 0 and stats.status == "ok"
    main = [r for r in rows if r[1] in MAIN_DESCS]
    assert len(main) == lines and len(rows) == lines + extra == stats.records
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    for number, (obj, row) in enumerate(zip(raw, main, strict=True), 1):
        ts, ts_desc, artifact, host, _user, event_id, message, _, record = row
        assert record == str(number)
        assert ts == utc(obj["unixTime"])
        assert ts_desc == f"osquery {obj['action']}" and event_id == obj["action"]
        assert artifact == obj["name"]
        assert host == obj.get("hostIdentifier", "")
        flat = fields(row)
        assert {k: flat[k] for k in obj["columns"]} == obj["columns"]
        for key, value in obj.get("decorations", {}).items():
            assert flat[f"decorations.{key}"] == value
        assert message.startswith(f"{short_query(obj['name'])} {obj['action']}")
        assert "\n" not in message


def test_a_line_without_host_identifier_or_decorations(osquery_corpus: Path) -> None:
    rows, stats = parse(corpus_logs(osquery_corpus)["beats-test"])
    assert stats.warnings == []
    first, second = rows
    assert (first[3], first[4]) == ("192-168-0-4.rdsnet.ro", "tsg")
    assert (second[3], second[4]) == ("", "")  # nothing names the host: left empty
    assert second[0] == "2017-12-28T14:40:18.000000+00:00"
    assert "osquery.hostIdentifier" not in fields(second)
    assert second[6] == "mounts removed: path=/private/var/vm device=/dev/disk1s4 type=apfs"


def test_ubuntu_log_agrees_with_upstream_expected_output(osquery_corpus: Path) -> None:
    path = corpus_logs(osquery_corpus)["ubuntu"]
    expected = json.loads(Path(f"{path}-expected.json").read_text())
    assert len(expected) == 100
    offsets, offset = {}, 0
    for number, line in enumerate(path.read_bytes().splitlines(keepends=True), 1):
        offsets[offset] = str(number)
        offset += len(line)
    rows, _ = parse(path)
    by_record = {r[8]: r for r in rows if r[1] in MAIN_DESCS}
    for doc in expected:
        row = by_record[offsets[doc["log.offset"]]]
        stamp = dt.datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00"))
        assert row[0] == stamp.isoformat(timespec="microseconds")
        assert row[2] == doc["osquery.result.name"]
        assert row[3] == doc["host.hostname"]
        assert row[5] == doc["event.action"]
        assert row[4] == doc["user.name"]
        flat = fields(row)
        prefix = "osquery.result.columns."
        for key, value in doc.items():
            if key.startswith(prefix):
                assert flat[key.removeprefix(prefix)] == value, key
        assert flat["decorations.host_uuid"] == doc["host.id"]


# --- the shapes osquery writes, built from real rows --------------------------------------------


def real_lines(count: int) -> list[dict[str, Any]]:
    return [json.loads(line) for line in EXCERPT.read_text().splitlines()[:count]]


def header_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("columns", "action")}


def write_lines(path: Path, objs: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(o, separators=(",", ":")) + "\n" for o in objs))
    return path


def test_batch_and_snapshot_lines_give_the_rows_of_the_event_lines(tmp_path: Path) -> None:
    events = real_lines(12)[1:9]  # 8 kernel_modules rows with the same header
    header = header_of(events[0])
    added = [e["columns"] for e in events[:5]]
    removed = [e["columns"] for e in events[5:]]
    # osquery writes diffResults / snapshot first, then the header (core/query.cpp).
    batch = {"diffResults": {"added": added, "removed": removed}, **header}
    snap = {"snapshot": added + removed, "action": "snapshot", **header}
    snap_events = [{**header, "columns": c, "action": "snapshot"} for c in added]
    path = write_lines(tmp_path / "results.log", [batch, snap, *snap_events])
    assert sniffs(path)
    rows, stats = parse(path)
    assert stats.warnings == []
    reference, _ = parse(write_lines(tmp_path / "events.log", events))
    assert len(rows) == 8 + 8 + 5 == stats.records
    batch_rows, snap_rows, event_rows = rows[:8], rows[8:16], rows[16:]
    assert [r[8] for r in batch_rows] == [f"1#{i}" for i in range(1, 9)]
    assert [r[8] for r in snap_rows] == [f"2#{i}" for i in range(1, 9)]
    assert [r[8] for r in event_rows] == ["3", "4", "5", "6", "7"]
    assert [r[5] for r in batch_rows] == ["added"] * 5 + ["removed"] * 3
    assert {r[1] for r in snap_rows + event_rows} == {"osquery snapshot"}

    # The same rows whatever the layout: same time, query, host, user, columns.
    def without_action(row: Row) -> dict[str, str]:
        return {k: v for k, v in fields(row).items() if k != "osquery.action"}

    for ref, row in zip(reference + reference[:5], batch_rows + snap_rows, strict=False):
        assert row[0] == ref[0] and row[2:5] == ref[2:5] == (
            "pack_it-compliance_kernel_modules", "ubuntu-xenial", "ubuntu"
        )  # fmt: skip
        assert without_action(row) == without_action(ref)
        assert row[6].split(":", 1)[1] == ref[6].split(":", 1)[1]


def test_batch_with_a_snapshot_first_key_is_recognised_beyond_the_head(tmp_path: Path) -> None:
    events = real_lines(12)[1:12]
    header = header_of(events[0])
    rows_ = [e["columns"] for e in events] * 20  # a line far longer than 4 KiB
    path = write_lines(tmp_path / "snap.log", [{"snapshot": rows_, "action": "snapshot", **header}])
    assert path.stat().st_size > 4 * HEAD
    assert sniffs(path)
    rows, stats = parse(path)
    assert stats.warnings == [] and len(rows) == len(rows_)
    assert rows[-1][8] == f"1#{len(rows_)}"


def osqueryi_array(objs: list[dict[str, str]]) -> str:
    # osqueryi --json: "[", one row object per line, "]" (devtools/printer.cpp jsonPrint).
    body = ",\n".join("  " + json.dumps(o, separators=(",", ":")) for o in objs)
    return "[\n" + body + "\n]\n"


def test_osqueryi_array_is_timed_by_collection_or_file_time(tmp_path: Path) -> None:
    columns = [e["columns"] for e in real_lines(12)[1:12]]
    path = tmp_path / "kernel_modules.json"
    path.write_text(osqueryi_array(columns))
    os.utime(path, (1_700_000_000, 1_700_000_000))
    assert sniffs(path)
    rows, stats = parse(path)
    assert stats.warnings == [] and len(rows) == 11 == stats.records
    assert {r[1] for r in rows} == {"osquery collected (file modified time)"}
    assert {r[0] for r in rows} == {utc(1_700_000_000)}
    assert rows[0][2] == "kernel_modules" and rows[0][5] == "snapshot"
    assert [r[8] for r in rows[:3]] == ["2#1", "3#2", "4#3"]
    assert rows[0][6] == "kernel_modules snapshot: name=ufs status=Live size=73728"
    assert {k: fields(rows[0])[k] for k in columns[0]} == columns[0]
    timed, stats = parse(path, collected_at="2024-05-01T10:00:00Z")
    assert stats.warnings == []
    assert {r[1] for r in timed} == {"osquery collected"}
    assert {r[0] for r in timed} == {"2024-05-01T10:00:00.000000+00:00"}
    # Any layout of the same array gives the same rows (pretty-printed: other line numbers).
    pretty = tmp_path / "pretty" / "kernel_modules.json"
    pretty.parent.mkdir()
    pretty.write_text(json.dumps(columns, indent=2))
    os.utime(pretty, (1_700_000_000, 1_700_000_000))
    again, _ = parse(pretty)
    assert [r[:8] for r in again] == [r[:8] for r in rows]


def test_an_osqueryi_row_longer_than_the_head_is_recognised(tmp_path: Path) -> None:
    row = {"pid": "4242", "name": "java", "cmdline": "java " + "-Dx=y " * 1500, "path": "/bin/java"}
    path = tmp_path / "processes.json"
    path.write_text(osqueryi_array([row, row]))
    assert sniffs(path)
    rows, stats = parse(path)
    assert stats.warnings == [] and len(rows) == 2


@pytest.mark.parametrize(
    "content",
    [
        b"[1, 2, 3]",
        b'[{"a": 1, "b": "2"}]',
        b'[{"a": "1", "b": {"c": "d"}}]',
        b'[{"a": "1"}, ',  # the first object is whole: fine, but see the next
        b"[]",
        b'{"name": "x", "value": 3}\n',
        b'{"@timestamp": "2017-12-07T12:21:20.000Z", "message": "hello"}\n',
        b"I1228 12:34:56.123456  1234 main.cc:12] some other glog program\n",
        b"just text\n",
    ],
)
def test_other_json_and_text_is_not_osquery(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(content)
    found = sniffs(path)
    assert found == (content == b'[{"a": "1"}, ')  # a flat all-string object: the documented rule


def test_upstream_expected_json_is_not_taken_for_osqueryi(osquery_corpus: Path) -> None:
    path = corpus_logs(osquery_corpus)["ubuntu"]
    assert not sniffs(Path(f"{path}-expected.json"))


# --- compression ---------------------------------------------------------------------------------


def test_gz_and_zst_copies_give_identical_rows(osquery_corpus: Path, tmp_path: Path) -> None:
    path = corpus_logs(osquery_corpus)["ubuntu"]
    data = path.read_bytes()
    gz = tmp_path / "osqueryd.results.log.1.gz"
    gz.write_bytes(gzip.compress(data))
    zst = tmp_path / "osqueryd.results.log.2.zst"
    zst.write_bytes(zstandard.ZstdCompressor(level=19).compress(data))
    plain_rows, _ = parse(path)
    for copy in (gz, zst):
        assert sniffs(copy)
        assert sniffs(copy.rename(copy.with_suffix(".bin")))  # content, not name
        rows, stats = parse(copy.with_suffix(".bin"))
        assert stats.warnings == []
        assert rows == plain_rows


def test_a_cut_gz_keeps_the_rows_before_the_cut(tmp_path: Path) -> None:
    data = gzip.compress(EXCERPT.read_bytes() * 40)
    path = tmp_path / "cut.log.gz"
    path.write_bytes(data[: len(data) // 2])
    rows, stats = parse(path)
    assert rows and stats.status == "partial"
    assert {w.kind for w in stats.warnings} <= {"read-error", "truncated"}
    assert any(w.kind == "read-error" for w in stats.warnings)


# --- bad lines ------------------------------------------------------------------------------------


def test_bad_lines_are_named_counted_warnings(tmp_path: Path) -> None:
    good = EXCERPT.read_text().splitlines()
    lines = [
        good[0],
        "this is not json",
        good[1],
        "[1, 2]",
        '{"name": "x", "unixTime": 1}',
        '{"columns": "not an object", "action": "added", "name": "x"}',
        "",
        good[2],
        good[3][:100],  # the last line, cut short
    ]
    path = tmp_path / "osqueryd.results.log"
    path.write_text("\n".join(lines))
    rows, stats = parse(path)
    assert [r[8] for r in rows] == ["1", "3", "8"]
    assert stats.records == 3 and stats.skipped_records == 5 and stats.status == "partial"
    kinds = [(w.kind, w.message.split(":")[0]) for w in stats.warnings]
    assert kinds == [
        ("bad-line", "line 2"),
        ("bad-shape", "line 4"),
        ("bad-shape", "line 5"),
        ("bad-shape", "line 6"),
        ("truncated", "line 9"),
    ]


def test_numerics_and_calendar_time_fallback(tmp_path: Path) -> None:
    obj = real_lines(2)[1]
    numeric = {**obj, "unixTime": 1512669435, "epoch": 0, "counter": 3, "numerics": True}
    numeric["columns"] = {"name": "ufs", "size": 73728, "ratio": 0.5, "live": True, "x": None}
    no_unix = {**obj, "unixTime": 0}
    no_time = {**obj, "unixTime": "0", "calendarTime": "no_time"}
    path = write_lines(tmp_path / "n.log", [numeric, no_unix, no_time])
    rows, stats = parse(path)
    flat = fields(rows[0])
    assert (flat["size"], flat["ratio"], flat["live"], flat["x"]) == ("73728", "0.5", "true", "")
    assert (flat["osquery.unixTime"], flat["osquery.counter"]) == ("1512669435", "3")
    assert rows[0][0] == rows[1][0] == "2017-12-07T17:57:15.000000+00:00"
    assert rows[2][1] == "osquery added (file modified time)"
    assert [w.kind for w in stats.warnings] == ["no-time"]
    assert calendar_micros("Thu Dec  7 12:21:20 2017 UTC") == 1512649280 * 10**6
    assert calendar_micros("Tue Sep 30 17:37:30 2014") == 1412098650 * 10**6
    assert text(10**20) == "100000000000000000000" and text([1, {"b": 2, "a": 1}]) == (
        '[1,{"a":1,"b":2}]'
    )


def test_decorations_top_level_and_host_order(tmp_path: Path) -> None:
    obj = real_lines(2)[1]
    top = {k: v for k, v in obj.items() if k not in ("hostIdentifier", "decorations")}
    top["host_uuid"] = "72E1287B-D1BC-4FC6-B9D8-64F4352776A9"
    top["hostname"] = "legacy-host"  # osquery 1.x wrote the host as "hostname"
    deco = {k: v for k, v in obj.items() if k != "hostIdentifier"}
    deco["decorations"] = {"host_uuid": "72E1287B", "computer_name": "xenial-box"}
    rows, stats = parse(write_lines(tmp_path / "d.log", [top, deco]))
    assert stats.warnings == []
    assert rows[0][3] == "legacy-host"
    assert fields(rows[0])["decorations.host_uuid"] == "72E1287B-D1BC-4FC6-B9D8-64F4352776A9"
    assert rows[1][3] == "xenial-box"  # computer_name before host_uuid


# --- status logs ----------------------------------------------------------------------------------

GLOG = """Log file created at: 2017/12/28 14:39:58
Running on machine: 192-168-0-4.rdsnet.ro
Log line format: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg
I1228 14:39:58.123456  1234 init.cpp:380] osqueryd started [version=2.10.2]
W1228 14:40:01.000001  1240 options.cpp:97] Cannot set unknown or invalid flag: disable_fsevents
E1228 14:40:08.500000  1241 scheduler.cpp:102] Error executing query pack_x_y: no such table
  continued detail
I0101 00:00:01.000000  1234 watcher.cpp:550] a line after new year
"""


def test_glog_status_files_become_events(tmp_path: Path) -> None:
    path = tmp_path / "osqueryd.INFO.20171228-143958.1234"
    path.write_text(GLOG)
    assert sniffs(path)
    rows, stats = parse(path)
    assert stats.warnings == [] and stats.records == 4
    assert [r[5] for r in rows] == ["INFO", "WARNING", "ERROR", "INFO"]
    assert [r[0] for r in rows] == [
        "2017-12-28T14:39:58.123456+00:00",
        "2017-12-28T14:40:01.000001+00:00",
        "2017-12-28T14:40:08.500000+00:00",
        "2018-01-01T00:00:01.000000+00:00",
    ]
    assert {r[1] for r in rows} == {"osquery status (host local time)"}
    assert {r[2] for r in rows} == {"osquery status"}
    assert {r[3] for r in rows} == {"192-168-0-4.rdsnet.ro"}
    assert [r[8] for r in rows] == ["4", "5", "6", "8"]
    assert rows[2][6] == (
        "ERROR scheduler.cpp:102] Error executing query pack_x_y: no such table   continued detail"
    )
    assert fields(rows[0])["thread"] == "1234"


def test_json_status_lines_become_events(tmp_path: Path) -> None:
    lines = [
        {"hostIdentifier": "ubuntu-xenial", "calendarTime": "Thu Dec  7 17:57:15 2017 UTC",
         "unixTime": "1512669435", "severity": "0", "filename": "scheduler.cpp", "line": "83",
         "message": "Executing scheduled query", "version": "2.10.2",
         "decorations": {"host_uuid": "72E1287B-D1BC-4FC6-B9D8-64F4352776A9"}},
        {"hostIdentifier": "ubuntu-xenial", "calendarTime": "Thu Dec  7 17:57:16 2017 UTC",
         "unixTime": 1512669436, "severity": 2, "filename": "tls.cpp", "line": 201,
         "message": "TLS request failed"},
    ]  # fmt: skip
    path = write_lines(tmp_path / "status.log", lines)
    assert sniffs(path)
    rows, stats = parse(path)
    assert stats.warnings == []
    assert [(r[0], r[1], r[3], r[5]) for r in rows] == [
        ("2017-12-07T17:57:15.000000+00:00", "osquery status", "ubuntu-xenial", "INFO"),
        ("2017-12-07T17:57:16.000000+00:00", "osquery status", "ubuntu-xenial", "ERROR"),
    ]
    assert rows[1][6] == "ERROR tls.cpp:201] TLS request failed"
    assert fields(rows[0])["decorations.host_uuid"] == "72E1287B-D1BC-4FC6-B9D8-64F4352776A9"


# --- time columns ---------------------------------------------------------------------------------


def test_real_time_columns_give_extra_events(osquery_corpus: Path) -> None:
    rows, _ = parse(EXCERPT)
    started = [r for r in rows if r[1] == "osquery Started"]
    assert len(started) == 1 and started[0][0] == utc(1512669421)
    assert started[0][8] == "13" and fields(started[0])["osquery.time_column"] == "start_time"
    main = next(r for r in rows if r[8] == "13" and r[1] == "osquery added")
    assert main[0] == utc(1512669438)
    rows, _ = parse(corpus_logs(osquery_corpus)["integrations"])
    executed = [r for r in rows if r[1] == "Query Last Executed"]
    assert len(executed) == 10 and executed[0][0] == utc(1515423094)
    assert executed[0][6].startswith("Query Last Executed (schedule.last_executed): name=")


def test_process_and_file_times_and_invalid_times(tmp_path: Path) -> None:
    header = header_of(real_lines(2)[1])
    proc = {"pid": "4242", "parent": "1", "name": "kworker", "path": "/tmp/.x/kworker",
            "cmdline": "/tmp/.x/kworker --daemon", "start_time": "1512669400"}  # fmt: skip
    lines = [
        {**header, "name": "pack_incident-response_processes", "columns": proc, "action": "added"},
        *(
            {**header, "name": "processes", "columns": {**proc, "start_time": t}, "action": "added"}
            for t in ("0", "-1", "", "abc", "86400")
        ),
        # ossec-rootkit: SELECT * FROM file, named after the rootkit: the signature decides
        {**header, "name": "pack_ossec-rootkit_adore_worm", "action": "added", "columns": {
            "path": "/usr/bin/adore", "mode": "0755", "size": "1024", "uid": "0", "inode": "12",
            "atime": "1512669000", "mtime": "1512660000", "ctime": "1512661000", "btime": "0"}},
    ]  # fmt: skip
    rows, stats = parse(write_lines(tmp_path / "p.log", lines))
    assert stats.warnings == []
    descs = [(r[8], r[1]) for r in rows]
    assert descs == [
        ("1", "osquery added"),
        ("1", "Process Started"),
        *((str(n), "osquery added") for n in range(2, 7)),
        ("7", "osquery added"),
        ("7", "File Modified"),
        ("7", "File Accessed"),
        ("7", "File Metadata Changed"),
    ]
    assert (
        rows[0][6]
        == "processes added: pid=4242 path=/tmp/.x/kworker cmdline=/tmp/.x/kworker --daemon"
    )
    assert rows[1][0] == utc(1512669400)
    assert rows[-3][0] == utc(1512660000) and rows[-3][6].startswith(
        "File Modified (adore_worm.mtime)"
    )
    assert len({(r[8], r[1]) for r in rows}) == len(rows)  # unique uid keys


def test_time_columns_yaml_lints() -> None:
    path = artifacts_dir() / "osquery" / "time_columns.yaml"
    catalog = TableCatalog.from_file(path)
    assert catalog.specs and catalog.specs == load_tables().specs
    tables = [s.table for s in catalog.specs]
    assert len(tables) == len(set(tables))
    for spec in catalog.specs:
        assert spec.table == spec.table.lower() and spec.queries and spec.message
        assert all(q == q.lower() and q.strip() for q in spec.queries)
        descs = [desc for _, desc, _ in spec.times]
        assert all(d.strip() and d == d.strip() for d in descs), spec.table
        assert len(set(descs)) == len(descs), spec.table
        assert not set(descs) & MAIN_DESCS and not any(
            d.startswith("osquery status") for d in descs
        )
        assert not any(d.startswith("osquery collected") for d in descs)
        if spec.signature:
            assert {c for c, _, _ in spec.times} <= spec.signature | {c for c, _, _ in spec.times}
    for bad in (
        "tables: {x: {queries: [x]}}",
        "tables: {x: {queries: [], message: [a]}}",
        "tables: {x: {queries: [x], message: [a], times: {t: ''}}}",
        "tables: {x: {queries: [x], message: [a], times: {t: {desc: T, format: iso}}}}",
        "tables: {x: {queries: [x], message: [a], extra: 1}}",
        "[]",
    ):
        broken = Path(os.environ.get("TMPDIR", "/tmp")) / f"irkit-osq-{os.getpid()}.yaml"
        broken.write_text(bad)
        try:
            with pytest.raises(IrkitError):
                TableCatalog.from_file(broken)
        finally:
            broken.unlink()


def test_pack_prefix() -> None:
    assert short_query("pack_it-compliance_mounts") == "mounts"
    assert short_query("pack/Global/Running Processes") == "Running Processes"
    assert short_query("system_info") == "system_info"
    assert short_query("pack_x_") == "pack_x_"


# --- the command line ---------------------------------------------------------------------------


def test_parse_and_timeline_through_the_cli(osquery_corpus: Path, tmp_path: Path) -> None:
    logs = corpus_logs(osquery_corpus)
    case = tmp_path / "case"
    inputs = [str(logs["ubuntu"]), str(logs["beats-test"]), str(logs["integrations"]), str(OSQ)]
    result = run_irkit("parse", *inputs, "--case", str(case), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    # 500 + 2 + 10 lines, 2 + 10 time events; the bundled copies: test.log is the same file
    # (deduplicated by sha256) and the excerpt adds 13 lines and 1 time event.
    assert summary["warnings"] == 0 and summary["skipped_records"] == 0
    assert summary["records"] == 512 + 12 + 14
    assert summary["events_added"] == 538
    again = run_irkit("parse", *inputs, "--case", str(case), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["events_added"] == 0
    out = tmp_path / "timeline.csv"
    timeline = run_irkit("timeline", str(case), "--format", "csv", "-o", str(out))
    assert timeline.returncode == 0, timeline.stderr
    with out.open(encoding="utf-8", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 538
    assert {r["source"] for r in table} == {"osquery"}
    first = next(r for r in table if r["message"].startswith("system_info added"))
    assert first["datetime"].startswith("2017-12-07T12:21:20")
    assert first["host"] == "ubuntu-xenial" and first["artifact"] == "system_info"
    assert first["timestamp_desc"] == "osquery added" and first["event_id"] == "added"


def test_bundled_samples_sniff_and_parse_cleanly() -> None:
    for path in (BEATS_TEST, EXCERPT):
        assert sniffs(path)
        rows, stats = parse(path)
        assert stats.warnings == [] and rows
    head = io.BytesIO(EXCERPT.read_bytes()).read(HEAD)
    assert OsquerySource().matches(head, Path("renamed.bin"))
