"""Stacking, first-seen and rare-pair findings, on the corpus case and on a small osquery case."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from irkit.cli.analytics import KINDS_HELP
from irkit.detect import analytics
from irkit.errors import IrkitError, UsageError
from irkit.model import MAX_EVENT_UIDS, Severity
from irkit.store.case import Case

from .conftest import REPO, run_irkit

SYSMON = "Microsoft-Windows-Sysmon/Operational"
MSHTA_FILE = "Execution/sysmon_mshta_sharpshooter_stageless_meterpreter.evtx"
IEXPLORE = r"c:\program files\internet explorer\iexplore.exe"
MSHTA = r"c:\windows\system32\mshta.exe"


@pytest.fixture(scope="module")
def case(corpus_case: tuple[Path, dict[str, object]]) -> Iterator[Case]:
    with Case(corpus_case[0], read_only=True) as store:
        yield store


def _row(rows: list[analytics.StackRow], *values: str) -> analytics.StackRow:
    found = [r for r in rows if r.values == values]
    assert len(found) == 1, values
    return found[0]


# --- the definition files ------------------------------------------------------------------


def test_entities_yaml_lints() -> None:
    definitions = analytics.load_definitions()
    assert set(definitions.kinds) == {
        "process",
        "parent-child",
        "service",
        "task",
        "logon",
        "autorun",
        "network",
    }
    assert KINDS_HELP.replace(" or ", ", ").split(", ") == list(definitions.kinds)
    for kind in definitions.kinds.values():
        assert kind.title and kind.title != kind.name
        assert set(kind.required) <= set(kind.columns)
        for extract in kind.extracts:
            assert set(kind.required) <= set(extract.values), kind.name
            if extract.source == "evtx":
                assert all(e.isdigit() for e in extract.event_ids)
    assert all(p == p.lower() for p in definitions.path_prefixes)


def test_findings_yaml_lints() -> None:
    rules = analytics.load_rules()
    assert len({r.id for r in rules}) == len(rules) >= 5
    for rule in rules:
        assert rule.severity in (Severity.LOW, Severity.MEDIUM)
        assert rule.attack and all(a.startswith("attack.") for a in rule.attack)
        assert rule.when and rule.title and rule.description


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("kinds: {x: {columns: {a: {}}, from: [{source: evtx, values: {a: A}}]}}", "channels"),
        ("kinds: {x: {columns: {a: {}}, from: [{source: nope, values: {a: A}}]}}", "source"),
        (
            "kinds: {x: {columns: {a: {normalise: upper}}, from: "
            "[{source: evtx, channels: [S], event_ids: [1], values: {a: A}}]}}",
            "normalise",
        ),
        (
            "kinds: {x: {columns: {a: {}}, from: "
            '[{source: evtx, channels: [S], event_ids: [1], values: {a: "x\'; DROP"}}]}}',
            "not a field name",
        ),
        ("kinds: [1]", "kinds"),
    ],
)
def test_bad_entities_yaml_is_a_readable_error(tmp_path: Path, text: str, complaint: str) -> None:
    path = tmp_path / "entities.yaml"
    path.write_text(text)
    with pytest.raises(IrkitError, match=complaint):
        analytics.load_definitions(path)


def test_unknown_kind_lists_the_kinds(case: Case) -> None:
    with pytest.raises(UsageError) as caught:
        analytics.stack(case, "proces")
    assert "parent-child" in caught.value.hint


# --- stacking on the corpus -----------------------------------------------------------------


def test_stack_process_counts_equal_a_direct_count(case: Case) -> None:
    rows = analytics.stack(case, "process")
    direct = case.db.execute(
        f"""SELECT count(*) FROM events WHERE (artifact = '{SYSMON}' AND event_id = '1'
            AND coalesce(fields->>'Image', '') NOT IN ('', '-', '?'))
            OR (artifact = 'Security' AND event_id = '4688'
            AND coalesce(fields->>'NewProcessName', '') NOT IN ('', '-', '?'))"""
    ).fetchone()
    assert direct is not None
    assert sum(r.count for r in rows) == direct[0] > 2000
    counts = [r.count for r in rows]
    assert counts == sorted(counts)
    cmd = _row(rows, r"c:\windows\system32\cmd.exe")
    images = case.db.execute(
        f"""SELECT count(*), count(DISTINCT host) FROM events
            WHERE ((artifact = '{SYSMON}' AND event_id = '1' AND lower(fields->>'Image') = ?)
            OR (artifact = 'Security' AND event_id = '4688'
                AND lower(fields->>'NewProcessName') = ?))""",
        [cmd.values[0]] * 2,
    ).fetchone()
    assert images == (cmd.count, len(cmd.hosts))
    assert len(cmd.event_uids) == MAX_EVENT_UIDS
    assert cmd.first_seen is not None and cmd.last_seen is not None
    assert cmd.first_seen <= cmd.last_seen


def test_stack_parent_child_known_pair(case: Case) -> None:
    rows = analytics.stack(case, "parent-child")
    pair = _row(rows, IEXPLORE, MSHTA)
    assert pair.count == 1 and pair.hosts == ("IEWIN7",)
    evidence = case.db.execute(
        "SELECT evidence, fields->>'ParentImage' FROM events WHERE uid = ?", [pair.event_uids[0]]
    ).fetchone()
    assert evidence is not None
    assert evidence[0].endswith(MSHTA_FILE)
    assert evidence[1].lower() == IEXPLORE
    assert all(r.value("image") for r in rows)


def test_stack_service_normalises_paths(case: Case) -> None:
    rows = analytics.stack(case, "service")
    assert sum(r.count for r in rows) == 118  # every 7045 of the corpus
    psexec = _row(rows, "psexec", r"c:\windows\psexesvc.exe")
    assert psexec.count >= 1
    winpwnage = [r for r in rows if r.value("name") == "winpwnage"]
    assert len(winpwnage) == 1 and winpwnage[0].value("path").startswith("%comspec% /c ping")
    # %SystemRoot%\, \SystemRoot\ and system32\ all become c:\windows\
    paths = [r.value("path") for r in rows]
    assert not [p for p in paths if p.startswith(("%systemroot%", "\\systemroot", "system32"))]


def test_stack_logon_rows(case: Case) -> None:
    rows = analytics.stack(case, "logon")
    failed_rdp = _row(rows, "administrator", "23.94.153.202", "10 (RemoteInteractive)", "failure")
    assert failed_rdp.count == 1 and failed_rdp.hosts == ("temporal",)
    direct = case.db.execute(
        """SELECT count(*) FROM events WHERE artifact = 'Security' AND event_id IN ('4624', '4625')
           AND coalesce(fields->>'TargetUserName', '') NOT IN ('', '-', '?')"""
    ).fetchone()
    assert direct is not None and sum(r.count for r in rows) == direct[0]


def test_rare_keeps_only_rare_rows(case: Case) -> None:
    every = analytics.stack(case, "parent-child")
    singletons = analytics.stack(case, "parent-child", rare=1)
    assert singletons and all(r.count == 1 for r in singletons)
    assert singletons == [r for r in every if r.count == 1]
    assert all(r.count <= 3 for r in analytics.stack(case, "parent-child", rare=3))


def test_host_and_source_filters(case: Case) -> None:
    only = analytics.stack(case, "process", hosts=["iewin7"])
    assert only and all(r.hosts == ("IEWIN7",) for r in only)
    assert analytics.stack(case, "process", sources=["osquery"]) == []


def test_first_seen_excludes_the_baseline(case: Case) -> None:
    until = dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
    every = analytics.stack(case, "service")
    new = analytics.first_seen(case, "service", until)
    assert new and all(r.first_seen is not None and r.first_seen > until for r in new)
    early = {r.values for r in every if r.first_seen is not None and r.first_seen <= until}
    assert early and not early & {r.values for r in new}
    assert len(new) + len(early) == len(every)
    assert [r.first_seen for r in new] == sorted(r.first_seen for r in new if r.first_seen)
    assert "winpwnage" in {r.value("name") for r in new}


def test_stacking_is_fast(case: Case) -> None:
    import time

    started = time.perf_counter()
    for kind in analytics.kinds():
        analytics.stack(case, kind)
    assert time.perf_counter() - started < 5


# --- findings --------------------------------------------------------------------------------


def test_rare_findings_link_real_events(case: Case) -> None:
    result = analytics.rare_findings(case)
    assert result.detector == "analytics"
    assert all(result.report["fired"][rule.id] > 0 for rule in analytics.load_rules())
    by_excerpt = {(f.rule, f.excerpt): f for f in result.findings}
    pair = by_excerpt[("rare-lolbin-child", f"{IEXPLORE} → {MSHTA}")]
    assert pair.severity is Severity.MEDIUM  # a browser starting a LOLBin
    assert "attack.t1218.005" in pair.attack
    assert pair.evidence.endswith(MSHTA_FILE) and pair.host == "IEWIN7"
    shell = [f for f in result.findings if f.rule == "rare-service-shell"]
    assert any(f.details["name"] == "winpwnage" for f in shell)
    uids = {u for f in result.findings for u in f.event_uids}
    found = case.db.execute(
        f"SELECT count(*) FROM events WHERE uid IN ({', '.join('?' * len(uids))})", list(uids)
    ).fetchone()
    assert found == (len(uids),)
    for finding in result.findings:
        assert finding.event_uid == finding.event_uids[0]
        assert finding.count <= 2 and finding.severity in (Severity.LOW, Severity.MEDIUM)
    # Windows Defender's definition updates live in ProgramData, and are left out.
    assert not [f for f in result.findings if "windows defender" in f.excerpt]
    assert len({f.uid for f in result.findings}) == len(result.findings)


# --- the command line ------------------------------------------------------------------------


def test_cli_stack_csv_and_jsonl(corpus_case: tuple[Path, dict[str, object]]) -> None:
    case_dir = corpus_case[0]
    result = run_irkit("stack", str(case_dir), "parent-child", "--rare", "1", "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows and all(r["count"] == "1" for r in rows)
    assert {"parent_image", "image", "hosts", "first_seen", "event_uid"} <= set(rows[0])
    assert any(r["parent_image"] == IEXPLORE and r["image"] == MSHTA for r in rows)
    assert "entities from" in result.stderr
    result = run_irkit("stack", str(case_dir), "logon", "-f", "jsonl", "--limit", "5")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 5 and lines[0]["kind"] == "logon" and "logon_type" in lines[0]


def test_cli_firstseen_and_errors(
    corpus_case: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    case_dir = str(corpus_case[0])
    out = tmp_path / "new.jsonl"
    result = run_irkit(
        "firstseen", case_dir, "--entity", "service", "--baseline-until", "2019-01-01",
        "-f", "jsonl", "-o", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and all(r["first_seen"] > "2019-01-01" for r in rows)
    assert "seen in the baseline" in result.stderr
    result = run_irkit("stack", case_dir, "proces")
    assert result.returncode == 2 and "parent-child" in result.stderr
    result = run_irkit("firstseen", case_dir, "--entity", "logon", "--baseline-until", "May")
    assert result.returncode == 2 and "--baseline-until" in result.stderr
    result = run_irkit("stack", str(tmp_path / "nothing"), "process")
    assert result.returncode == 1 and "not an irkit case" in result.stderr
    result = run_irkit("stack", case_dir, "process", "--rare", "0")
    assert result.returncode == 2


@pytest.fixture(scope="module")
def osquery_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A case of one ``osqueryi --json`` processes file whose paths try formula injection."""
    root = tmp_path_factory.mktemp("osq")
    evidence = root / "evidence"
    evidence.mkdir()
    rows = [
        {"pid": "1", "parent": "0", "path": "=HYPERLINK(\"http://x\")", "cmdline": "a",
         "start_time": "1700000000", "name": "x"},
        {"pid": "2", "parent": "1", "path": "/usr/bin/bash", "cmdline": "bash",
         "start_time": "1700000100", "name": "bash"},
        {"pid": "3", "parent": "1", "path": "/usr/bin/bash", "cmdline": "bash -l",
         "start_time": "1700000200", "name": "bash"},
        {"pid": "4", "parent": "1", "path": "/tmp/.x/Miner", "cmdline": "m",
         "start_time": "1700000300", "name": "Miner"},
    ]  # fmt: skip
    (evidence / "processes.json").write_text(json.dumps(rows))
    case_dir = root / "case"
    result = run_irkit("parse", str(evidence), "--case", str(case_dir), "--quiet")
    assert result.returncode == 0, result.stderr
    return case_dir


