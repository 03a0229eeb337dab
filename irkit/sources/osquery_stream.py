"""Reading osquery's files as streams, with bounded memory: by line, or by array element.

A part that cannot be read (an over-long line, a row cut by the end of the file) is a
skipped record and a warning, and marks the file's parse partial.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import IO, Any, Final, Protocol

from irkit.sources.base import ParseContext

#: A line (or an osqueryi row object) longer than this is skipped with a warning.
MAX_LINE: Final = 64 << 20

_WS: Final = re.compile(r"[\s,]*")


class Cursor(Protocol):
    """Where the parse is: the line reported if the stream breaks."""

    line: int


def mark_partial(ctx: ParseContext) -> None:
    """Mark the file's parse partial, if it was ok so far."""
    if ctx.stats.status == "ok":
        ctx.stats.status = "partial"


def skip_record(ctx: ParseContext, kind: str, message: str) -> None:
    """Count a skipped record with a warning; the file's parse is then partial."""
    ctx.warn(kind, message)
    ctx.stats.skipped_records += 1
    mark_partial(ctx)


def iter_lines(stream: IO[bytes], ctx: ParseContext) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line) for each line; an over-long line is a skipped warning."""
    number = 0
    while line := stream.readline(MAX_LINE):
        number += 1
        if len(line) >= MAX_LINE and not line.endswith(b"\n"):
            while (rest := stream.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                pass
            skip_record(
                ctx, "too-long", f"line {number} is longer than {MAX_LINE >> 20} MiB: skipped"
            )
            continue
        yield number, line


def iter_array(
    stream: IO[bytes], ctx: ParseContext, state: Cursor
) -> Iterator[tuple[int, int, Any]]:
    """(line, 1-based index, value) for each element of a JSON array, with bounded memory.

    Elements are decoded one at a time from a sliding text window; an element longer than
    MAX_LINE, or one cut by the end of the file, ends the reading with a warning.
    """
    reader = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
    decoder = json.JSONDecoder()
    buf, pos, line, index, eof = "", 0, 1, 0, False

    def more() -> bool:
        nonlocal buf, pos, eof
        chunk = reader.read(1 << 20)
        if not chunk:
            eof = True
            return False
        buf = buf[pos:] + chunk
        pos = 0
        return True

    def skip_ws() -> None:
        nonlocal pos, line
        while True:
            end = _WS.match(buf, pos).end()  # type: ignore[union-attr]
            line += buf.count("\n", pos, end)
            pos = end
            if pos < len(buf) or not more():
                return

    skip_ws()
    if buf[pos : pos + 1] != "[":
        skip_record(ctx, "bad-shape", "line 1: not a JSON array")
        return
    pos += 1
    while True:
        skip_ws()
        state.line = line
        if pos >= len(buf):
            skip_record(
                ctx, "truncated", f"line {line}: the array is not closed: the file is cut short"
            )
            return
        if buf[pos] == "]":
            return
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
                break
            except json.JSONDecodeError as exc:
                if len(buf) - pos > MAX_LINE:
                    skip_record(
                        ctx, "too-long", f"line {line}: a row longer than {MAX_LINE >> 20} MiB"
                    )
                    return
                if eof or not more():
                    kind = "truncated" if exc.pos >= len(buf) - 1 else "bad-line"
                    skip_record(
                        ctx, kind, f"line {line}: row {index + 1} is not valid JSON: {exc.msg}"
                    )
                    return
        index += 1
        yield line, index, value
        line += buf.count("\n", pos, end)
        pos = end
