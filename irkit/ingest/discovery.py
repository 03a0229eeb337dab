"""Finding evidence: walk files and folders, recognise each file by its content, hash it.

A file is recognised by its first bytes, never by its name alone; links are not followed;
an unreadable folder or a file that vanishes is a counted warning, not the end of the run.
Each file is named by its absolute path (``os.path.abspath``: the path as given, made
absolute, links not resolved), so the case names it wherever it is later read from.

A disk image or an archive (``irkit.files.vfs.container_kind``) is walked through dfVFS:
the image itself is one candidate of kind ``image`` (its file system listing becomes file
events), and each file inside it with content is a candidate of its own, named
``<image>::<path inside>`` and recognised by its first bytes like any other file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final

from irkit.errors import EvidenceError, IrkitError
from irkit.files.vfs import container_kind
from irkit.model import ParseWarning
from irkit.sources import HEAD_SIZE, PROMISED_BY_SUFFIX, sniff

HASH_BLOCK: Final = 1 << 20
#: The kind of a candidate that is a disk image or archive: its listing, as file events.
IMAGE: Final = "image"


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """A file found under the evidence paths that a source recognised."""

    path: Path
    display: str
    size: int
    kind: str
    #: When it was collected (ISO 8601 UTC), for a file of an irkit collection.
    collected_at: str = ""
    #: A digest of the first bytes: files that differ there cannot be copies of each other.
    head: bytes = b""
    #: Named on the command line (not found in a folder): not recognised is a warning.
    explicit: bool = False
    #: A file inside an image or archive: its dfVFS path spec (JSON; ``path`` is then the
    #: image), and its modification time in the image (ISO 8601, "" when unknown).
    inner: str = ""
    inner_mtime: str = ""
    #: The host it was collected from, for a file of an irkit collection.
    host: str = ""


def _walk_error(warnings: list[ParseWarning]) -> Callable[[OSError], None]:
    def on_error(exc: OSError) -> None:
        warnings.append(
            ParseWarning(str(exc.filename), "unreadable-directory", exc.strerror or str(exc))
        )

    return on_error


def _iter_files(root: Path, warnings: list[ParseWarning]) -> Iterator[Path]:
    """Regular files under ``root`` in a stable order; links are not followed."""
    if root.is_symlink() and not root.exists():
        warnings.append(ParseWarning(str(root), "broken-link", "symbolic link to nothing"))
        return
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root, onerror=_walk_error(warnings)):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def discover(
    paths: Sequence[Path],
    listed: Mapping[Path, Mapping[str, str]] | None = None,
    *,
    vss: bool = False,
    hosts: Mapping[Path, str] | None = None,
) -> tuple[list[Candidate], list[ParseWarning], list[tuple[str, str]]]:
    """Find recognised files under ``paths``; returns candidates, warnings, and the files
    of folders not recognised, with why (``empty file``), which are not warnings.

    Disk images and archives are walked (each VSS store too with ``vss``). ``hosts`` maps
    a root (a collection) to the host it was collected from.

    ``listed`` maps a root (a collection) to its files and their collection times: only
    those are read there, not whatever else the folder holds.
    """
    candidates: list[Candidate] = []
    warnings: list[ParseWarning] = []
    unrecognised: list[tuple[str, str]] = []
    for root in paths:
        if not root.exists() and not root.is_symlink():
            raise EvidenceError(f"no such file or directory: {root}", hint="check the path")
        explicit = not root.is_dir()
        listing = listed.get(root) if listed else None
        host, first = (hosts or {}).get(root, ""), len(candidates)
        times = None if listing is None else {absolute(p): t for p, t in listing.items()}
        files = (Path(p) for p in sorted(times)) if times is not None else None
        for path in files if files is not None else _iter_files(Path(absolute(root)), warnings):
            display = str(path)
            try:
                info = path.lstat()
                if not stat.S_ISREG(info.st_mode):
                    continue
                with path.open("rb") as handle:
                    head = handle.read(HEAD_SIZE)
            except FileNotFoundError:
                warnings.append(
                    ParseWarning(display, "vanished", "file disappeared before reading")
                )
                continue
            except OSError as exc:
                warnings.append(ParseWarning(display, "unreadable", exc.strerror or str(exc)))
                continue
            when = times.get(display, "") if times is not None else ""
            if _walked(head, path):
                digest = hashlib.md5(head).digest()
                candidates.append(
                    Candidate(path, display, info.st_size, IMAGE, when, digest, explicit)
                )
                candidates += _inside(path, display, when, vss, warnings, unrecognised)
                continue
            source = sniff(head, path)
            if source is not None:
                candidates.append(
                    Candidate(
                        path,
                        display,
                        info.st_size,
                        source.name,
                        when,
                        hashlib.md5(head).digest(),
                        explicit,
                    )
                )
                continue
            promised = PROMISED_BY_SUFFIX.get(path.suffix.lower())
            if promised or explicit:
                what = (
                    f"not an {promised.upper()} file" if promised else "not a recognised artifact"
                )
                detail = "empty file" if info.st_size == 0 else "content does not match"
                warnings.append(ParseWarning(display, "unrecognised", f"{what} ({detail})"))
            else:
                why = "empty file" if info.st_size == 0 else "no parser recognises its content"
                unrecognised.append((display, why))
        if host:
            candidates[first:] = [dataclasses.replace(c, host=host) for c in candidates[first:]]
    return candidates, warnings, unrecognised


#: NTFS and HFS+ metadata files, listed but not parsed (plaso's worker does the same): all
#: but the MFT and its mirror, which plaso's ``mft`` parser reads.
_FS_METADATA: Final = frozenset(
    (
        "$AttrDef", "$BadClus", "$Bitmap", "$Boot", "$Extend/$ObjId", "$Extend/$Quota",
        "$Extend/$Reparse", "$Extend/$RmMetadata/$Repair", "$Extend/$RmMetadata/$TxfLog/$Tops",
        "$Extend/$UsnJrnl", "$LogFile", "$Secure", "$UpCase", "$Volume", "$ExtentsFile",
        "$CatalogFile", "$BadBlockFile", "$AllocationFile", "$AttributesFile",
    )
)  # fmt: skip
#: The Volume Shadow Copy GUID: ``System Volume Information/{…}{3808876b-…}`` files are
#: the shadow copies' stores and catalog, read as volumes with ``--vss``.
_VSS_GUID: Final = "{3808876b-c176-4e48-b7ae-04046e6cc752}"


def _not_parsed(path: str) -> str:
    """Why a file inside an image is listed but not parsed, or "" (parse it)."""
    name = path.lstrip("/").split(":", 1)[0]
    if name in _FS_METADATA or name.split("/", 1)[-1] in _FS_METADATA:
        return "file system metadata (listed, not parsed)"
    if name.lower().endswith(_VSS_GUID) and "System Volume Information/" in name:
        return "Volume Shadow Copy store (its files are read with --vss)"
    return ""


#: First members of a zip that make it a document (OOXML, ODF), for plaso's czip parser.
_DOCUMENT_MEMBERS: Final = (b"[Content_Types].xml", b"mimetype")


def _walked(head: bytes, path: Path) -> bool:
    """Whether a file is an image or archive to walk: not a zip that is a document
    (``.docx``, ``.odt``: their first member says so), which plaso's parsers read."""
    kind = container_kind(head, path)
    if kind != "zip":
        return kind is not None
    size = int.from_bytes(head[26:28], "little")
    return head[:4] != b"PK\x03\x04" or head[30 : 30 + size] not in _DOCUMENT_MEMBERS


