"""Artifact sources: each recognised by its content, never by its name alone.

One module (or family of modules) per artifact type behind the ``Source`` protocol
(``base``), registered in ``SOURCES`` below; ``messages`` renders each event's one-line
message from the templates in ``artifacts/``. A source turns one file into rows and
hands them to a sink: it never opens the case.

May import: only the base modules (``model``, ``errors``, ``artifacts``, ``speedups``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from irkit.sources.base import Source
from irkit.sources.bodyfile import BodyfileSource
from irkit.sources.evtx import EvtxSource
from irkit.sources.osquery import OsquerySource
from irkit.sources.plaso import PlasoSource
from irkit.sources.plaso.results import PlasoCsvSource, PlasoJsonSource, PlasoStorageSource

#: Every source irkit knows, in the order they are tried. tests/test_sources.py checks
#: that each is registered, documented in docs/sources.md and has a sample in tests/data.
#: plaso is the catch-all (any non-empty file irkit's own sources do not claim): last.
SOURCES: Final[tuple[Source, ...]] = (
    EvtxSource(),
    BodyfileSource(),
    OsquerySource(),
    PlasoStorageSource(),
    PlasoJsonSource(),
    PlasoCsvSource(),
    PlasoSource(),
)

#: Bytes read from the start of a file to recognise it.
HEAD_SIZE: Final = 4096

#: Name suffixes that promise a source: a file so named that does not match is a warning.
PROMISED_BY_SUFFIX: Final = {".evtx": "evtx"}


def sniff(head: bytes, path: Path) -> Source | None:
    """The source that recognises this file, or None."""
    for source in SOURCES:
        if source.matches(head, path):
            return source
    return None


def by_name(name: str) -> Source:
    """The registered source called ``name``."""
    for source in SOURCES:
        if source.name == name:
            return source
    raise KeyError(name)
