"""The EVTX file's structure: chunks, checksums, slices.

irkit's own checks of what both engines pass over in silence (a file cut short, zeroed
chunks inside the declared count, CRC32 mismatches), and the slices a big log is cut
into so several workers can share it.
"""

from __future__ import annotations

import io
import mmap
import struct
import zlib
from pathlib import Path
from typing import Final

from irkit.sources.base import ParseContext

FILE_HEADER_SIZE: Final = 4096
CHUNK_SIZE: Final = 65536
CHUNK_MAGIC: Final = b"ElfChnk\x00"


def _partial(ctx: ParseContext) -> None:
    if ctx.stats.status == "ok":
        ctx.stats.status = "partial"


def chunk_warnings(path: Path, ctx: ParseContext, first: int = 0, last: int | None = None) -> None:
    """Warn about what the engines pass over in silence: truncation, zeroed chunks, bad CRCs.

    A file cut short, or a chunk inside the header's chunk count that is all zeros, has
    lost records. A chunk whose CRC32s do not match is still parsed (nothing parseable
    is lost), but its records may have been altered. Chunks with garbage instead of the
    chunk magic are left to the engine, which reports them as bad chunks.
    Only chunks ``first`` to ``last`` (exclusive) are checked; the file-level checks run
    in the range that holds the end of the file.
    """
    size = path.stat().st_size
    if size < FILE_HEADER_SIZE:
        ctx.warn("truncated", f"file is {size} bytes, shorter than the 4096-byte EVTX header")
        _partial(ctx)
        return
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        (declared,) = struct.unpack_from("<H", data, 42)
        body = size - FILE_HEADER_SIZE
        present, tail = divmod(body, CHUNK_SIZE)
        stop = present if last is None else min(last, present)
        at_end = last is None or last >= present
        if tail and at_end:
            ctx.warn(
                "truncated",
                f"file ends {tail} bytes into chunk {present}: records after the cut are lost",
            )
            _partial(ctx)
        elif present < declared and at_end:
            ctx.warn(
                "truncated",
                f"header declares {declared} chunks, the file holds {present}: file cut short",
            )
            _partial(ctx)
        for index in range(first, stop):
            offset = FILE_HEADER_SIZE + index * CHUNK_SIZE
            if data[offset : offset + 8] != CHUNK_MAGIC:
                if index < declared and data[offset : offset + CHUNK_SIZE].count(0) == CHUNK_SIZE:
                    ctx.warn(
                        "zeroed-chunk",
                        f"chunk {index} at offset {offset} is all zeros although the header "
                        f"counts {declared} chunks: its records are gone",
                    )
                    ctx.stats.skipped_chunks += 1
                    _partial(ctx)
                continue
            _check_crc(data, index, offset, ctx)


def _check_crc(data: mmap.mmap, index: int, offset: int, ctx: ParseContext) -> None:
    free_space, data_crc = struct.unpack_from("<II", data, offset + 48)
    (header_crc,) = struct.unpack_from("<I", data, offset + 124)
    head = zlib.crc32(data[offset + 128 : offset + 512], zlib.crc32(data[offset : offset + 120]))
    problems = []
    # A stored CRC of 0 means none was written (some exporters): not evidence.
    if header_crc and head != header_crc:
        problems.append("chunk header")
    end = offset + min(free_space, CHUNK_SIZE)
    if data_crc and free_space >= 512 and zlib.crc32(data[offset + 512 : end]) != data_crc:
        problems.append("records")
    if problems:
        ctx.warn(
            "bad-checksum",
            f"chunk {index} at offset {offset}: {' and '.join(problems)} CRC32 mismatch; "
            "its records are parsed but may be altered or damaged",
        )
        _partial(ctx)


def chunk_count(size: int) -> int:
    """How many whole or partial chunks follow the file header."""
    return max(0, -(-(size - FILE_HEADER_SIZE) // CHUNK_SIZE))


def read_slice(path: Path, first: int, last: int) -> io.BytesIO:
    """The file header plus chunks ``first`` to ``last`` (exclusive): a valid EVTX by itself.

    Chunks are self-contained, and pyevtx-rs reads every chunk present whatever the
    header's chunk count says, so a big log can be parsed as independent slices.
    """
    with path.open("rb") as handle:
        header = handle.read(FILE_HEADER_SIZE)
        handle.seek(FILE_HEADER_SIZE + first * CHUNK_SIZE)
        body = handle.read((last - first) * CHUNK_SIZE)
    return io.BytesIO(header + body)
