"""`irkit verify CASE`: a case checked against its run manifests (``CASE/runs/*.json``).

The evidence, rule files and collection manifests of every run are re-hashed (each file
read once); each output is checked against the latest run that wrote it, the older runs'
records of it being superseded. Each change is a ``Problem``: ``altered`` or ``missing``,
with the role of the file (``evidence``, ``rule``, ``output``, ``collection``) and the run
that recorded it. docs/custody.md describes what is and is not checked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from irkit.errors import CaseError, ExitCode
from irkit.store.custody import FORMAT, INSIDE, RUNS_DIR, sha256_file


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One change ``irkit verify CASE`` found: ``kind`` (``altered``, ``missing``,
    ``manifest-unreadable``), ``role`` (``evidence``, ``rule``, ``output``,
    ``collection``, ``manifest``), the file, and what changed."""

    kind: str
    role: str
    path: str
    message: str


@dataclasses.dataclass(slots=True)
class CaseVerifyReport:
    """The outcome of ``irkit verify CASE``; ``--json`` prints ``as_dict()``."""

    path: str
    runs: int = 0
    files_checked: int = 0
    bytes_checked: int = 0
    inside_containers: int = 0
    superseded: list[dict[str, str]] = dataclasses.field(default_factory=list)
    problems: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        """VERIFY_FAILED on any change."""
        return ExitCode.VERIFY_FAILED if self.problems else ExitCode.OK

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data, stable key order."""
        return {
            "path": self.path,
            "kind": "case",
            "runs": self.runs,
            "files_checked": self.files_checked,
            "bytes_checked": self.bytes_checked,
            "inside_containers": self.inside_containers,
            "superseded": self.superseded,
            "verified": not self.problems,
            "problems": [dataclasses.asdict(p) for p in self.problems],
            "exit_code": int(self.exit_code),
        }


def _manifests(case_dir: Path, report: CaseVerifyReport) -> list[dict[str, Any]]:
    folder = case_dir / RUNS_DIR
    names = sorted(folder.glob("*.json")) if folder.is_dir() else []
    found = []
    for path in names:
        if path.name.startswith("."):
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            shown = f"{RUNS_DIR}/{path.name}"
            report.problems.append(Problem("manifest-unreadable", "manifest", shown, str(exc)))
            continue
        if isinstance(data, dict) and data.get("format") == FORMAT:
            found.append(data)
    if not found and not report.problems:
        raise CaseError(
            f"{case_dir} holds no run manifest ({RUNS_DIR}/*.json)",
            hint="runs of irkit parse, hash, scan or triage write one; older cases have none",
        )
    return sorted(found, key=lambda m: (str(m.get("finished_utc", "")), str(m.get("run_id", ""))))


class _Hasher:
    """Each file hashed once, however many runs name it."""

    def __init__(self, report: CaseVerifyReport, progress: Callable[[int], None] | None) -> None:
        self.report = report
        self.progress = progress
        self.seen: dict[str, tuple[int, str] | str] = {}

    def digest(self, path: Path) -> tuple[int, str] | str:
        """(size, sha256), or why the file cannot be read (``missing`` for absent)."""
        key = str(path)
        if key not in self.seen:
            if not os.path.lexists(path):
                self.seen[key] = "missing"
            else:
                try:
                    got = sha256_file(path)
                except OSError as exc:
                    self.seen[key] = f"cannot be read: {exc.strerror or exc}"
                else:
                    self.seen[key] = got
                    self.report.files_checked += 1
                    self.report.bytes_checked += got[0]
                    if self.progress is not None:
                        self.progress(got[0])
        return self.seen[key]


def _label(manifest: Mapping[str, Any]) -> str:
    return f"{manifest.get('command', '?')} run {str(manifest.get('run_id', '?'))[:12]}"


def _check(
    hasher: _Hasher, role: str, path: Path, shown: str, want: str, who: str
) -> Problem | None:
    got = hasher.digest(path)
    verb = "written" if role == "output" else "read"
    if got == "missing":
        return Problem("missing", role, shown, f"{verb} by the {who}, absent now")
    if isinstance(got, str):
        return Problem("altered", role, shown, got)
    if got[1] != want:
        return Problem("altered", role, shown, f"sha256 is {got[1]}; the {who} recorded {want}")
    return None


def verify_case(case_dir: Path, progress: Callable[[int], None] | None = None) -> CaseVerifyReport:
    """Check a case against its run manifests: evidence, rule files and collection
    manifests of every run re-hashed; each output against the latest run that wrote it."""
    report = CaseVerifyReport(str(case_dir))
    manifests = _manifests(case_dir, report)
    report.runs = len(manifests)
    hasher = _Hasher(report, progress)
    seen: set[tuple[str, str, str]] = set()
    latest: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for manifest in manifests:
        who = _label(manifest)
        inputs = manifest.get("inputs", {})
        for item in inputs.get("evidence", []):
            name = str(item.get("path", ""))
            if INSIDE in name:
                report.inside_containers += 1
                continue
            _add(report, seen, _check(hasher, "evidence", Path(name), name, item["sha256"], who))
        for rules in manifest.get("rule_sets", []):
            for item in rules.get("files", []):
                if not item.get("sha256"):  # unreadable when the run wrote its manifest
                    continue
                name = str(item.get("path", ""))
                problem = _check(hasher, "rule", Path(name), name, item["sha256"], who)
                _add(report, seen, problem)
        for item in inputs.get("collections", []):
            _add(report, seen, _check_collection(item, who))
        for item in manifest.get("outputs", []):
            name = str(item.get("path", ""))
            if name in latest:
                old = latest[name][0]
                report.superseded.append(
                    {"path": name, "run_id": str(old.get("run_id")), "by": str(manifest["run_id"])}
                )
            latest[name] = (manifest, item)
    for name in sorted(latest):
        manifest, item = latest[name]
        full = Path(name) if Path(name).is_absolute() else case_dir / name
        _add(report, seen, _check(hasher, "output", full, name, item["sha256"], _label(manifest)))
    return report


def _add(
    report: CaseVerifyReport, seen: set[tuple[str, str, str]], problem: Problem | None
) -> None:
    if problem is not None and (key := (problem.kind, problem.path, problem.message)) not in seen:
        seen.add(key)
        report.problems.append(problem)


def _check_collection(item: Mapping[str, Any], who: str) -> Problem | None:
    """The collection's manifest.json, as the run read it (a folder, a zip, the --out
    folder of a zipped collection)."""
    path = Path(str(item.get("path", "")))
    want = str(item.get("manifest_sha256", ""))
    try:
        if path.is_dir() and not (path / "manifest.json").exists():
            zips = sorted(path.glob("*.zip"))
            path = zips[0] if len(zips) == 1 else path
        if path.is_dir():
            raw = (path / "manifest.json").read_bytes()
        elif path.is_file():
            with zipfile.ZipFile(path) as archive:
                raw = archive.read("manifest.json")
        else:
            return Problem("missing", "collection", str(path), f"read by the {who}, absent now")
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        why = f"its manifest.json cannot be read: {exc}"
        return Problem("altered", "collection", str(path), why)
    got = hashlib.sha256(raw).hexdigest()
    if got != want:
        return Problem(
            "altered",
            "collection",
            str(path),
            f"manifest.json has sha256 {got}; the {who} recorded {want}",
        )
    return None
