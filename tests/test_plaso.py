"""PlasoSource: plaso's own parsers run in-process on plaso's own test data.

The expectations come from the corpus, not from this file: ``plaso-test-data/
_log2timeline_rows.tsv`` gives, per file, plaso's upstream test expectation (SOURCE.md) and
what log2timeline + psort produced on this machine (event data in the storage file, psort
rows). A file whose upstream expectation is a whole-file "N event_data[, M warnings]" must
give exactly that; every other file the event data log2timeline stored. The few places
irkit differs on purpose are listed in ``DIFFERENCES`` with the reason.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from irkit.errors import UsageError
from irkit.model import FileStats, one_line
from irkit.sources.base import ParseContext, Row
from irkit.sources.plaso import PlasoSource
from irkit.sources.plaso.mapping import Mapping, load_mapping
from irkit.sources.plaso.options import PlasoOptions
from irkit.sources.plaso.probe import probe
from irkit.sources.plaso.result import Result
from irkit.sources.plaso.run import FileRun

pytestmark = pytest.mark.corpus

#: Files where irkit gives other event data than log2timeline did, and why.
DIFFERENCES = {
    # A registry plugin (windows_typed_urls_time) raises AttributeError on a key it does
    # not expect; log2timeline stops the whole hive there (536 event data, 1 warning).
    # irkit contains the plugin's error (a parser-error warning) and reads the rest.
    "test_data/regf/NTUSER.DAT": "plugin error contained: the rest of the hive is read",
}
#: Files where plaso on this machine (log2timeline too) does not give upstream's count.
UPSTREAM_GAPS = {
    "test_data/{C519A76A-D9B5-4F85-B667-5FAC08E0E1B4}.mdb": "23 user_access_logging, not 25",
    "test_data/plist/InstallHistory.plist": "plaso's plist parser raises on a top-level array",
    "test_data/windows_firewall.log": "winfirewall's signature wants a trailing space",
}
#: Files a plaso parser takes (its format signature matched, or it warned or broke on
#: it) without finding an event.
TAKEN_EMPTY = {
    "test_data/ntuser.dat.LOG": "regf header, no root key (upstream: 0 event_data)",
    "test_data/wal_database.db": "SQLite, no plaso plugin for its tables",
    "test_data/psort_test.plaso": "plaso storage (SQLite): not an artifact",
    "test_data/pinfo_test.plaso": "plaso storage (SQLite): not an artifact",
    "test_data/plist/InstallHistory.plist": "the plist parser takes it and breaks on it",
}
EPOCH_1970 = "1970-01-01T00:00:00.000000+00:00"
EPOCH_1601 = "1601-01-01T00:00:00.000000+00:00"
_UPSTREAM = re.compile(
    r"^(?:(?:olecf )?whole file: )?([\d,]+) event_data(?: \([^)]*\))?"
    r"(?:, ([\d,]+) (?:extraction )?warnings?)?"
)

# The families of plaso-test-data/SOURCE.md, a representative subset of each.
FAMILIES = {
    "registry": [
        "NTUSER.DAT",
        "NTUSER-RunTests.DAT",
        "NTUSER-CCLEANER.DAT",
        "ntuser.dat.LOG",
        "regf/SAM",
        "regf/100_sub_keys.hiv",
        "regf/corrupt_sub_key_list.hiv",
        "winreg/win10-Amcache.hve",
    ],
    "windows-files": [
        "winprefetch/CMD.EXE-087B4001.pf",
        "winprefetch/PING.EXE-B29F6629.pf",
        "winprefetch/TASKHOST.EXE-3AE259FC.pf",
        "winprefetch/WUAUCLT.EXE-830BCC14.pf",
        "winprefetch/BYTECODEGENERATOR.EXE-C1E9BCE6.pf",
        "NeroInfoTool.lnk",
        "unpaired_surrogate.lnk",
        "automaticDestinations-ms/1b4dd67f29cb1962.automaticDestinations-ms",
        "customDestinations-ms/5afe4de1b92fc382.customDestinations-ms",
        "recycler/$II3DF3L.zip",
        "recycler/$I103S5F.jpg",
        "recycler/INFO2",
        "wintask.job",
    ],
    "windows-logs": [
        "SysEvent.Evt",
        "setupapi.setup.log",
        "windows/ActivitiesCache.db",
        "{C519A76A-D9B5-4F85-B667-5FAC08E0E1B4}.mdb",
        "PcaAppLaunchDic.txt",
        "sccm_various.log",
        "iis/iis6.log",
        "teamviewer/Connections.txt",
        "Document.doc",
        "Document.docx",
    ],
    "browser": [
        "chrome/History",
        "chrome/History-59.0.3071.86",
        "chrome/Cookies-68.0.3440.106",
        "Preferences",
        "firefox/places.sqlite",
        "firefox/downloads.sqlite",
        "safari/History.db",
        "msiecf/History.IE5/index.dat",
        "msiecf/Content.IE5/index.dat",
    ],
    "linux": [
        "syslog/syslog",
        "syslog/syslog_rsyslog",
        "syslog/syslog_rsyslog_SyslogProtocol23Format",
        "syslog.gz",
        "syslog.bz2",
        "syslog.xz",
        "utmp/utmp",
        "utmp/wtmp.1",
        "utmp/utmp_s390",
        "bash_history",
        "dpkg.log",
        "apt_history.log",
        "selinux.log",
        ".viminfo",
        "docker/containers/e7d0b7ea5ccf08366e2b0c8afa2318674e8aefe802315378125d2bb83fe3110c/"
        "container-json.log",
    ],
    "macos": [
        "plist/com.apple.airport.preferences.plist",
        "plist/History.plist",
        "plist/launchd.plist",
        "backgrounditems.btm",
        "sqlite/quarantine.db",
        "macos/TCC-test.db",
        "utmpx_mac",
        "applesystemlog.asl",
        "fsevents/fsevents-00000000001a0b79",
    ],
    "plaso-outputs": [
        "psort_test.plaso",
        "end_to_end/json_line.log",
        "end_to_end/l2tcsv.log",
    ],
}


@dataclasses.dataclass
class Parsed:
    rows: list[Row]
    stats: FileStats
    result: Result

    def kinds(self) -> collections.Counter[str]:
        return collections.Counter(w.kind for w in self.stats.warnings)

    def messages(self, kind: str) -> list[str]:
        return [w.message for w in self.stats.warnings if w.kind == kind]

    @property
    def event_data(self) -> int:
        return sum(self.result.event_data.values())


class ListSink:
    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(self, row: Row) -> None:
        self.rows.append(row)


def parse_file(path: Path, display: str, **options: str) -> Parsed:
    stats = FileStats(display)
    sink = ListSink()
    ctx = ParseContext(path, display, "", stats, dict(options))
    result = FileRun(ctx, sink, PlasoOptions.from_options(ctx.options)).run()
    return Parsed(sink.rows, stats, result)


def fields_of(row: Row) -> dict[str, str]:
    loaded: dict[str, str] = orjson.loads(row[7])
    return loaded


@pytest.fixture(scope="session")
def ptd(corpus: Path) -> Path:
    path = corpus / "plaso-test-data"
    if not (path / "test_data").is_dir():
        pytest.skip(f"plaso-test-data not found in {corpus}")
    return path


@pytest.fixture(scope="session")
def baseline(ptd: Path) -> dict[str, dict[str, str]]:
    """What log2timeline + psort gave per file on this machine, with upstream's expectation."""
    with (ptd / "_log2timeline_rows.tsv").open(encoding="utf-8") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    return {row["path"]: row for row in csv.DictReader(lines, delimiter="\t")}


