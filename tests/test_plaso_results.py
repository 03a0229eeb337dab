"""plaso's own results as evidence: storage files (``.plaso``) and psort's json_line,
l2tcsv and dynamic outputs, mapped as the plaso source maps event data.

The expectations come from plaso, not from this file: pinfo's event counts and the
storage's own tables for the storage files; psort's outputs of the same storage file (made
here, and upstream's reference outputs in ``end_to_end/``) for the text formats; the plaso
source on the original ``syslog`` for the messages.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from irkit.model import FileStats
from irkit.sources.base import ParseContext, Row
from irkit.sources.plaso import PlasoSource
from irkit.sources.plaso.results import PlasoCsvSource, PlasoJsonSource, PlasoStorageSource

from .conftest import DATA

pytestmark = pytest.mark.corpus

BIN = Path(sys.executable).parent
SOURCES = (PlasoStorageSource(), PlasoJsonSource(), PlasoCsvSource())
#: The samples in tests/data that are copies of corpus files (tests/data/README.md).
BUNDLED = {
    "plaso/pinfo_test.plaso": "test_data/pinfo_test.plaso",
    "plaso/psort_json_line.log": "test_data/end_to_end/json_line.log",
    "plaso/psort_l2tcsv.log": "test_data/end_to_end/l2tcsv.log",
}
#: The corpus files that are plaso's results, and which source takes each; every other
#: file of the folders searched is taken by none.
RESULTS = {
    "test_data/psort_test.plaso": "plaso-storage",
    "test_data/pinfo_test.plaso": "plaso-storage",
    "test_data/end_to_end/json_line.log": "plaso-json",
    **{
        f"test_data/end_to_end/{name}.log": "plaso-csv"
        for name in (
            *("dynamic", "dynamic_event_filter", "dynamic_sliced", "dynamic_time_zone"),
            *("dynamic_without_dynamic_time", "l2tcsv", "l2tcsv_time_zone"),
            *("extract_and_output", "extract_and_output_archive1"),
            *("extract_and_output_archive2", "extract_and_output_with_parsers1"),
            *("extract_and_output_with_time_zone", "extract_and_output_with_winevt_rc"),
            "extract_and_output_without_time_zone",
        )
    },
}
#: Reference outputs upstream made of psort_test.plaso with psort's default settings.
REFERENCES = {
    "json_line.log": {},
    "l2tcsv.log": {},
    "l2tcsv_time_zone.log": {"time_zone": "CET"},
    "dynamic.log": {},
    "dynamic_time_zone.log": {},
    "dynamic_without_dynamic_time.log": {},
}
COLLECTED = "2024-05-01T10:00:00Z"


class ListSink:
    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(self, row: Row) -> None:
        self.rows.append(row)


@dataclasses.dataclass
class Parsed:
    rows: list[Row]
    stats: FileStats

    @property
    def kinds(self) -> collections.Counter[str]:
        return collections.Counter(w.kind for w in self.stats.warnings)


def parse(source: Any, path: Path, collected_at: str = "", **options: str) -> Parsed:
    stats = FileStats(str(path))
    sink = ListSink()
    ctx = ParseContext(path, path.name, "", stats, dict(options), collected_at=collected_at)
    source.parse(ctx, sink)
    return Parsed(sink.rows, stats)


def head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(4096)


def fields_of(row: Row) -> dict[str, str]:
    loaded: dict[str, str] = orjson.loads(row[7])
    return loaded


def micros(ts: str) -> int:
    import datetime as dt

    when = dt.datetime.fromisoformat(ts)
    return (when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def plaso_iso(timestamp: int) -> str:
    """A plaso timestamp as ISO 8601 with µs, written here independently of irkit."""
    import datetime as dt

    when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=timestamp)
    return when.isoformat(timespec="microseconds")


@pytest.fixture(scope="module")
def ptd(corpus: Path) -> Path:
    return corpus / "plaso-test-data"


@pytest.fixture(scope="module")
def storage(ptd: Path) -> Parsed:
    return parse(PlasoStorageSource(), ptd / "test_data" / "psort_test.plaso")


@pytest.fixture(scope="module")
def psort(ptd: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """psort of psort_test.plaso into a file, run once per format and options."""
    folder = tmp_path_factory.mktemp("psort")
    made: dict[tuple[str, ...], Path] = {}

    def run(output: str, *extra: str) -> Path:
        key = (output, *extra)
        if key not in made:
            target = folder / f"{output}{len(made)}.out"
            storage = ptd / "test_data" / "psort_test.plaso"
            made[key] = run_psort(storage, output, target, *extra)
        return made[key]

    return run


#: psort's own command line, without the 15 s it waits after warning that l2tcsv loses
#: detail.
PSORT = (
    "import sys, time; time.sleep = lambda _: None; from plaso.scripts.psort import Main; "
    "sys.argv[0] = 'psort'; sys.exit(Main())"
)


def run_psort(storage: Path, output: str, target: Path, *extra: str) -> Path:
    """``psort -a -o OUTPUT -w TARGET STORAGE`` (``-a``: no event left out as a
    duplicate)."""
    command = [sys.executable, "-c", PSORT, "-q", "-a", "--status_view", "none", *extra]
    command += ["-o", output, "-w", str(target), str(storage)]
    done = subprocess.run(
        command, cwd=target.parent, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0 and target.is_file(), done.stderr[-2000:]
    return target


def pinfo_total(path: Path) -> int:
    """The events pinfo counts in a storage file (``storage_counters``, data types)."""
    done = subprocess.run(
        [str(BIN / "pinfo"), "--output_format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(done.stdout, strict=False)  # pinfo leaves a line break in a key
    total: int = report["storage_counters"]["data_types"]["total"]
    return total


def stored_events(path: Path) -> dict[str, tuple[str, str]]:
    """(ts, timestamp_desc) of each stored event, read with SQLite, not plaso."""
    connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        found = connection.execute("SELECT _identifier, timestamp, timestamp_desc FROM event")
        return {f"event.{ident}": (plaso_iso(ts), desc) for ident, ts, desc in found}
    finally:
        connection.close()


# (a) storage files ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["psort_test.plaso", "pinfo_test.plaso"])
def test_storage_gives_every_event_pinfo_counts(ptd: Path, name: str) -> None:
    path = ptd / "test_data" / name
    events = stored_events(path)
    total = pinfo_total(path)
    assert total == len(events)
    if name == "pinfo_test.plaso":  # upstream's pinfo report of the same file agrees
        report = (path.parent / f"{name}.output.txt").read_text()
        section = report.split("Events generated per data type")[1]
        assert int(re.search(r"Total : (\d+)", section)[1]) == total  # type: ignore[index]
    got = parse(PlasoStorageSource(), path)
    assert (len(got.rows), got.stats.records, got.stats.status) == (total, total, "ok")
    assert {row[8]: (row[0], row[1]) for row in got.rows} == events  # one row per event
    again = parse(PlasoStorageSource(), path)
    assert again.rows == got.rows  # same records: ingesting it again adds nothing


def test_storage_rows_as_the_plaso_source_gives_them(ptd: Path, storage: Parsed) -> None:
    # psort_test.plaso is log2timeline --preferred-year 2012 of syslog/syslog, twice (the
    # second run with --timezone=Iceland, UTC+0): its syslog rows are those of the file,
    # each twice, messages as the plaso source formats them.
    original = parse(PlasoSource(), ptd / "test_data" / "syslog" / "syslog", preferred_year="2012")
    assert original.rows

    def key(row: Row) -> tuple[str, ...]:
        return (row[0], row[1], row[2], row[3], row[4], row[6])

    syslog = collections.Counter(key(r) for r in storage.rows if r[2] != "filestat")
    twice = collections.Counter(key(r) for r in original.rows for _ in range(2))
    assert syslog == twice
    fields = fields_of(next(r for r in storage.rows if r[2] == "text/syslog_traditional"))
    assert fields["data_type"] == "syslog:line" and fields["parser"] == "text/syslog_traditional"
    assert fields["display_name"] == "OS:/tmp/test/test_data/syslog/syslog"
    assert fields["last_written_time"] == next(
        r[0] for r in storage.rows if r[2] == "text/syslog_traditional"
    )
    assert fields["time_zone_assumed"] in ("UTC", "UTC+00:00")  # local time, as read
    tagged = {r[8]: fields_of(r)["tag"] for r in storage.rows if "tag" in fields_of(r)}
    assert tagged == {  # psort's tagging analysis stored these labels
        "event.11": '["exit1","exit2"]',
        "event.30": '["exit1","exit2"]',
        "event.17": '["repeated"]',
        "event.36": '["repeated"]',
    }
    assert storage.kinds == {"plaso-stored-warnings": 1}  # log2timeline's 2 warnings


def event_key(row: Row) -> tuple[str, ...]:
    """ts, ts_desc, artifact, host, user, event_id, message."""
    return (*row[:6], row[6])


def test_log2timeline_storage_gives_what_parsing_the_files_gives(ptd: Path, tmp_path: Path) -> None:
    # log2timeline on a registry hive, a SetupAPI log (local times) and a TeamViewer log;
    # its storage file gives, per original file, the rows the plaso source gives for it.
    folder = tmp_path / "evidence"
    folder.mkdir()
    for name in ("NTUSER.DAT", "setupapi.dev.log", "teamviewer/Connections.txt"):
        shutil.copyfile(ptd / "test_data" / name, folder / Path(name).name)
    storage = tmp_path / "evidence.plaso"
    script = PSORT.replace("psort", "log2timeline")
    command = [sys.executable, "-c", script, "--single_process", "--quiet"]
    command += ["--status_view", "none", "--parsers", "!filestat", "--storage_file"]
    command += [str(storage), str(folder)]
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0 and storage.is_file(), done.stderr[-2000:]
    got = parse(PlasoStorageSource(), storage, collected_at=COLLECTED)
    assert len(got.rows) == len(stored_events(storage)) and got.stats.status == "ok"
    per_file: dict[str, collections.Counter[tuple[str, ...]]] = collections.defaultdict(
        collections.Counter
    )
    for row in got.rows:
        per_file[fields_of(row)["display_name"]][event_key(row)] += 1
    for path in sorted(folder.iterdir()):
        original = parse(PlasoSource(), path, collected_at=COLLECTED)
        assert original.rows, path.name
        expected = collections.Counter(map(event_key, original.rows))
        assert per_file.pop(f"OS:{path}") == expected, path.name
    assert not per_file


# (b) json_line ---------------------------------------------------------------------------


def test_json_line_gives_the_storage_events(psort: Callable[..., Path], storage: Parsed) -> None:
    path = psort("json_line")
    assert [s.name for s in SOURCES if s.matches(head(path), path)] == ["plaso-json"]
    got = parse(PlasoJsonSource(), path)
    assert got.stats.status == "ok" and not got.stats.warnings
    assert len(got.rows) == len(storage.rows) == 38
    assert collections.Counter(map(event_key, got.rows)) == collections.Counter(
        map(event_key, storage.rows)
    )
    assert [r[8] for r in got.rows] == [f"line:{n}" for n in range(1, 39)]
    # The fields too, but the event data's time attributes, which json_line leaves out
    # (and time_zone_assumed, which says how one of them was read).
    times = {"last_written_time", "access_time", "change_time", "modification_time"}

    def fields(rows: list[Row]) -> collections.Counter[bytes]:
        return collections.Counter(
            orjson.dumps(
                {k: v for k, v in fields_of(r).items() if k not in {*times, "time_zone_assumed"}},
                option=orjson.OPT_SORT_KEYS,
            )
            for r in rows
        )

    assert fields(got.rows) == fields(storage.rows)


# (c) l2tcsv and dynamic ------------------------------------------------------------------


def csv_key(row: Row, seconds: bool = False) -> tuple[str, ...]:
    """What psort's CSVs carry of a row: commas in values became spaces; l2tcsv's time is
    to the second."""
    ts = row[0][:19] if seconds else row[0]
    return (ts, row[1], row[2], row[6].replace(",", " "))


def test_l2tcsv_gives_the_storage_events(psort: Callable[..., Path], storage: Parsed) -> None:
    path = psort("l2tcsv")
    assert [s.name for s in SOURCES if s.matches(head(path), path)] == ["plaso-csv"]
    lines = path.read_bytes().count(b"\n") - 1
    got = parse(PlasoCsvSource(), path)
    assert got.stats.status == "ok" and not got.stats.warnings
    assert lines < len(got.rows) == len(storage.rows)  # MACB groups are one line each
    assert collections.Counter(csv_key(r, seconds=True) for r in got.rows) == collections.Counter(
        csv_key(r, seconds=True) for r in storage.rows
    )
    hosts = collections.Counter((r[0][:19], r[1], r[3], r[4]) for r in storage.rows)
    assert collections.Counter((r[0][:19], r[1], r[3], r[4]) for r in got.rows) == hosts
    assert len({r[8] for r in got.rows}) == len(got.rows)
    assert any(r[8].endswith("#2") for r in got.rows)
    fields = fields_of(next(r for r in got.rows if r[2] == "text/syslog_traditional"))
    assert fields["display_name"] == "OS:/tmp/test/test_data/syslog/syslog"
    assert fields["sha256_hash"] and "data_type" not in fields  # l2tcsv has no data type


def test_dynamic_gives_the_storage_events(psort: Callable[..., Path], storage: Parsed) -> None:
    path = psort("dynamic")
    assert [s.name for s in SOURCES if s.matches(head(path), path)] == ["plaso-csv"]
    got = parse(PlasoCsvSource(), path)
    assert got.stats.status == "ok" and not got.stats.warnings
    assert len(got.rows) == len(storage.rows)
    # psort's datetime rounds a sub-microsecond time up where plaso's timestamp truncates
    # it (filestat's nanoseconds): at most 1 µs apart.
    mine = sorted(got.rows, key=lambda r: (*csv_key(r)[1:], r[0]))
    theirs = sorted(storage.rows, key=lambda r: (*csv_key(r)[1:], r[0]))
    for row, stored in zip(mine, theirs, strict=True):
        assert csv_key(row)[1:] == csv_key(stored)[1:]
        assert abs(micros(row[0]) - micros(stored[0])) <= 1
    tags = collections.Counter(fields_of(r).get("tag") for r in got.rows)
    assert tags == collections.Counter(fields_of(r).get("tag") for r in storage.rows)


def test_csv_in_another_time_zone(psort: Callable[..., Path], storage: Parsed) -> None:
    expected = collections.Counter(csv_key(r, seconds=True) for r in storage.rows)
    dynamic = parse(PlasoCsvSource(), psort("dynamic", "--output_time_zone", "Europe/Berlin"))
    assert collections.Counter(csv_key(r, seconds=True) for r in dynamic.rows) == expected
    path = psort("l2tcsv", "--output_time_zone", "Europe/Berlin")
    assert b",CET," in path.read_bytes() and b",CEST," in path.read_bytes()
    plain = parse(PlasoCsvSource(), path)  # the zone is a name: read as UTC, warned
    assert plain.kinds == {"local-time": 1}
    assert all(fields_of(r)["time_zone_assumed"] == "UTC" for r in plain.rows)
    told = parse(PlasoCsvSource(), path, time_zone="Europe/Berlin")
    assert not told.stats.warnings
    assert collections.Counter(csv_key(r, seconds=True) for r in told.rows) == expected


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_upstream_reference_outputs(ptd: Path, storage: Parsed, name: str) -> None:
    # Upstream's psort outputs of the same storage, with psort's default deduplication:
    # every row is one of the storage's events.
    path = ptd / "test_data" / "end_to_end" / name
    source = PlasoJsonSource() if name.startswith("json") else PlasoCsvSource()
    got = parse(source, path, **REFERENCES[name])
    assert got.rows and not got.stats.warnings and got.stats.status == "ok"
    stored = {csv_key(r, seconds=True) for r in storage.rows}
    assert {csv_key(r, seconds=True) for r in got.rows} <= stored


def test_reference_output_with_zero_times(ptd: Path) -> None:
    # extract_and_output_archive2.log: psort --dynamic-time writes utmp's unset times as
    # 1970-01-01: 'Not a time' rows, counted, never 1970.
    path = ptd / "test_data" / "end_to_end" / "extract_and_output_archive2.log"
    zeros = path.read_text().count("\n1970-01-01T00:00:00")
    assert zeros == 2
    got = parse(PlasoCsvSource(), path, collected_at=COLLECTED)
    assert not [r for r in got.rows if r[0].startswith("1970")]
    untimed = [r for r in got.rows if r[1] == "Not a time (collection time)"]
    assert len(untimed) == zeros and got.kinds == {"no-time": 1}
    assert {fields_of(r)["timestamp_desc"] for r in untimed} == {"Content Modification Time"}


# unset times in a storage file and psort's outputs of it -------------------------------


def write_storage(path: Path) -> None:
    """A storage file with plaso's own writer: an LNK whose creation time is a FILETIME
    zero, a launchd entry without a time (plaso's 'Not a time' placeholder event) and an
    event data no event names."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from dfdatetime import filetime, semantic_time
        from dfvfs.path import factory
        from plaso.containers import events
        from plaso.storage.sqlite import writer

    store = writer.SQLiteStorageWriter()
    store.Open(path=str(path))
    stream = events.EventDataStream()
    stream.path_spec = factory.Factory.NewPathSpec("OS", location="/evidence/x.lnk")
    store.AddAttributeContainer(stream)
    lnk = events.EventData(data_type="windows:lnk:link")
    lnk._parser_chain = "lnk"
    lnk.creation_time = filetime.Filetime(timestamp=0)
    lnk.modification_time = filetime.Filetime(timestamp=132_000_000_000_000_000)
    lnk.SetEventDataStreamIdentifier(stream.GetIdentifier())
    store.AddAttributeContainer(lnk)
    for value, desc in (
        (lnk.creation_time, "Creation Time"),
        (lnk.modification_time, "Content Modification Time"),
    ):
        event = events.EventObject()
        event.date_time, event.timestamp, event.timestamp_desc = (
            value,
            value.GetPlasoTimestamp(),
            desc,
        )
        event.SetEventDataIdentifier(lnk.GetIdentifier())
        store.AddAttributeContainer(event)
    launchd = events.EventData(data_type="plist:launchd:entry")
    launchd._parser_chain = "plist/launchd_plist"
    launchd.name = "com.example.agent"
    store.AddAttributeContainer(launchd)
    event = events.EventObject()
    event.date_time, event.timestamp, event.timestamp_desc = semantic_time.NotSet(), 0, "Not a time"
    event.SetEventDataIdentifier(launchd.GetIdentifier())
    store.AddAttributeContainer(event)
    lone = events.EventData(data_type="irkit:test:no_time_mapping")
    lone._parser_chain = "irkit_test"
    lone.hostname = "host1"
    store.AddAttributeContainer(lone)
    store.Close()


def test_unset_times_never_become_1601_or_1970(tmp_path: Path) -> None:
    path = tmp_path / "unset.plaso"
    write_storage(path)
    assert PlasoStorageSource().matches(head(path), path)
    got = parse(PlasoStorageSource(), path, collected_at=COLLECTED)
    by_record = {r[8]: r for r in got.rows}
    assert sorted(by_record) == ["event.2", "event.3", "event_data.3"]
    assert by_record["event.2"][:3] == (
        "2019-04-17T18:40:00.000000+00:00",
        "Content Modification Time",
        "lnk",
    )
    assert fields_of(by_record["event.2"])["creation_time"] == ""  # a stored zero
    for record in ("event.3", "event_data.3"):
        assert by_record[record][:2] == (
            "2024-05-01T10:00:00.000000+00:00",
            "Not a time (collection time)",
        )
    assert by_record["event_data.3"][3] == "host1"
    assert got.kinds == {"no-time": 1} and "stored zero (unset): 1" in got.stats.warnings[0].message
    # psort's outputs of it: each event is one row (the zero one too, 'Not a time').
    for output in ("json_line", "l2tcsv", "dynamic"):
        target = run_psort(path, output, tmp_path / f"unset.{output}")
        zero = b"-11644473600000000" if output == "json_line" else b"01/01/1601,00:00:00"
        zero = b"1601-01-01T00:00:00" if output == "dynamic" else zero
        assert zero in target.read_bytes()  # psort writes the FILETIME zero as 1601
        source = PlasoJsonSource() if output == "json_line" else PlasoCsvSource()
        out = parse(source, target, collected_at=COLLECTED)
        assert len(out.rows) == 3 and out.kinds == {"no-time": 1}, output
        assert not [r for r in out.rows if r[0][:4] in ("1601", "1970", "0000")], output
        descs = collections.Counter(r[1] for r in out.rows)
        assert descs == {"Not a time (collection time)": 2, "Content Modification Time": 1}
        kept = {fields_of(r).get("timestamp_desc") for r in out.rows}
        assert "Creation Time" in kept, output


# (d) recognised by content ----------------------------------------------------------------


def test_only_plaso_results_are_recognised(corpus: Path, ptd: Path) -> None:
    shapes: collections.Counter[str] = collections.Counter()
    folders = [DATA, ptd, corpus / "osquery-samples", corpus / "dfvfs-test-data"]
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            start = head(path)
            taken = [s.name for s in SOURCES if s.matches(start, path)]
            relative = path.relative_to(ptd).as_posix() if path.is_relative_to(ptd) else ""
            if path.is_relative_to(DATA):  # the bundled samples of these sources
                relative = BUNDLED.get(path.relative_to(DATA).as_posix(), "")
            expected = [RESULTS[relative]] if relative in RESULTS else []
            assert taken == expected, path
            if not expected:
                lead = start.lstrip()[:1]
                shapes["sqlite" if start.startswith(b"SQLite format 3\0") else "other"] += 1
                shapes["json"] += lead in (b"{", b"[")
                shapes["csv"] += start.split(b"\n")[0].count(b",") >= 3
    # what was refused: SQLite databases, JSON (osquery results, plaso's json output,
    # Chrome preferences…) and comma-separated files that are not plaso's
    assert shapes["sqlite"] >= 10 and shapes["json"] >= 90 and shapes["csv"] >= 5, shapes


def test_renamed_results_are_still_recognised(
    ptd: Path, psort: Callable[..., Path], tmp_path: Path
) -> None:
    for original, name in (
        (ptd / "test_data" / "psort_test.plaso", "plaso-storage"),
        (psort("json_line"), "plaso-json"),
        (psort("dynamic"), "plaso-csv"),
    ):
        renamed = tmp_path / f"evidence-{name}.bin"
        shutil.copyfile(original, renamed)
        assert [s.name for s in SOURCES if s.matches(head(renamed), renamed)] == [name]


# (e) damaged input ------------------------------------------------------------------------


def test_truncated_storage_is_a_named_warning(ptd: Path, tmp_path: Path) -> None:
    data = (ptd / "test_data" / "psort_test.plaso").read_bytes()
    for size in (4096 * 5, 90_000):
        cut = tmp_path / f"cut{size}.plaso"
        cut.write_bytes(data[:size])
        assert PlasoStorageSource().matches(head(cut), cut)  # its schema page says so
        got = parse(PlasoStorageSource(), cut)
        assert got.rows == [] and got.stats.status == "failed"
        assert got.kinds == {"storage-unreadable": 1}
        assert "truncated" in got.stats.warnings[0].message
    cut = tmp_path / "last-byte.plaso"
    cut.write_bytes(data[:-1])  # what SQLite still reads is read, and the cut is said
    got = parse(PlasoStorageSource(), cut)
    assert len(got.rows) == 38 and got.stats.status == "partial"
    assert got.kinds["truncated"] == 1


def test_damaged_storage_page_costs_only_its_events(ptd: Path, tmp_path: Path) -> None:
    source = ptd / "test_data" / "psort_test.plaso"
    data = bytearray(source.read_bytes())
    connection = sqlite3.connect(f"{source.absolute().as_uri()}?mode=ro", uri=True)
    (blob,) = connection.execute("SELECT _data FROM event_data WHERE _identifier = 1").fetchone()
    connection.close()
    assert zlib.decompress(blob)  # an event data, as plaso stores it
    page = data.find(blob) // 4096  # the page holding the first event data
    assert page > 0
    data[page * 4096 : (page + 1) * 4096] = bytes(4096)
    damaged = tmp_path / "damaged.plaso"
    damaged.write_bytes(bytes(data))
    got = parse(PlasoStorageSource(), damaged)
    assert 0 < len(got.rows) < 38 and got.stats.status == "partial"
    assert got.kinds["bad-event-data"] >= 1
    assert got.stats.skipped_records + len(got.rows) == 38
    stored = stored_events(source)
    assert all(stored[r[8]] == (r[0], r[1]) for r in got.rows)


def test_json_line_with_garbage_is_named_warnings(
    psort: Callable[..., Path], tmp_path: Path
) -> None:
    lines = psort("json_line").read_bytes().splitlines(keepends=True)
    broken = [*lines[:4], b"garbage {\n", *lines[4:9], b"[1, 2]\n", *lines[9:-1]]
    broken.append(lines[-1][: len(lines[-1]) // 2])  # the last line cut short
    path = tmp_path / "broken.json_line"
    path.write_bytes(b"".join(broken))
    assert PlasoJsonSource().matches(head(path), path)
    got = parse(PlasoJsonSource(), path)
    assert len(got.rows) == len(lines) - 1
    assert got.kinds == {"bad-line": 2, "truncated": 1}
    assert got.stats.status == "partial" and got.stats.skipped_records == 3
    messages = [w.message for w in got.stats.warnings]
    assert messages[0].startswith("line 5: not JSON") and messages[1].startswith("line 11:")


def test_csv_cut_short_and_broken_rows(psort: Callable[..., Path], tmp_path: Path) -> None:
    lines = psort("l2tcsv").read_bytes().splitlines(keepends=True)
    broken = [*lines[:3], b"01/22/2012,07:52:33,UTC,M...,too,few\n", *lines[3:-1]]
    broken.append(lines[-1][:40])
    path = tmp_path / "broken.csv"
    path.write_bytes(b"".join(broken))
    got = parse(PlasoCsvSource(), path)
    assert got.kinds == {"bad-row": 1, "truncated": 1}
    assert got.stats.status == "partial"
    whole = parse(PlasoCsvSource(), psort("l2tcsv"))
    last = lines[-1].decode().split(",")[6].count("; ") + 1  # the events of the cut row
    assert len(got.rows) == len(whole.rows) - last
