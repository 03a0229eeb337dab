"""Read one EVTX file with both engines and say where they disagree.

The fast engine (pyevtx-rs) and the second engine (python-evtx) are independent readers
of the same bytes: records one of them misses, or reads differently, point at corrupt
evidence or at a parser bug. Records are matched by the EventRecordID of their record
header. A dirty or recovered log can repeat a record id; a repeated id is compared as a
multiset of records (the same records, in any order, agree) and reported in
``repeated``. Nothing here prints or raises for bad input: the CLI renders the results.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from irkit.model import FileStats, ParseWarning
from irkit.sources.base import ParseContext

#: What is compared for one record: EventID, time, header time, every flat field in order,
#: how many of them are System's.
_Summary = tuple[str, str, str, tuple[tuple[str, str], ...], int]


@dataclasses.dataclass(frozen=True, slots=True)
class CrossCheck:
    """How the two EVTX engines compare on one file."""

    path: Path
    fast_records: int = 0
    python_records: int = 0
    #: Record ids only one engine found, ascending.
    only_fast: tuple[int, ...] = ()
    only_python: tuple[int, ...] = ()
    #: (record id, what differs), e.g. ``(42, "EventID 4624 != 4625")``, by record id.
    differing: tuple[tuple[int, str], ...] = ()
    #: Record ids that occur more than once in either engine's stream.
    repeated: tuple[int, ...] = ()
    fast_warnings: tuple[ParseWarning, ...] = ()
    python_warnings: tuple[ParseWarning, ...] = ()
    #: Why an engine could not read the file at all (or failed), "" if both read it.
    error: str = ""

    @property
    def agrees(self) -> bool:
        """Both engines read the file and found the same records with the same fields."""
        return (
            not self.error
            and not self.only_fast
            and not self.only_python
            and not self.differing
            and self.fast_records == self.python_records
        )


def _context(path: Path, engine: str) -> ParseContext:
    stats = FileStats(path=str(path), engine=engine)
    return ParseContext(path=path, display=str(path), sha256="", stats=stats)


def _summary(flat: dict[str, str], header_ts: str, n_system: int) -> _Summary:
    return (
        flat.get("EventID", ""),
        flat.get("SystemTime", "") or header_ts,
        header_ts,
        tuple(flat.items()),
        n_system,
    )


def _fast_rows(path: Path, ctx: ParseContext) -> Iterator[tuple[int, _Summary]]:
    from irkit.sources.evtx import flatten_event, header_time, iter_fast

    for rid, header_ts, event in iter_fast(path, ctx):
        flat, n_system = flatten_event(event)
        yield rid, _summary(flat, header_time(header_ts), n_system)


def _python_rows(path: Path, ctx: ParseContext) -> Iterator[tuple[int, _Summary]]:
    from irkit.sources.evtx.python_engine import iter_python

    for rid, header_ts, flat, n_system in iter_python(path, ctx):
        yield rid, _summary(flat, header_ts, n_system)


def _collect(
    rows: Iterator[tuple[int, _Summary]], ctx: ParseContext, name: str
) -> tuple[dict[int, list[_Summary]], int, str]:
    """Read one engine's stream into record id -> records; never raises."""
    records: dict[int, list[_Summary]] = collections.defaultdict(list)
    count = 0
    error = ""
    try:
        for rid, summary in rows:
            records[rid].append(summary)
            count += 1
    except Exception as exc:  # an engine bug, not bad data: report it, keep what was read
        error = f"{name} engine crashed after {count} records: {type(exc).__name__}: {exc}"
    if not error and ctx.stats.status == "failed":
        reasons = "; ".join(w.message for w in ctx.stats.warnings) or "unreadable"
        error = f"{name} engine cannot read the file: {reasons}"
    return records, count, error