_PARSED: dict[str, Parsed] = {}


@pytest.fixture(scope="session")
def parsed(ptd: Path) -> Any:
    """Parse a file of plaso-test-data with the default options, once per session."""

    def get(rel: str) -> Parsed:
        if rel not in _PARSED:
            _PARSED[rel] = parse_file(ptd / rel, rel)
        return _PARSED[rel]

    return get


def expected(row: dict[str, str]) -> tuple[int | None, int | None, str]:
    """(event data, extraction warnings, parser) of upstream's test when SOURCE.md gives a
    count for the file (None where it does not), and the parser or plugin it counts."""
    parser = row["upstream_parser"].split()[0]
    found = _UPSTREAM.match(row["upstream_expectation"])
    if not found or row["path"] in UPSTREAM_GAPS:
        return None, None, parser
    warnings = int(found.group(2).replace(",", "")) if found.group(2) else None
    return int(found.group(1).replace(",", "")), warnings, parser


def own_warnings(parsed: Parsed, parser: str) -> int:
    """plaso extraction warnings of the parser the expectation is about (other parsers
    that tried the file may warn too: cups_ipp on utmp)."""
    return sum(
        1 for message in parsed.messages("plaso-extraction") if under(message.split(":")[0], parser)
    )


def under(chain: str, parser: str) -> bool:
    """Whether a parser chain is the parser (or plugin) named, or below it."""
    return chain.split("/")[: parser.count("/") + 1] == parser.split("/")


