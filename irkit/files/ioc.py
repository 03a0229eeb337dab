"""Hash IOC lists: signature-base (LOKI) ``hash;description``, ``sha256sum`` files, CSV.

The kind of a hash is its length: 32 hex digits MD5, 40 SHA-1, 64 SHA-256. A list may
mix them. A line that is not a hash is a counted, named warning; the rest still loads.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

from irkit.errors import EvidenceError
from irkit.model import ParseWarning

KIND_BY_LENGTH: Final = {32: "md5", 40: "sha1", 64: "sha256"}
_HEX: Final = re.compile(r"^[0-9a-fA-F]+$")
#: CSV header names taken as the hash column, and as the description column.
_HASH_HEADERS: Final = ("hash", "sha256", "sha1", "md5", "sha-256", "sha-1", "digest", "ioc")
_TEXT_HEADERS: Final = ("description", "comment", "name", "info", "malware", "tags", "filename")
#: sha256sum/md5sum line: digest, two spaces or " *", the name (GNU escapes: leading \).
_SUMS_LINE: Final = re.compile(r"^\\?([0-9a-fA-F]{32,64}) [ *](.*)$")


@dataclasses.dataclass(frozen=True, slots=True)
class Ioc:
    """One listed hash: its kind, what the list says about it, where it came from."""

    digest: str
    kind: str
    description: str
    list_name: str
    line: int


@dataclasses.dataclass(slots=True)
class IocSet:
    """Every loaded hash IOC, by lower-case hex digest."""

    by_digest: dict[str, Ioc] = dataclasses.field(default_factory=dict)
    warnings: list[ParseWarning] = dataclasses.field(default_factory=list)
    loaded: int = 0
    duplicates: int = 0

    def kinds(self) -> set[str]:
        """The hash kinds present (md5, sha1, sha256)."""
        return {ioc.kind for ioc in self.by_digest.values()}

    def count(self, kind: str) -> int:
        """How many distinct hashes of one kind."""
        return sum(1 for ioc in self.by_digest.values() if ioc.kind == kind)

    def match(self, digests: dict[str, str]) -> Ioc | None:
        """The IOC matching one of a file's digests (strongest kind first), or None."""
        for kind in ("sha256", "sha1", "md5"):
            value = digests.get(kind)
            if value and (hit := self.by_digest.get(value)) is not None:
                return hit
        return None

    def add(self, ioc: Ioc) -> None:
        """Keep the first description of a hash listed twice; count the repeat."""
        self.loaded += 1
        if ioc.digest in self.by_digest:
            self.duplicates += 1
            return
        self.by_digest[ioc.digest] = ioc


def hash_kind(text: str) -> str | None:
    """md5, sha1 or sha256 for a hex digest of that length, else None."""
    kind = KIND_BY_LENGTH.get(len(text))
    return kind if kind and _HEX.match(text) else None


def load_iocs(paths: Iterable[Path]) -> IocSet:
    """Load every list; an unreadable list is an error, a bad line a warning."""
    found = IocSet()
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8-sig", errors="replace")
        except OSError as exc:
            raise EvidenceError(
                f"cannot read the IOC list {path}: {exc.strerror or exc}",
                hint="check the --ioc path",
            ) from exc
        before = found.loaded
        lines = text.splitlines()
        first = next((ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
        rows = _csv_rows(lines, path) if _looks_csv(first) else _text_rows(lines)
        for number, digest, description in rows:
            kind = hash_kind(digest)
            if kind is None:
                found.warnings.append(
                    ParseWarning(
                        str(path), "bad-ioc", f"line {number}: not an MD5, SHA-1 or SHA-256"
                    )
                )
                continue
            found.add(Ioc(digest.lower(), kind, description.strip(), path.name, number))
        if found.loaded == before:
            found.warnings.append(ParseWarning(str(path), "empty-ioc-list", "no hash found"))
    return found


def _looks_csv(line: str) -> bool:
    if "," not in line:
        return False
    cells = [c.strip().strip('"').lower() for c in line.split(",")]
    return any(c in _HASH_HEADERS for c in cells)


def _text_rows(lines: list[str]) -> Iterator[tuple[int, str, str]]:
    """LOKI ``hash;description`` lines, or ``sha256sum`` lines; ``#`` starts a comment."""
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if ";" in line:
            digest, _, description = line.partition(";")
            yield number, digest.strip(), description
            continue
        if match := _SUMS_LINE.match(line):
            yield number, match.group(1), match.group(2)
            continue
        digest, _, rest = line.partition(" ")
        yield number, digest.strip(), rest


def _csv_rows(lines: list[str], path: Path) -> Iterator[tuple[int, str, str]]:
    """CSV with a header naming a hash column (and maybe a description column)."""
    body = [ln for ln in lines if not ln.lstrip().startswith("#")]
    numbers = [n for n, ln in enumerate(lines, 1) if not ln.lstrip().startswith("#")]
    reader = csv.reader(body)
    header = [c.strip().lower() for c in next(reader, [])]
    hash_col = next((header.index(h) for h in _HASH_HEADERS if h in header), None)
    if hash_col is None:  # _looks_csv saw one: unreachable unless the header is odd
        raise EvidenceError(f"the CSV IOC list {path} has no hash column")
    text_col = next((header.index(h) for h in _TEXT_HEADERS if h in header), None)
    for index, row in enumerate(reader, 1):
        if not row or not any(cell.strip() for cell in row):
            continue
        number = numbers[index] if index < len(numbers) else index + 1
        digest = row[hash_col].strip() if hash_col < len(row) else ""
        description = row[text_col] if text_col is not None and text_col < len(row) else ""
        yield number, digest, description