def _inside(
    image: Path,
    display: str,
    when: str,
    vss: bool,
    warnings: list[ParseWarning],
    unrecognised: list[tuple[str, str]],
) -> list[Candidate]:
    """The files with content inside an image or archive, each recognised by its head."""
    from irkit.files.vfs import open_entry, walk

    found: list[Candidate] = []
    # The walk's own warnings (a damaged volume…) are the image's listing's to give: the
    # worker that lists it walks it again and names them once, on the image.
    for entry in walk(image, vss=vss, warnings=[], display=display):
        if entry.type != "r" or entry.status != "pending":  # a file with no data stream
            continue
        why = "empty file" if entry.size == 0 else _not_parsed(entry.path)
        if why:
            unrecognised.append((entry.display, why))
            continue
        try:
            with open_entry(entry.path_spec) as handle:
                head = handle.read(HEAD_SIZE)
        except (IrkitError, OSError) as exc:
            warnings.append(ParseWarning(entry.display, "unreadable", str(exc)))
            continue
        source = sniff(head, Path(entry.path.rsplit("/", 1)[-1] or "entry"))
        if source is None:
            unrecognised.append((entry.display, "no parser recognises its content"))
            continue
        found.append(
            Candidate(
                image,
                entry.display,
                entry.size,
                source.name,
                when,
                hashlib.md5(head).digest(),
                inner=entry.path_spec,
                inner_mtime=entry.mtime,
            )
        )
    return found


def absolute(path: str | Path) -> str:
    """``path`` made absolute as given: the current folder before a relative one, ``..``
    and ``.`` folded, links not followed (the evidence as the responder named it)."""
    return os.path.abspath(path)  # noqa: PTH100 (resolve would follow links)


def sha256_file(path: Path) -> tuple[str, int]:
    """sha256 and size of a file, read once, read-only (no atime update where allowed)."""
    flags = os.O_RDONLY | getattr(os, "O_NOATIME", 0)
    try:
        fd = os.open(path, flags)
    except PermissionError:
        fd = os.open(path, os.O_RDONLY)
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "rb", buffering=0) as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def sha256_inner(path_spec: str) -> str:
    """sha256 of a file inside an image or archive, read through dfVFS."""
    from irkit.files.vfs import open_entry

    digest = hashlib.sha256()
    with open_entry(path_spec) as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class Copies:
    """Byte-identical files of one run: each copy names the file parsed in its place."""

    #: sha256 of every file hashed to find the copies (the workers need not hash them again).
    sha256: dict[str, str]
    #: display path of a copy → display path of the first file (by path) with its bytes.
    copy_of: dict[str, str]


def find_copies(candidates: Sequence[Candidate]) -> Copies:
    """Which candidates are byte-identical copies of another, decided by path order.

    Only files that share their size and first bytes with another are hashed (on a
    thread per core: hashlib releases the GIL), so the choice of the copy that is
    parsed never depends on which worker finishes first: same input, same output.
    """
    groups: dict[tuple[int, bytes], list[Candidate]] = {}
    for candidate in candidates:
        groups.setdefault((candidate.size, candidate.head), []).append(candidate)
    suspects = [c for group in groups.values() if len(group) > 1 for c in group]
    sha256: dict[str, str] = {}
    if suspects:
        from concurrent.futures import ThreadPoolExecutor

        def one(candidate: Candidate) -> tuple[str, str]:
            try:
                if candidate.inner:
                    return candidate.display, sha256_inner(candidate.inner)
                return candidate.display, sha256_file(candidate.path)[0]
            except (IrkitError, OSError):
                return candidate.display, ""  # the worker names the problem

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            sha256 = {display: digest for display, digest in pool.map(one, suspects) if digest}
    first: dict[str, str] = {}
    copy_of: dict[str, str] = {}
    for display in sorted(sha256):
        kept = first.setdefault(sha256[display], display)
        if kept != display:
            copy_of[display] = kept
    return Copies(sha256, copy_of)