def _difference(fast: _Summary, python: _Summary) -> str:
    """What differs between two records with the same id, most telling first."""
    if fast[0] != python[0]:
        return f"EventID {fast[0]} != {python[0]}"
    if fast[1] != python[1]:
        return f"time {fast[1]} != {python[1]}"
    if fast[2] != python[2]:
        return f"header time {fast[2]} != {python[2]}"
    fast_fields, python_fields = dict(fast[3]), dict(python[3])
    changed = [
        key
        for key in dict.fromkeys([*fast_fields, *python_fields])
        if fast_fields.get(key) != python_fields.get(key)
    ]
    if changed:
        shown = ", ".join(changed[:5]) + (
            f" (+{len(changed) - 5} more)" if len(changed) > 5 else ""
        )
        return f"fields differ: {shown}"
    if fast[4] != python[4]:
        return f"System fields {fast[4]} != {python[4]}"
    return "field order differs"


def _compare(
    fast: dict[int, list[_Summary]], python: dict[int, list[_Summary]]
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[tuple[int, str], ...], tuple[int, ...]]:
    only_fast = tuple(sorted(fast.keys() - python.keys()))
    only_python = tuple(sorted(python.keys() - fast.keys()))
    repeated = tuple(
        sorted(rid for side in (fast, python) for rid, recs in side.items() if len(recs) > 1)
    )
    differing: list[tuple[int, str]] = []
    for rid in sorted(fast.keys() & python.keys()):
        a, b = fast[rid], python[rid]
        if len(a) == 1 and len(b) == 1:
            if a[0] != b[0]:
                differing.append((rid, _difference(a[0], b[0])))
        elif collections.Counter(a) != collections.Counter(b):
            if len(a) != len(b):
                what = f"repeated id: {len(a)} records (fast) != {len(b)} (python-evtx)"
            else:
                what = f"repeated id: the {len(a)} records differ"
            differing.append((rid, what))
    return only_fast, only_python, tuple(differing), tuple(dict.fromkeys(repeated))


def crosscheck_file(path: Path) -> CrossCheck:
    """Read ``path`` with both engines and compare them record by record; never raises."""
    path = Path(path)
    fast_ctx, python_ctx = _context(path, "evtx"), _context(path, "python-evtx")
    fast, fast_count, fast_error = _collect(_fast_rows(path, fast_ctx), fast_ctx, "fast")
    python, python_count, python_error = _collect(
        _python_rows(path, python_ctx), python_ctx, "python-evtx"
    )
    only_fast, only_python, differing, repeated = _compare(fast, python)
    return CrossCheck(
        path=path,
        fast_records=fast_count,
        python_records=python_count,
        only_fast=only_fast,
        only_python=only_python,
        differing=differing,
        repeated=repeated,
        fast_warnings=tuple(fast_ctx.stats.warnings),
        python_warnings=tuple(python_ctx.stats.warnings),
        error="; ".join(e for e in (fast_error, python_error) if e),
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def crosscheck_files(
    paths: Iterable[Path],
    workers: int = 2,
    progress: Callable[[CrossCheck], None] | None = None,
) -> list[CrossCheck]:
    """Cross-check many files in worker processes; results in the order of ``paths``.

    The biggest files start first so the workers finish together. ``progress`` is called
    in this process with each result as it completes (in completion order).
    """
    files: Sequence[Path] = [Path(p) for p in paths]
    results: list[CrossCheck | None] = [None] * len(files)
    if workers <= 1 or len(files) <= 1:
        for index, path in enumerate(files):
            result = crosscheck_file(path)
            results[index] = result
            if progress is not None:
                progress(result)
        return [r for r in results if r is not None]
    order = sorted(range(len(files)), key=lambda i: _size(files[i]), reverse=True)
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(crosscheck_file, files[i]): i for i in order}
        for future in concurrent.futures.as_completed(futures):
            index = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # a worker died (out of memory, killed): say so
                result = CrossCheck(
                    path=files[index], error=f"worker failed: {type(exc).__name__}: {exc}"
                )
            results[index] = result
            if progress is not None:
                progress(result)
    return [r for r in results if r is not None]
