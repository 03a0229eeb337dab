"""plaso on one file without keeping its rows: ``probe`` (which parsers take a file, and
why none did) and ``warm`` (set plaso up in this process now)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from irkit.model import FileStats
from irkit.sources.base import ParseContext
from irkit.sources.plaso.options import PlasoOptions
from irkit.sources.plaso.result import Result
from irkit.sources.plaso.run import FileRun


class _Discard:
    def add(self, row: Any) -> None:
        pass


def probe(path: Path, options: PlasoOptions | None = None) -> tuple[Result, FileStats]:
    """Run plaso on one file, keeping no rows: which parsers took it (``Result.parsers``),
    whether any did (``Result.recognised``) and why not (``Result.reason``), with the
    warnings the parse would give (``FileStats.warnings``). For discovery and tests."""
    stats = FileStats(path=str(path))
    ctx = ParseContext(path, str(path), "", stats)
    result = FileRun(ctx, _Discard(), options or PlasoOptions()).run()
    return result, stats


#: A line of a traditional syslog: parsing it builds plaso's text parser (its format
#: scanner and pyparsing grammars, ~1 s), which otherwise happens on the first text file.
_WARM_TEXT: Final = b"Jan  1 00:00:00 irkit warm[1]: up\n"


def warm(options: PlasoOptions | None = None) -> None:
    """Set plaso up in this process now (~3 s): imports, parsers, formatters, timeliner and
    the text parser. For a worker pool's fork server: the workers it forks start ready."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="irkit-plaso-") as folder:
        sample = Path(folder) / "syslog"
        sample.write_bytes(_WARM_TEXT)
        probe(sample, options)
