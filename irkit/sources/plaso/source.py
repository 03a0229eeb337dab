"""``PlasoSource``: the files no other source claims, through plaso's own parsers."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Final

from irkit.sources.base import ParseContext, RowSink

#: Name suffixes that promise another source's format: a file so named that its source did
#: not take is that source's warning, not plaso's to try (irkit.sources.PROMISED_BY_SUFFIX).
_PROMISED: Final = frozenset({".evtx"})


class PlasoSource:
    """Everything plaso's parsers read: registry hives, prefetch, LNK, jump lists, legacy
    ``.evt``, browser histories, Linux and macOS logs and databases… (docs/sources.md)."""

    name: ClassVar[str] = "plaso"

    def matches(self, head: bytes, path: Path) -> bool:
        """The catch-all: any non-empty file whose name does not promise another source.

        Which plaso parser (if any) takes a file is known only by trying them (most text
        formats have no signature), so recognising is parsing: a file no parser takes comes
        back from ``parse`` with status ``unrecognised`` and the reason. Register this
        source last."""
        return bool(head) and path.suffix.lower() not in _PROMISED

    def parse(self, ctx: ParseContext, sink: RowSink) -> None:
        """Run plaso's parsers on the file in this process; rows to ``sink``, problems as
        named warnings (docs/sources.md#plaso)."""
        from irkit.sources.plaso.mapping import load_mapping
        from irkit.sources.plaso.options import PlasoOptions
        from irkit.sources.plaso.run import FileRun

        result = FileRun(ctx, sink, PlasoOptions.from_options(ctx.options)).run()
        mapping = load_mapping()
        families = ctx.stats.families
        for chain, count in result.rows.items():
            family = mapping.family(chain)
            families[family] = families.get(family, 0) + count
