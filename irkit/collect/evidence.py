"""A collection (folder or zip) opened as evidence: its files found through its manifest.

``irkit parse`` and ``irkit triage`` take a collection directly. A zip is checked
(traversal, links, bombs) and unpacked into the case folder, never beside the evidence.
The manifest names the files to parse and when each was collected; the case records
the collection id and the manifest's digest, so custody continues into analysis.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

from irkit.collect.archive import extract, sha256_of
from irkit.collect.manifest import FORMAT, MANIFEST, MANIFEST_DIGEST
from irkit.errors import EvidenceError


@dataclasses.dataclass(slots=True)
class CollectedFile:
    """A file of a collection: where it is now, when it was collected, its digest."""

    path: Path
    collected_utc: str
    sha256: str
    source_path: str


@dataclasses.dataclass(slots=True)
class Collection:
    """An irkit collection opened for parsing."""

    given: Path
    root: Path
    collection_id: str
    manifest_sha256: str
    manifest_verified: bool
    host: str
    started_utc: str
    finished_utc: str
    files: list[CollectedFile] = dataclasses.field(default_factory=list)
    outside: list[str] = dataclasses.field(default_factory=list)

    def by_path(self) -> dict[str, CollectedFile]:
        """The files by their path as discovery shows it."""
        return {str(f.path): f for f in self.files}


def _is_collection_dir(path: Path) -> bool:
    manifest = path / MANIFEST
    if not manifest.is_file():
        return False
    try:
        with manifest.open("rb") as handle:
            head = handle.read(200)
    except OSError:
        return False
    return FORMAT.encode() in head


def _collection_zip(path: Path) -> bool:
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return MANIFEST in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _read(given: Path, root: Path) -> Collection:
    # Absolute (links not resolved), as discovery names evidence: the case outlives the
    # shell's current folder, and the manifest's files are matched to the parsed ones.
    given, root = Path(os.path.abspath(given)), Path(os.path.abspath(root))
    raw = (root / MANIFEST).read_bytes()
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise EvidenceError(f"{given}: {MANIFEST} is not valid JSON: {exc}") from exc
    digest = hashlib.sha256(raw).hexdigest()
    try:
        recorded = (root / MANIFEST_DIGEST).read_text(errors="replace").split()[0]
    except (OSError, IndexError):
        recorded = ""
    collection = Collection(
        given=given,
        root=root,
        collection_id=str(manifest.get("collection_id", "")),
        manifest_sha256=digest,
        manifest_verified=recorded.lower() == digest,
        host=str(manifest.get("host", {}).get("hostname", "")),
        started_utc=str(manifest.get("started_utc", "")),
        finished_utc=str(manifest.get("finished_utc", "")),
    )
    top = root.resolve()
    listed = [
        (f.get("stored_path", ""), f.get("collected_utc", ""), f.get("sha256", ""), f)
        for f in manifest.get("files", [])
    ]
    listed += [
        (c.get("stdout_path", ""), c.get("started_utc", ""), c.get("stdout_sha256", ""), c)
        for c in manifest.get("commands", [])
        if c.get("stdout_path")
    ]
    for stored, when, sha256, entry in listed:
        path = root.joinpath(*str(stored).split("/"))
        # A manifest is evidence too: it may not point outside its own collection.
        if not stored or ".." in str(stored).split("/") or top not in path.resolve().parents:
            collection.outside.append(str(stored))
            continue
        source = str(entry.get("source_path") or " ".join(entry.get("argv", [])))
        collection.files.append(CollectedFile(path, str(when), str(sha256), source))
    return collection


def open_collection(path: Path, workdir: Path) -> Collection | None:
    """The collection at ``path`` (folder, zip, or an --out folder holding one zip);
    None when ``path`` is not one. A zip is unpacked under ``workdir/collections``."""
    if path.is_dir():
        if _is_collection_dir(path):
            return _read(path, path)
        zips = [z for z in sorted(path.glob("*.zip")) if z.with_name(z.name + ".sha256").exists()]
        if len(zips) == 1 and _collection_zip(zips[0]):
            path = zips[0]
        else:
            return None
    if not _collection_zip(path):
        return None
    digest = sha256_of(path)
    target = workdir / "collections" / f"{path.stem}-{digest[:12]}"
    if not _is_collection_dir(target):
        extract(path, target)
    return _read(path, target)


def open_evidence(paths: Sequence[Path], workdir: Path) -> tuple[list[Path], list[Collection]]:
    """The paths to parse (a zip replaced by its unpacked folder) and the collections."""
    resolved: list[Path] = []
    collections: list[Collection] = []
    for path in paths:
        collection = open_collection(path, workdir) if path.exists() else None
        if collection is None:
            resolved.append(path)
        else:
            collections.append(collection)
            resolved.append(collection.root)
    return resolved, collections
