"""The machinery under the YARA detector: one shared rule set scanned by many threads.

``Scanner`` matches a buffer or a file (read by ``yara_files``); ``run_files`` keeps a
window of files in flight on a thread pool and reports them in walk order, so findings
and warnings come out the same whatever the thread timing; ``ScanRun`` turns the
outcomes into findings, counted warnings and the run's report.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import yara

from irkit.detect import DetectorResult, ScanProgress
from irkit.detect.yara_files import ByteBudget, file_externals, read_regular
from irkit.detect.yara_match import MatchInfo, match_info
from irkit.detect.yara_rules import EXTERNALS, CompiledRules
from irkit.files.fileio import iso_ns
from irkit.model import Finding, ParseWarning

DETECTOR: Final = "yara"
DEFAULT_MAX_SIZE: Final = 512 << 20
#: File data held in memory at once, whatever the thread count (a bigger file runs alone).
MEMORY_BUDGET: Final = 1 << 30
#: Files scanned ahead of the one being reported: bounds the queue, keeps the order.
WINDOW: Final = 64
#: Problems with one file: each is a counted, named warning.
_WARN: Final = frozenset(
    {
        "unreadable", "vanished", "replaced", "changed", "timeout", "yara-error", "too-big",
        "evidence-changed",
    }
)  # fmt: skip


@dataclasses.dataclass(slots=True)
class Outcome:
    """One file scanned (or not): what the main thread reports, in walk order."""

    path: str
    status: str
    note: str = ""
    size: int = 0
    mtime_ns: int = 0
    sha256: str = ""
    filetype: str = ""
    matches: list[MatchInfo] = dataclasses.field(default_factory=list)


class Scanner:
    """Scans one buffer or file with the shared rules; safe to call from many threads."""

    def __init__(self, rules: CompiledRules, timeout: int, max_size: int) -> None:
        self.rules = rules
        self.timeout = timeout
        self.max_size = max_size
        self.budget = ByteBudget(max(MEMORY_BUDGET, max_size))
        self.empty = dict.fromkeys(EXTERNALS, "")

    def data(self, data: bytes, externals: dict[str, str] | None = None) -> list[MatchInfo]:
        """Match one buffer; raises yara.TimeoutError and yara.Error."""
        found = self.rules.rules.match(
            data=data, externals=externals or self.empty, timeout=self.timeout
        )
        return [match_info(m) for m in found]

    def file(self, path: str, listed: os.stat_result, expected_sha256: str = "") -> Outcome:
        size = listed.st_size
        outcome = Outcome(path, "scanned", size=size, mtime_ns=listed.st_mtime_ns)
        if size > self.max_size:
            outcome.status = "too-big"
            outcome.note = f"larger than the size cap ({self.max_size} bytes): not scanned"
            return outcome
        self.budget.acquire(size)
        try:
            read = read_regular(path, listed)
            if read.data is None:
                outcome.status, outcome.note = read.status, read.note
                return outcome
            data = read.data
            if expected_sha256:  # the case's bytes, or not scanned: findings rest on them
                outcome.sha256 = hashlib.sha256(data).hexdigest()
                if outcome.sha256 != expected_sha256:
                    outcome.status = "evidence-changed"
                    outcome.note = (
                        f"changed since it was read into the case (sha256 {outcome.sha256}, "
                        f"the case holds {expected_sha256}): not scanned"
                    )
                    return outcome
            externals = file_externals(path, data, read.info, self.rules.magic)
            outcome.filetype = externals["filetype"]
            if read.status == "changed":
                outcome.status, outcome.note = "changed", read.note
            try:
                outcome.matches = self.data(data, externals)
            except yara.TimeoutError:
                outcome.status = "timeout"
                outcome.note = f"scan stopped after {self.timeout} s: matches lost"
            except yara.Error as exc:
                outcome.status, outcome.note = "yara-error", str(exc)
            if outcome.matches and not outcome.sha256:
                outcome.sha256 = hashlib.sha256(data).hexdigest()
            return outcome
        finally:
            self.budget.release(size)


class ScanRun:
    """Counters, warnings and findings of one scan; touched by the main thread only."""

    def __init__(self, rules: CompiledRules, rule_errors: bool = True) -> None:
        self.result = DetectorResult(DETECTOR)
        self.rules = rules
        #: Report the rule files that did not compile (once per scan, by its first part).
        self.rule_errors = rule_errors
        self.counts: collections.Counter[str] = collections.Counter()
        self.notes: list[ParseWarning] = []
        self.started = time.perf_counter()

    def report_file(self, outcome: Outcome, link: Callable[[str], tuple[str, str]]) -> None:
        counts = self.counts
        if outcome.status in ("scanned", "changed", "timeout", "yara-error"):
            counts["files_scanned"] += 1
            counts["bytes_scanned"] += outcome.size
        if outcome.status in _WARN:
            kind = "changed-while-read" if outcome.status == "changed" else outcome.status
            counts[kind] += 1
            self.result.warnings.append(ParseWarning(outcome.path, kind, outcome.note))
        elif outcome.status != "scanned":
            counts[outcome.status] += 1
            self.notes.append(ParseWarning(outcome.path, outcome.status, outcome.note))
        if outcome.matches:
            counts["files_matched"] += 1
            event_uid, host = link(outcome.path)
        for info in outcome.matches:
            counts["matches"] += 1
            details = {
                **info.details,
                "path": outcome.path,
                "sha256": outcome.sha256,
                "size": str(outcome.size),
                "filetype": outcome.filetype,
            }
            self.result.findings.append(
                Finding(
                    ts=iso_ns(outcome.mtime_ns),
                    severity=info.severity,
                    detector=DETECTOR,
                    rule=info.rule,
                    title=info.name,
                    description=info.description or f"YARA rule {info.name} matched the file",
                    event_uid=event_uid,
                    event_uids=(event_uid,) if event_uid else (),
                    source="file",
                    host=host,
                    evidence=outcome.path,
                    record="",
                    details=details,
                    attack=info.attack,
                    excerpt=info.excerpt,
                )
            )

    def finish(self, extra: dict[str, Any]) -> DetectorResult:
        result = self.result
        result.seconds = time.perf_counter() - self.started
        counts = self.counts
        seconds = result.seconds or 1e-9
        stats = {k: counts.pop(k, 0) for k in ("files_scanned", "bytes_scanned", "files_matched")}
        stats["matches"] = counts.pop("matches", 0)
        result.findings.sort(key=lambda f: (f.evidence, f.rule, f.ts))
        if self.rule_errors:
            result.warnings += [
                ParseWarning(e.path, "rule-file-error", f"line {e.line}: {e.message}")
                for e in self.rules.errors
            ]
        result.report = {
            "rules": self.rules.report(),
            **stats,
            "mb_per_second": round(stats["bytes_scanned"] / 1e6 / seconds, 1),
            **extra,
            "skipped": dict(sorted(counts.items())),
            "notes": [dataclasses.asdict(n) for n in self.notes[:200]],
            "seconds": round(result.seconds, 3),
        }
        return result


def no_link(path: str) -> tuple[str, str]:
    return "", ""


def run_files(
    run: ScanRun,
    scanner: Scanner,
    jobs: Iterator[tuple[str, os.stat_result | None, str, str]],
    workers: int,
    link: Callable[[str], tuple[str, str]],
    progress: ScanProgress,
) -> None:
    """Scan ``(path, lstat, expected sha256, skip reason)`` jobs a window ahead, report
    them in order (a job with a skip reason, or no lstat, is reported, not scanned)."""
    pending: collections.deque[cf.Future[Outcome] | Outcome] = collections.deque()

    def report(item: cf.Future[Outcome] | Outcome) -> None:
        outcome = item.result() if isinstance(item, cf.Future) else item
        run.report_file(outcome, link)
        progress.advance(outcome.size)

    threads = max(1, workers or os.cpu_count() or 1)
    with cf.ThreadPoolExecutor(threads, thread_name_prefix="irkit-yara") as pool:
        for path, info, sha, skip in jobs:
            if info is None or skip:
                pending.append(Outcome(path, skip or "not-regular", "not scanned"))
            else:
                pending.append(pool.submit(scanner.file, path, info, sha))
            while len(pending) > WINDOW:
                report(pending.popleft())
        while pending:
            report(pending.popleft())
