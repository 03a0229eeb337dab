"""`irkit verify`: a collection (folder or zip) checked against its manifest.

Checks, and names each failure with its own kind: the manifest's own digest against
``manifest.json.sha256`` (``manifest-altered``, ``manifest-digest-missing``); every
stored file and command output re-hashed (``altered``: size or a digest differs;
``missing``: listed but absent); files present but not listed (``unexpected``); a zip's
digest against the ``.zip.sha256`` beside it (``zip-altered``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
import zipfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any, Final

from irkit.collect.manifest import FORMAT, MANIFEST, MANIFEST_DIGEST
from irkit.errors import EvidenceError, ExitCode

_DIGESTS: Final = ("md5", "sha1", "sha256")


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """One thing that does not match the manifest."""

    kind: str
    path: str
    message: str


@dataclasses.dataclass(slots=True)
class VerifyReport:
    """The outcome of one verification; ``--json`` prints ``as_dict()``."""

    path: str
    collection_id: str = ""
    manifest_sha256: str = ""
    zip_sha256: str = ""
    files_checked: int = 0
    bytes_checked: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)

    @property
    def exit_code(self) -> ExitCode:
        """VERIFY_FAILED on any mismatch."""
        return ExitCode.VERIFY_FAILED if self.problems else ExitCode.OK

    def as_dict(self) -> dict[str, Any]:
        """The report as plain data."""
        return {
            "path": self.path,
            "collection_id": self.collection_id,
            "manifest_sha256": self.manifest_sha256,
            "zip_sha256": self.zip_sha256,
            "files_checked": self.files_checked,
            "bytes_checked": self.bytes_checked,
            "verified": not self.problems,
            "problems": [dataclasses.asdict(p) for p in self.problems],
            "exit_code": int(self.exit_code),
        }


class _Store:
    """The collection's files, by name relative to its top: a folder or a zip."""

    def names(self) -> Iterator[str]:
        raise NotImplementedError

    def open(self, name: str) -> AbstractContextManager[IO[bytes]]:
        raise NotImplementedError

    def has(self, name: str) -> bool:
        raise NotImplementedError


class _Folder(_Store):
    def __init__(self, root: Path) -> None:
        self.root = root

    def names(self) -> Iterator[str]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for name in sorted(filenames + [d for d in dirnames if _is_link(dirpath, d)]):
                full = Path(dirpath) / name
                yield full.relative_to(self.root).as_posix()

    def open(self, name: str) -> AbstractContextManager[IO[bytes]]:
        path = self._path(name)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(f"{name} is not a regular file")
        return os.fdopen(fd, "rb")

    def has(self, name: str) -> bool:
        return os.path.lexists(self._path(name))

    def _path(self, name: str) -> Path:
        path = self.root.joinpath(*name.split("/"))
        if self.root not in path.parents:
            raise OSError(f"{name} is outside the collection")
        return path


def _is_link(dirpath: str, name: str) -> bool:
    return os.path.islink(os.path.join(dirpath, name))


class _Zip(_Store):
    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.zip = archive
        self.entries = {i.filename: i for i in archive.infolist() if not i.is_dir()}

    def names(self) -> Iterator[str]:
        yield from sorted(self.entries)

    def open(self, name: str) -> AbstractContextManager[IO[bytes]]:
        return self.zip.open(self.entries[name])

    def has(self, name: str) -> bool:
        return name in self.entries


def _hash(store: _Store, name: str) -> tuple[int, dict[str, str]]:
    digests = {n: hashlib.new(n) for n in _DIGESTS}
    size = 0
    with store.open(name) as handle:
        while block := handle.read(1 << 20):
            size += len(block)
            for digest in digests.values():
                digest.update(block)
    return size, {n: d.hexdigest() for n, d in digests.items()}


def _sidecar_digest(text: str) -> str:
    return text.strip().split()[0].lower() if text.strip() else ""


def find_collection(path: Path) -> Path:
    """The folder or zip to verify: ``path``, or the one collection zip inside it."""
    if path.is_dir() and not (path / MANIFEST).exists():
        zips = sorted(path.glob("*.zip"))
        if len(zips) == 1:
            return zips[0]
        raise EvidenceError(
            f"{path} holds no {MANIFEST}" + (" and several zips" if zips else ""),
            hint="give the collection folder or its zip",
        )
    if not path.exists():
        raise EvidenceError(f"no such file or directory: {path}", hint="check the path")
    return path


