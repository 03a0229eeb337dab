"""The Sigma detector on real data: SigmaHQ's Windows rules and the corpus EVTX case."""

from __future__ import annotations

import base64
import collections
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from irkit.detect import DetectorResult
from irkit.detect.analytics import rare_findings
from irkit.detect.heuristics_run import run_heuristics
from irkit.detect.sigma import load_sigma
from irkit.detect.sigma_logsource import logsource_map, variants
from irkit.detect.sigma_run import run_sigma
from irkit.model import severity_rank
from irkit.store.case import Case

pytestmark = pytest.mark.corpus

#: Real corpus events the modifier tests are built on: (Computer, EventRecordID, channel, EID).
EVENTS = {
    "uacme": ("MSEDGEWIN10", "5486", "Microsoft-Windows-Sysmon/Operational", "1"),
    "enc": ("IEWIN7", "5875", "Microsoft-Windows-Sysmon/Operational", "1"),
    "net": ("IEWIN7", "5412", "Microsoft-Windows-Sysmon/Operational", "3"),
    "ps800": ("DESKTOP-RIPCLIP", "789", "Windows PowerShell", "800"),
    "sec4688": ("IEWIN7", "18197", "Security", "4688"),
}
LOGSOURCES = {
    "uacme": {"product": "windows", "category": "process_creation"},
    "enc": {"product": "windows", "category": "process_creation"},
    "net": {"product": "windows", "category": "network_connection"},
    "ps800": {"product": "windows", "service": "powershell-classic"},
    "sec4688": {"product": "windows", "service": "security"},
}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def event_uids(corpus_case: tuple[Path, dict[str, object]]) -> dict[str, str]:
    """The uid of each real event the rule tests use."""
    out = {}
    with Case(corpus_case[0], read_only=True) as case:
        for name, (computer, record, channel, eid) in EVENTS.items():
            row = case.db.execute(
                """SELECT uid FROM events WHERE fields->>'Computer' = ?
                   AND fields->>'EventRecordID' = ? AND artifact = ? AND event_id = ?""",
                [computer, record, channel, eid],
            ).fetchone()
            assert row, name
            out[name] = row[0]
    return out


def write_rule(folder: Path, detection: dict[str, Any], **extra: Any) -> Path:
    """A Sigma rule file built from a Python mapping (no YAML escaping to get wrong)."""
    folder.mkdir(parents=True, exist_ok=True)
    rule = {
        "title": extra.pop("title", "irkit test rule"),
        "id": extra.pop("id", str(uuid.uuid4())),
        "status": "test",
        "author": "irkit tests",
        "level": extra.pop("level", "high"),
        "logsource": extra.pop("logsource", {"product": "windows"}),
        "detection": detection,
        **extra,
    }
    path = folder / f"{rule['id']}.yml"
    path.write_text(yaml.safe_dump(rule, sort_keys=False))
    return path


def run_rules(
    case_dir: Path, paths: list[Path], placeholders: dict[str, list[str]] | None = None
) -> DetectorResult:
    rules = load_sigma(paths, placeholders)
    with Case(case_dir, read_only=True) as case:
        return run_sigma(case, rules)


def matched(result: DetectorResult, uid: str) -> bool:
    return any(uid in f.event_uids for f in result.findings)


B64_WIDE = base64.b64encode("$ProgressPreferenc".encode("utf-16-le")).decode()

