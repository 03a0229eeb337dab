"""Build a big, valid EVTX file by tiling real 64 KiB chunks taken from corpus files.

Usage: ``python tests/bench/tile_evtx.py OUT.evtx --size 1G [--from DIR ...]``

Only intact chunks are used: ``ElfChnk`` magic, header and records checksums valid, the
record walk consistent with the header, and pyevtx-rs reading every record of the chunk
on its own without an error. Identical chunks are used once in the pool; the pool is
then repeated until the file reaches the requested size.

Every record is renumbered so that the tiled file has unique, increasing record ids: the
record header's id, the chunk header's first/last record numbers and ids, and, where the
record's template puts ``<EventRecordID>`` in a UInt64 substitution, that substitution
value too (pyevtx-rs's JSON ``Event.System.EventRecordID`` comes from the substitution,
``record['event_record_id']`` from the record header). Both chunk checksums and the file
header checksum are then recomputed.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import struct
import sys
import warnings
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Final

FILE_MAGIC: Final = b"ElfFile\x00"
CHUNK_MAGIC: Final = b"ElfChnk\x00"
RECORD_MAGIC: Final = b"**\x00\x00"
HEADER_SIZE: Final = 4096
CHUNK_SIZE: Final = 65536
CHUNK_HEADER_SIZE: Final = 512
MAX_CHUNKS: Final = 0xFFFF  # the file header counts chunks in a u16
UINT64_TYPE: Final = 0x0A
EVENT_RECORD_ID: Final = "EventRecordID"

_SUFFIXES: Final = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def default_corpus() -> Path:
    """The shared corpus: ``$IRKIT_CORPUS`` or ``<repo>/../shared/corpus``."""
    repo = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("IRKIT_CORPUS", repo.parent / "shared" / "corpus"))


def parse_size(text: str) -> int:
    """``'1G'``, ``'256M'``, ``'2.5M'``, ``'65536'`` → bytes (binary units)."""
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    suffix = text[-1:] if text[-1:] in _SUFFIXES else ""
    number = text[: len(text) - len(suffix)]
    return int(float(number) * _SUFFIXES[suffix])


def crc32(*parts: bytes | bytearray | memoryview) -> int:
    """CRC32 of the concatenated parts."""
    value = 0
    for part in parts:
        value = zlib.crc32(part, value)
    return value & 0xFFFFFFFF


def evtx_files(roots: Iterable[Path]) -> list[Path]:
    """Files under ``roots`` that start with the EVTX signature, sorted, duplicates by path once."""
    found: set[Path] = set()
    for root in roots:
        candidates = [root] if root.is_file() else root.rglob("*")
        for path in candidates:
            if path.is_file() and not path.is_symlink():
                with path.open("rb") as handle:
                    if handle.read(8) == FILE_MAGIC:
                        found.add(path)
    return sorted(found)


def distinct_files(paths: Iterable[Path]) -> list[Path]:
    """The first path of each distinct content (by sha256), in the given order."""
    seen: set[str] = set()
    out: list[Path] = []
    for path in paths:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            out.append(path)
    return out


# --------------------------------------------------------------------------- chunks


def record_offsets(chunk: bytes | bytearray) -> list[int] | None:
    """Offsets of the chunk's records, or None when the walk disagrees with the header."""
    first, last = struct.unpack_from("<QQ", chunk, 24)
    last_offset, free = struct.unpack_from("<II", chunk, 44)
    offsets: list[int] = []
    offset = CHUNK_HEADER_SIZE
    while offset < free:
        if chunk[offset : offset + 4] != RECORD_MAGIC:
            return None
        size = struct.unpack_from("<I", chunk, offset + 4)[0]
        if size < 28 or offset + size > free:
            return None
        if struct.unpack_from("<I", chunk, offset + size - 4)[0] != size:
            return None
        offsets.append(offset)
        offset += size
    if not offsets or offset != free or offsets[-1] != last_offset:
        return None
    if last < first or last - first + 1 != len(offsets):
        return None
    return offsets


def chunk_is_intact(chunk: bytes | bytearray) -> bool:
    """Magic, header checksum, records checksum, and a consistent record walk."""
    if len(chunk) != CHUNK_SIZE or chunk[:8] != CHUNK_MAGIC:
        return False
    free = struct.unpack_from("<I", chunk, 48)[0]
    if not CHUNK_HEADER_SIZE < free <= CHUNK_SIZE:
        return False
    if crc32(chunk[:120], chunk[128:CHUNK_HEADER_SIZE]) != struct.unpack_from("<I", chunk, 124)[0]:
        return False
    if crc32(chunk[CHUNK_HEADER_SIZE:free]) != struct.unpack_from("<I", chunk, 52)[0]:
        return False
    return record_offsets(chunk) is not None


def seal_chunk(chunk: bytearray) -> None:
    """Recompute the chunk's records checksum, then its header checksum, in place."""
    free = struct.unpack_from("<I", chunk, 48)[0]
    struct.pack_into("<I", chunk, 52, crc32(chunk[CHUNK_HEADER_SIZE:free]))
    struct.pack_into("<I", chunk, 124, crc32(chunk[:120], chunk[128:CHUNK_HEADER_SIZE]))


def file_header(chunk_count: int, next_record_id: int) -> bytes:
    """A clean 4096-byte EVTX file header for ``chunk_count`` chunks."""
    if not 0 < chunk_count <= MAX_CHUNKS:
        raise ValueError(f"an EVTX header counts 1..{MAX_CHUNKS} chunks, not {chunk_count}")
    head = bytearray(HEADER_SIZE)
    head[:8] = FILE_MAGIC
    struct.pack_into("<QQQ", head, 8, 0, chunk_count - 1, next_record_id)
    struct.pack_into("<IHHHH", head, 32, 128, 1, 3, HEADER_SIZE, chunk_count)
    struct.pack_into("<I", head, 120, 0)  # flags: clean, not full
    struct.pack_into("<I", head, 124, crc32(head[:120]))
    return bytes(head)


def single_chunk_file(chunk: bytes | bytearray) -> bytes:
    """A one-chunk EVTX file around ``chunk``."""
    last = struct.unpack_from("<Q", chunk, 32)[0]
    return file_header(1, last + 1) + bytes(chunk)


def readable_records(data: bytes) -> tuple[int, int]:
    """(records, errors) when pyevtx-rs reads ``data`` (a whole EVTX file) as JSON."""
    import evtx
    import orjson

    records = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for item in evtx.PyEvtxParser(io.BytesIO(data), skip_errors=True).records_json():
                orjson.loads(item["data"])
                records += 1
        except (RuntimeError, OSError, ValueError):
            return records, len(caught) + 1
    return records, len(caught)


# ------------------------------------------------------------ EventRecordID substitution


def _name_at(chunk: bytes | bytearray, offset: int) -> tuple[str, int] | None:
    """The name string node at ``offset``: (name, node size), or None when out of bounds."""
    if offset + 8 > CHUNK_SIZE:
        return None
    count = struct.unpack_from("<H", chunk, offset + 6)[0]
    end = offset + 8 + 2 * count
    if end + 2 > CHUNK_SIZE:
        return None
    return bytes(chunk[offset + 8 : end]).decode("utf-16-le", "replace"), end + 2 - offset


def record_id_slot(chunk: bytes | bytearray, template: int) -> int | None:
    """Index of the substitution inside ``<EventRecordID>`` in the template at ``template``.

    The template definition is scanned for an open-element token without attributes
    (0x01) whose name is ``EventRecordID``, followed by the close-start token (0x02) and a
    UInt64 substitution (0x0D/0x0E). Returns None if there is no such element.
    """
    size = struct.unpack_from("<I", chunk, template + 20)[0]
    start = template + 24
    end = min(start + size, CHUNK_SIZE)
    position = chunk.find(b"\x01", start, end)
    while position != -1 and position + 11 <= end:
        name_offset = struct.unpack_from("<I", chunk, position + 7)[0]
        named = _name_at(chunk, name_offset) if name_offset < CHUNK_SIZE else None
        if named is not None and named[0] == EVENT_RECORD_ID:
            after = position + 11
            if name_offset == after:  # the name string is defined inline here
                after += named[1]
            if (
                after + 5 <= end
                and chunk[after] == 0x02
                and chunk[after + 1] in (0x0D, 0x0E)
                and chunk[after + 4] == UINT64_TYPE
            ):
                return int(struct.unpack_from("<H", chunk, after + 2)[0])
        position = chunk.find(b"\x01", position + 1, end)
    return None