def check_file(rel: str, got: Parsed, row: dict[str, str]) -> None:
    event_data, warnings, parser = expected(row)
    if rel in DIFFERENCES:
        assert got.event_data > int(row["event_data_nonfilestat"]), rel
        return
    # what log2timeline stored for the file on this machine
    assert got.event_data == int(row["event_data_nonfilestat"]), (rel, got.result.event_data)
    if event_data is not None:
        # upstream counts one parser or plugin (and what it calls: lnk/shell_items) alone
        own = sum(n for chain, n in got.result.event_data.items() if under(chain, parser))
        assert own == event_data, (rel, got.result.event_data, row["upstream_expectation"])
    if warnings is not None:
        assert own_warnings(got, parser) == warnings, (rel, got.stats.warnings)
    # Every event data is at least one row (a "Not a time" row when it has no time).
    assert len(got.rows) >= got.event_data
    # Where log2timeline gave one row per event data, irkit gives the same rows (psort
    # drops duplicates and writes "Not set" times as rows of their own; irkit does not).
    if row["rows_nonfilestat"] == row["event_data_nonfilestat"]:
        assert len(got.rows) == int(row["rows_nonfilestat"]), rel


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_gives_what_plaso_gives(
    family: str, parsed: Any, baseline: dict[str, dict[str, str]]
) -> None:
    for name in FAMILIES[family]:
        rel = f"test_data/{name}"
        check_file(rel, parsed(rel), baseline[rel])


def test_every_file_parses_to_aware_utc_rows_with_unique_keys(
    ptd: Path, parsed: Any, baseline: dict[str, dict[str, str]]
) -> None:
    files = sorted(p for p in (ptd / "test_data").rglob("*") if p.is_file())
    assert len(files) == 170
    not_recognised, rejected = set(), set()
    for path in files:
        rel = str(path.relative_to(ptd))
        got = parsed(rel)
        check_file(rel, got, baseline[rel])
        keys = set()
        for row in got.rows:
            ts = dt.datetime.fromisoformat(row[0])
            assert ts.utcoffset() == dt.timedelta(0), (rel, row[0])
            assert row[0] not in (EPOCH_1970, EPOCH_1601), rel  # a stored zero: "unset"
            assert row[1] and row[2] and row[8], (rel, row)
            assert "\n" not in row[6] and "\r" not in row[6] and len(row[6]) <= 1024
            values = fields_of(row)
            assert all(type(v) is str for v in values.values()), rel
            assert values["parser"] == row[2] and values["data_type"]
            keys.add((row[8], row[1]))  # the uid: md5(sha256 | record | ts_desc)
        assert len(keys) == len(got.rows), f"{rel}: two rows with one uid"
        assert sum(got.result.rows.values()) == len(got.rows) == got.stats.records
        if got.stats.status == "unrecognised":
            assert not got.rows and not got.result.recognised and got.stats.unrecognised
            not_recognised.add(rel)
        elif not got.result.recognised:  # its format signature matched; the parser refused
            assert not got.rows and got.kinds()["rejected"] == 1 and got.stats.status == "failed"
            rejected.add(rel)
    no_event_data = {r for r, row in baseline.items() if row["event_data_nonfilestat"] == "0"}
    assert not_recognised | rejected == no_event_data - set(TAKEN_EMPTY)
    assert "test_data/plist/truncated.plist" in rejected
    for rel in TAKEN_EMPTY:
        assert parsed(rel).result.parsers, rel


