"""`irkit scan`: run the detectors over a case and store what they find.

Built-ins (irkit's heuristics and the rare-pair analytics) always run unless turned off;
Sigma rules and YARA rules run when given. Each detector returns a ``DetectorResult``;
the findings at or above ``min_level`` are stored in the case's ``findings`` table (a
finding already there, same uid, is kept once). Findings export with ``iter_findings()``
and appear in the timeline beside their events; ``group_findings()`` puts together, for
reading, the findings of several rules that rest on the same first event.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

from irkit.detect import NO_PROGRESS, DetectorResult, ScanProgress
from irkit.detect.attack import attack_columns
from irkit.errors import UsageError
from irkit.model import Finding, ParseWarning, Severity, severity_rank

if TYPE_CHECKING:
    from irkit.store.dataset import EventStore

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
    #: What runs the rules over a dataset: ``duckdb`` (this machine) or ``spark``.
    engine: str = "duckdb"
    #: Spark's master URL (``--engine spark``); ``local[*]`` when None.
    master: str | None = None
    #: The dataset as Spark's executors reach it (``dbfs:/…``, ``s3a://…``); default:
    #: the path given.
    spark_uri: str | None = None
    #: A running SparkSession to use (a Databricks notebook's ``spark``), not a new one.
    spark: Any = None
    #: Told how each phase advances (rules run, bytes scanned); the CLI draws it.
    progress: ScanProgress = NO_PROGRESS


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
        """Per detector, keyed by the part's name: ``heuristic``, ``analytics``, ``sigma``,
        ``yara-evidence`` (the case's files), ``yara-events`` (event text), ``yara-targets``
        (``--yara-target`` paths)."""
        out: dict[str, Any] = {}
        for result in self.detectors:
            name = result.name or result.detector
            key, n = name, 1
            while key in out:
                n += 1
                key = f"{name}-{n}"
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


def _timed(name: str, run: Any, *args: Any, **kwargs: Any) -> DetectorResult:
    started = time.perf_counter()
    result: DetectorResult = run(*args, **kwargs)
    result.seconds = time.perf_counter() - started
    result.detector = result.detector or name
    result.name = name
    return result


def run_detectors(case: EventStore, options: ScanOptions) -> list[DetectorResult]:
    """Every detector asked for, in a fixed order (YARA needs a case: it reads its files)."""
    results: list[DetectorResult] = []
    progress = options.progress
    if options.builtin:
        from irkit.detect.analytics import rare_findings
        from irkit.detect.heuristics_run import run_heuristics

        results.append(
            _timed(
                "heuristic", run_heuristics, case, min_level=options.min_level, progress=progress
            )
        )
        results.append(_timed("analytics", rare_findings, case, progress=progress))
    if options.sigma:
        from irkit.detect.sigma import load_sigma
        from irkit.detect.sigma_run import run_sigma

        started = time.perf_counter()
        rules = load_sigma(
            list(options.sigma), load_placeholders(options.sigma_config), progress=progress
        )
        loading = time.perf_counter() - started
        result = _timed(
            "sigma", run_sigma, case, rules, min_level=options.min_level, progress=progress
        )
        result.seconds += loading
        result.report.setdefault("load_seconds", round(loading, 3))
        results.append(result)
    if options.yara:
        from irkit.detect.yara import compile_rules, scan_case, scan_files
        from irkit.store.case import Case

        assert isinstance(case, Case)  # scan() refuses --yara on a dataset

        progress.phase("yara: compiling rules")
        started = time.perf_counter()
        compiled = compile_rules(list(options.yara))
        progress.done()
        compiling = time.perf_counter() - started
        files = _timed("yara-evidence", scan_case, case, compiled, events=False, progress=progress)
        files.seconds += compiling  # the rules' load is the first part's
        results.append(files)
        results.append(
            _timed(
                "yara-events", scan_case, case, compiled,
                files=False, progress=progress, rule_errors=False,
            )
        )  # fmt: skip
        if options.yara_targets:
            results.append(
                _timed(
                    "yara-targets", scan_files, compiled, list(options.yara_targets),
                    progress=progress, rule_errors=False,
                )
            )  # fmt: skip
    return results


def _detect(store: EventStore, options: ScanOptions, summary: ScanSummary) -> None:
    """Run the detectors; their reports, warnings and findings at ``min_level`` or above
    go into ``summary``."""
    summary.events = store.count()
    rank = severity_rank(options.min_level)
    for result in run_detectors(store, options):
        summary.detectors.append(result)
        summary.warnings += result.warnings
        summary.findings += [f for f in result.findings if severity_rank(f.severity) >= rank]


def scan(case_dir: Path, options: ScanOptions, command: Sequence[str] = ()) -> ScanSummary:
    """Run the detectors over the case at ``case_dir`` and store their findings."""
    from irkit.store.case import Case
    from irkit.store.dataset import is_dataset

    check_level(options.min_level, "--min-level")
    if is_dataset(case_dir):
        return _scan_dataset(case_dir, options)
    if options.engine != "duckdb":
        raise UsageError(
            f"--engine {options.engine} runs over a dataset, not a case",
            hint=f"export it first: irkit export {case_dir} --format parquet --out DATASET",
        )
    started_wall = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    summary = ScanSummary(run_id=uuid.uuid4().hex, case=str(case_dir))
    with Case(case_dir) as case:
        with case.events_in_memory():
            _detect(case, options, summary)
        summary.findings_added = case.add_findings(summary.findings, summary.run_id)
        summary.seconds = time.perf_counter() - started
        case.record_warnings(summary.run_id, summary.warnings)
        case.record_run(summary.run_id, list(command), started_wall, summary.as_dict())
    return summary


def _scan_dataset(root: Path, options: ScanOptions) -> ScanSummary:
    """The built-ins and Sigma over an exported dataset (DuckDB); the new findings are
    written into it (``irkit.store.dataset.add_findings``)."""
    import tempfile

    from irkit.store.dataset import Dataset, add_findings

    if options.yara or options.yara_targets:
        raise UsageError(
            "--yara reads the evidence files of a case; a dataset holds events only",
            hint="scan the case itself for YARA: irkit scan CASE --yara RULES",
        )
    started = time.perf_counter()
    summary = ScanSummary(run_id=uuid.uuid4().hex, case=str(root))
    if options.engine == "spark":
        from irkit.store.spark import SparkDataset

        with SparkDataset(root, options.master, options.spark, options.spark_uri) as spark:
            # SparkConnection answers the DuckDB calls the detectors make (translated).
            _detect(cast("EventStore", spark), options, summary)
        with Dataset(root) as data:
            summary.findings_added = add_findings(root, data.db, summary.findings)
        summary.seconds = time.perf_counter() - started
        return summary
    with tempfile.TemporaryDirectory(prefix="irkit-scan-") as scratch, Dataset(root) as data:
        data.materialise(Path(scratch))
        _detect(data, options, summary)
        summary.findings_added = add_findings(root, data.db, summary.findings)
    summary.seconds = time.perf_counter() - started
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
    "tactic",
    "technique",
    "count",
    "host",
    "source",
    "evidence",
    "evidence_files",
    "record",
    "event_uid",
    "excerpt",
    "uid",
    "details",
)


def iter_findings(
    case: EventStore,
    min_level: str = "informational",
    detectors: Sequence[str] = (),
    limit: int | None = None,
) -> Iterator[Mapping[str, str]]:
    """The case's findings, most severe first, then by time, rule and uid (stable); at
    most ``limit`` of them."""
    rank = severity_rank(check_level(min_level, "--min-level"))
    wanted = [level for level in LEVELS if severity_rank(level) >= rank]
    where = f"severity IN ({', '.join('?' * len(wanted))})"
    params: list[Any] = list(wanted)
    if detectors:
        where += f" AND detector IN ({', '.join('?' * len(detectors))})"
        params += list(detectors)
    order = " ".join(f"WHEN '{level}' THEN {i}" for i, level in enumerate(reversed(LEVELS)))
    # Every evidence file a finding rests on (its events in finding_events), in order.
    cursor = case.db.execute(
        f"""WITH chosen AS (
                SELECT * FROM findings WHERE {where}
                ORDER BY CASE severity {order} END, ts, rule, uid
                {"" if limit is None else f"LIMIT {int(limit)}"}
            ),
            files AS (
                SELECT l.finding_uid, string_agg(DISTINCT e.evidence, ' | ' ORDER BY e.evidence)
                       AS evidence_files
                FROM finding_events AS l JOIN events AS e ON e.uid = l.event_uid
                WHERE l.finding_uid IN (SELECT uid FROM chosen)
                GROUP BY l.finding_uid
            )
            SELECT strftime(ts, '%Y-%m-%dT%H:%M:%S.%f+00:00'),
                   strftime(last_seen, '%Y-%m-%dT%H:%M:%S.%f+00:00'),
                   severity, detector, rule, title, description,
                   array_to_string(attack, ','), count::VARCHAR, host, source, evidence,
                   coalesce(files.evidence_files, evidence), record, event_uid, excerpt, uid,
                   details::VARCHAR
            FROM chosen LEFT JOIN files ON files.finding_uid = chosen.uid
            ORDER BY CASE severity {order} END, ts, rule, uid""",
        params,
    )
    stored = tuple(n for n in FINDING_EXPORT if n not in ("tactic", "technique"))
    while batch := cursor.fetchmany(1000):
        for row in batch:
            out = {
                name: "" if value is None else str(value)
                for name, value in zip(stored, row, strict=True)
            }
            out["tactic"], out["technique"] = attack_columns(out["attack"].split(","))
            yield {name: out[name] for name in FINDING_EXPORT}


def finding_row(finding: Finding) -> dict[str, str]:
    """A finding as ``iter_findings`` gives it: the ``FINDING_EXPORT`` columns, as text."""
    import json

    return {
        "first_seen": finding.ts,
        "last_seen": finding.last_seen or finding.ts,
        "severity": str(finding.severity),
        "detector": finding.detector,
        "rule": finding.rule,
        "title": finding.title,
        "description": finding.description,
        "attack": ",".join(finding.attack),
        "tactic": attack_columns(finding.attack)[0],
        "technique": attack_columns(finding.attack)[1],
        "count": str(finding.count),
        "host": finding.host,
        "source": finding.source,
        "evidence": finding.evidence,
        "evidence_files": finding.evidence,
        "record": finding.record,
        "event_uid": finding.event_uid,
        "excerpt": finding.excerpt,
        "uid": finding.uid,
        "details": json.dumps(finding.details, sort_keys=True),
    }


def ranked(findings: Sequence[Finding]) -> list[dict[str, str]]:
    """Findings as rows, in ``iter_findings`` order: most severe first, then by time,
    rule and uid."""
    rows = [finding_row(f) for f in findings]
    rows.sort(key=lambda r: (-severity_rank(r["severity"]), r["first_seen"], r["rule"], r["uid"]))
    return rows


@dataclasses.dataclass(slots=True)
class FindingGroup:
    """Findings of several rules that rest on the same event: the same first event on one
    host (a file match: the same file). A responder reads that event once; each rule keeps
    its own finding in the case (``members``, most severe first)."""

    members: list[Mapping[str, str]]

    @property
    def lead(self) -> Mapping[str, str]:
        """The most severe member (then the earliest): its event, excerpt and title lead."""
        return self.members[0]

    @property
    def severity(self) -> str:
        """The highest level of the members."""
        return self.lead["severity"]

    @property
    def first_seen(self) -> str:
        """The earliest first time of the members."""
        return min(m["first_seen"] for m in self.members)

    @property
    def count(self) -> int:
        """The most events one member rests on."""
        return max(int(m["count"] or 0) for m in self.members)

    @property
    def detectors(self) -> list[str]:
        """The members' detectors, each once, in member order."""
        return list(dict.fromkeys(m["detector"] for m in self.members))


def group_key(row: Mapping[str, str]) -> tuple[str, ...]:
    """What a finding rests on first: its first event, else its file, else itself."""
    if row["event_uid"]:
        return ("event", row["host"], row["event_uid"])
    if row["evidence"]:
        return ("file", row["host"], row["evidence"])
    return ("finding", row["uid"])


def group_findings(
    rows: Iterator[Mapping[str, str]] | Sequence[Mapping[str, str]],
) -> list[FindingGroup]:
    """Findings resting on the same first event (or file) on one host as one group, in the
    order of their first member: given ``iter_findings`` order, the most severe first."""
    groups: dict[tuple[str, ...], FindingGroup] = {}
    for row in rows:
        key = group_key(row)
        group = groups.get(key)
        if group is None:
            groups[key] = FindingGroup([row])
        else:
            group.members.append(row)
    return list(groups.values())
