"""What a responder sees from `irkit scan` and `irkit findings`: rule problems named,
progress on a terminal, level choices, --limit, examples that run, findings grouped by
the event they rest on, and YARA over the files a case knows."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import select
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from irkit.detect import ScanProgress
from irkit.errors import ExitCode

from .conftest import DIRTY, EVIDENCE, run_irkit

MARKER_RULE = 'rule Irkit_Marker { strings: $a = "IRKIT-UX-MARKER" condition: $a }\n'
BROKEN_YARA = 'rule Broken { strings: $a = "x" condition: $a and }\n'
OBFUSCATED_PS = "EVTX-ATTACK-SAMPLES/Lateral Movement/LM_sysmon_psexec_smb_meterpreter.evtx"


@pytest.fixture(autouse=True)
def _private_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiled YARA rules in a private cache (the Sigma cache stays: SigmaHQ is big)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("IRKIT_CACHE", str(Path.home() / ".cache" / "irkit"))


def _case(tmp_path: Path, *evidence: Path) -> Path:
    case = tmp_path / "case"
    result = run_irkit("parse", *(str(e) for e in evidence or (EVIDENCE,)), "--case", str(case))
    assert result.returncode in (ExitCode.OK, ExitCode.PARTIAL), result.stderr
    return case


def _sigma_rule(folder: Path, name: str, logsource: dict[str, str], event_id: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rule = {
        "title": f"irkit ux {name}",
        "id": str(uuid.uuid4()),
        "status": "test",
        "level": "medium",
        "logsource": logsource,
        "detection": {"selection": {"EventID": event_id}, "condition": "selection"},
    }
    path = folder / f"{name}.yml"
    path.write_text(yaml.safe_dump(rule, sort_keys=False))
    return path


def _on_terminal(*args: str, cwd: Path | None = None) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout piped): exit code, stderr."""
    import pty

    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm-256color"}
    env.pop("IRKIT_DEBUG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "irkit", *args],
        stdout=subprocess.DEVNULL,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    code = proc.wait(timeout=600)
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return code, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def _column(table: str, header: str) -> str:
    """One column of a printed rich table, its wrapped lines joined by spaces."""
    lines = table.splitlines()
    heads = [h.strip() for h in next(ln for ln in lines if "┃" in ln).split("┃")]
    index = heads.index(header)
    cells = [ln.split("│")[index].strip() for ln in lines if ln.count("│") == len(heads) - 1]
    return " ".join(c for c in cells if c)


# -- item 6: rule problems named, counts shown, exit 3 ---------------------------------


def test_broken_sigma_file_is_named_with_counts_and_exit_3(tmp_path: Path) -> None:
    case = _case(tmp_path)
    rules = tmp_path / "sigma"
    _sigma_rule(rules, "fires", {"product": "windows", "service": "security"}, 4732)
    _sigma_rule(rules, "absent", {"product": "windows", "category": "process_creation"}, 1)
    (rules / "broken.yml").write_text("title: broken\n  detection: [\n")
    result = run_irkit("scan", str(case), "--sigma", str(rules), "--no-builtin")
    assert result.returncode == ExitCode.PARTIAL, result.stderr
    out = result.stderr
    assert "3 rules in 3 files: 2 loaded, 1 run, 1 not run (1 logsource absent)" in out
    assert "1 failed" in out
    line = next(ln for ln in out.splitlines() if "broken.yml" in ln)
    assert "not loaded: invalid YAML" in line
    data = json.loads(
        run_irkit("scan", str(case), "--sigma", str(rules), "--no-builtin", "--json").stdout
    )
    report = data["detectors"]["sigma"]["report"]
    assert [Path(i["path"]).name for i in report["invalid"]] == ["broken.yml"]
    assert (report["loaded"], report["run"], report["not_run"]["logsource_absent"]) == (2, 1, 1)
    assert [(Path(w["path"]).name, w["kind"]) for w in data["warnings"]] == [
        ("broken.yml", "rule-file-error")
    ]
    # A rule set whose only rule is broken: nothing loaded, said so, still exit 3.
    only = tmp_path / "only"
    only.mkdir()
    shutil.copy(rules / "broken.yml", only / "broken.yml")
    alone = run_irkit("scan", str(case), "--sigma", str(only), "--no-builtin")
    assert alone.returncode == ExitCode.PARTIAL
    assert "1 rule in 1 file: 0 loaded, 0 run" in alone.stderr


def test_broken_yara_file_is_named_with_its_line(tmp_path: Path) -> None:
    case = _case(tmp_path)
    rules = tmp_path / "yara"
    rules.mkdir()
    (rules / "good.yar").write_text(MARKER_RULE)
    (rules / "bad.yar").write_text(BROKEN_YARA)
    result = run_irkit("scan", str(case), "--yara", str(rules), "--no-builtin")
    assert result.returncode == ExitCode.PARTIAL, result.stderr
    assert "1 rule from 2 files (1 failed)" in result.stderr
    line = next(ln for ln in result.stderr.splitlines() if "bad.yar" in ln)
    assert "not loaded: line 1: syntax error" in line
    data = json.loads(
        run_irkit("scan", str(case), "--yara", str(rules), "--no-builtin", "--json").stdout
    )
    # Reported once, by the first YARA part, not once per part.
    assert [w["kind"] for w in data["warnings"]] == ["rule-file-error"]


# -- item 10: progress -------------------------------------------------------------------


class Recorder(ScanProgress):
    """Every phase, its total and what was advanced."""

    def __init__(self) -> None:
        self.phases: list[list[object]] = []
        self.open = False

    def phase(self, label: str, total: float | None = None, unit: str = "") -> None:
        assert not self.open, "a phase began before the last one was done"
        self.phases.append([label, total, unit, 0])
        self.open = True

    def advance(self, amount: float = 1) -> None:
        assert self.open
        self.phases[-1][3] += amount  # type: ignore[operator]

    def done(self) -> None:
        self.open = False


def test_every_phase_reports_progress(tmp_path: Path) -> None:
    from irkit.detect.scan import ScanOptions, scan
    from irkit.store.case import Case

    case = _case(tmp_path, DIRTY, EVIDENCE)  # sysmon.evtx: command lines for event text
    with Case(case, read_only=True) as store:
        [(evidence_bytes, with_text)] = store.db.execute(
            "SELECT (SELECT sum(size) FROM evidence), "
            "(SELECT count(*) FROM events WHERE fields LIKE '%\"CommandLine\"%')"
        ).fetchall()
    rules = tmp_path / "sigma"
    _sigma_rule(rules, "fires", {"product": "windows", "service": "security"}, 4732)
    _sigma_rule(rules, "absent", {"product": "windows", "category": "process_creation"}, 1)
    yara_rules = tmp_path / "marker.yar"
    yara_rules.write_text(MARKER_RULE)
    target = tmp_path / "target"
    target.mkdir()
    (target / "x.txt").write_bytes(b"IRKIT-UX-MARKER" * 10)
    recorder = Recorder()
    options = ScanOptions(
        sigma=[rules], yara=[yara_rules], yara_targets=[target], progress=recorder
    )
    summary = scan(case, options)
    assert not recorder.open
    phases = {label: (total, unit, done) for label, total, unit, done in recorder.phases}
    assert [p[0] for p in recorder.phases] == [
        "heuristics", "analytics", "sigma: reading rules", "sigma: running rules",
        "yara: compiling rules", "yara: case files", "yara: event text", "yara: target files",
    ]  # fmt: skip
    heuristics = summary.as_dict()["detectors"]["heuristic"]["report"]["heuristics"]
    assert phases["heuristics"] == (heuristics, "rules", heuristics) and heuristics > 50
    assert phases["sigma: reading rules"] == (2, "files", 2)
    assert phases["sigma: running rules"] == (2, "rules", 2)
    assert phases["yara: case files"] == (evidence_bytes, "bytes", evidence_bytes)
    total, unit, done = phases["yara: event text"]
    assert (total, unit) == (None, "events") and done >= with_text > 0
    assert phases["yara: target files"] == (None, "bytes", 150)


def test_scan_and_triage_show_progress_on_a_terminal_only(tmp_path: Path) -> None:
    case = _case(tmp_path)
    rules = tmp_path / "sigma"
    _sigma_rule(rules, "fires", {"product": "windows", "service": "security"}, 4732)
    code, shown = _on_terminal("scan", str(case), "--sigma", str(rules))
    assert code == ExitCode.OK, shown
    assert re.search(r"heuristics .*\d+/\d+ rules", shown), shown
    assert re.search(r"sigma: running rules .*\d+/1 rules", shown), shown
    assert "irkit scan" in shown  # the summary follows
    code, quiet = _on_terminal("scan", str(case), "--sigma", str(rules), "-q")
    assert (code, quiet.strip()) == (ExitCode.OK, "")
    piped = run_irkit("scan", str(case), "--sigma", str(rules))
    assert "sigma: running rules" not in piped.stderr and "irkit scan" in piped.stderr
    code, triage = _on_terminal("triage", str(EVIDENCE), "--out", str(tmp_path / "t"))
    assert code == ExitCode.OK, triage
    assert re.search(r"heuristics .*\d+/\d+ rules", triage), triage


# -- item 12: choices, --limit, examples -------------------------------------------------


def test_levels_are_choices_and_a_bad_one_is_a_usage_error(tmp_path: Path) -> None:
    levels = "informational|low|medium|high|critical"
    # scan: --min-level and --fail-on; findings: --min-level; triage: --fail-on.
    for command, options in (("scan", 2), ("findings", 1), ("triage", 1)):
        shown = run_irkit(command, "--help").stdout
        assert re.sub(r"[\s│]+", "", shown).count(levels) == options, command
    case = _case(tmp_path)
    for args in (
        ("scan", str(case), "--fail-on", "severe"),
        ("scan", str(case), "--min-level", "HIGH"),
        ("findings", str(case), "--min-level", "bad"),
    ):
        bad = run_irkit(*args)
        assert bad.returncode == ExitCode.USAGE, args
        assert "is not one of 'informational', 'low', 'medium', 'high', 'critical'" in bad.stderr


def test_findings_limit(tmp_path: Path) -> None:
    case = _case(tmp_path, DIRTY, EVIDENCE)
    assert run_irkit("scan", str(case), "-q").returncode == ExitCode.OK
    every = list(csv.DictReader(io.StringIO(run_irkit("findings", str(case), "-f", "csv").stdout)))
    assert len(every) > 3
    two = run_irkit("findings", str(case), "-f", "csv", "--limit", "2")
    assert list(csv.DictReader(io.StringIO(two.stdout))) == every[:2]  # the most severe
    lines = run_irkit("findings", str(case), "-f", "jsonl", "--limit", "3").stdout.splitlines()
    assert [json.loads(line)["uid"] for line in lines] == [r["uid"] for r in every[:3]]
    table = run_irkit("findings", str(case), "--limit", "1", "--no-group")
    assert table.returncode == 0 and f"1 rows shown of {len(every)} findings" in table.stdout
    assert run_irkit("findings", str(case), "--limit", "0").returncode == ExitCode.USAGE


def test_findings_output_dash_is_stdout_and_table_refuses_a_file(tmp_path: Path) -> None:
    case = _case(tmp_path, DIRTY, EVIDENCE)
    assert run_irkit("scan", str(case), "-q").returncode == ExitCode.OK
    to_stdout = run_irkit("findings", str(case), "-f", "csv", "-o", "-", cwd=tmp_path)
    assert to_stdout.returncode == 0
    assert to_stdout.stdout == run_irkit("findings", str(case), "-f", "csv").stdout
    assert not (tmp_path / "-").exists()
    table = run_irkit("findings", str(case), "-o", str(tmp_path / "f.txt"))
    assert table.returncode == ExitCode.USAGE
    assert not (tmp_path / "f.txt").exists()


def test_findings_jsonl_has_no_raw_control_character(tmp_path: Path) -> None:
    from irkit.cli.findings import FindingsFormat, write_findings

    row = {"uid": "u", "title": "t\x1b[31m\x9b\x7f", "count": "1", "attack": "", "details": ""}
    out = io.StringIO()
    write_findings(FindingsFormat.jsonl, [row], out)
    text = out.getvalue()
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f]", text)
    assert json.loads(text)["title"] == row["title"]