#: (event, selections, condition over them, must match?). Each rule is ANDed with an
#: anchor selection naming the one event (Computer + EventRecordID).
CASES: list[tuple[str, dict[str, Any], str, bool]] = [
    ("uacme", {"s": {"Image|contains": "DESKTOP\\uacme"}}, "s", True),
    ("uacme", {"s": {"Image|contains": "desktop\\uacmf"}}, "s", False),
    ("uacme", {"s": {"Image|startswith": "c:\\users\\"}}, "s", True),
    ("uacme", {"s": {"Image|endswith": "\\UACME.EXE"}}, "s", True),
    ("uacme", {"s": {"Image|endswith": "\\UACME.EX"}}, "s", False),
    ("uacme", {"s": {"IntegrityLevel": "medium"}}, "s", True),
    ("uacme", {"s": {"Image": "C:\\Users\\\\*\\Desktop\\UACM?.exe"}}, "s", True),
    ("uacme", {"s": {"Image": "C:\\Users\\\\*\\Desktop\\UACM??.exe"}}, "s", False),
    ("uacme", {"s": {"CommandLine": "UACME.exe  3\\*"}}, "s", False),  # \* is a literal star
    ("uacme", {"s": {"CommandLine": "UACME.exe  3*"}}, "s", True),
    ("uacme", {"s": {"CommandLine|contains|all": ["uacme", "37"]}}, "s", True),
    ("uacme", {"s": {"CommandLine|contains|all": ["uacme", "38"]}}, "s", False),
    ("uacme", {"s": {"CommandLine|re": "^UACME\\.exe\\s+\\d+$"}}, "s", True),
    ("uacme", {"s": {"CommandLine|re": "^uacme"}}, "s", False),
    ("uacme", {"s": {"CommandLine|re|i": "^uacme"}}, "s", True),
    ("uacme", {"s": {"Image|cased|endswith": "\\UACME.exe"}}, "s", True),
    ("uacme", {"s": {"Image|cased|endswith": "\\uacme.exe"}}, "s", False),
    ("uacme", {"s": {"TerminalSessionId|gte": 1}}, "s", True),
    ("uacme", {"s": {"TerminalSessionId|gt": 1}}, "s", False),
    ("uacme", {"s": {"ProcessId|lt": 5000}}, "s", True),
    ("uacme", {"s": {"ProcessId|lte": 4883}}, "s", False),
    ("uacme", {"s": {"ParentCommandLine|exists": True}}, "s", True),
    ("uacme", {"s": {"NoSuchField|exists": True}}, "s", False),
    ("uacme", {"s": {"NoSuchField|exists": False}}, "s", True),
    ("uacme", {"s": {"NoSuchField": None}}, "s", True),
    ("uacme", {"s": {"Image": None}}, "s", False),
    ("uacme", {"s": {"ProcessId|fieldref": "ProcessId"}}, "s", True),
    ("uacme", {"s": {"Image|fieldref": "ParentImage"}}, "s", False),
    ("uacme", {"s": {"EventID": 1}}, "s", True),
    ("uacme", {"k": ["uacme.exe  37"]}, "k", True),
    ("uacme", {"k": ["no-such-keyword-anywhere"]}, "k", False),
    ("uacme", {"s1": {"Image|endswith": "\\x.exe"}, "s2": {"Product": "UACMe"}}, "1 of s*", True),
    (
        "uacme",
        {"s1": {"Image|endswith": "\\x.exe"}, "s2": {"Product": "UACMe"}},
        "all of s*",
        False,
    ),
    ("uacme", {"s": {"Image|endswith": "\\x.exe"}}, "not s", True),
    ("uacme", {"s": {"NoSuchField": "x"}}, "not s", True),
    ("uacme", {"s": {"Product": "UACMe"}}, "not s", False),
    (
        "uacme",
        {"a": {"Product": "UACMe"}, "b": {"Company": "x"}, "c": {"Image|contains": "uacme"}},
        "(a or b) and not (b or not c)",
        True,
    ),
    ("enc", {"s": {"CommandLine|wide|base64offset|contains": "ProgressPreference"}}, "s", True),
    ("enc", {"s": {"CommandLine|wide|base64offset|contains": "NotInThere"}}, "s", False),
    ("enc", {"s": {"CommandLine|base64|contains": "$ProgressPreference"}}, "s", False),
    ("enc", {"s": {"CommandLine|contains": B64_WIDE}}, "s", True),
    ("enc", {"s": {"CommandLine|windash|contains": " /enc "}}, "s", True),
    ("enc", {"s": {"CommandLine|windash|contains": " /encodedcommand "}}, "s", False),
    ("net", {"s": {"DestinationIp|cidr": "127.0.0.0/8"}}, "s", True),
    ("net", {"s": {"DestinationIp|cidr": ["10.0.0.0/8", "192.168.0.0/16"]}}, "s", False),
    ("ps800", {"s": {"Data_2|re|m": "^\\s*HostName=ConsoleHost\\r?$"}}, "s", True),
    ("ps800", {"s": {"Data_2|re": "^\\s*HostName=ConsoleHost\\r?$"}}, "s", False),
    ("ps800", {"s": {"Data_2|re|s": "DetailSequence=1.*HostName=ConsoleHost"}}, "s", True),
    ("ps800", {"s": {"Data_2|re": "DetailSequence=1.*HostName=ConsoleHost"}}, "s", False),
    ("sec4688", {"s": {"NewProcessName|endswith": "\\wusa.exe"}}, "s", True),
]


