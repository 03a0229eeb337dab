"""irkit: forensic triage for incident responders.

Host artifacts (EVTX, osquery results, files) become one UTC timeline in a case store,
exported as CSV, JSONL or a terminal table. The library never prints or exits; the
command line in ``irkit.cli`` does.

The packages are the pipeline's stages, each importing only those below it (checked by
import-linter in CI, contracts in ``pyproject.toml``; docs/architecture.md draws them):

    cli       the command line: the only code that prints or exits
    detect    findings from a case: heuristics, Sigma, YARA, analytics
    ingest    evidence in: discovery, worker processes, the case filled
    collect   a host's artifacts copied with a manifest; collections opened as evidence
    files     evidence files opened, hashed, dated, matched against hash IOCs
    export    timeline writers: CSV, JSONL, bodyfile
    store     the case: DuckDB, Parquet parts, the timeline query
    sources   one parser per artifact type, behind one protocol
    model, errors, artifacts, speedups   the schema, the errors, data files, the C hot path
"""

from __future__ import annotations

__version__ = "0.1.0"
