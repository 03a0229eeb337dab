"""Cases as one Hive-partitioned Parquet dataset: the events and findings of many hosts,
readable as they are by DuckDB, Spark, Trino and pandas (docs/dataset.md).

Layout (``DATASET/``)::

    events/source=evtx/host_key=ws01.corp.local/date=2024-03-05/part-<case>-0.parquet
    findings/host_key=ws01.corp.local/part-<case>-0.parquet
    finding_events/part-<case>.parquet
    _irkit/cases/<case>.json        the files each case wrote (readers skip ``_`` folders)

``host_key`` is the host in lower case with anything but ``a-z 0-9 . _ -`` made ``_`` (a
safe folder name for every engine); the ``host`` column keeps the name. Each case writes
files named after its id (its first run's id, hashed), so exporting another case adds its
files, and exporting a case again replaces its own files with the same bytes when the
case has not changed: rows are sorted and written by one thread.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from irkit.errors import CaseError, UsageError
from irkit.store.case import Case
from irkit.store.dataset import DATASET_MARKER as MARKER
from irkit.store.dataset import HOST_KEY_SQL, sql_string

#: Event fields that are also columns of their own (NULL where the event has none).
FIELD_COLUMNS: Final = (
    "Image",
    "CommandLine",
    "ParentImage",
    "ParentCommandLine",
    "TargetUserName",
    "SubjectUserName",
    "TargetDomainName",
    "LogonType",
    "IpAddress",
    "WorkstationName",
    "ServiceName",
    "TargetFilename",
    "TargetObject",
    "DestinationIp",
    "DestinationPort",
    "QueryName",
    "Hashes",
)
EVENT_COLUMNS: Final = (
    "uid", "ts", "ts_desc", "artifact", "host", "user", "event_id", "message", "fields",
    "evidence", "evidence_sha256", "record",
)  # fmt: skip
FINDING_COLUMNS: Final = (
    "uid", "ts", "last_seen", "count", "severity", "detector", "rule", "title", "description",
    "attack", "event_uid", "event_uids", "source", "host", "evidence", "record", "excerpt",
)  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class CaseExport:
    """What one case added to the dataset."""

    case: str
    case_id: str
    events: int
    findings: int
    files: int
    replaced: int  # files of an earlier export of the same case, removed


def case_id(case: Case) -> str:
    """A case's lasting id: its first run's id, hashed (16 hex digits)."""
    row = case.db.execute("SELECT run_id FROM runs ORDER BY started, run_id LIMIT 1").fetchall()
    if not row:
        raise CaseError(f"{case.root} has no run yet: nothing to export")
    return hashlib.sha256(str(row[0][0]).encode()).hexdigest()[:16]


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_dir():
        raise UsageError(
            f"--out {out} is a folder with other files in it, not an irkit dataset",
            hint="give a new or empty folder, or a dataset irkit wrote",
        )


def _copy(case: Case, select: str, target: Path, partition: str | None, pattern: str) -> None:
    options = "FORMAT PARQUET, COMPRESSION ZSTD"
    if partition:
        target.parent.mkdir(parents=True, exist_ok=True)
        options += f", PARTITION_BY ({partition}), FILENAME_PATTERN '{pattern}-{{i}}'"
        case.db.execute(f"COPY ({select}) TO {sql_string(str(target))} ({options})")
    else:
        target.mkdir(parents=True, exist_ok=True)
        case.db.execute(
            f"COPY ({select}) TO {sql_string(str(target / (pattern + '.parquet')))} ({options})"
        )


def _write_case(case: Case, ident: str, staging: Path) -> tuple[int, int]:
    db = case.db
    db.execute("SET threads = 1")  # one writer: the same rows give the same files
    db.execute("SET preserve_insertion_order = true")
    db.execute("SET partitioned_write_max_open_files = 4")
    paths = ", ".join(f"'$.\"{name}\"'" for name in FIELD_COLUMNS)
    extra = ", ".join(f'_j[{i}] AS "{name}"' for i, name in enumerate(FIELD_COLUMNS, 1))
    columns = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
    # Sorted first (partition by partition, so one file is open at a time; time order
    # within each), the field columns taken after: the sort carries less.
    events = (
        f"SELECT {columns}, {extra}, source, host_key, date FROM ("
        f"SELECT *, json_extract_string(fields, [{paths}]) AS _j FROM ("
        f"SELECT *, {HOST_KEY_SQL} AS host_key, CAST(ts AS DATE) AS date FROM events "
        f"ORDER BY source, host_key, date, ts, host, evidence, record, uid))"
    )
    _copy(case, events, staging / "events", "source, host_key, date", f"part-{ident}")
    finding_columns = ", ".join(f'"{c}"' for c in FINDING_COLUMNS)
    findings = (
        f"SELECT {finding_columns}, CAST(details AS VARCHAR) AS details, "
        f"{HOST_KEY_SQL} AS host_key FROM findings ORDER BY host_key, ts, uid"
    )
    n_findings = int(db.execute("SELECT count(*) FROM findings").fetchall()[0][0])
    if n_findings:
        _copy(case, findings, staging / "findings", "host_key", f"part-{ident}")
        _copy(
            case,
            "SELECT finding_uid, event_uid FROM finding_events ORDER BY finding_uid, event_uid",
            staging / "finding_events",
            None,
            f"part-{ident}",
        )
    return case.count(), n_findings


def export_dataset(cases: Sequence[Path], out: Path) -> list[CaseExport]:
    """Add each case's events and findings to the dataset at ``out`` (created if needed);
    a case exported before has its earlier files replaced."""
    _check_out(out)
    (out / MARKER / "cases").mkdir(parents=True, exist_ok=True)
    done: list[CaseExport] = []
    for case_dir in cases:
        with Case(case_dir, read_only=True) as case:
            ident = case_id(case)
            staging = out / MARKER / f"staging-{ident}"
            shutil.rmtree(staging, ignore_errors=True)
            try:
                events, findings = _write_case(case, ident, staging)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        written = sorted(p.relative_to(staging) for p in staging.rglob("*.parquet"))
        manifest = out / MARKER / "cases" / f"{ident}.json"
        earlier = json.loads(manifest.read_text())["files"] if manifest.exists() else []
        for name in earlier:
            (out / name).unlink(missing_ok=True)
        for name in written:
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            (staging / name).replace(target)
        shutil.rmtree(staging, ignore_errors=True)
        _prune_empty(out, earlier)
        record = {
            "case_id": ident,
            "case": str(case_dir.resolve()),
            "events": events,
            "findings": findings,
            "files": [str(p) for p in written],
        }
        manifest.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        done.append(CaseExport(str(case_dir), ident, events, findings, len(written), len(earlier)))
    return done


def _prune_empty(out: Path, removed: list[str]) -> None:
    """Remove the partition folders an earlier export left empty."""
    for name in removed:
        folder = (out / name).parent
        while folder != out and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent
