"""A case's chain of custody: one manifest per run (``custody_verify`` checks them).

Every ``parse``, ``hash``, ``scan``, ``triage`` and ``report`` run writes
``CASE/runs/RUN-ID.json`` (``record_run``): irkit's version, the command line, start and
end (UTC), the evidence read with its sha256, the collections, the rule files with their
sha256 and counts, the options and every file written with its sha256. The case store
itself (DuckDB, Parquet parts) changes on every run and is not hashed. docs/custody.md
describes the format.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from irkit.errors import CaseError
from irkit.model import FileStats, ParseWarning
from irkit.store.schema import STORE_NAME

RUNS_DIR: Final = "runs"
FORMAT: Final = "irkit-run"
FORMAT_VERSION: Final = 1
#: An evidence file inside an image or archive is named ``<container>::<path>``.
INSIDE: Final = "::"


def is_case(path: Path) -> bool:
    """True when ``path`` is a case folder (its store or its run manifests are there)."""
    return path.is_dir() and ((path / STORE_NAME).exists() or (path / RUNS_DIR).is_dir())


def _absolute(path: str | Path) -> str:
    """The path as typed, made absolute (links not followed, as the case names evidence)."""
    return os.path.abspath(path)  # noqa: PTH100 (resolve would follow links)


def sha256_file(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file, read once in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            size += len(block)
            digest.update(block)
    return size, digest.hexdigest()


def _file_entry(path: Path, shown: str) -> dict[str, Any]:
    size, digest = sha256_file(path)
    return {"path": shown, "sha256": digest, "size": size}


def _rule_entry(path: str) -> dict[str, Any]:
    """A rule file with its digest; one that cannot be read is named, not hashed."""
    try:
        return _file_entry(Path(path), path)
    except OSError as exc:
        return {"path": path, "sha256": "", "size": None, "error": exc.strerror or str(exc)}


def rule_set(
    name: str,
    files: Iterable[Path],
    *,
    given: Sequence[Path] = (),
    builtin: bool = False,
    loaded: int = 0,
    skipped: int = 0,
    counts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One rule set for a manifest: each file with its sha256, the counts loaded/skipped."""
    listed = sorted({_absolute(f) for f in files})
    return {
        "name": name,
        "builtin": builtin,
        "given": [str(p) for p in given],
        "loaded": loaded,
        "skipped": skipped,
        "counts": dict(counts or {}),
        "files": [_rule_entry(f) for f in listed if Path(f).is_file()],
    }


def ioc_rule_set(
    paths: Sequence[Path], loaded: int, warnings: Iterable[ParseWarning]
) -> dict[str, Any]:
    """The ``--ioc`` lists as a rule set: hashes loaded, lines skipped (``bad-ioc``)."""
    skipped = sum(1 for w in warnings if w.kind == "bad-ioc")
    return rule_set("ioc", paths, given=paths, loaded=loaded, skipped=skipped)


