"""The checks of evidence read through an irkit collection: what its manifest itself
says is wrong (``collection_warnings``), and parsed files whose sha256 is not the
manifest's (``check_collected``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from irkit.ingest.summary import ParseSummary
from irkit.model import ParseWarning

if TYPE_CHECKING:
    from irkit.collect.evidence import Collection


def collection_warnings(collections: Sequence[Collection]) -> list[ParseWarning]:
    """What a collection's manifest itself says is wrong."""
    warnings = []
    for collection in collections:
        if not collection.manifest_verified:
            warnings.append(
                ParseWarning(
                    str(collection.given),
                    "manifest-altered",
                    "manifest.json does not match manifest.json.sha256: run irkit verify",
                )
            )
        for stored in collection.outside:
            warnings.append(
                ParseWarning(
                    str(collection.given),
                    "manifest-outside",
                    f"the manifest names {stored!r}, outside the collection: not read",
                )
            )
    return warnings


def check_collected(collections: Sequence[Collection], summary: ParseSummary) -> None:
    """A parsed file of a collection whose sha256 is not the manifest's is a warning."""
    if not collections:
        return
    expected: dict[str, str] = {}
    for collection in collections:
        expected |= {str(f.path): f.sha256 for f in collection.files}
    for stats in summary.files:
        want = expected.get(stats.path)
        if want and stats.sha256 and stats.sha256 != want:
            summary.warnings.append(
                ParseWarning(
                    stats.path,
                    "collection-mismatch",
                    f"sha256 {stats.sha256} is not the manifest's {want}: altered since collection",
                )
            )
