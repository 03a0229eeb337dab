"""Record keys of a file parsed as slices: a record id repeated across slices is keyed
apart (``SliceRecords``, a part of ``EvidenceRegistry``) before its parts are registered.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from irkit.model import FileStats
from irkit.store.schema import sql_list

if TYPE_CHECKING:
    import duckdb


class SliceRecords:
    """Unique record keys across the slices of one file."""

    db: duckdb.DuckDBPyConnection

    def _unique_records(self, stats: FileStats) -> None:
        """A file parsed as slices may repeat a record id across slices: key repeats apart.

        Within one slice the parser keys a repeat ``<id>#<n>``; across slices only the
        store sees them all. The slices' record-id ranges say whether any repeat is
        possible, and only the slices sharing ids are read back and rewritten. Repeats
        are numbered by content, so the keys do not depend on which slice finished first.
        """
        from irkit.store.spool import slices_sharing_ids

        if len(stats.spool) < 2:
            return
        if stats.slice_spool and len(stats.record_ranges) == len(stats.slice_spool):
            involved = [
                part
                for index in sorted(slices_sharing_ids(stats.record_ranges))
                for part in stats.slice_spool[index]
            ]
        else:  # ranges unknown: every part may hold repeats
            involved = list(stats.spool)
        if len(involved) < 2:
            return
        files = sql_list(involved)
        repeats = self.db.execute(
            f"""SELECT count(*) FROM (SELECT record FROM read_parquet({files})
                GROUP BY record HAVING count(*) > 1)"""
        ).fetchone()
        if not repeats or not repeats[0]:
            return
        fixed = Path(involved[0]).with_name(
            f"{stats.sha256[:16]}-{uuid.uuid4().hex[:12]}-unique.parquet"
        )
        target = str(fixed).replace("'", "''")
        # Only the repeated records are numbered (a small set); every row is copied once.
        self.db.execute(
            f"""COPY (
                WITH src AS NOT MATERIALIZED (
                    SELECT * FROM read_parquet({files}, filename = true, file_row_number = true)
                ),
                repeated AS (SELECT record FROM src GROUP BY record HAVING count(*) > 1),
                numbered AS (
                    SELECT filename AS f, file_row_number AS r, row_number() OVER (
                        PARTITION BY record ORDER BY ts, md5(message), md5(fields)) AS n
                    FROM src WHERE record IN (SELECT record FROM repeated)
                )
                SELECT src.* EXCLUDE (filename, file_row_number) REPLACE (
                    CASE WHEN n > 1 THEN src.record || '#x' || n ELSE src.record END AS record,
                    CASE WHEN n > 1 THEN md5(src.evidence_sha256 || '|' || src.record || '#x'
                                             || n || '|' || src.ts_desc)
                         ELSE src.uid END AS uid)
                FROM src LEFT JOIN numbered
                  ON src.filename = numbered.f AND src.file_row_number = numbered.r
            ) TO '{target}' (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 20000)"""
        )
        for name in involved:
            Path(name).unlink(missing_ok=True)
        rewritten = set(involved)
        stats.spool = [part for part in stats.spool if part not in rewritten] + [str(fixed)]