def _digest_list(path: Path) -> list[tuple[str, str]]:
    """(path, sha256) of a ``sha256sum`` list irkit wrote, paths made absolute."""
    found = []
    with path.open(encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            line = line.rstrip("\n")
            escaped = line.startswith("\\")
            digest, _, name = line.lstrip("\\").partition("  ")
            if len(digest) != 64 or not name:
                continue
            if escaped:
                name = name.replace("\\n", "\n").replace("\\r", "\r").replace("\\\\", "\\")
            found.append((_absolute(name), digest.lower()))
    return found


def _store_facts(case_dir: Path, run_ids: Sequence[str]) -> tuple[dt.datetime | None, list[Any]]:
    """When the first of the run's store runs started, and the collections they parsed."""
    if not (case_dir / STORE_NAME).exists() or not run_ids:
        return None, []
    from irkit.store.case import Case

    marks = ", ".join("?" for _ in run_ids)
    with Case(case_dir, read_only=True) as case:
        started = case.db.execute(
            f"SELECT min(started) FROM runs WHERE run_id IN ({marks})", list(run_ids)
        ).fetchone()
        rows = case.db.execute(
            "SELECT collection_id, manifest_sha256, path FROM collections "
            f"WHERE run_id IN ({marks}) ORDER BY collection_id, path",
            list(run_ids),
        ).fetchall()
    first = started[0] if started else None
    return (first.astimezone(dt.UTC) if isinstance(first, dt.datetime) else None), rows


def _shown(path: Path, case_dir: Path) -> str:
    """An output's name in the manifest: relative to the case when inside it."""
    full, root = Path(_absolute(path)), Path(_absolute(case_dir))
    return full.relative_to(root).as_posix() if root in full.parents else str(full)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def record_run(
    case_dir: Path,
    run_id: str,
    command: str,
    *,
    argv: Sequence[str],
    options: Mapping[str, Any],
    files: Sequence[FileStats] = (),
    digest_lists: Sequence[Path] = (),
    rule_sets: Sequence[Mapping[str, Any]] = (),
    outputs: Sequence[Path] = (),
    store_runs: Mapping[str, str] | None = None,
    started: dt.datetime | None = None,
) -> Path:
    """Write ``CASE/runs/RUN-ID.json`` for one run and return its path.

    ``files``: the evidence a parse read (with the sha256 it computed); ``digest_lists``:
    sha256 lists a hash run wrote (its evidence, no file read again); ``store_runs``: the
    run ids the command recorded in the store (their collections and start time are read
    from it); ``outputs``: the files written, hashed now.
    """
    try:
        return _record(
            case_dir, run_id, command, argv, options, files, digest_lists, rule_sets, outputs,
            store_runs, started,
        )  # fmt: skip
    except OSError as exc:
        raise CaseError(
            f"cannot write the run manifest {case_dir / RUNS_DIR / run_id}.json: "
            f"{exc.strerror or exc}",
            hint="the run itself is in the case; free space or fix the permissions, run again",
        ) from exc


def _record(
    case_dir: Path,
    run_id: str,
    command: str,
    argv: Sequence[str],
    options: Mapping[str, Any],
    files: Sequence[FileStats],
    digest_lists: Sequence[Path],
    rule_sets: Sequence[Mapping[str, Any]],
    outputs: Sequence[Path],
    store_runs: Mapping[str, str] | None,
    started: dt.datetime | None,
) -> Path:
    from irkit import __version__

    store_runs = dict(store_runs) if store_runs is not None else {command: run_id}
    first, collections = _store_facts(case_dir, list(store_runs.values()))
    started = started or first or dt.datetime.now(dt.UTC)
    evidence: dict[str, dict[str, Any]] = {}
    for stats in files:
        if stats.sha256 and stats.status not in ("unrecognised", "failed"):
            path = _absolute(stats.path) if INSIDE not in stats.path else stats.path
            evidence[path] = {"path": path, "sha256": stats.sha256, "size": stats.size}
    for listing in digest_lists:
        if listing.is_file():
            for path, digest in _digest_list(listing):
                evidence.setdefault(path, {"path": path, "sha256": digest, "size": None})
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "run_id": run_id,
        "command": command,
        "tool": {"name": "irkit", "version": __version__, "python": platform.python_version()},
        "argv": list(argv),
        "cwd": str(Path.cwd()),
        "started_utc": _iso(started),
        "finished_utc": _iso(dt.datetime.now(dt.UTC)),
        "store_runs": dict(sorted(store_runs.items())),
        "options": _plain(options),
        "inputs": {
            "evidence": [evidence[p] for p in sorted(evidence)],
            "collections": [
                {"collection_id": cid, "manifest_sha256": sha, "path": _absolute(path)}
                for cid, sha, path in collections
            ],
        },
        "rule_sets": [dict(r) for r in rule_sets],
        "outputs": [
            _file_entry(Path(out), _shown(Path(out), case_dir))
            for out in sorted(set(outputs), key=str)
            if Path(out).is_file()
        ],
    }
    folder = case_dir / RUNS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{run_id}.json"
    text = json.dumps(manifest, indent=2, ensure_ascii=True) + "\n"
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temp).replace(target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


def _plain(value: Any) -> Any:
    """Options as JSON data: paths and enums as text, in a stable order."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(getattr(value, "value", value))