def test_files_plaso_rejects_or_breaks_on_are_named_warnings(parsed: Any) -> None:
    truncated = parsed("test_data/plist/truncated.plist")
    assert not truncated.rows
    assert truncated.stats.status == "failed"
    [reason] = truncated.messages("rejected")
    assert "plist matched but it rejected the file" in reason
    corrupt = parsed("test_data/utmp/utmp_corrupted")
    assert len(corrupt.rows) == 2 and corrupt.kinds()["plaso-extraction"] == 2
    assert corrupt.stats.status == "partial"
    hive = parsed("test_data/regf/corrupt_sub_key_list.hiv")
    assert len(hive.rows) == 100 and hive.kinds()["plaso-extraction"] == 1
    # plaso's plist parser raises UnboundLocalError on a top-level array: contained.
    install = parsed("test_data/plist/InstallHistory.plist")
    assert any("UnboundLocalError" in m for m in install.messages("parser-error"))
    assert install.stats.status == "partial"
    # A registry plugin's AttributeError no longer ends the hive (log2timeline: 536).
    ntuser = parsed("test_data/regf/NTUSER.DAT")
    [error] = ntuser.messages("parser-error")
    assert error.startswith("winreg/windows_typed_urls_time stopped: AttributeError")
    assert ntuser.event_data > 1500
    assert ntuser.result.event_data["winreg/msie_zone"] == 12  # upstream: 6 + 6
    assert ntuser.result.event_data["winreg/explorer_mountpoints2"] == 3
    assert ntuser.result.event_data["winreg/bagmru"] == 1
    # An archive is not walked (log2timeline's --archives none): not recognised.
    assert parsed("test_data/syslog.zip").stats.status == "unrecognised"


@pytest.mark.parametrize(
    ("name", "chain", "count"),
    [  # upstream's per-key plugin counts (SOURCE.md), where the key is the plugin's only one
        ("NTUSER.DAT", "winreg/userassist", 14),
        ("NTUSER-RunTests.DAT", "winreg/windows_run", 2),  # Run 1 + RunOnce 1
        ("NTUSER-CCLEANER.DAT", "winreg/ccleaner", 2),
        ("regf/SAM", "winreg/windows_sam_users", 3),
        ("winreg/win10-Amcache.hve", "winreg/amcache", 236),
    ],
)
def test_registry_plugins_match_upstream(parsed: Any, name: str, chain: str, count: int) -> None:
    got = parsed(f"test_data/{name}")
    assert got.result.event_data[chain] == count
    assert sum(1 for row in got.rows if row[2] == chain) >= count


def test_legacy_evt_gives_event_id_host_and_two_times_per_record(parsed: Any) -> None:
    got = parsed("test_data/SysEvent.Evt")
    assert got.event_data == 6501 and len(got.rows) == 13002
    assert {row[1] for row in got.rows} == {"Creation Time", "Content Modification Time"}
    assert {row[3] for row in got.rows} == {"WKS-WINXP32BIT"}
    for row in got.rows[:200]:
        values = fields_of(row)
        assert row[5] == values["event_identifier"] == str(int(row[5]) & 0xFFFF)
        assert row[6].startswith(f"[{row[5]} / 0x{int(row[5]):04x}]")
        assert values["record_number"] in row[6]
    assert len({row[8] for row in got.rows}) == 6501  # one record key per event data