@pytest.mark.parametrize(("event", "selections", "condition", "expected"), CASES)
def test_modifiers_and_conditions_on_real_events(
    corpus_case: tuple[Path, dict[str, object]],
    event_uids: dict[str, str],
    tmp_path: Path,
    event: str,
    selections: dict[str, Any],
    condition: str,
    expected: bool,
) -> None:
    computer, record, _, _ = EVENTS[event]
    detection = {
        "anchor": {"Computer": computer, "EventRecordID": int(record)},
        **selections,
        "condition": f"anchor and ({condition})",
    }
    path = write_rule(tmp_path / "rules", detection, logsource=LOGSOURCES[event])
    result = run_rules(corpus_case[0], [path])
    assert result.report["unsupported_count"] == 0, result.report["unsupported"]
    assert matched(result, event_uids[event]) is expected


def test_sysmon_process_creation_rule_fires_on_security_4688(
    corpus_case: tuple[Path, dict[str, object]], event_uids: dict[str, str], tmp_path: Path
) -> None:
    detection = {
        "selection": {"Image|endswith": "\\wusa.exe", "User": "IEUser"},
        "condition": "selection",
    }
    path = write_rule(tmp_path / "rules", detection, logsource=LOGSOURCES["uacme"])
    result = run_rules(corpus_case[0], [path])
    assert matched(result, event_uids["sec4688"])
    finding = next(f for f in result.findings if event_uids["sec4688"] in f.event_uids)
    assert finding.detector == "sigma" and finding.severity == "high"
    assert "wusa.exe" in finding.excerpt


def test_placeholders_skip_until_given(
    corpus_case: tuple[Path, dict[str, object]], event_uids: dict[str, str], tmp_path: Path
) -> None:
    detection = {
        "selection": {"Computer|expand": "%test_hosts%", "EventRecordID": 5486},
        "condition": "selection",
    }
    path = write_rule(tmp_path / "rules", detection, logsource=LOGSOURCES["uacme"])
    skipped = run_rules(corpus_case[0], [path])
    assert [s["placeholders"] for s in skipped.report["skipped_placeholders"]] == [["test_hosts"]]
    assert not skipped.findings
    given = run_rules(corpus_case[0], [path], {"test_hosts": ["other", "msedgewin10"]})
    assert matched(given, event_uids["uacme"])


