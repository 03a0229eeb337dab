"""`irkit scan`: run the detectors over a case and store what they find.

Built-ins (irkit's heuristics and the rare-pair analytics) always run unless turned off;
Sigma rules and YARA rules run when given. Each detector returns a ``DetectorResult``;
the findings at or above ``min_level`` are stored in the case's ``findings`` table (a
finding already there, same uid, is kept once). Findings export with ``findings()`` and
appear in the timeline beside their events.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from irkit.detect import DetectorResult
from irkit.errors import UsageError
from irkit.model import Finding, ParseWarning, Severity, severity_rank

if TYPE_CHECKING:
    from irkit.case import Case

LEVELS: Final = tuple(s.value for s in Severity)


def check_level(level: str, option: str) -> str:
    """A Sigma level, or a usage error naming the choices."""
    if level not in LEVELS:
        raise UsageError(f"{option} {level!r} is not a level", hint="one of " + ", ".join(LEVELS))
    return level


@dataclasses.dataclass(slots=True)
class ScanOptions:
    """What to run."""

    yara: Sequence[Path] = ()
    yara_targets: Sequence[Path] = ()
    sigma: Sequence[Path] = ()
    sigma_config: Path | None = None
    builtin: bool = True
    min_level: str = "informational"


@dataclasses.dataclass(slots=True)
class ScanSummary:
    """What one scan did; ``--json`` prints ``as_dict()``."""

    run_id: str
    case: str
    events: int = 0
    findings: list[Finding] = dataclasses.field(default_factory=list)
    findings_added: int = 0
    detectors: list[DetectorResult] = dataclasses.field(default_factory=list)
    warnings: list[ParseWarning] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    def at_or_above(self, level: str) -> list[Finding]:
        """This scan's findings at ``level`` or higher."""
        rank = severity_rank(level)
        return [f for f in self.findings if severity_rank(f.severity) >= rank]

    def by_level(self) -> dict[str, int]:
        """Findings per level, most severe first."""
        counts = collections.Counter(str(f.severity) for f in self.findings)
        return {level: counts[level] for level in reversed(LEVELS) if counts[level]}

    def _detectors(self) -> dict[str, Any]:
        """Per detector; a detector that ran twice (YARA on the case, then on
        ``--yara-target`` paths) is keyed ``yara``, then ``yara-2``."""
        out: dict[str, Any] = {}
        for result in self.detectors:
            key, n = result.detector, 1
            while key in out:
                n += 1
                key = f"{result.detector}-{n}"
            out[key] = {
                "findings": len(result.findings),
                "seconds": round(result.seconds, 3),
                "warnings": len(result.warnings),
                "report": result.report,
            }
        return out

    def as_dict(self) -> dict[str, Any]:
        """Plain data, stable key order."""
        return {
            "run_id": self.run_id,
            "case": self.case,
            "events": self.events,
            "findings": len(self.findings),
            "findings_added": self.findings_added,
            "by_level": self.by_level(),
            "detectors": self._detectors(),
            "warnings": [dataclasses.asdict(w) for w in self.warnings],
            "seconds": round(self.seconds, 3),
        }


def load_placeholders(path: Path | None) -> dict[str, list[str]]:
    """Sigma placeholder values from a YAML file: ``placeholders: {name: [values]}``."""
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read the Sigma config {path}: {exc}") from exc
    values = data.get("placeholders", data) if isinstance(data, dict) else None
    if not isinstance(values, dict):
        raise UsageError(
            f"{path}: expected 'placeholders:' mapping names to lists of values",
            hint="placeholders:\n  Admins_Workstations: [WS01, WS02]",
        )
    return {
        str(k).strip("%"): [str(v) for v in (vs if isinstance(vs, list) else [vs])]
        for k, vs in values.items()
    }


def _timed(detector: str, run: Any, *args: Any, **kwargs: Any) -> DetectorResult:
    started = time.perf_counter()
    result: DetectorResult = run(*args, **kwargs)
    result.seconds = time.perf_counter() - started
    result.detector = result.detector or detector
    return result


