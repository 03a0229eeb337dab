"""The YARA detector: rules over files on disk, a case's evidence files and event text.

- ``compile_rules`` (``yara_rules``): rule files or folders, one namespace per file;
  bad files reported and skipped; the compiled set cached.
- ``scan_files``: every regular file under the paths, on a thread pool (yara-python
  releases the GIL while it scans), each read safely into memory (``yara_files``), with
  a per-file timeout and size cap; one finding per (file, rule).
- ``scan_case``: the files the case knows (parsed evidence and files ``irkit hash``
  recorded, each checked against the case's sha256), and the event fields listed in
  ``artifacts/yara/event_fields.yaml`` (command lines, script blocks…) scanned as text;
  text matches are one finding per (rule, host), resting on the events.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from irkit.detect import NO_PROGRESS, DetectorResult, ScanProgress
from irkit.detect.yara_case import event_fields, scan_case
from irkit.detect.yara_rules import CompiledRules, RuleFileError, compile_rules
from irkit.detect.yara_scan import DEFAULT_MAX_SIZE, Scanner, ScanRun, no_link, run_files
from irkit.files.options import HashOptions, HashSummary
from irkit.files.walk import Walker

__all__ = [
    "DEFAULT_MAX_SIZE",
    "CompiledRules",
    "RuleFileError",
    "compile_rules",
    "event_fields",
    "scan_case",
    "scan_files",
]


def scan_files(
    rules: CompiledRules,
    paths: Sequence[Path],
    *,
    timeout: int = 60,
    max_size: int = DEFAULT_MAX_SIZE,
    workers: int = 0,
    cross_filesystems: bool = False,
    progress: ScanProgress = NO_PROGRESS,
    rule_errors: bool = True,
) -> DetectorResult:
    """Scan every regular file under ``paths`` (links not followed, FIFOs, sockets and
    devices never opened, pseudo-file systems not entered); one finding per (file, rule).

    Files larger than ``max_size`` bytes and scans longer than ``timeout`` seconds are
    counted warnings; ``workers`` threads (0: one per core). ``rule_errors``: warn about
    the rule files that did not compile (once per scan: the first part says it).
    """
    run = ScanRun(rules, rule_errors)
    summary = HashSummary()
    walker = Walker(HashOptions(cross_filesystems=cross_filesystems), summary)

    def jobs() -> Iterator[tuple[str, os.stat_result | None, str, str]]:
        for root in paths:
            for entry in walker.walk(root):
                if entry.status == "pending":
                    yield entry.path, entry.info, "", ""

    progress.phase("yara: target files", None, "bytes")
    run_files(run, Scanner(rules, timeout, max_size), jobs(), workers, no_link, progress)
    progress.done()
    run.counts.update(summary.skipped)
    run.notes = summary.notes + run.notes
    run.result.warnings = summary.warnings + run.result.warnings
    return run.finish({"paths": [str(p) for p in paths]})