@pytest.mark.corpus
def test_help_examples_run(corpus: Path, tmp_path: Path) -> None:
    """The examples in `scan --help` and `findings --help` are real command lines: run
    from the corpus folder (sigma/…, signature-base/… are there) on a real case."""
    case = _case(tmp_path, corpus / OBFUSCATED_PS)
    users = tmp_path / "Users"
    users.mkdir()
    (users / "notes.txt").write_text("nothing to see")
    examples = []
    for command in ("scan", "findings"):
        text = run_irkit(command, "--help").stdout
        found = re.findall(rf"^\s*(irkit {command} \./case .*?)\s*$", text, re.MULTILINE)
        assert len(found) == 2, text
        examples += found
    for example in examples:
        args = example.split()[1:]
        args = [str(case) if a == "./case" else a for a in args]
        args = [str(users) if a == "/mnt/c/Users" else a for a in args]
        args = [str(tmp_path / a) if a == "findings.csv" else a for a in args]
        result = run_irkit(*args, cwd=corpus)
        assert result.returncode in (ExitCode.OK, ExitCode.FINDINGS), (example, result.stderr)
    assert (tmp_path / "findings.csv").stat().st_size > 0


# -- item 14: findings grouped by the event they rest on ---------------------------------


@pytest.mark.corpus
def test_findings_on_one_event_are_one_row_naming_every_rule(corpus: Path, tmp_path: Path) -> None:
    from irkit.detect.scan import group_findings, iter_findings
    from irkit.store.case import Case

    case = _case(tmp_path, corpus / OBFUSCATED_PS)
    scanned = run_irkit("scan", str(case), "--sigma", str(corpus / "sigma/rules/windows"))
    assert scanned.returncode == ExitCode.OK, scanned.stderr
    rows = list(csv.DictReader(io.StringIO(run_irkit("findings", str(case), "-f", "csv").stdout)))
    # The case keeps every rule's finding; the export lists each one.
    with Case(case, read_only=True) as store:
        assert len(rows) == store.count_findings()
        groups = group_findings(iter_findings(store))
    by_event: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_event.setdefault(row["event_uid"], []).append(row)
    assert len(groups) == len(by_event) < len(rows)
    # The obfuscated launcher (cmd /b /c start /b /min powershell -nop -w hidden …) is the
    # first event of many rules' findings, sigma and heuristic alike.
    launcher = max(groups, key=lambda g: len(g.members))
    assert "cmd.exe /b /c start /b /min powershell" in launcher.lead["excerpt"]
    assert len(launcher.members) >= 8
    assert {"sigma", "heuristic"} <= set(launcher.detectors)
    assert launcher.severity == max(
        (m["severity"] for m in launcher.members),
        key=["informational", "low", "medium", "high", "critical"].index,
    )
    assert launcher.count == max(int(m["count"]) for m in launcher.members)
    assert {m["event_uid"] for m in launcher.members} == {launcher.lead["event_uid"]}
    table = run_irkit("findings", str(case)).stdout
    assert f"{len(rows)} findings on {len(groups)} events" in table
    assert f"{len(launcher.members)} rules:" in table
    titles = _column(table, "title")
    for member in launcher.members:  # every rule is named in its row
        assert re.sub(r"\s+", " ", member["title"]) in titles, member["title"]
    ungrouped = run_irkit("findings", str(case), "--no-group").stdout
    assert f"{len(rows)} findings" in ungrouped and " on " not in ungrouped.splitlines()[-1]
    assert "rules:" not in ungrouped
    # The scan summary groups the same way.
    summary = run_irkit("scan", str(case), "--sigma", str(corpus / "sigma/rules/windows"))
    assert f"on {len(groups)} events" in summary.stderr


