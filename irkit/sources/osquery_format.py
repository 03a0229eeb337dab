"""Recognising osquery's files by content, and opening them as plain byte streams.

The shapes are results and JSON status lines (``lines``), glog text (``glog``) and an
``osqueryi --json`` array (``array``), each plain or compressed (gzip, or Zstandard as
osquery's ``--logger_rotate`` writes it).
"""

from __future__ import annotations

import contextlib
import io
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Final

HEAD: Final = 4096
GZIP_MAGIC: Final = b"\x1f\x8b"
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
#: A compressed file's head is decompressed from at most this many bytes to recognise it.
SNIFF_INPUT: Final = 1 << 20

_RESULTS_BATCH = re.compile(rb'^\{\s*"(?:snapshot|diffResults)"\s*:\s*[\[{]')
_KEY = {
    k: re.compile(rb'"' + k.encode() + rb'"\s*:')
    for k in (
        "name",
        "unixTime",
        "calendarTime",
        "columns",
        "action",
        "severity",
        "filename",
        "line",
        "message",
    )
}
_GLOG_BYTES = re.compile(rb"^[IWEF]\d{4}(?:\d{4})? \d\d:\d\d:\d\d\.\d{6}\s+\d+\s+[^\s:\]]+:\d+\]")
_STR = rb'"(?:[^"\\]|\\.)*"'
_PAIR = re.compile(rb"\s*" + _STR + rb"\s*:\s*" + _STR + rb"\s*([,}])")
_PAIR_PREFIX = re.compile(rb'\s*(?:"(?:[^"\\]|\\.)*(?:"\s*(?::\s*(?:"(?:[^"\\]|\\.)*)?)?)?)?\\?\Z')


def plain_head(head: bytes, path: Path | None = None) -> bytes:
    """The first bytes of the file's text: decompressed when it is gzip or Zstandard.

    Zstandard emits nothing until a whole block (up to 128 KiB) is in, so a compressed
    file's head is decompressed from up to 1 MiB read from ``path`` when given.
    """
    if not (head.startswith(GZIP_MAGIC) or head.startswith(ZSTD_MAGIC)):
        return head
    data = head
    if path is not None:
        with contextlib.suppress(OSError), path.open("rb") as handle:
            data = handle.read(SNIFF_INPUT)
    try:
        if data.startswith(GZIP_MAGIC):
            return zlib.decompressobj(31).decompress(data, HEAD)
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
        return reader.read(HEAD)
    except Exception:  # corrupt or not really compressed: not ours
        return b""


def _first_line(text: bytes) -> bytes:
    text = text.removeprefix(b"\xef\xbb\xbf").lstrip()
    return text.split(b"\n", 1)[0]


def _is_row_array(text: bytes, cut: bool) -> bool:
    """An ``osqueryi --json`` array: ``[`` then an object of string values only.

    The first object must be whole within the head, or, when the head is cut inside it,
    be a run of complete ``"key": "value"`` pairs followed by the start of another.
    """
    start = re.match(rb"\s*\[\s*\{", text)
    if start is None:
        return False
    pos, pairs = start.end(), 0
    while True:
        match = _PAIR.match(text, pos)
        if match is None:
            return cut and pairs > 0 and _PAIR_PREFIX.match(text, pos) is not None
        pairs += 1
        pos = match.end()
        if match.group(1) == b"}":
            return True


def shape_of(head: bytes, cut: bool = True) -> str | None:
    """``lines`` (results or JSON status lines), ``glog``, ``array``, or None."""
    text = head.removeprefix(b"\xef\xbb\xbf")
    line = _first_line(text)
    if line.startswith(b"{"):
        if _RESULTS_BATCH.match(line):
            return "lines"
        has = {k for k, rx in _KEY.items() if rx.search(line)}
        if "name" in has and has & {"unixTime", "calendarTime"} and has & {"columns", "action"}:
            return "lines"
        if {"severity", "filename", "line", "message"} <= has:
            return "lines"
        return None
    if line.startswith(b"["):
        return "array" if _is_row_array(text.lstrip(), cut) else None
    if b"osquery" in text.lower():
        for candidate in text.split(b"\n")[:8]:
            if _GLOG_BYTES.match(candidate):
                return "glog"
    return None


@contextlib.contextmanager
def open_text_stream(path: Path) -> Iterator[IO[bytes]]:
    """The file's bytes, decompressed as a stream when it is gzip or Zstandard."""
    with path.open("rb") as raw:
        magic = raw.read(4)
        raw.seek(0)
        if magic.startswith(GZIP_MAGIC):
            import gzip

            with gzip.GzipFile(fileobj=raw, mode="rb") as unzipped:
                yield unzipped  # type: ignore[misc]
        elif magic == ZSTD_MAGIC:
            import zstandard

            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            with io.BufferedReader(reader, 1 << 20) as buffered:
                yield buffered
        else:
            yield raw


def read_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the (compressed) stream itself is broken."""
    errors: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error)
    with contextlib.suppress(ImportError):
        import zstandard

        errors += (zstandard.ZstdError,)
    return errors
