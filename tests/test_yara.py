"""The YARA detector on real rules (signature-base) and real event logs."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from irkit.detect.yara import compile_rules, event_fields, scan_case, scan_files
from irkit.detect.yara_match import attack_of, printable, severity_of
from irkit.detect.yara_rules import BUILTIN_MAGIC, file_type
from irkit.model import Severity

SIMPLE = """
rule Irkit_Test_Marker : test
{
    meta:
        author = "irkit tests"
        description = "the irkit test marker"
        score = 85
        mitre_attack = "T1059.001"
    strings:
        $a = "IRKIT-YARA-MARKER"
    condition:
        $a
}
"""


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield


def _rules(tmp_path: Path, text: str = SIMPLE, name: str = "marker.yar") -> Path:
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder


@pytest.mark.corpus
def test_signature_base_compiles_with_externals_and_is_cached(corpus: Path) -> None:
    paths = [corpus / "signature-base/yara", corpus / "signature-base/vendor/yara"]
    first = compile_rules(paths)
    assert (len(first.files), first.rule_count, first.errors) == (742, 5918, [])
    assert first.cache == "miss"
    assert "file-type-signatures.txt" in first.magic_source
    started = time.perf_counter()
    second = compile_rules(paths)
    assert second.cache == "hit"
    assert second.rule_count == 5918
    assert time.perf_counter() - started < first.seconds


def test_broken_file_is_reported_with_its_line_and_the_rest_load(tmp_path: Path) -> None:
    folder = _rules(tmp_path)
    (folder / "sub").mkdir()
    (folder / "sub" / "broken.yara").write_text(
        'rule Fine { condition: true }\nrule Bad {\n  strings: $a = "x"\n'
        "  condition: $a and nope\n}\n"
    )
    (folder / "notes.txt").write_text("not a rule file")
    compiled = compile_rules([folder])
    assert compiled.rule_count == 1
    assert list(compiled.files) == ["marker.yar"]
    [error] = compiled.errors
    assert (Path(error.path).name, error.line) == ("broken.yara", 4)
    assert 'undefined identifier "nope"' in error.message
    result = scan_files(compiled, [tmp_path / "rules"])
    assert any(w.kind == "rule-file-error" and "line 4" in w.message for w in result.warnings)


def test_includes_are_off_or_confined_to_the_rule_folder(tmp_path: Path) -> None:
    (tmp_path / "outside.yar").write_text("rule Outside { condition: true }")
    folder = _rules(tmp_path)
    (folder / "main.yar").write_text('include "inc/part.yar"\nrule Main { condition: true }')
    (folder / "inc").mkdir()
    (folder / "inc" / "part.yar").write_text("rule Part { condition: true }")
    off = compile_rules([folder])
    assert [(Path(e.path).name, e.line) for e in off.errors] == [("main.yar", 1)]
    assert "includes are disabled" in off.errors[0].message
    assert off.rule_count == 2  # marker.yar and inc/part.yar
    on = compile_rules([folder], includes=True)
    assert (on.rule_count, on.errors) == (4, [])
    (folder / "main.yar").write_text('include "../outside.yar"\nrule Main { condition: true }')
    escaped = compile_rules([folder], includes=True)
    assert [Path(e.path).name for e in escaped.errors] == ["main.yar"]
    assert "include" in escaped.errors[0].message


def test_file_match_finding(tmp_path: Path) -> None:
    compiled = compile_rules([_rules(tmp_path)], use_cache=False)
    target = tmp_path / "target"
    target.mkdir()
    (target / "a.ps1").write_bytes(b"\x00junk IRKIT-YARA-MARKER and IRKIT-YARA-MARKER\n")
    (target / "clean.txt").write_text("nothing here")
    result = scan_files(compiled, [target], workers=2)
    [finding] = result.findings
    assert finding.detector == "yara"
    assert finding.rule == "marker.yar:Irkit_Test_Marker"
    assert finding.title == "Irkit_Test_Marker"
    assert finding.description == "the irkit test marker"
    assert finding.severity is Severity.HIGH
    assert finding.attack == ("attack.t1059.001",)
    assert finding.evidence == str(target / "a.ps1") and finding.event_uid == ""
    assert finding.excerpt.startswith("$a@0x6: IRKIT-YARA-MARKER")
    assert finding.details["offsets"] == "$a@0x6,$a@0x1c"
    assert finding.details["author"] == "irkit tests"
    assert len(finding.details["sha256"]) == 64
    assert result.report["files_scanned"] == 2 and result.report["files_matched"] == 1


def test_fifo_and_symlink_are_not_opened(tmp_path: Path) -> None:
    compiled = compile_rules([_rules(tmp_path)], use_cache=False)
    target = tmp_path / "target"
    target.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("IRKIT-YARA-MARKER")
    (target / "link").symlink_to(secret)
    os.mkfifo(target / "pipe")  # opening it for reading would block forever
    result = scan_files(compiled, [target], timeout=5)
    assert result.findings == []
    assert result.report["files_scanned"] == 0
    assert result.report["skipped"] == {"fifo": 1, "symlink-not-followed": 1}


def test_size_cap_and_timeout_are_reported(tmp_path: Path) -> None:
    slow = """
