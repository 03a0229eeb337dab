"""A case's chain of custody: run manifests (CASE/runs/RUN-ID.json) and `irkit verify CASE`."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import EVIDENCE, run_irkit

#: Keys every run manifest has, in this order.
KEYS = [
    "format",
    "format_version",
    "run_id",
    "command",
    "tool",
    "argv",
    "cwd",
    "started_utc",
    "finished_utc",
    "store_runs",
    "options",
    "inputs",
    "rule_sets",
    "outputs",
]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(case: Path, run_id: str) -> dict[str, Any]:
    path = case / "runs" / f"{run_id}.json"
    assert path.is_file(), sorted(p.name for p in (case / "runs").iterdir())
    data: dict[str, Any] = json.loads(path.read_text(encoding="ascii"))
    assert list(data) == KEYS
    assert data["format"] == "irkit-run" and data["run_id"] == run_id
    assert data["started_utc"].endswith("Z") and data["finished_utc"].endswith("Z")
    assert data["started_utc"] <= data["finished_utc"]
    assert data["tool"]["name"] == "irkit" and data["tool"]["version"]
    return data


def _verify(case: Path) -> tuple[int, dict[str, Any], str]:
    result = run_irkit("verify", str(case), "--json")
    return result.returncode, json.loads(result.stdout), result.stderr


def _named(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(p["kind"], p["role"], p["path"]) for p in report["problems"]]


@pytest.fixture(scope="module")
def triaged(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> dict[str, Any]:
    """A triage of a copy of the bundled evidence with a copy of SigmaHQ's Security rules."""
    root = tmp_path_factory.mktemp("custody")
    evidence = root / "evidence"
    shutil.copytree(EVIDENCE, evidence)
    sigma = root / "sigma"
    shutil.copytree(corpus / "sigma" / "rules" / "windows" / "builtin" / "security", sigma)
    case = root / "case"
    result = run_irkit(
        "triage", str(evidence), "--case", str(case), "--sigma", str(sigma), "--json"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    return {"case": case, "evidence": evidence, "sigma": sigma, "run": data}


@pytest.fixture()
def keep(triaged: dict[str, Any]) -> Iterator[Callable[[Path], Path]]:
    """``keep(path)`` before a test changes a file: it is put back afterwards (the triage
    is shared), and the case verifies again."""
    saved: dict[Path, bytes] = {}

    def remember(path: Path) -> Path:
        saved.setdefault(path, path.read_bytes())
        return path

    yield remember
    for path, data in saved.items():
        path.write_bytes(data)
    code, report, _ = _verify(triaged["case"])
    assert code == 0, report["problems"]


def test_triage_manifest_names_evidence_rules_and_outputs(triaged: dict[str, Any]) -> None:
    case, run = triaged["case"], triaged["run"]
    data = _manifest(case, run["run_id"])
    assert data["command"] == "triage"
    assert data["store_runs"] == {
        "hash": run["hash"]["run_id"],
        "parse": run["run_id"],
        "scan": run["scan"]["run_id"],
    }
    assert data["argv"][-5:] == ["--case", str(case), "--sigma", str(triaged["sigma"]), "--json"]
    assert data["options"]["sigma"] == [str(triaged["sigma"])]
    evidence = {e["path"]: e["sha256"] for e in data["inputs"]["evidence"]}
    on_disk = sorted(triaged["evidence"].iterdir())
    assert evidence == {str(p): _sha256(p) for p in on_disk}
    sets = {r["name"]: r for r in data["rule_sets"]}
    assert sorted(sets) == ["analytics", "heuristics", "sigma", "sigma-logsources"]
    sigma = sets["sigma"]
    rule_files = sorted(triaged["sigma"].rglob("*.yml"))
    assert [f["path"] for f in sigma["files"]] == [str(p) for p in rule_files]
    assert all(f["sha256"] == _sha256(Path(f["path"])) for f in sigma["files"])
    report = run["scan"]["detectors"]["sigma"]["report"]
    assert sigma["loaded"] == report["loaded"] > 0
    assert sigma["loaded"] + sigma["skipped"] == report["rules_found"] == len(rule_files)
    assert sets["heuristics"]["builtin"] and sets["heuristics"]["loaded"] > 100
    assert len(sets["heuristics"]["files"]) >= sets["heuristics"]["loaded"]
    outputs = {o["path"]: o["sha256"] for o in data["outputs"]}
    written = ["findings.csv", "hashes.sha256", "timeline.csv"]
    if "report" in run:  # triage writes report.html too
        written = sorted([*written, "report.html"])
    assert sorted(outputs) == written
    assert outputs == {name: _sha256(case / name) for name in outputs}


def test_verify_passes_on_an_untouched_triage(triaged: dict[str, Any]) -> None:
    code, report, _ = _verify(triaged["case"])
    assert code == 0, report["problems"]
    assert report["verified"] and report["kind"] == "case" and report["runs"] == 1
    assert report["files_checked"] > 150  # 4 logs, 3 outputs, the rule files
    result = run_irkit("verify", str(triaged["case"]))
    assert result.returncode == 0 and "verified: case" in result.stderr


def test_verify_names_an_edited_findings_csv(
    triaged: dict[str, Any], keep: Callable[[Path], Path]
) -> None:
    findings = triaged["case"] / "findings.csv"
    keep(findings)
    findings.write_bytes(findings.read_bytes().replace(b"high", b"low", 1) + b"\r\n")
    code, report, _ = _verify(triaged["case"])
    assert code == 5
    assert _named(report) == [("altered", "output", "findings.csv")]
    assert _sha256(findings) in report["problems"][0]["message"]
    result = run_irkit("verify", str(triaged["case"]))
    assert result.returncode == 5
    assert "altered: output: findings.csv: sha256 is" in result.stderr


def test_verify_names_a_changed_sigma_rule(
    triaged: dict[str, Any], keep: Callable[[Path], Path]
) -> None:
    data = _manifest(triaged["case"], triaged["run"]["run_id"])
    sigma = next(r for r in data["rule_sets"] if r["name"] == "sigma")
    rule = Path(sigma["files"][0]["path"])
    keep(rule)
    rule.write_text(rule.read_text(encoding="utf-8").replace("level:", "level: low #", 1))
    code, report, _ = _verify(triaged["case"])
    assert code == 5
    assert _named(report) == [("altered", "rule", str(rule))]
    assert "the triage run" in report["problems"][0]["message"]


def test_verify_names_an_altered_or_missing_evidence_file(
    triaged: dict[str, Any], keep: Callable[[Path], Path]
) -> None:
    log = triaged["evidence"] / "new-user-security.evtx"
    keep(log)
    raw = bytearray(log.read_bytes())
    raw[5000] ^= 0xFF  # one byte of one record
    log.write_bytes(bytes(raw))
    code, report, _ = _verify(triaged["case"])
    assert code == 5
    assert _named(report) == [("altered", "evidence", str(log))]
    log.unlink()
    code, report, _ = _verify(triaged["case"])
    assert code == 5
    assert _named(report) == [("missing", "evidence", str(log))]


def test_each_command_writes_its_manifest(tmp_path: Path, corpus: Path) -> None:
    """parse, hash --case and scan each write CASE/runs/RUN-ID.json; a later run that
    rewrites an output supersedes the earlier one's record of it."""
    evidence = tmp_path / "evidence"
    shutil.copytree(EVIDENCE, evidence)
    case = tmp_path / "case"
    parsed = run_irkit("parse", str(evidence), "--case", str(case), "--json")
    assert parsed.returncode == 0, parsed.stderr
    run = json.loads(parsed.stdout)
    data = _manifest(case, run["run_id"])
    assert data["command"] == "parse" and data["store_runs"] == {"parse": run["run_id"]}
    assert data["rule_sets"] == [] and data["outputs"] == []
    assert {e["path"]: e["sha256"] for e in data["inputs"]["evidence"]} == {
        str(p): _sha256(p) for p in evidence.iterdir()
    }

    files = tmp_path / "files"
    files.mkdir()
    (files / "a.txt").write_text("alpha\n")
    (files / "b.bin").write_bytes(b"\x00beta")
    iocs = tmp_path / "iocs.txt"
    iocs.write_text(f"{_sha256(files / 'a.txt')};planted\nnot-a-hash;bad line\n")
    listing = case / "files.sha256"
    hashed = run_irkit(
        "hash", str(files), "--case", str(case), "--ioc", str(iocs), "-o", str(listing), "--json"
    )
    assert hashed.returncode == 4, hashed.stderr  # the IOC matched
    first = json.loads(hashed.stdout)["run_id"]
    data = _manifest(case, first)
    assert data["command"] == "hash"
    assert {e["path"]: e["sha256"] for e in data["inputs"]["evidence"]} == {
        str(p): _sha256(p) for p in files.iterdir()
    }
    (ioc_set,) = data["rule_sets"]
    assert (ioc_set["name"], ioc_set["loaded"], ioc_set["skipped"]) == ("ioc", 1, 1)
    assert [f["path"] for f in ioc_set["files"]] == [str(iocs)]
    assert data["outputs"] == [
        {"path": "files.sha256", "sha256": _sha256(listing), "size": listing.stat().st_size}
    ]

    rules = tmp_path / "rules"
    shutil.copytree(corpus / "sigma" / "rules" / "windows" / "builtin" / "security", rules)
    yara = tmp_path / "planted.yar"
    yara.write_text('rule planted { strings: $a = "alpha" condition: $a }\n')
    scanned = run_irkit(
        "scan", str(case), "--sigma", str(rules), "--yara", str(yara), "--no-builtin", "--json"
    )
    assert scanned.returncode == 0, scanned.stderr
    scan_id = json.loads(scanned.stdout)["run_id"]
    data = _manifest(case, scan_id)
    sets = {r["name"]: r for r in data["rule_sets"]}
    assert sorted(sets) == ["sigma", "sigma-logsources", "yara", "yara-event-fields"]
    assert (sets["yara"]["loaded"], sets["yara"]["skipped"]) == (1, 0)
    assert sets["yara"]["files"] == [
        {"path": str(yara), "sha256": _sha256(yara), "size": yara.stat().st_size}
    ]
    assert data["options"]["no_builtin"] is True

    (files / "b.bin").write_bytes(b"\x00beta, changed")  # the second hash reads it changed
    again = run_irkit("hash", str(files), "--case", str(case), "-o", str(listing), "--json")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)["run_id"]
    code, report, _ = _verify(case)
    assert code == 5 and report["runs"] == 4
    # files.sha256 is checked against the second run only; b.bin against both: the first
    # hash run read other bytes.
    assert report["superseded"] == [{"path": "files.sha256", "run_id": first, "by": second}]
    assert _named(report) == [("altered", "evidence", str(files / "b.bin"))]
    assert f"hash run {first[:12]}" in report["problems"][0]["message"]
    yara.write_text("rule changed { condition: true }\n")
    code, report, _ = _verify(case)
    assert ("altered", "rule", str(yara)) in _named(report)


