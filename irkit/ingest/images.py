"""Disk images and archives in a parse run, on the worker side: an image's file system
listing as file events (``list_image``), and a file inside an image copied out to be
parsed (``copy_inner``).

A file inside an image is parsed from a copy in the run's spool (inside the case), under
its own base name (some of plaso's parsers look at the name) and with its modification
time from the image (plaso takes a date-less log's year from it); the copy is deleted as
soon as the file is parsed. Nothing is written outside the case: the copy's name is made
here, never taken from the image, and a file bigger than ``ParseOptions.inner_limit`` is
not copied (a decompression bomb is a warning, not a full disk).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Final

from irkit.ingest.discovery import Candidate
from irkit.sources.base import ParseContext, RowSink

#: Characters kept in a copy's base name; anything else becomes ``_``.
_UNSAFE: Final = re.compile(r"[^\w.\-$ {}()\[\]@#+,=~]")


def copy_inner(candidate: Candidate, spool: Path, limit: int) -> tuple[Candidate, Path]:
    """Copy a file out of its image into a fresh folder of ``spool``; returns the
    candidate as a file on disk (same display name) and the folder to delete after.

    Raises ``IrkitError`` (``EntryTooBig`` past ``limit``, ``ImageReadError``) or
    ``OSError``, with nothing left behind."""
    from irkit.files.vfs import copy_out

    spool.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="inner-", dir=spool))
    try:
        copied = copy_out(candidate.inner, folder, limit)
        base = candidate.display.rsplit("/", 1)[-1].rsplit("::", 1)[-1]
        name = _UNSAFE.sub("_", base).lstrip(".")[:200] or "entry"
        target = folder / name
        copied.rename(target)
        when = _epoch(candidate.inner_mtime)
        if when is not None:
            os.utime(target, (when, when))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return dataclasses.replace(candidate, path=target, inner=""), folder


def _epoch(iso: str) -> float | None:
    """An ISO 8601 time as POSIX seconds, or None."""
    if not iso:
        return None
    try:
        return dt.datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def list_image(ctx: ParseContext, sink: RowSink, vss: bool) -> None:
    """Every entry of the image's file systems as file events (docs/schema.md, "File
    events"); problems reading the image are the file's warnings."""
    from irkit.files.vfs import entry_rows, walk

    warnings = ctx.stats.warnings
    before = len(warnings)
    count = 0
    for entry in walk(ctx.path, vss=vss, warnings=warnings, display=ctx.display):
        for row in entry_rows(entry):
            sink.add(row)
            count += 1
    ctx.stats.records = count
    if count:
        ctx.stats.families["file system"] = count
    if len(warnings) > before:
        ctx.stats.status = "partial"