def substitution_value_offset(
    chunk: bytes | bytearray, record: int, slots: dict[int, int | None]
) -> int | None:
    """Chunk offset of the record's EventRecordID UInt64 substitution value, if any."""
    size = struct.unpack_from("<I", chunk, record + 4)[0]
    end = record + size - 4
    position = record + 24
    if chunk[position] != 0x0F or chunk[position + 4] != 0x0C:
        return None  # not fragment header + template instance
    instance = position + 4
    template = struct.unpack_from("<I", chunk, instance + 6)[0]
    position = instance + 10
    if template + 24 > CHUNK_SIZE:
        return None
    if template > instance:  # the template definition is resident in this record
        position = template + 24 + struct.unpack_from("<I", chunk, template + 20)[0]
    if template not in slots:
        slots[template] = record_id_slot(chunk, template)
    slot = slots[template]
    if slot is None or position + 4 > end:
        return None
    count = struct.unpack_from("<I", chunk, position)[0]
    if slot >= count or position + 4 + 4 * count > end:
        return None
    value = position + 4 + 4 * count
    for index in range(slot):
        value += struct.unpack_from("<H", chunk, position + 4 + 4 * index)[0]
    value_size, value_type = struct.unpack_from("<HB", chunk, position + 4 + 4 * slot)
    if value_size != 8 or value_type != UINT64_TYPE or value + 8 > end:
        return None
    return value


# --------------------------------------------------------------------------- tiling


@dataclasses.dataclass(frozen=True, slots=True)
class PoolChunk:
    """One intact chunk ready to tile: its bytes, record count and where it came from."""

    data: bytes
    records: int
    source: str
    index: int


@dataclasses.dataclass(slots=True)
class TileResult:
    """What :func:`tile` wrote."""

    path: str
    bytes: int = 0
    chunks: int = 0
    records: int = 0
    pool_chunks: int = 0
    pool_records: int = 0
    first_record_id: int = 1
    last_record_id: int = 0
    json_ids_rewritten: int = 0
    json_ids_left: int = 0
    sources: int = 0
    rejected: dict[str, int] = dataclasses.field(default_factory=dict)