def test_verify_a_case_without_manifests(tmp_path: Path) -> None:
    (tmp_path / "case").mkdir()
    (tmp_path / "case" / "irkit.duckdb").write_bytes(b"")
    result = run_irkit("verify", str(tmp_path / "case"))
    assert result.returncode == 1
    assert "holds no run manifest" in result.stderr


def test_verify_names_a_changed_collection_manifest(tmp_path: Path) -> None:
    """A collection parsed into the case: its manifest.json digest is kept per run."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("host1\n")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    collection = tmp_path / "collection"
    collected = run_irkit("collect", "--root", str(root), "--out", str(collection), "-q")
    assert collected.returncode == 0, collected.stderr
    case = tmp_path / "case"
    triaged = run_irkit("triage", str(collection), "--case", str(case), "--no-scan", "--json")
    assert triaged.returncode == 0, triaged.stderr
    data = _manifest(case, json.loads(triaged.stdout)["run_id"])
    (entry,) = data["inputs"]["collections"]
    manifest = collection / "manifest.json"
    assert entry["path"] == str(collection)
    assert entry["manifest_sha256"] == _sha256(manifest)
    assert data["outputs"][-1]["path"] == "timeline.csv"
    assert _verify(case)[0] == 0
    manifest.write_bytes(manifest.read_bytes().replace(b'"examiner": ""', b'"examiner": "x"'))
    code, report, _ = _verify(case)
    assert code == 5
    assert ("altered", "collection", str(collection)) in _named(report)


def test_report_writes_its_manifest(tmp_path: Path) -> None:
    case = tmp_path / "case"
    parsed = run_irkit("parse", str(EVIDENCE), "--case", str(case), "-q")
    assert parsed.returncode == 0, parsed.stderr
    page = tmp_path / "page.html"
    result = run_irkit("report", str(case), "-o", str(page), "--json")
    assert result.returncode == 0, result.stderr
    (data,) = [
        m
        for p in (case / "runs").glob("*.json")
        if (m := json.loads(p.read_text()))["command"] == "report"
    ]
    assert data["store_runs"] == {} and data["inputs"]["evidence"] == []
    assert data["outputs"] == [
        {"path": str(page), "sha256": _sha256(page), "size": page.stat().st_size}
    ]
    assert _verify(case)[0] == 0
    page.write_bytes(page.read_bytes().replace(b"<body", b"<body onload=x", 1))
    code, report, _ = _verify(case)
    assert code == 5 and _named(report) == [("altered", "output", str(page))]
