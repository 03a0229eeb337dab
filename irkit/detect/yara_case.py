"""The YARA detector over a case: the files it knows and the text of its events.

The files: parsed evidence (``evidence``, ``evidence_paths``) and the regular files
``irkit hash --case`` recorded (file events with a sha256), one path per sha256, each read
safely and checked against the case's sha256: a file changed since is a named warning
and not scanned, one no longer on disk an ``evidence-missing`` warning.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yara

from irkit.detect import NO_PROGRESS, DetectorResult, ScanProgress
from irkit.detect.yara_match import MatchInfo
from irkit.detect.yara_rules import CompiledRules
from irkit.detect.yara_scan import DEFAULT_MAX_SIZE, DETECTOR, Scanner, ScanRun, run_files
from irkit.model import MAX_EVENT_UIDS, Finding, ParseWarning

if TYPE_CHECKING:
    from irkit.store.case import Case


def event_fields(path: Path | None = None) -> tuple[str, ...]:
    """The event fields scanned as text: ``artifacts/yara/event_fields.yaml``."""
    import yaml

    from irkit.artifacts import artifacts_dir

    source = path or artifacts_dir() / "yara" / "event_fields.yaml"
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    return tuple(str(item["field"]) for item in data["fields"])


def scan_case(
    case: Case,
    rules: CompiledRules,
    *,
    timeout: int = 60,
    max_size: int = DEFAULT_MAX_SIZE,
    workers: int = 0,
    files: bool = True,
    events: bool = True,
    fields: Sequence[str] | None = None,
    progress: ScanProgress = NO_PROGRESS,
    rule_errors: bool = True,
) -> DetectorResult:
    """Scan the files the case knows that are still on disk (parsed evidence and files
    ``irkit hash`` recorded, checked against their sha256) and the text of its events'
    ``fields``; text matches rest on their events, one finding per (rule, host) with the
    count, first and last time and the events' uids. ``rule_errors``: warn about the rule
    files that did not compile (once per scan: the first part says it)."""
    run = ScanRun(rules, rule_errors)
    scanner = Scanner(rules, timeout, max_size)
    extra: dict[str, Any] = {}
    if files:
        jobs, known = _evidence_jobs(case, run)
        link = _file_event_linker(case)
        progress.phase("yara: case files", sum(j[1].st_size for j in jobs if j[1]), "bytes")
        run_files(run, scanner, iter(jobs), workers, link, progress)
        progress.done()
        extra["evidence_files"] = len(jobs)
        extra["case_files"] = known
    if events:
        names = tuple(fields) if fields is not None else event_fields()
        progress.phase("yara: event text", None, "events")
        extra.update(_scan_events(case, scanner, names, workers, run, progress))
        progress.done()
    return run.finish(extra)


#: Every path the case knows for each sha256: parsed evidence first (``parsed``), then the
#: regular files ``irkit hash`` recorded (``hashed``: file events carrying a sha256).
_CASE_FILES: Final = """
WITH known AS (
    SELECT sha256, path, 0 AS rank FROM evidence
    UNION ALL SELECT sha256, path, 1 FROM evidence_paths
    UNION ALL SELECT DISTINCT evidence_sha256, evidence, 2 FROM events
        WHERE source = 'file' AND evidence_sha256 <> '' AND evidence IS NOT NULL
)
SELECT sha256, min(rank) < 2, list(DISTINCT path ORDER BY path)
FROM known WHERE sha256 IS NOT NULL AND path IS NOT NULL
GROUP BY sha256
"""


def _evidence_jobs(
    case: Case, run: ScanRun
) -> tuple[list[tuple[str, os.stat_result | None, str, str]], dict[str, int]]:
    """One job per sha256 the case knows, on the first of its paths still on disk (the
    parsed file's own path first); also how many are parsed evidence and hashed files."""
    firsts = dict(case.db.execute("SELECT sha256, path FROM evidence").fetchall())
    rows = case.db.execute(_CASE_FILES).fetchall()
    known = {"parsed": 0, "hashed": 0}
    jobs: list[tuple[str, os.stat_result | None, str, str]] = []
    ordered = []
    for sha, parsed, paths in rows:
        first = firsts.get(sha) or paths[0]
        ordered.append((first, sha, parsed, [first, *[p for p in paths if p != first]]))
    for first, sha, parsed, candidates in sorted(ordered):
        known["parsed" if parsed else "hashed"] += 1
        for path in candidates:
            try:
                info = os.lstat(path)
            except OSError:
                continue
            jobs.append((path, info, sha, "" if stat.S_ISREG(info.st_mode) else "not-regular"))
            break
        else:
            run.counts["evidence-missing"] += 1
            where = "" if Path(first).is_absolute() else " (a path relative to where it was hashed)"
            run.result.warnings.append(
                ParseWarning(first, "evidence-missing", f"no longer on disk{where}: not scanned")
            )
    return jobs, known


def _file_event_linker(case: Case) -> Callable[[str], tuple[str, str]]:
    """A file's ``File Modified`` event in the case (``irkit hash --case``), if any."""

    def link(path: str) -> tuple[str, str]:
        row = case.db.execute(
            "SELECT uid, coalesce(host, '') FROM events WHERE source = 'file' "
            "AND evidence = ? AND ts_desc = 'File Modified' LIMIT 1",
            [path],
        ).fetchone()
        return (str(row[0]), str(row[1])) if row else ("", "")

    return link


_TS: Final = "strftime(ts, '%Y-%m-%dT%H:%M:%S.%f+00:00')"


def _scan_events(
    case: Case,
    scanner: Scanner,
    names: tuple[str, ...],
    workers: int,
    run: ScanRun,
    progress: ScanProgress = NO_PROGRESS,
) -> dict[str, Any]:
    """Scan each distinct field text once; aggregate matches per (rule, host)."""
    if not names:
        return {"event_fields": [], "events_with_text": 0, "texts_scanned": 0}
    paths = ", ".join("'$.\"" + n.replace("'", "''").replace('"', "") + "\"'" for n in names)
    like = " OR ".join(
        "fields LIKE '%\"" + n.replace("'", "''").replace('"', "") + "\"%'" for n in names
    )
    cursor = case.db.execute(
        f"""SELECT uid, coalesce({_TS}, ''), coalesce(host, ''), coalesce(source, ''),
                   coalesce(evidence, ''), coalesce(record, ''),
                   json_extract_string(fields, [{paths}])
            FROM events WHERE fields IS NOT NULL AND ({like})
            ORDER BY ts NULLS LAST, uid"""
    )
    seen: dict[bytes, list[MatchInfo] | None] = {}
    groups: dict[tuple[str, str], _Group] = {}
    events_with_text = 0
    threads = max(1, workers or os.cpu_count() or 1)
    with cf.ThreadPoolExecutor(threads, thread_name_prefix="irkit-yara-text") as pool:
        while batch := cursor.fetchmany(5_000):
            texts: dict[bytes, bytes] = {}
            for row in batch:
                for value in row[6] or ():
                    if value:
                        data = value.encode("utf-8", errors="surrogateescape")
                        key = hashlib.sha1(data, usedforsecurity=False).digest()
                        if key not in seen:
                            texts[key] = data
            keys = list(texts)
            datas = [texts[k] for k in keys]
            for key, found in zip(
                keys, pool.map(_text, [scanner] * len(keys), datas, [run] * len(keys)), strict=True
            ):
                seen[key] = found
            for row in batch:
                hits: dict[str, None] = {}
                for name, value in zip(names, row[6] or (), strict=False):
                    if not value:
                        continue
                    hits.setdefault("", None)
                    data = value.encode("utf-8", errors="surrogateescape")
                    for info in seen.get(hashlib.sha1(data, usedforsecurity=False).digest()) or ():
                        group = groups.setdefault((info.rule, row[2]), _Group(info, row))
                        group.add(row, name, info.rule not in hits)
                        hits[info.rule] = None
                events_with_text += bool(hits)
            progress.advance(len(batch))
    for group in groups.values():
        run.result.findings.append(group.finding())
    run.counts["matches"] += sum(g.count for g in groups.values())
    return {
        "event_fields": list(names),
        "events_with_text": events_with_text,
        "texts_scanned": len(seen),
        "event_findings": len(groups),
    }


def _text(scanner: Scanner, data: bytes, run: ScanRun) -> list[MatchInfo] | None:
    try:
        return scanner.data(data)
    except yara.Error as exc:  # TimeoutError too; list.append is atomic
        kind = "timeout" if isinstance(exc, yara.TimeoutError) else "yara-error"
        run.result.warnings.append(ParseWarning("event text", kind, str(exc)))
        return None


class _Group:
    """Matches of one rule on one host's events."""

    def __init__(self, info: MatchInfo, row: tuple[Any, ...]) -> None:
        self.info = info
        self.first = row
        self.last_ts = row[1]
        self.count = 0
        self.uids: list[str] = []
        self.fields: dict[str, None] = {}

    def add(self, row: tuple[Any, ...], name: str, new_event: bool) -> None:
        self.count += new_event
        if row[1]:
            self.last_ts = max(self.last_ts, row[1])
        if len(self.uids) < MAX_EVENT_UIDS and row[0] not in self.uids:
            self.uids.append(row[0])
        self.fields[name] = None

    def finding(self) -> Finding:
        info, first = self.info, self.first
        return Finding(
            ts=first[1],
            last_seen=self.last_ts,
            count=self.count,
            severity=info.severity,
            detector=DETECTOR,
            rule=info.rule,
            title=info.name,
            description=info.description or f"YARA rule {info.name} matched event text",
            event_uid=first[0],
            event_uids=tuple(self.uids),
            source=first[3],
            host=first[2],
            evidence=first[4],
            record=first[5],
            details={**info.details, "fields": ",".join(self.fields), "scanned": "event text"},
            attack=info.attack,
            excerpt=info.excerpt,
        )