def test_syslog_matches_psorts_reference_output(ptd: Path) -> None:
    # psort_test.plaso: log2timeline --preferred-year 2012 of syslog/syslog; json_line.
    got = parse_file(ptd / "test_data/syslog/syslog", "syslog", preferred_year="2012")
    reference = [
        orjson.loads(line)
        for line in (ptd / "test_data/end_to_end/json_line.log").read_text("utf-8").splitlines()
    ]
    want = collections.Counter(
        (r["timestamp"], r["timestamp_desc"], one_line(r["message"]), r.get("hostname", ""))
        for r in reference
        if r["parser"] == "text/syslog_traditional"
    )
    have = collections.Counter(
        (
            int(dt.datetime.fromisoformat(row[0]).timestamp() * 1_000_000),
            row[1],
            row[6],
            row[3],
        )
        for row in got.rows
    )
    assert sum(want.values()) == 16
    assert have == want
    assert "assumed-year" not in got.kinds()  # the year was given
    assert got.kinds()["plaso-extraction"] == 1  # the line with month "None"


@pytest.mark.parametrize("zone", ["", "CET"])
def test_time_zone_matches_psorts_reference_output(ptd: Path, zone: str) -> None:
    name = "with_time_zone" if zone else "without_time_zone"
    reference = ptd / f"test_data/end_to_end/extract_and_output_{name}.log"
    with reference.open(encoding="utf-8") as handle:
        want = sorted((r["datetime"], r["timestamp_desc"]) for r in csv.DictReader(handle))
    got = parse_file(
        ptd / "test_data/syslog/syslog_rsyslog_traditional",
        "rsyslog",
        preferred_year="2020",
        time_zone=zone,
    )
    have = sorted(
        (dt.datetime.fromisoformat(row[0]).isoformat(timespec="seconds"), row[1])
        for row in got.rows
    )
    assert len(want) == 8 and have == want
    assert {fields_of(row)["time_zone_assumed"] for row in got.rows} == {zone or "UTC"}


def test_yearless_times_take_plasos_year_with_a_warning(parsed: Any, ptd: Path) -> None:
    got = parsed("test_data/syslog/syslog_ssh.log")
    [warning] = got.messages("assumed-year")
    assert warning.startswith("9 times have no year in the file: plaso took ")
    mtime_year = dt.datetime.fromtimestamp(
        (ptd / "test_data/syslog/syslog_ssh.log").stat().st_mtime, dt.UTC
    ).year
    years = {int(row[0][:4]) for row in got.rows}
    assert max(years) <= max(mtime_year, dt.datetime.now(dt.UTC).year)
    # The year inside a .gz comes from the gzip header (2012), as plaso does.
    assert {row[0][:4] for row in parsed("test_data/syslog.gz").rows} <= {"2012", "2013"}


def test_an_event_data_without_a_time_is_kept_with_the_files_time(ptd: Path) -> None:
    path = ptd / "test_data/plist/launchd.plist"
    got = parse_file(path, "launchd.plist")
    [row] = got.rows
    assert row[1] == "Not a time (file modified time)"
    assert dt.datetime.fromisoformat(row[0]).timestamp() == pytest.approx(
        path.lstat().st_mtime, abs=1e-5
    )
    assert row[4] == "nobody" and fields_of(row)["program"] == "/Test --flag arg1"
    assert got.result.untimed["macos:launchd:entry"] == 1
    stats = FileStats("launchd.plist")
    sink = ListSink()
    ctx = ParseContext(path, "launchd.plist", "", stats, collected_at="2024-05-01T10:00:00Z")
    PlasoSource().parse(ctx, sink)
    assert sink.rows[0][:2] == ("2024-05-01T10:00:00.000000+00:00", "Not a time (collection time)")
    assert sink.rows[0][8] == row[8]  # same record: same event


def test_stored_zero_times_never_become_1970_or_1601(parsed: Any) -> None:
    got = parsed("test_data/utmp/wtmp.1")
    assert got.event_data == 4 and len(got.rows) == 4
    assert not [row for row in got.rows if row[0] in (EPOCH_1970, EPOCH_1601)]
    [warning] = got.messages("no-time")
    assert "a stored zero (unset): 2" in warning and "linux:utmp:event 2" in warning
    assert sum(row[1].startswith("Not a time") for row in got.rows) == 2
    # "Not set" times stay in the fields; the event data keeps its real time.
    places = parsed("test_data/firefox/places.sqlite")
    assert not places.messages("no-time")
    assert any(fields_of(row).get("modification_time") == "Not set" for row in places.rows)


