"""The process pool of a parse run: files and big-log slices handed to the workers, each
yielded back to the parent as it finishes.

Biggest files first; a big EVTX file is hashed here once and parsed as slices by all
workers (``irkit.ingest.slices``); small EVTX logs go in groups, many to a task; one
file alone, or one core, is parsed inline.
This module owns what is run (``run_workers``, ``run_recovery``); the running of it,
and the replacing of a pool a dying worker broke, is ``irkit.ingest.runner``.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence

from irkit.ingest.discovery import Candidate, sha256_file
from irkit.ingest.options import ParseOptions
from irkit.ingest.runner import Runner
from irkit.ingest.slices import plan_slices
from irkit.ingest.summary import Progress
from irkit.ingest.tasks import Done, Task
from irkit.ingest.worker import died
from irkit.model import FileStats, ParseWarning


def run_workers(
    candidates: list[Candidate],
    spool: str,
    already: frozenset[str],
    known: dict[str, str],
    options: ParseOptions,
    progress: Progress,
) -> Generator[Done, None, None]:
    """Yield each file (or slice) as it finishes; one process per core, or inline for one.

    A big EVTX file is hashed here, then parsed as slices of chunks by all workers at
    once; each slice is yielded as it is done, so the store takes it at once.
    """
    slices = {c: plan_slices(c, options) for c in candidates}
    workers = options.worker_count(sum(max(1, len(spans)) for spans in slices.values()))
    runner = Runner(spool, already, options, progress, workers)
    try:
        ids = iter(range(1 << 62))
        big_seen: set[str] = set()
        # Biggest files first, so one huge log does not start last and run alone.
        ordered = sorted(candidates, key=lambda c: -c.size)
        grouped = [c for c in ordered if _groupable(c, options) and not slices[c]]
        in_groups = set(grouped)
        for candidate in ordered:
            if candidate in in_groups:
                continue
            spans = slices[candidate] if workers > 1 else []
            if not spans:
                runner.submit(Task(next(ids), candidate, known.get(candidate.display, "")))
                continue
            task = Task(next(ids), candidate)
            try:
                sha256 = known.get(candidate.display) or sha256_file(candidate.path)[0]
            except OSError as exc:
                stats = died(candidate, exc)
                stats.warnings[0] = ParseWarning(candidate.display, "unreadable", str(exc))
                yield Done(task, stats)
                continue
            if sha256 in already or sha256 in big_seen:
                stats = FileStats(
                    candidate.display, sha256, candidate.size, candidate.kind, status="already"
                )
                yield Done(task, stats)
                continue
            big_seen.add(sha256)
            for index, span in enumerate(spans):
                runner.submit(Task(next(ids), candidate, sha256, span, index, len(spans)))
        for group in _groups(grouped, options, workers):  # after the big files: they last
            shas = tuple(known.get(c.display, "") for c in group)
            runner.submit(Task(next(ids), group[0], shas[0], group=group, shas=shas))
        yield from runner.run()
    except BaseException:
        runner.close(abort=True)
        raise
    runner.close()


def _groupable(candidate: Candidate, options: ParseOptions) -> bool:
    """A small EVTX log on disk: parsed in a group with others."""
    return (
        candidate.kind == "evtx" and not candidate.inner and candidate.size < options.group_file_max
    )


def _groups(
    candidates: Sequence[Candidate], options: ParseOptions, workers: int
) -> list[tuple[Candidate, ...]]:
    """Small logs (biggest first) cut into groups of up to ``options.group_bytes``, and
    into at least four groups a worker when there are enough of them: the work stays
    shared to its end."""
    total = sum(c.size for c in candidates)
    limit = max(min(options.group_bytes, total // (4 * workers)), 1)
    groups: list[tuple[Candidate, ...]] = []
    current: list[Candidate] = []
    size = 0
    for candidate in candidates:
        if current and size + candidate.size > limit:
            groups.append(tuple(current))
            current, size = [], 0
        current.append(candidate)
        size += candidate.size
    if current:
        groups.append(tuple(current))
    return groups


def run_recovery(
    tasks: list[tuple[Candidate, str, str]], spool: str, options: ParseOptions, progress: Progress
) -> Generator[Done, None, None]:
    """The recovery passes over damaged logs: (candidate, sha256, record-id ranges)."""
    runner = Runner(spool, frozenset(), options, progress, options.worker_count(len(tasks)))
    try:
        for number, (candidate, sha256, ranges) in enumerate(tasks):
            runner.submit(Task(number, candidate, sha256, recover=ranges))
        yield from runner.run()
    except BaseException:
        runner.close(abort=True)
        raise
    runner.close()
