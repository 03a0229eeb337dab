"""Sigma beyond Windows: SigmaHQ's Linux, macOS and web-server rules over plaso's and
osquery's events (Linux audit records, syslog by program, web access logs, osquery
process, file and socket events)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from irkit.detect import DetectorResult
from irkit.detect.sigma import load_sigma
from irkit.detect.sigma_logsource import build_table, create_macros, logsource_map, variants
from irkit.detect.sigma_run import run_sigma
from irkit.store.case import Case
from tests.conftest import run_irkit

pytestmark = pytest.mark.corpus

#: plaso-test-data files (real logs) the case is made of.
PLASO_FILES = (
    "audit_enriched.log",
    "selinux.log",
    "apache_access.log",
    "iis/iis7_sqli.log",
    "iis/iis10.log",
    "syslog/syslog_ssh.log",
    "syslog/syslog_cron.log",
    "vsftpd.log",
)
#: osquery results lines shaped as osquery's schema documents its evented tables
#: (process_events, file_events, socket_events); the corpus has no such results log.
OSQUERY_LINES = [
    {
        "name": "pack_ir_process_events",
        "hostIdentifier": "web01",
        "calendarTime": "Tue Mar  5 10:00:00 2024 UTC",
        "unixTime": 1709632800,
        "epoch": 0,
        "counter": 3,
        "action": "added",
        "columns": {
            "pid": "4242",
            "parent": "4200",
            "path": "/usr/bin/base64",
            "cmdline": "base64 -d /tmp/.x",
            "cwd": "/tmp",
            "uid": "33",
            "time": "1709632800",
        },
    },
    {
        "name": "file_watch",
        "hostIdentifier": "web01",
        "calendarTime": "Tue Mar  5 10:01:00 2024 UTC",
        "unixTime": 1709632860,
        "epoch": 0,
        "counter": 3,
        "action": "added",
        "columns": {
            "target_path": "/etc/cron.d/update",
            "action": "CREATED",
            "time": "1709632860",
        },
    },
    {
        "name": "sockets",
        "hostIdentifier": "web01",
        "calendarTime": "Tue Mar  5 10:02:00 2024 UTC",
        "unixTime": 1709632920,
        "epoch": 0,
        "counter": 3,
        "action": "added",
        "columns": {
            "action": "connect",
            "path": "/usr/bin/nc.openbsd",
            "remote_address": "203.0.113.7",
            "remote_port": "4444",
            "local_address": "10.0.0.5",
            "local_port": "51000",
            "time": "1709632920",
        },
    },
]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def other_case(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    folder = tmp_path_factory.mktemp("other")
    log = folder / "osqueryd.results.log"
    log.write_text("".join(json.dumps(line) + "\n" for line in OSQUERY_LINES))
    case = folder / "case"
    files = [str(corpus / "plaso-test-data" / "test_data" / name) for name in PLASO_FILES]
    done = run_irkit("parse", *files, str(log), "--case", str(case), "-q")
    assert done.returncode in (0, 3), done.stderr  # 3: syslog without a year
    return case


def rule(folder: Path, logsource: dict[str, str], detection: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    body = {
        "title": "irkit test rule",
        "id": str(uuid.uuid4()),
        "status": "test",
        "level": "high",
        "logsource": logsource,
        "detection": detection,
    }
    path = folder / f"{body['id']}.yml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def run(case_dir: Path, paths: list[Path]) -> DetectorResult:
    with Case(case_dir, read_only=True) as case:
        return run_sigma(case, load_sigma(paths))


def excerpts(result: DetectorResult) -> list[str]:
    return sorted(f.excerpt for f in result.findings)


LINUX_PROC = {"product": "linux", "category": "process_creation"}
AUDITD = {"product": "linux", "service": "auditd"}
WEB = {"category": "webserver"}

#: (logsource, detection, the findings' evidence files (names), a word of the excerpt).
CASES: list[tuple[dict[str, str], dict[str, Any], set[str]]] = [
    # auditd EXECVE: argv decoded from hex, the executable from the SYSCALL record.
    (
        LINUX_PROC,
        {"s": {"Image|endswith": "/cat", "CommandLine|contains": "/tmp/my report.txt"}},
        {"audit_enriched.log"},
    ),
    (
        LINUX_PROC,
        {"s": {"Image": "/usr/bin/bash", "CommandLine": "/bin/sh -c grep -c . /etc/hostname"}},
        {"audit_enriched.log"},
    ),
    (
        LINUX_PROC,
        {"s": {"CurrentDirectory": "/root", "Image|endswith": "/id"}},
        {"audit_enriched.log"},
    ),
    # osquery process_events
    (
        LINUX_PROC,
        {
            "s": {
                "Image|endswith": "/base64",
                "CommandLine|contains": " -d ",
                "CurrentDirectory": "/tmp",
            }
        },
        {"osqueryd.results.log"},
    ),
    # auditd fields: type and exe as plaso names them, the rest from the record's key=value
    (AUDITD, {"s": {"type": "ADD_USER", "exe|endswith": "/useradd"}}, {"audit_enriched.log"}),
    (
        AUDITD,
        {"s": {"type": "EXECVE", "a0": "/usr/bin/cat", "a1|contains": "report"}},
        {"audit_enriched.log"},
    ),
    (
        AUDITD,
        {"s": {"type": "PATH", "name": "/usr/bin/id", "nametype": "NORMAL"}},
        {"audit_enriched.log"},
    ),
    # file and network events
    (
        {"product": "linux", "category": "file_event"},
        {"s": {"TargetFilename|startswith": "/etc/cron.d/"}},
        {"osqueryd.results.log"},
    ),
    (
        {"product": "linux", "category": "network_connection"},
        {"s": {"Initiated": "true", "DestinationPort": 4444, "Image|endswith": "/nc.openbsd"}},
        {"osqueryd.results.log"},
    ),
    # syslog by program, keywords over the line
    (
        {"product": "linux", "service": "sshd"},
        {"k": ["Failed publickey for"], "condition": "k"},
        {"syslog_ssh.log"},
    ),
    (
        {"product": "linux", "service": "cron"},
        {"k": ["touch /tmp/afile.txt"], "condition": "k"},
        {"syslog_cron.log"},
    ),
    (
        {"product": "linux", "service": "vsftpd"},
        {"k": ["OK LOGIN"], "condition": "k"},
        {"vsftpd.log"},
    ),
    ({"product": "linux"}, {"k": ["Failed publickey for"], "condition": "k"}, {"syslog_ssh.log"}),
    # web servers: Apache's request line split, IIS's fields; cs-uri-query is path + query
    (
        WEB,
        {
            "s": {
                "cs-method": "GET",
                "cs-uri-stem|endswith": "/evil.php",
                "cs-uri-query|contains": "?cmd=",
                "sc-status": 200,
            }
        },
        {"apache_access.log"},
    ),
    (
        WEB,
        {
            "s": {
                "cs-uri-query|contains": "/baz.asp?ID=1%27%20or%201",
                "sc-status": 500,
                "cs-user-agent|contains": "Mac OS X",
            }
        },
        {"iis7_sqli.log"},
    ),
]


@pytest.mark.parametrize(("logsource", "detection", "files"), CASES)
def test_rules_of_other_products_fire_on_their_events(
    other_case: Path,
    tmp_path: Path,
    logsource: dict[str, str],
    detection: dict[str, Any],
    files: set[str],
) -> None:
    if "condition" not in detection:
        detection = {**detection, "condition": "s"}
    result = run(other_case, [rule(tmp_path / "r", logsource, detection)])
    assert not result.warnings
    got = {Path(f.evidence).name for f in result.findings}
    assert got == files


def test_a_rule_does_not_fire_on_other_products_events(other_case: Path, tmp_path: Path) -> None:
    # The same detection under Windows' process_creation reads EVTX only; under macOS it
    # reads osquery's process rows (no product can be told from them), not auditd's.
    detection = {"s": {"Image|endswith": "/cat"}, "condition": "s"}
    windows = run(
        other_case,
        [rule(tmp_path / "w", {"product": "windows", "category": "process_creation"}, detection)],
    )
    assert not windows.findings
    macos = run(
        other_case,
        [rule(tmp_path / "m", {"product": "macos", "category": "process_creation"}, detection)],
    )
    assert not macos.findings
    # A PATH record of an executed file (nametype NORMAL) is not a file creation.
    created = {"s": {"TargetFilename": "/usr/bin/id"}, "condition": "s"}
    files = run(
        other_case, [rule(tmp_path / "f", {"product": "linux", "category": "file_event"}, created)]
    )
    assert not files.findings


def test_sigmahq_linux_macos_and_web_rules_load_run_and_say_what_is_blind(
    other_case: Path, corpus: Path
) -> None:
    folder = corpus / "sigma-linux-macos"
    paths = sorted(folder.rglob("*.yml"))
    assert len(paths) == 396
    unmapped = [
        p for p in paths if variants(yaml.safe_load(p.read_text()).get("logsource", {})) is None
    ]
    assert not unmapped
    result = run(other_case, [folder])
    report = result.report
    assert report["loaded"] >= 0.98 * 396 and report["run"] > 0
    # SigmaHQ's own rules fire on the real audit log: a user account created (auditd
    # ADD_USER) and `id` run (process_creation from EXECVE + SYSCALL).
    titles = {f.title for f in result.findings}
    assert {"Creation Of An User Account", "System Owner or User Discovery - Linux"} <= titles
    coverage = report["coverage"]
    # Blind rules are listed with the reason: no such events in the case, or fields the
    # events never carry (ParentImage: an audit record does not name the parent's image).
    assert "linux:service:sudo" in coverage["logsource_absent"]
    missing = {f for item in coverage["cannot_fire"] for f in item["missing_fields"]}
    assert "ParentImage" in missing


def test_every_variants_sql_binds_on_the_events_schema() -> None:
    # The map's SQL (exprs, filter, partner) is data: each variant builds a table over an
    # events table of irkit's schema, with every Sigma field it names and one it does not.
    db = duckdb.connect()
    db.execute(
        """CREATE TABLE events (uid VARCHAR, ts TIMESTAMPTZ, host VARCHAR, source VARCHAR,
           artifact VARCHAR, event_id VARCHAR, evidence VARCHAR, record VARCHAR,
           message VARCHAR, fields JSON)"""
    )
    keys = {("plaso", "text/selinux", ""): {"message_body", "audit_type"}}
    create_macros(db)
    built = 0
    for product, kinds in logsource_map().items():
        for table in kinds.values():
            for name, items in table.items():
                for variant in items:
                    names = [n for n, _ in variant.exprs] + [n for n, _ in variant.fields]
                    if variant.partner:
                        names += [n for n, _ in variant.partner.fields]
                    build_table(db, "t", [variant], [*names, "Unheard-Of"], keys)
                    built += 1
                    assert variant.source in ("evtx", "plaso", "osquery"), (product, name)
    assert built > 90