def test_osquery_rows_count_once_and_csv_is_neutralised(osquery_case: Path) -> None:
    with Case(osquery_case, read_only=True) as store:
        total = store.db.execute("SELECT count(*) FROM events").fetchone()
        assert total == (8,)  # each row, and its start_time event
        rows = analytics.stack(store, "process")
    assert {r.values: r.count for r in rows} == {
        ('=HYPERLINK("http://x")',): 1,
        ("/tmp/.x/Miner",): 1,  # a POSIX path keeps its case
        ("/usr/bin/bash",): 2,
    }
    result = run_irkit("stack", str(osquery_case), "process", "--format", "csv")
    assert result.returncode == 0, result.stderr
    cells = list(csv.reader(io.StringIO(result.stdout)))
    assert ['\'=HYPERLINK("http://x")', "1"] in [row[:2] for row in cells[1:]]
    assert not any(c.startswith("=") for row in cells for c in row)
    table = run_irkit("stack", str(osquery_case), "process")
    assert table.returncode == 0 and "HYPERLINK" in table.stdout


def test_docs_name_every_kind() -> None:
    usage = (REPO / "docs" / "usage.md").read_text()
    detection = (REPO / "docs" / "detection.md").read_text()
    for kind in analytics.kinds():
        assert f"`{kind}`" in usage, kind
    for rule in analytics.load_rules():
        assert f"`{rule.id}`" in detection, rule.id