# -- item 15: YARA over the files the case knows -----------------------------------------


def test_yara_scans_hashed_files_and_names_its_parts(tmp_path: Path) -> None:
    folder = tmp_path / "hashed"
    folder.mkdir()
    (folder / "dropper.ps1").write_bytes(b"junk IRKIT-UX-MARKER junk")
    (folder / "readme.txt").write_bytes(b"nothing here")
    (folder / "later.txt").write_bytes(b"will change")
    (folder / "gone.txt").write_bytes(b"will vanish")
    case = tmp_path / "case"
    hashed = run_irkit("hash", str(folder), "--case", str(case), "-q")
    assert hashed.returncode == ExitCode.OK, hashed.stderr
    (folder / "later.txt").write_bytes(b"has changed")  # same size, other bytes
    (folder / "gone.txt").unlink()
    rules = tmp_path / "marker.yar"
    rules.write_text(MARKER_RULE)
    target = tmp_path / "target"
    target.mkdir()
    (target / "other.bin").write_bytes(b"IRKIT-UX-MARKER")
    result = run_irkit(
        "scan", str(case), "--yara", str(rules), "--yara-target", str(target), "--json"
    )
    assert result.returncode == ExitCode.PARTIAL, result.stderr
    data = json.loads(result.stdout)
    assert list(data["detectors"]) == [
        "heuristic", "analytics", "yara-evidence", "yara-events", "yara-targets"
    ]  # fmt: skip
    evidence = data["detectors"]["yara-evidence"]["report"]
    assert evidence["case_files"] == {"parsed": 0, "hashed": 4}
    assert evidence["files_scanned"] == 2
    assert evidence["bytes_scanned"] == len(b"junk IRKIT-UX-MARKER junk") + len(b"nothing here")
    assert data["detectors"]["yara-targets"]["report"]["files_scanned"] == 1
    warnings = {(Path(w["path"]).name, w["kind"]) for w in data["warnings"]}
    assert warnings == {("later.txt", "evidence-changed"), ("gone.txt", "evidence-missing")}
    found = json.loads(
        "[" + ",".join(run_irkit("findings", str(case), "-f", "jsonl").stdout.split()) + "]"
    )
    [on_case] = [f for f in found if f["evidence"] == str(folder / "dropper.ps1")]
    assert on_case["detector"] == "yara" and on_case["event_uid"]  # its File Modified event
    assert not any("later.txt" in f["evidence"] for f in found)  # changed: not scanned
    text = run_irkit("scan", str(case), "--yara", str(rules), "--no-builtin").stderr
    assert "2 files scanned (37 B) of the 4 the case knows (0 parsed, 4 hashed)" in text
    assert re.search(r"later\.txt: evidence-changed: changed since it was read", text)


def test_yara_says_when_it_read_no_file(tmp_path: Path) -> None:
    copy = tmp_path / "copy.evtx"
    shutil.copy(EVIDENCE / "issue_38.evtx", copy)
    case = _case(tmp_path, copy)
    copy.unlink()
    rules = tmp_path / "marker.yar"
    rules.write_text(MARKER_RULE)
    result = run_irkit("scan", str(case), "--yara", str(rules), "--no-builtin")
    assert result.returncode == ExitCode.PARTIAL  # the evidence file is missing
    assert (
        "YARA scanned 0 files: of the 1 files the case knows, 1 not on disk here; "
        "name files or folders with --yara-target." in result.stderr
    )