rule Slow {
    condition: for any i in (0..filesize) : (for any j in (0..filesize) : (uint8(j) == 0x1ff))
}
"""
    compiled = compile_rules([_rules(tmp_path, slow)], use_cache=False)
    target = tmp_path / "target"
    target.mkdir()
    (target / "big.bin").write_bytes(b"a" * 2048)
    (target / "slow.txt").write_bytes(b"abc" * 100_000)
    result = scan_files(compiled, [target], timeout=1, max_size=1 << 30)
    kinds = {w.kind: w for w in result.warnings}
    assert "timeout" in kinds and kinds["timeout"].path.endswith("slow.txt")
    capped = scan_files(compiled, [target / "big.bin"], max_size=1024)
    [warning] = capped.warnings
    assert warning.kind == "too-big" and "1024" in warning.message
    assert capped.report["files_scanned"] == 0


def test_externals_are_set_per_file(tmp_path: Path) -> None:
    text = """
rule Ext {
    condition: filename == "x.EXE" and extension == ".exe" and filetype == "EXE"
        and filepath endswith "/x.EXE" and owner != ""
}
"""
    compiled = compile_rules([_rules(tmp_path, text)], use_cache=False)
    (tmp_path / "x.EXE").write_bytes(b"MZ\x90\x00")
    result = scan_files(compiled, [tmp_path / "x.EXE"])
    assert [f.rule for f in result.findings] == ["marker.yar:Ext"]
    assert result.findings[0].details["filetype"] == "EXE"


def test_meta_helpers() -> None:
    assert severity_of({"score": 100}) is Severity.HIGH
    assert severity_of({"score": 60}) is Severity.MEDIUM
    assert severity_of({"score": "45"}) is Severity.LOW
    assert severity_of({"score": 10}) is Severity.INFORMATIONAL
    assert severity_of({"severity": "Critical", "score": 10}) is Severity.CRITICAL
    assert severity_of({}) is Severity.MEDIUM
    assert attack_of({"technique": "T1003.001, T1055"}, ["attack.execution"]) == (
        "attack.t1003.001",
        "attack.t1055",
        "attack.execution",
    )
    assert printable(b"a\\b\x1b[31m") == "a\\\\b\\x1b[31m"
    assert printable("Invoke".encode("utf-16-le")) == "Invoke"
    assert file_type(b"\x7fELF\x02", sorted(BUILTIN_MAGIC, key=lambda m: -len(m[0]))) == "ELF"
    assert file_type(b"nothing", BUILTIN_MAGIC) == "UNKNOWN"


@pytest.mark.corpus
def test_event_text_match_links_to_its_event(corpus: Path, tmp_path: Path) -> None:
    from irkit.store.case import Case
    from tests.conftest import run_irkit

    evtx = (
        corpus
        / "EVTX-ATTACK-SAMPLES/Credential Access/Powershell_4104_MiniDumpWriteDump_Lsass.evtx"
    )
    sysmon = (
        corpus
        / "EVTX-ATTACK-SAMPLES/Lateral Movement/LM_PowershellRemoting_sysmon_1_wsmprovhost.evtx"
    )
    case_dir = tmp_path / "case"
    done = run_irkit("parse", str(evtx), str(sysmon), "--case", str(case_dir))
    assert done.returncode == 0, done.stderr
    rules = """
rule Script_MiniDump { meta: score = 70 strings: $a = "MiniDumpWriteDump" ascii wide condition: $a }
rule Sysmon_Hostname { strings: $a = "HOSTNAME.EXE" nocase condition: $a }
"""
    compiled = compile_rules([_rules(tmp_path, rules)], use_cache=False)
    assert "ScriptBlockText" in event_fields() and "CommandLine" in event_fields()
    with Case(case_dir, read_only=True) as case:
        result = scan_case(case, compiled, files=False)
        expected = dict(
            case.db.execute(
                "SELECT json_extract_string(fields, '$.EventID'), uid FROM events "
                "WHERE json_extract_string(fields, '$.EventID') IN ('4104', '1')"
            ).fetchall()
        )
        files = scan_case(case, compiled, events=False)
    by_rule = {f.rule.partition(":")[2]: f for f in result.findings}
    script = by_rule["Script_MiniDump"]
    assert script.event_uid == expected["4104"] and script.event_uids == (expected["4104"],)
    assert (script.host, script.source, script.count) == ("MSEDGEWIN10", "evtx", 1)
    assert (
        script.ts.startswith("2020-06-30T14:24:08")
        and script.details["fields"] == "ScriptBlockText"
    )
    assert script.severity is Severity.MEDIUM and "MiniDumpWriteDump" in script.excerpt
    host = by_rule["Sysmon_Hostname"]
    assert host.event_uid == expected["1"] and host.host == "DC1.insecurebank.local"
    assert "CommandLine" in host.details["fields"]
    assert result.report["events_with_text"] == 2
    # The evidence files: both EVTX logs scanned, checked against the case's sha256.
    assert files.report["evidence_files"] == 2 and files.report["files_scanned"] == 2
    assert [Path(f.evidence).name for f in files.findings] == [evtx.name]
    assert not files.warnings


@pytest.mark.corpus
def test_missing_evidence_is_a_warning(corpus: Path, tmp_path: Path) -> None:
    import shutil

    from irkit.store.case import Case
    from tests.conftest import run_irkit

    copy = tmp_path / "copy.evtx"
    shutil.copy(
        corpus
        / "EVTX-ATTACK-SAMPLES/Lateral Movement/LM_PowershellRemoting_sysmon_1_wsmprovhost.evtx",
        copy,
    )
    assert run_irkit("parse", str(copy), "--case", str(tmp_path / "case")).returncode == 0
    copy.unlink()
    compiled = compile_rules([_rules(tmp_path)], use_cache=False)
    with Case(tmp_path / "case", read_only=True) as case:
        result = scan_case(case, compiled, events=False)
    assert [(w.kind, w.path) for w in result.warnings] == [("evidence-missing", str(copy))]