def test_correlation_rules(corpus_case: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    write_rule(
        folder,
        {"selection": {"Computer": "MSEDGEWIN10"}, "condition": "selection"},
        name="irkit_test_base",
        logsource=LOGSOURCES["uacme"],
    )
    for kind, condition in (
        ("event_count", {"gte": 3}),
        ("value_count", {"field": "Image", "gte": 2}),
        ("temporal", None),
    ):
        correlation: dict[str, Any] = {
            "type": kind,
            "rules": ["irkit_test_base"],
            "group-by": ["Computer"],
            "timespan": "1h",
        }
        if condition:
            correlation["condition"] = condition
        body = {"title": f"irkit {kind}", "id": str(uuid.uuid4()), "level": "medium"}
        body["correlation"] = correlation
        (folder / f"{kind}.yml").write_text(yaml.safe_dump(body))
    result = run_rules(corpus_case[0], [folder])
    kinds = {f.details.get("correlation") for f in result.findings}
    assert {"event_count", "value_count", "temporal"} <= kinds, result.report["unsupported"]
    # The base rule is only used by correlations (generate: false): no findings of its own.
    assert all(f.details.get("correlation") for f in result.findings)


def test_logsource_map_is_well_formed(corpus: Path) -> None:
    table = logsource_map()
    assert set(table) == {"windows", "linux", "macos", ""}
    assert set(table["windows"]) == {"categories", "services"}
    for kind in table["windows"].values():
        for name, items in kind.items():
            for variant in items:
                assert variant.channels and variant.source == "evtx", name
                assert all(e.isdigit() for e in variant.event_ids), name
    used = set()
    for path in (corpus / "sigma").rglob("*.yml"):
        logsource = yaml.safe_load(path.read_text()).get("logsource", {})
        used.add(tuple(sorted(logsource.items())))
    unknown = [ls for ls in used if variants(dict(ls)) is None]
    assert not unknown


def test_sigmahq_rules_load_and_run_fast(
    corpus: Path, corpus_case: tuple[Path, dict[str, object]]
) -> None:
    started = time.perf_counter()
    rules = load_sigma([corpus / "sigma"])
    with Case(corpus_case[0], read_only=True) as case:
        result = run_sigma(case, rules)
    seconds = time.perf_counter() - started
    report = result.report
    print(
        f"\nSigmaHQ: {report['rules_found']} rules, {report['loaded']} loaded, "
        f"{report['run']} run, {report['unsupported_count']} unsupported "
        f"{ {k: v['count'] for k, v in report['unsupported'].items()} }, "
        f"{len(report['skipped_placeholders'])} waiting for placeholders, "
        f"{len(report['coverage']['logsource_absent'])} logsources absent, "
        f"{len(report['coverage']['cannot_fire'])} rules cannot fire here; "
        f"{report['events']} events, {seconds:.1f} s cold cache "
        f"(load {report['seconds']['load']} s), "
        f"{report['events_x_rules_per_second']:,} events x rules/s"
    )
    assert report["rules_found"] == 2872
    assert report["loaded"] - len(report["skipped_placeholders"]) >= 0.98 * 2872
    assert seconds < 60
    warm = time.perf_counter()
    load_sigma([corpus / "sigma"])
    print(f"warm load: {time.perf_counter() - warm:.2f} s")
    _attack_samples_figure(corpus, corpus_case[0], result)


def _attack_samples_figure(corpus: Path, case_dir: Path, result: DetectorResult) -> None:
    """Share of EVTX-ATTACK-SAMPLES files with a medium+ finding; benign high findings."""
    uids = {u: f for f in result.findings if severity_rank(f.severity) >= 2 for u in f.event_uids}
    with Case(case_dir, read_only=True) as case:
        rows = case.db.execute("SELECT uid, evidence FROM events").fetchall()
    files_hit = {ev for uid, ev in rows if uid in uids}
    folder = corpus / "EVTX-ATTACK-SAMPLES"
    attack = [p for p in folder.rglob("*") if p.suffix.lower() == ".evtx"]
    hit = [p for p in attack if str(p) in files_hit]
    print(
        f"EVTX-ATTACK-SAMPLES: {len(hit)}/{len(attack)} files ({len(hit) / len(attack):.0%}) "
        "with a medium+ SigmaHQ finding"
    )
    benign: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for finding in result.findings:
        if severity_rank(finding.severity) >= 3 and "EVTX-ATTACK-SAMPLES" not in finding.evidence:
            benign[(finding.severity, finding.title, Path(finding.evidence).name)] += finding.count
    for (level, title, name), count in sorted(benign.items()):
        print(f"benign {level}: {title} — {name} ({count})")
    # With the built-ins (heuristics and analytics), as `irkit scan --sigma` runs them:
    # at least 95 % of the distinct attack files get a finding of level medium or above.
    with Case(case_dir, read_only=True) as case:
        builtins = run_heuristics(case).findings + rare_findings(case).findings
    medium = {
        u
        for f in [*result.findings, *builtins]
        if severity_rank(f.severity) >= 2
        for u in (f.all_event_uids or f.event_uids)
    }
    attack_files = {ev for _, ev in rows if "EVTX-ATTACK-SAMPLES" in ev}
    covered = {ev for uid, ev in rows if uid in medium and "EVTX-ATTACK-SAMPLES" in ev}
    share = len(covered) / len(attack_files)
    print(f"with the built-ins: {len(covered)}/{len(attack_files)} distinct files ({share:.1%})")
    assert share >= 0.95