def run_detectors(case: Case, options: ScanOptions) -> list[DetectorResult]:
    """Every detector asked for, in a fixed order."""
    results: list[DetectorResult] = []
    if options.builtin:
        from irkit.analytics import rare_findings
        from irkit.detect.heuristics import run_heuristics

        results.append(_timed("heuristic", run_heuristics, case, min_level=options.min_level))
        results.append(_timed("analytics", rare_findings, case))
    if options.sigma:
        from irkit.detect.sigma import load_sigma, run_sigma

        started = time.perf_counter()
        rules = load_sigma(list(options.sigma), load_placeholders(options.sigma_config))
        loading = time.perf_counter() - started
        result = _timed("sigma", run_sigma, case, rules, min_level=options.min_level)
        result.seconds += loading
        result.report.setdefault("load_seconds", round(loading, 3))
        results.append(result)
    if options.yara:
        from irkit.detect.yara import compile_rules, scan_case, scan_files

        compiled = compile_rules(list(options.yara))
        results.append(_timed("yara", scan_case, case, compiled))
        if options.yara_targets:
            results.append(_timed("yara", scan_files, compiled, list(options.yara_targets)))
    return results


def scan(case_dir: Path, options: ScanOptions, command: Sequence[str] = ()) -> ScanSummary:
    """Run the detectors over the case at ``case_dir`` and store their findings."""
    from irkit.case import Case

    check_level(options.min_level, "--min-level")
    started_wall = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    summary = ScanSummary(run_id=uuid.uuid4().hex, case=str(case_dir))
    with Case(case_dir) as case:
        summary.events = case.count()
        rank = severity_rank(options.min_level)
        for result in run_detectors(case, options):
            summary.detectors.append(result)
            summary.warnings += result.warnings
            summary.findings += [f for f in result.findings if severity_rank(f.severity) >= rank]
        summary.findings_added = case.add_findings(summary.findings, summary.run_id)
        summary.seconds = time.perf_counter() - started
        case.record_warnings(summary.run_id, summary.warnings)
        case.record_run(summary.run_id, list(command), started_wall, summary.as_dict())
    return summary


#: Columns of an exported finding, in order.
FINDING_EXPORT: Final = (
    "first_seen",
    "last_seen",
    "severity",
    "detector",
    "rule",
    "title",
    "description",
    "attack",
    "count",
    "host",
    "source",
    "evidence",
    "record",
    "event_uid",
    "excerpt",
    "uid",
    "details",
)


def iter_findings(
    case: Case, min_level: str = "informational", detectors: Sequence[str] = ()
) -> Iterator[Mapping[str, str]]:
    """The case's findings, most severe first, then by time, rule and uid (stable)."""
    rank = severity_rank(check_level(min_level, "--min-level"))
    wanted = [level for level in LEVELS if severity_rank(level) >= rank]
    where = f"severity IN ({', '.join('?' * len(wanted))})"
    params: list[Any] = list(wanted)
    if detectors:
        where += f" AND detector IN ({', '.join('?' * len(detectors))})"
        params += list(detectors)
    order = " ".join(f"WHEN '{level}' THEN {i}" for i, level in enumerate(reversed(LEVELS)))
    cursor = case.db.execute(
        f"""SELECT strftime(ts, '%Y-%m-%dT%H:%M:%S.%f+00:00'),
                   strftime(last_seen, '%Y-%m-%dT%H:%M:%S.%f+00:00'),
                   severity, detector, rule, title, description,
                   array_to_string(attack, ','), count::VARCHAR, host, source, evidence,
                   record, event_uid, excerpt, uid, details::VARCHAR
            FROM findings WHERE {where}
            ORDER BY CASE severity {order} END, ts, rule, uid""",
        params,
    )
    while batch := cursor.fetchmany(1000):
        for row in batch:
            yield {
                name: "" if value is None else str(value)
                for name, value in zip(FINDING_EXPORT, row, strict=True)
            }
