"""The case store's schema: its file names, the DuckDB tables, the SQL of its views.

``DDL`` creates every table (``Case`` runs it on each writable open); ``EMPTY_EVENTS``
is the typed ``events`` view of a case with no parts yet, and ``FINDING_ROWS`` the
findings as timeline rows. The tables are described in docs/schema.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

STORE_NAME: Final = "irkit.duckdb"
EVENTS_DIR: Final = "events"
SCHEMA_VERSION: Final = 3

DDL: Final = (
    """CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS parts (
        file VARCHAR, sha256 VARCHAR, rows BIGINT, PRIMARY KEY (file, sha256)
    )""",
    # How many events of each part name each host, as spelled: the host identity
    # (irkit.store.hosts) is worked out from it without reading the parts again.
    """CREATE TABLE IF NOT EXISTS part_hosts (
        file VARCHAR, host VARCHAR, events BIGINT, PRIMARY KEY (file, host)
    )""",
    """CREATE TABLE IF NOT EXISTS evidence (
        sha256 VARCHAR PRIMARY KEY,
        path VARCHAR,
        size BIGINT,
        kind VARCHAR,
        engine VARCHAR,
        status VARCHAR,
        records BIGINT,
        skipped_chunks BIGINT,
        skipped_records BIGINT,
        warnings BIGINT,
        run_id VARCHAR,
        parsed_at TIMESTAMPTZ
    )""",
    """CREATE TABLE IF NOT EXISTS ingesting (sha256 VARCHAR PRIMARY KEY)""",
    """CREATE TABLE IF NOT EXISTS evidence_paths (
        sha256 VARCHAR, path VARCHAR, PRIMARY KEY (sha256, path)
    )""",
    """CREATE TABLE IF NOT EXISTS warnings (
        run_id VARCHAR, path VARCHAR, kind VARCHAR, message VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS findings (
        uid VARCHAR PRIMARY KEY,
        ts TIMESTAMPTZ,
        last_seen TIMESTAMPTZ,
        count BIGINT,
        severity VARCHAR,
        detector VARCHAR,
        rule VARCHAR,
        title VARCHAR,
        description VARCHAR,
        attack VARCHAR[],
        event_uid VARCHAR,
        event_uids VARCHAR[],
        source VARCHAR,
        host VARCHAR,
        evidence VARCHAR,
        record VARCHAR,
        excerpt VARCHAR,
        details JSON,
        run_id VARCHAR
    )""",
    # Every event each finding rests on (``findings.event_uids`` keeps the first 100).
    """CREATE TABLE IF NOT EXISTS finding_events (finding_uid VARCHAR, event_uid VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS collections (
        collection_id VARCHAR, manifest_sha256 VARCHAR, path VARCHAR, host VARCHAR,
        started_utc VARCHAR, finished_utc VARCHAR, files BIGINT,
        manifest_verified BOOLEAN, run_id VARCHAR, recorded_at TIMESTAMPTZ,
        PRIMARY KEY (collection_id, manifest_sha256)
    )""",
    # Damaged EVTX logs whose records only python-evtx reads are in the case (--recover).
    """CREATE TABLE IF NOT EXISTS recovered (
        sha256 VARCHAR PRIMARY KEY, records BIGINT, run_id VARCHAR, recovered_at TIMESTAMPTZ
    )""",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id VARCHAR PRIMARY KEY, command VARCHAR, started TIMESTAMPTZ,
        finished TIMESTAMPTZ, summary JSON
    )""",
)

#: The events view's columns, typed, for a case with no parts yet.
EMPTY_EVENTS: Final = """
SELECT NULL::VARCHAR AS uid, NULL::TIMESTAMPTZ AS ts, NULL::VARCHAR AS ts_desc,
       NULL::VARCHAR AS source, NULL::VARCHAR AS artifact, NULL::VARCHAR AS host,
       NULL::VARCHAR AS "user", NULL::VARCHAR AS event_id, NULL::VARCHAR AS message,
       NULL::VARCHAR AS fields, NULL::VARCHAR AS evidence, NULL::VARCHAR AS evidence_sha256,
       NULL::VARCHAR AS record
WHERE false
"""


#: Findings as timeline rows: same time, host, evidence and record as the event they rest
#: on, so a stable sort puts each one next to its event.
FINDING_ROWS: Final = """
SELECT uid, ts, 'Finding: ' || severity AS ts_desc, 'finding' AS source, rule AS artifact,
       host, NULL::VARCHAR AS "user", severity AS event_id,
       upper(severity) || ' ' || title || ': ' || description
         || CASE WHEN count > 1 THEN ' (' || count || ' events)' ELSE '' END AS message,
       CAST(json_merge_patch(details, json_object(
            'detector', detector, 'rule', rule, 'event_uid', event_uid,
            'event_source', source, 'attack', array_to_string(attack, ','),
            'excerpt', excerpt, 'count', count::VARCHAR,
            'last_seen', strftime(last_seen, '%Y-%m-%dT%H:%M:%S.%f+00:00'))) AS VARCHAR)
         AS fields,
       evidence, NULL::VARCHAR AS evidence_sha256, record
FROM findings
"""


def sql_list(items: Sequence[str]) -> str:
    """A DuckDB list literal of quoted strings (file names for ``read_parquet``)."""
    return "[" + ", ".join("'" + item.replace("'", "''") + "'" for item in items) + "]"
