"""The collection's account of itself: ``manifest.json`` and its ``.sha256``; with ``--zip``,
the zip's ``.sha256`` and ``collect.log``.

``build_manifest`` puts together what ``irkit verify`` and ``irkit parse`` read back (the
tool, the host, the target, the invocation, the definitions, the privileges, the totals,
every file, skipped file and command); ``write_manifest`` writes it with its digest;
``zip_collection`` turns the folder into a zip.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from irkit.collect.copy import FileRecord, utc_now
from irkit.collect.definitions import Definitions, SourceSpec
from irkit.collect.host import host_facts, privileges, tool_facts
from irkit.collect.options import CollectOptions, CollectSummary
from irkit.collect.target import Target
from irkit.files.fileio import iso_ns

MANIFEST: Final = "manifest.json"
MANIFEST_DIGEST: Final = "manifest.json.sha256"
FORMAT: Final = "irkit-collection"
FORMAT_VERSION: Final = 1


def build_manifest(
    options: CollectOptions,
    summary: CollectSummary,
    target: Target,
    definitions: Definitions,
    sources: Sequence[SourceSpec],
    files: Sequence[FileRecord],
    started_ns: int,
    finished_ns: int,
) -> dict[str, Any]:
    """The manifest of a finished collection; ``summary`` is filled in but for its digests."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tool": tool_facts(),
        "collection_id": summary.collection_id,
        "case": {
            key: options.case.get(key, "")
            for key in ("case_number", "evidence_number", "examiner", "notes")
        },
        "host": host_facts(),
        "target": {
            "root": target.root,
            "live": target.live,
            "os": target.os_name,
            "users": [u.name for u in target.users],
        },
        "started_utc": iso_ns(started_ns),
        "finished_utc": iso_ns(finished_ns),
        "seconds": round(summary.seconds, 3),
        "invocation": {
            "argv": list(options.argv),
            "profile": summary.profile,
            "artifacts": list(options.artifacts),
            "max_file_size": options.max_file_size,
            "osquery": options.osquery,
            "zip": options.zip,
        },
        "definitions": {
            "artifacts_package": definitions.package_version,
            "irkit_definitions_sha256": definitions.own_sha256,
            "artifacts_resolved": sorted({s.artifact for s in sources}),
            "artifacts_not_for_this_os": summary.not_for_os,
        },
        "privileges": privileges(),
        "totals": {
            "files": summary.files,
            "bytes": summary.bytes,
            "listings": summary.listings,
            "commands": len(summary.commands),
            "skipped": summary.skipped_by_reason(),
        },
        "files": [f.as_dict() for f in files],
        "skipped": [dataclasses.asdict(s) for s in summary.skipped],
        "commands": summary.commands,
        "osquery": summary.osquery,
    }


def write_manifest(base: Path, manifest: dict[str, Any]) -> str:
    """Write ``manifest.json`` and its ``.sha256`` (sha256sum format); returns the digest."""
    data = (json.dumps(manifest, indent=1, ensure_ascii=True) + "\n").encode("ascii")
    (base / MANIFEST).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    (base / MANIFEST_DIGEST).write_text(f"{digest}  {MANIFEST}\n", encoding="ascii")
    return digest


def zip_collection(
    summary: CollectSummary, base: Path, out: Path, name: str, options: CollectOptions
) -> None:
    """Zip the collection folder ``base`` into ``out`` with its ``.sha256`` and
    ``collect.log``, then remove the folder."""
    from irkit.collect.archive import write_zip

    archive = out / f"{name}.zip"
    summary.zip_sha256 = write_zip(base, archive)
    summary.zip_path = str(archive)
    (out / f"{name}.zip.sha256").write_text(f"{summary.zip_sha256}  {archive.name}\n")
    case = options.case
    lines = [
        f"irkit collect {tool_facts()['version']}",
        f"collection id: {summary.collection_id}",
        f"case number: {case.get('case_number', '')}",
        f"evidence number: {case.get('evidence_number', '')}",
        f"examiner: {case.get('examiner', '')}",
        f"notes: {case.get('notes', '')}",
        f"host: {socket.gethostname()}",
        f"root: {summary.root} ({summary.os_name}, {'live' if summary.live else 'image'})",
        f"profile: {summary.profile or ', '.join(options.artifacts)}",
        f"files: {summary.files} ({summary.bytes} bytes), skipped: {len(summary.skipped)}",
        f"manifest.json sha256: {summary.manifest_sha256}",
        f"zip: {archive.name}",
        f"zip size: {archive.stat().st_size}",
        f"zip sha256: {summary.zip_sha256}",
        f"finished: {utc_now()}",
    ]
    (out / "collect.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.rmtree(base)
    summary.folder = ""
