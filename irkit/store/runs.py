"""The case's log: each command run with its summary, the runs' warnings and the irkit
collections parsed into the case.

``RunLog`` is the part of ``Case`` that records them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from irkit.model import ParseWarning

if TYPE_CHECKING:
    import duckdb


class RunLog:
    """Runs, warnings and collections recorded in a case."""

    db: duckdb.DuckDBPyConnection

    def record_warnings(self, run_id: str, items: Iterable[ParseWarning]) -> None:
        """Keep the run's warnings in the case, for the report and later runs."""
        import pyarrow as pa

        listed = list(items)
        if not listed:
            return
        table = pa.table(
            {
                "run_id": [run_id] * len(listed),
                "path": [w.path for w in listed],
                "kind": [w.kind for w in listed],
                "message": [w.message for w in listed],
            }
        )
        self.db.register("_irkit_warnings", table)
        self.db.execute("INSERT INTO warnings SELECT * FROM _irkit_warnings")
        self.db.unregister("_irkit_warnings")

    def record_run(
        self, run_id: str, command: Sequence[str], started: dt.datetime, summary: dict[str, Any]
    ) -> None:
        """Remember one command run and its summary."""
        self.db.execute(
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?)",
            [run_id, " ".join(command), started, dt.datetime.now(dt.UTC), json.dumps(summary)],
        )

    def record_collection(
        self,
        run_id: str,
        collection_id: str,
        manifest_sha256: str,
        path: str,
        *,
        host: str = "",
        started: str = "",
        finished: str = "",
        files: int = 0,
        manifest_verified: bool = False,
    ) -> None:
        """Remember an irkit collection parsed into the case: its id and manifest digest."""
        self.db.execute(
            "INSERT OR REPLACE INTO collections VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                collection_id,
                manifest_sha256,
                path,
                host,
                started,
                finished,
                files,
                manifest_verified,
                run_id,
                dt.datetime.now(dt.UTC),
            ],
        )