#: Parses the files named on its command line with the plaso source; prints the number of
#: rows and their sha256.
CHILD_SCRIPT = (
    "import hashlib, sys\n"
    "from pathlib import Path\n"
    "from irkit.model import FileStats\n"
    "from irkit.sources.base import ParseContext\n"
    "from irkit.sources.plaso.options import PlasoOptions\n"
    "from irkit.sources.plaso.run import FileRun\n"
    "class S:\n"
    "    rows = []\n"
    "    def add(self, row): self.rows.append(row)\n"
    "sink = S()\n"
    "for name in sys.argv[1:]:\n"
    "    ctx = ParseContext(Path(name), name, '', FileStats(name))\n"
    "    FileRun(ctx, sink, PlasoOptions()).run()\n"
    "print(len(sink.rows), hashlib.sha256(repr(sink.rows).encode()).hexdigest())\n"
)


def _parse_in_child(paths: list[Path], cwd: Path, env: dict[str, str]) -> str:
    """What CHILD_SCRIPT prints for ``paths``, run in a fresh interpreter. ``cwd`` must not
    be test_data: its winreg/ folder would shadow the winreg module."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD_SCRIPT, *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=True,
    )
    return done.stdout.strip()


def test_rows_are_the_same_twice_and_in_other_processes(ptd: Path, tmp_path: Path) -> None:
    names = ["test_data/NTUSER.DAT", "test_data/plist/launchd.plist", "test_data/syslog.gz"]
    first = [parse_file(ptd / n, n) for n in names]
    again = [parse_file(ptd / n, n) for n in names]
    assert [p.rows for p in first] == [p.rows for p in again]
    assert [p.stats.warnings for p in first] == [p.stats.warnings for p in again]
    # plaso keeps the parsers without a signature in a set: its order, and so the order of
    # the rows, would change with PYTHONHASHSEED. It must not.
    digests = set()
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        digests.add(_parse_in_child([ptd / n for n in names], tmp_path, env).split()[1])
    assert len(digests) == 1


def test_matches_is_the_catch_all_for_files_no_other_source_claims() -> None:
    source = PlasoSource()
    assert source.name == "plaso"
    assert source.matches(b"regf\x01", Path("NTUSER.DAT"))
    assert source.matches(b"Jan  1 00:00:00 host x: y\n", Path("syslog"))
    assert not source.matches(b"", Path("empty"))
    assert not source.matches(b"ElfFile\x00", Path("System.EVTX"))  # the evtx source's


def test_preloading_sets_plaso_up_without_a_word(capfd: pytest.CaptureFixture[str]) -> None:
    import importlib

    importlib.import_module("irkit.sources.plaso.preload")
    out, err = capfd.readouterr()
    assert out == err == ""  # plaso's warnings and logs are not printed


def test_probe_says_which_parsers_take_a_file(ptd: Path) -> None:
    result, stats = probe(ptd / "test_data/winprefetch/CMD.EXE-087B4001.pf")
    assert result.recognised and result.parsers == ("prefetch",)
    assert "prefetch" in result.matched and not stats.warnings
    result, stats = probe(ptd / "SOURCE.md")
    assert not result.recognised and result.reason.startswith("no format signature matched")
    assert not stats.warnings and stats.unrecognised == result.reason


def test_options_are_checked_and_a_parser_filter_applies(ptd: Path) -> None:
    with pytest.raises(UsageError):
        PlasoOptions.from_options({"preferred_year": "12"})
    with pytest.raises(UsageError):
        PlasoOptions.from_options({"time_zone": "Mars/Olympus"})
    with pytest.raises(UsageError):
        parse_file(ptd / "test_data/wintask.job", "x", plaso_parsers="no_such_parser")
    only = parse_file(ptd / "test_data/wintask.job", "wintask.job", plaso_parsers="winjob")
    assert len(only.rows) == 2 and only.stats.engine.endswith(" (winjob)")
    other = parse_file(ptd / "test_data/wintask.job", "wintask.job", plaso_parsers="prefetch")
    assert not other.rows and other.stats.status == "unrecognised"


def test_mapping_names_real_plaso_parsers_and_attributes(parsed: Any) -> None:
    from plaso.parsers import manager

    mapping = load_mapping()
    assert isinstance(mapping, Mapping)
    known, _ = manager.ParsersManager.CheckFilterExpression(None)
    assert "winreg/userassist" in known
    assert set(mapping.families) <= known
    assert mapping.family("winreg/userassist") == "Windows registry"
    assert mapping.family("sqlite/chrome_27_history") == "Browser history"
    assert mapping.family("sqlite/some_new_plugin") == "Databases (other applications)"
    assert mapping.family("no_such_parser") == "no_such_parser"
    # host and user come from the attributes the mapping names
    utmp = parsed("test_data/utmp/utmp_corrupted")
    assert [(row[3], row[4]) for row in utmp.rows] == [("localhost", "alice"), ("10.0.0.5", "bob")]


def test_a_yearless_time_with_nothing_to_date_it_is_not_put_in_this_year(ptd: Path) -> None:
    # A parser that gives a date-less time without a date-less log helper (no file dates
    # seen): plaso's timeliner would use the current year. irkit keeps the event data as a
    # "Not a time" row, the time as the file has it in the fields, and warns.
    from dfdatetime import time_elements
    from plaso.containers import events

    def yearless(year: str) -> Parsed:
        path = ptd / "test_data/bash_history"
        stats = FileStats("synthetic")
        sink = ListSink()
        ctx = ParseContext(path, "synthetic", "", stats, {"preferred_year": year})
        run = FileRun(ctx, sink, PlasoOptions.from_options(ctx.options))
        event_data = events.EventData(data_type="syslog:line")
        event_data.body = "sshd[1]: Accepted publickey for root"
        event_data.last_written_time = time_elements.TimeElements(
            is_delta=True, time_elements_tuple=(0, 3, 14, 10, 20, 30)
        )
        run.collector.AddAttributeContainer(event_data)
        run.flush()
        run.finish()
        return Parsed(sink.rows, stats, run.result)

    got = yearless("")
    [row] = got.rows
    assert row[1] == "Not a time (file modified time)"
    assert fields_of(row)["last_written_time"].startswith("0000-03-14T10:20:30")
    [warning] = got.messages("no-time")
    assert "no year to place them in: 1" in warning
    [row] = yearless("2019").rows
    assert row[:2] == ("2019-03-14T10:20:30.000000+00:00", "Content Modification Time")


def test_plaso_set_up_leaves_yaml_as_it_was() -> None:
    """plaso reads its definitions with libyaml (fastyaml); other YAML readers of the
    process keep PyYAML's own loader: libyaml refuses the ForensicArtifacts files'
    ``{paths:['…']}``, which ``irkit collect`` reads."""
    import yaml

    from irkit.collect.definitions import load_definitions
    from irkit.sources.plaso.engine import engine

    before = yaml.safe_load_all
    engine()
    assert yaml.safe_load_all is before
    assert load_definitions().profiles()
    assert list(yaml.safe_load_all("a: {paths:['x']}")) == [{"a": {"paths": ["x"]}}]


def test_sqlite_copies_leave_nothing_in_the_temporary_folder(ptd: Path, tmp_path: Path) -> None:
    # plaso copies a SQLite database (and its WAL) to a temporary file; SQLite leaves
    # -wal/-shm files beside the copy. They hold evidence and must not pile up in /tmp.
    temp = tmp_path / "tmp"
    temp.mkdir()
    names = [
        "test_data/firefox/places.sqlite",
        "test_data/chrome/History",
        "test_data/wal_database.db",
        "test_data/windows/ActivitiesCache.db",
    ]
    env = {**os.environ, "TMPDIR": str(temp)}
    count = _parse_in_child([ptd / n for n in names], tmp_path, env).split()[0]
    assert int(count) > 100  # the databases were parsed
    assert sorted(p.name for p in temp.iterdir()) == []