def verify(path: Path, progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Check a collection folder or zip against its manifest."""
    path = find_collection(path)
    report = VerifyReport(str(path))
    if path.is_file():
        from irkit.collect.archive import check_entries, sha256_of

        report.zip_sha256 = sha256_of(path)
        sidecar = path.with_name(path.name + ".sha256")
        if sidecar.exists():
            expected = _sidecar_digest(sidecar.read_text(errors="replace"))
            if expected != report.zip_sha256:
                report.problems.append(
                    Problem(
                        "zip-altered",
                        path.name,
                        f"the zip's sha256 is {report.zip_sha256}; {sidecar.name} says {expected}",
                    )
                )
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise EvidenceError(f"{path} is not a readable zip: {exc}") from exc
        with archive:
            check_entries(path, archive)
            _check(_Zip(archive), report, progress)
    else:
        _check(_Folder(path), report, progress)
    return report


def read_manifest(store: _Store, where: str) -> tuple[dict[str, Any], bytes]:
    """The manifest's data and raw bytes; raises ``EvidenceError`` if it is not one."""
    if not store.has(MANIFEST):
        raise EvidenceError(
            f"{where} has no {MANIFEST}: not an irkit collection",
            hint="give the folder or zip that irkit collect wrote",
        )
    with store.open(MANIFEST) as handle:
        raw = handle.read()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise EvidenceError(f"{where}: {MANIFEST} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise EvidenceError(f"{where}: {MANIFEST} is not an irkit collection manifest")
    return data, raw


def _check(store: _Store, report: VerifyReport, progress: Callable[[int], None] | None) -> None:
    manifest, raw = read_manifest(store, report.path)
    report.collection_id = str(manifest.get("collection_id", ""))
    report.manifest_sha256 = hashlib.sha256(raw).hexdigest()
    if not store.has(MANIFEST_DIGEST):
        report.problems.append(
            Problem("manifest-digest-missing", MANIFEST_DIGEST, f"{MANIFEST_DIGEST} is missing")
        )
    else:
        with store.open(MANIFEST_DIGEST) as handle:
            expected = _sidecar_digest(handle.read().decode("ascii", "replace"))
        if expected != report.manifest_sha256:
            report.problems.append(
                Problem(
                    "manifest-altered",
                    MANIFEST,
                    f"{MANIFEST} has sha256 {report.manifest_sha256}; "
                    f"{MANIFEST_DIGEST} says {expected}: the manifest was edited",
                )
            )
    expected_files: dict[str, dict[str, Any]] = {}
    for entry in manifest.get("files", []):
        expected_files[str(entry.get("stored_path", ""))] = {
            "size": entry.get("stored_size"),
            **{n: entry.get(n, "") for n in _DIGESTS},
        }
    for command in manifest.get("commands", []):
        for stream in ("stdout", "stderr"):
            name = command.get(f"{stream}_path")
            if name:
                expected_files[str(name)] = {
                    "size": command.get(f"{stream}_size"),
                    "sha256": command.get(f"{stream}_sha256", ""),
                }
    for name in sorted(expected_files):
        want = expected_files[name]
        if not store.has(name):
            report.problems.append(
                Problem("missing", name, "listed in the manifest, absent from the collection")
            )
            continue
        try:
            size, got = _hash(store, name)
        except (OSError, zipfile.BadZipFile, KeyError) as exc:
            report.problems.append(Problem("altered", name, f"cannot be read: {exc}"))
            continue
        report.files_checked += 1
        report.bytes_checked += size
        if progress is not None:
            progress(size)
        if want.get("size") is not None and size != want["size"]:
            report.problems.append(
                Problem("altered", name, f"size is {size}; the manifest says {want['size']}")
            )
            continue
        for algorithm in _DIGESTS:
            if want.get(algorithm) and got[algorithm] != want[algorithm]:
                report.problems.append(
                    Problem(
                        "altered",
                        name,
                        f"{algorithm} is {got[algorithm]}; the manifest says {want[algorithm]}",
                    )
                )
                break
    for name in store.names():
        if name in (MANIFEST, MANIFEST_DIGEST) or name in expected_files:
            continue
        report.problems.append(Problem("unexpected", name, "present, but not in the manifest"))
