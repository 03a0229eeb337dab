"""Named, counted warnings for one walk, with a cap so a damaged image cannot flood them."""

from __future__ import annotations

import collections
import re
from typing import Final

from irkit.model import ParseWarning

#: Warnings of one kind kept one by one per walk; the rest are counted in one more.
MAX_PER_KIND: Final = 100
_MAX_MESSAGE: Final = 240
_SPACES: Final = re.compile(r"\s+")
_CLAUSE: Final = re.compile(r"\.\s+|\.'\.?\s*|\s+with error:\s+")
_PLUMBING: Final = (
    "Unable to process source path specification",
    "Unable to open file object",
    "pysigscan_",
    "libsigscan_",
    "libbfio_",
    "libcdata_",
    "libfdata_",
)


def short_error(exc: BaseException) -> str:
    """An exception as one short line.

    dfVFS wraps libyal errors that chain a dozen clauses, most of them plumbing
    (``Unable to process source path specification with error:``, ``pysigscan_…``,
    ``libbfio_…``): the first two clauses left say what failed.
    """
    text = _SPACES.sub(" ", str(exc)).strip() or type(exc).__name__
    clauses = [c.strip(" '\".") for c in _CLAUSE.split(text)]
    kept = [c for c in clauses if c and not c.startswith(_PLUMBING)] or [text]
    text = "; ".join(kept[:2])
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 1] + "…"
    return text


class Warner:
    """Appends ``ParseWarning``s to the caller's list, at most ``MAX_PER_KIND`` of a kind."""

    def __init__(self, sink: list[ParseWarning]) -> None:
        self.sink = sink
        self.kinds: collections.Counter[str] = collections.Counter()

    @property
    def count(self) -> int:
        return sum(self.kinds.values())

    def warn(self, path: str, kind: str, message: str) -> None:
        self.kinds[kind] += 1
        if self.kinds[kind] <= MAX_PER_KIND:
            self.sink.append(ParseWarning(path, kind, message))

    def finish(self, image: str) -> None:
        """One more warning per kind that went over the cap, with how many were left out."""
        for kind, count in sorted(self.kinds.items()):
            if count > MAX_PER_KIND:
                more = count - MAX_PER_KIND
                self.sink.append(
                    ParseWarning(image, kind, f"{more} more {kind} warnings in this image")
                )
