"""Heuristic lint: every file's keys and SQL are checked, and its examples must behave.

A heuristic's ``examples`` are events written as the parsers would store them: ``fires``
must make it fire and ``silent`` must not. ``lint_heuristics`` binds each rule's SQL against
an empty ``events`` table, then loads each example into a fresh case and runs the rule on it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from irkit.detect.heuristics import (
    FIELD_MACRO,
    Heuristic,
    _files,
    one_line,
    parse_heuristic,
)
from irkit.detect.heuristics_run import run_heuristics
from irkit.errors import IrkitError
from irkit.model import EVENT_COLUMNS, Finding

if TYPE_CHECKING:
    from irkit.store.case import Case

EXAMPLE_START: Final = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
#: The ``source:`` an example event may name (default ``evtx``).
EXAMPLE_SOURCES: Final = ("evtx", "osquery", "plaso")


def bind_problems(sql: str) -> list[str]:
    """Problems binding ``sql`` against an empty ``events`` of the real column types."""
    import duckdb

    db = duckdb.connect()
    try:
        columns = ", ".join(
            f'NULL::{"TIMESTAMPTZ" if c == "ts" else "VARCHAR"} AS "{c}"' for c in EVENT_COLUMNS
        )
        db.execute("SET TimeZone = 'UTC'")
        db.execute(f"CREATE TABLE events AS SELECT {columns} WHERE false")
        db.execute(FIELD_MACRO)
        try:
            names = [d[0] for d in db.execute(f"SELECT * FROM ({sql}) LIMIT 0").description]
        except duckdb.Error as exc:
            return [f"SQL does not bind against events: {one_line(str(exc))}"]
    finally:
        db.close()
    missing = [c for c in ("uid", "key") if c not in names]
    return [f"query must return columns uid and key (missing: {', '.join(missing)})"] * bool(
        missing
    )


def _when(value: Any, index: int) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str) and value:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return EXAMPLE_START + dt.timedelta(minutes=index)


def _fill(value: Any, n: int) -> str:
    return str(value).replace("{n}", str(n))


def expand_examples(items: Iterable[Mapping[str, Any]]) -> list[tuple[dt.datetime, dict[str, Any]]]:
    """Example events with ``repeat`` (every ``every`` seconds, ``{n}`` numbered) unrolled."""
    out = []
    for index, item in enumerate(items):
        start = _when(item.get("ts"), index)
        for n in range(1, int(item.get("repeat", 1)) + 1):
            when = start + dt.timedelta(seconds=float(item.get("every", 10)) * (n - 1))
            filled = {
                k: ({fk: _fill(fv, n) for fk, fv in v.items()} if isinstance(v, dict) else v)
                for k, v in item.items()
            }
            out.append((when, filled))
    return out


_SYSTEM_FIRST: Final[tuple[str, ...]] = (
    "Provider_Name",
    "EventID",
    "Channel",
    "Computer",
    "SystemTime",
)


def _evtx_rows(events: list[tuple[dt.datetime, dict[str, Any]]]) -> list[Any]:
    from irkit.sources.evtx import build_row
    from irkit.sources.messages import load_catalog

    catalog = load_catalog()
    rows = []
    for record, (when, item) in enumerate(events, 1):
        given = {str(k): str(v) for k, v in (item.get("fields") or {}).items()}
        given.setdefault("Computer", "HOST1")
        given["SystemTime"] = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        given["EventRecordID"] = str(record)
        flat: dict[str, str] = {k: given.pop(k) for k in _SYSTEM_FIRST if k in given}
        n_system = len(flat) + 1
        flat["EventRecordID"] = given.pop("EventRecordID")
        flat.update(given)
        rows.append(build_row(flat, n_system, str(record), "", catalog))
    return rows


def _osquery_lines(events: list[tuple[dt.datetime, dict[str, Any]]]) -> bytes:
    lines = []
    for when, item in events:
        line = {
            "name": str(item.get("name", "pack_example_query")),
            "hostIdentifier": str(item.get("host", "host1")),
            "calendarTime": when.strftime("%a %b %d %H:%M:%S %Y UTC"),
            "unixTime": int(when.timestamp()),
            "epoch": 0,
            "counter": int(item.get("counter", 1)),
            "numerics": False,
            "columns": {str(k): str(v) for k, v in (item.get("columns") or {}).items()},
            "action": str(item.get("action", "added")),
        }
        lines.append(json.dumps(line))
    return ("\n".join(lines) + "\n").encode()


def _plaso_rows(events: list[tuple[dt.datetime, dict[str, Any]]]) -> list[Any]:
    """Rows as the plaso source's ``_emit`` writes them: ``artifact`` the parser chain,
    ``fields`` plaso's attributes plus ``parser`` and ``data_type``, host, user and event_id
    as the plaso mapping picks them, ``message`` given (default: ``name: value`` pairs)."""
    from irkit.sources.plaso import rows as plaso_rows
    from irkit.sources.plaso.mapping import load_mapping

    mapping = load_mapping()
    out = []
    for ordinal, (when, item) in enumerate(events, 1):
        chain, data_type = str(item.get("artifact", "")), str(item.get("data_type", ""))
        if not chain or not data_type:
            raise ValueError("a plaso example needs artifact (the parser chain) and data_type")
        values = {str(k): str(v) for k, v in (item.get("fields") or {}).items()}
        values.update(data_type=data_type, parser=chain)
        host, user, event_id = plaso_rows.who(values, data_type, mapping)
        message = item.get("message")
        if message is None:
            message = " ".join(f"{k}: {v}" for k, v in values.items() if k != "parser")
        out.append(
            (
                when.astimezone(dt.UTC).isoformat(timespec="microseconds"),
                str(item.get("ts_desc", "Content Modification Time")),
                chain,
                host or str(item.get("host", "host1")),
                user,
                event_id,
                str(message),
                plaso_rows.dumps(values),
                f"{chain}:{ordinal}",
            )
        )
    return out


def load_example(case: Case, heuristic: Heuristic, which: str, workdir: Path) -> int:
    """Store the ``fires`` or ``silent`` example events in ``case`` as the parsers would."""
    from irkit.model import FileStats
    from irkit.sources.base import ParseContext
    from irkit.sources.osquery import OsquerySource
    from irkit.store.spool import SpoolWriter

    events = expand_examples(heuristic.fires if which == "fires" else heuristic.silent)
    unknown = {str(e[1].get("source", "evtx")) for e in events} - set(EXAMPLE_SOURCES)
    if unknown:
        raise ValueError(f"unknown example source {sorted(unknown)[0]!r} (not {EXAMPLE_SOURCES})")
    parts: list[str] = []
    for source in EXAMPLE_SOURCES:
        chosen = [e for e in events if str(e[1].get("source", "evtx")) == source]
        if not chosen:
            continue
        evidence = f"{heuristic.id}.{which}.{source}"
        if source == "osquery":
            path = workdir / f"{evidence}.log"
            path.write_bytes(_osquery_lines(chosen))
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            sink = SpoolWriter(workdir / "spool", evidence, constants=(source, str(path), sha))
            ctx = ParseContext(path, str(path), sha, FileStats(path=str(path)))
            OsquerySource().parse(ctx, sink)
        else:
            rows = _evtx_rows(chosen) if source == "evtx" else _plaso_rows(chosen)
            sha = hashlib.sha256(repr(rows).encode()).hexdigest()
            sink = SpoolWriter(workdir / "spool", evidence, constants=(source, evidence, sha))
            for row in rows:
                sink.add(row)
        sink.flush()
        parts += sink.parts
    return case.add_events([Path(p) for p in parts], "example")


def example_findings(heuristic: Heuristic, which: str) -> list[Finding]:
    """Findings of ``heuristic`` on its ``fires`` or ``silent`` example, in a fresh case."""
    from irkit.store.case import Case

    with tempfile.TemporaryDirectory(prefix="irkit-heuristic-") as tmp:
        with Case(Path(tmp) / "case", create=True) as case:
            load_example(case, heuristic, which, Path(tmp))
            result = run_heuristics(case, [heuristic])
        if result.warnings:
            raise IrkitError(result.warnings[0].message)
        return result.findings


def lint_heuristics(folder: Path | None = None) -> list[str]:
    """Every problem of the heuristics in ``folder`` (default: the shipped set); [] is clean."""
    problems: list[str] = []
    for path in _files(folder):
        heuristic, found = parse_heuristic(path)
        problems += found
        if heuristic is None:
            continue
        bound = bind_problems(heuristic.sql)
        problems += [f"{path.name}: {p}" for p in bound]
        if bound:
            continue
        for which, want in (("fires", True), ("silent", False)):
            try:
                fired = bool(example_findings(heuristic, which))
            except (IrkitError, ValueError, TypeError) as exc:
                message = exc.message if isinstance(exc, IrkitError) else str(exc)
                problems.append(f"{path.name}: example {which!r} cannot run: {message}")
                continue
            if fired != want:
                what = "does not fire" if want else "fires"
                problems.append(f"{path.name}: example {which!r} {what}")
    return problems
