"""Findings in the case: the detectors' results, stored once each (by uid).

``FindingsStore`` is the part of ``Case`` that adds and counts them; the findings table is
in ``irkit.store.schema``, and the ``timeline`` view shows them next to their events.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from irkit.model import Finding

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa


class FindingsStore:
    """The findings of a case."""

    db: duckdb.DuckDBPyConnection

    def add_findings(self, findings: Sequence[Finding], run_id: str) -> int:
        """Store findings; one already in the case (same uid) is kept as it was."""
        if not findings:
            return 0

        before = self.count_findings()
        table = findings_table(findings, run_id)
        events = finding_links(findings)
        self.db.register("_irkit_findings", table)
        self.db.register("_irkit_finding_events", events)
        # The events of a finding already in the case are already there.
        self.db.execute(
            "INSERT INTO finding_events SELECT DISTINCT * FROM _irkit_finding_events "
            "WHERE finding_uid NOT IN (SELECT uid FROM findings)"
        )
        self.db.execute(
            "INSERT OR IGNORE INTO findings SELECT * REPLACE "
            "(ts::TIMESTAMPTZ AS ts, last_seen::TIMESTAMPTZ AS last_seen) FROM _irkit_findings"
        )
        self.db.unregister("_irkit_findings")
        self.db.unregister("_irkit_finding_events")
        return self.count_findings() - before

    def count_findings(self) -> int:
        """Number of findings in the store."""
        return int(self.db.execute("SELECT count(*) FROM findings").fetchall()[0][0])


def findings_table(findings: Sequence[Finding], run_id: str | None) -> pa.Table:
    """Findings as an Arrow table with the findings table's columns (times as text; no
    ``run_id`` column when ``run_id`` is None: a dataset's findings have none)."""
    import pyarrow as pa

    table = pa.table(
        {
            "uid": [f.uid for f in findings],
            "ts": pa.array([f.ts for f in findings], pa.string()),
            "last_seen": pa.array([f.last_seen or f.ts for f in findings], pa.string()),
            "count": pa.array([f.count for f in findings], pa.int64()),
            "severity": [str(f.severity) for f in findings],
            "detector": [f.detector for f in findings],
            "rule": [f.rule for f in findings],
            "title": [f.title for f in findings],
            "description": [f.description for f in findings],
            "attack": pa.array([list(f.attack) for f in findings], pa.list_(pa.string())),
            "event_uid": [f.event_uid for f in findings],
            "event_uids": pa.array(
                [list(f.event_uids or ((f.event_uid,) if f.event_uid else ())) for f in findings],
                pa.list_(pa.string()),
            ),
            "source": [f.source for f in findings],
            "host": [f.host for f in findings],
            "evidence": [f.evidence for f in findings],
            "record": [f.record for f in findings],
            "excerpt": [f.excerpt for f in findings],
            "details": [json.dumps(f.details, sort_keys=True) for f in findings],
        }
    )
    if run_id is not None:
        table = table.append_column("run_id", pa.array([run_id] * len(findings), pa.string()))
    return table


def finding_links(findings: Sequence[Finding]) -> pa.Table:
    """(finding_uid, event_uid) of every event each finding rests on; a finding found
    twice in a run gives its events once."""
    import pyarrow as pa

    links: dict[str, tuple[str, ...]] = {}
    for f in findings:
        links.setdefault(f.uid, f.all_event_uids or f.event_uids or (f.event_uid,))
    pairs = [(uid, event) for uid, events in links.items() for event in events if event]
    return pa.table(
        {
            "finding_uid": pa.array([p[0] for p in pairs], pa.string()),
            "event_uid": pa.array([p[1] for p in pairs], pa.string()),
        }
    )