def iter_raw_chunks(path: Path) -> Iterator[tuple[int, bytes]]:
    """(index, bytes) of every whole 64 KiB block after the file header."""
    data = path.read_bytes()
    for index in range((len(data) - HEADER_SIZE) // CHUNK_SIZE):
        start = HEADER_SIZE + index * CHUNK_SIZE
        yield index, data[start : start + CHUNK_SIZE]


def build_pool(
    files: Sequence[Path], rejected: dict[str, int] | None = None, validate: bool = True
) -> list[PoolChunk]:
    """Intact, distinct chunks of ``files`` that pyevtx-rs reads whole, in file order."""
    rejected = rejected if rejected is not None else {}
    seen: set[bytes] = set()
    pool: list[PoolChunk] = []
    for path in files:
        for index, chunk in iter_raw_chunks(path):
            digest = hashlib.sha1(chunk).digest()
            if digest in seen:
                rejected["duplicate"] = rejected.get("duplicate", 0) + 1
                continue
            seen.add(digest)
            if not chunk_is_intact(chunk):
                rejected["not-intact"] = rejected.get("not-intact", 0) + 1
                continue
            offsets = record_offsets(chunk)
            assert offsets is not None
            if renumber_chunk(chunk, 0, 1)[2] < len(offsets):
                # A record whose JSON EventRecordID is not a substitution this can rewrite
                # would repeat its id in every pass over the pool: a real log does not.
                rejected["json-id-fixed"] = rejected.get("json-id-fixed", 0) + 1
                continue
            if validate:
                records, errors = readable_records(single_chunk_file(chunk))
                if errors or records != len(offsets):
                    rejected["unreadable"] = rejected.get("unreadable", 0) + 1
                    continue
            pool.append(PoolChunk(chunk, len(offsets), str(path), index))
    return pool


def renumber_chunk(
    source: bytes, chunk_number: int, first_id: int, rewrite_json_id: bool = True
) -> tuple[bytearray, int, int]:
    """A copy of ``source`` whose records are numbered from ``first_id``, checksums resealed.

    Returns (chunk, records, JSON EventRecordID substitutions rewritten).
    """
    chunk = bytearray(source)
    offsets = record_offsets(chunk)
    if offsets is None:
        raise ValueError(f"chunk {chunk_number} is not intact")
    slots: dict[int, int | None] = {}
    rewritten = 0
    for number, offset in enumerate(offsets):
        new_id = first_id + number
        if rewrite_json_id:
            value = substitution_value_offset(chunk, offset, slots)
            if value is not None:
                struct.pack_into("<Q", chunk, value, new_id)
                rewritten += 1
        struct.pack_into("<Q", chunk, offset + 8, new_id)
    last_id = first_id + len(offsets) - 1
    struct.pack_into("<QQQQ", chunk, 8, first_id, last_id, first_id, last_id)
    seal_chunk(chunk)
    return chunk, len(offsets), rewritten


def chunks_for_size(size: int) -> int:
    """How many whole chunks fit in ``size`` bytes after the file header (at least one)."""
    return max(1, (size - HEADER_SIZE) // CHUNK_SIZE)


def tile(
    out: Path,
    size: int,
    sources: Sequence[Path] | None = None,
    pool: Sequence[PoolChunk] | None = None,
    rewrite_json_id: bool = True,
) -> TileResult:
    """Write a valid EVTX file of about ``size`` bytes to ``out`` from corpus chunks."""
    result = TileResult(path=str(out))
    if pool is None:
        files = distinct_files(evtx_files(sources or [default_corpus()]))
        result.sources = len(files)
        pool = build_pool(files, result.rejected)
    if not pool:
        raise ValueError("no intact EVTX chunk found in the sources")
    result.pool_chunks = len(pool)
    result.pool_records = sum(c.records for c in pool)
    count = chunks_for_size(size)
    if count > MAX_CHUNKS:
        raise ValueError(
            f"{count} chunks do not fit the EVTX header's 16-bit chunk count (max {MAX_CHUNKS})"
        )
    next_id = 1
    with out.open("wb") as handle:
        handle.write(bytes(HEADER_SIZE))
        for number in range(count):
            chunk, records, rewritten = renumber_chunk(
                pool[number % len(pool)].data, number, next_id, rewrite_json_id
            )
            handle.write(chunk)
            result.json_ids_rewritten += rewritten
            result.json_ids_left += records - rewritten
            next_id += records
        handle.seek(0)
        handle.write(file_header(count, next_id))
    result.chunks = count
    result.records = next_id - 1
    result.last_record_id = next_id - 1
    result.bytes = HEADER_SIZE + count * CHUNK_SIZE
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: tile chunks into OUT and print what was written as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the EVTX file to write")
    parser.add_argument("--size", default="1G", help="target size: 1G, 256M, 2M… (default 1G)")
    parser.add_argument(
        "--from",
        dest="sources",
        type=Path,
        nargs="+",
        help="folders or files to take chunks from (default: the shared corpus)",
    )
    parser.add_argument(
        "--keep-json-ids",
        action="store_true",
        help="renumber record headers only, leave the EventRecordID substitution as it was",
    )
    parser.add_argument(
        "--verify", action="store_true", help="read the result with pyevtx-rs and count"
    )
    args = parser.parse_args(argv)
    result = tile(args.out, parse_size(args.size), args.sources, None, not args.keep_json_ids)
    report = dataclasses.asdict(result)
    if args.verify:
        records, errors = readable_records(args.out.read_bytes())
        report["verified_records"] = records
        report["verify_errors"] = errors
    print(json.dumps(report, indent=2))
    return 0 if not args.verify or (report["verify_errors"] == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
