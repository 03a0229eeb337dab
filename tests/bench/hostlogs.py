"""Build a host-shaped ``winevt/Logs`` folder: ~400 EVTX logs sized like a Windows host's.

Usage: ``python tests/bench/hostlogs.py OUT_DIR [--from DIR ...]``

Every log is tiled from intact corpus chunks (``tile_evtx.py``), each starting at a
different chunk of the pool, so no two logs are byte-identical (irkit would parse a copy
once) and every record id is unique inside its log.

The size distribution (``LAYOUT``) follows the channels' default maximum sizes on
Windows 10/11 and Windows Server 2016–2022 (``wevtutil gl <channel>``: ``maxSize``), as
found in triage collections of ``C:\\Windows\\System32\\winevt\\Logs``:

- 300–450 ``.evtx`` files; most channels are enabled but nearly empty: a file header and
  one 64 KiB chunk, 69,632 bytes;
- the ``Operational`` channels that are used fill up to their 1 MiB default
  (1,052,672 bytes with the header) and wrap; others sit between one chunk and 1 MiB;
- a few busier channels of 2–8 MiB (Task Scheduler, Defender, WMI, Terminal Services…);
- Application and System at their 20 MiB default; ``Windows PowerShell`` and
  ``Microsoft-Windows-PowerShell/Operational`` at their 15 MiB default;
- Sysmon's channel at its 64 MiB default; Security raised to ~100 MiB, as hardening
  guides (and servers) set it, above the 20 MiB workstation default.

These are sizes, not contents: the records are the corpus's. An assumption, stated here,
not a measurement of one particular host.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import tile_evtx  # the sibling module: this script runs with tests/bench on sys.path

KIB: Final = 1 << 10
MIB: Final = 1 << 20
#: A log of one chunk: the file header and one 64 KiB chunk.
ONE_CHUNK: Final = tile_evtx.HEADER_SIZE + tile_evtx.CHUNK_SIZE
#: A channel full at its 1 MiB default: 16 chunks and the header.
ONE_MIB_FULL: Final = tile_evtx.HEADER_SIZE + 16 * tile_evtx.CHUNK_SIZE


@dataclasses.dataclass(frozen=True, slots=True)
class Band:
    """``count`` logs of sizes spread evenly from ``low`` to ``high`` bytes."""

    what: str
    count: int
    low: int
    high: int


#: The host: (name or name pattern, band). ``{n}`` numbers the logs of a band.
LAYOUT: Final[tuple[tuple[str, Band], ...]] = (
    (
        "Microsoft-Windows-Channel{n:03d}%4Operational.evtx",
        Band("nearly empty", 241, ONE_CHUNK, ONE_CHUNK),
    ),
    (
        "Microsoft-Windows-Partial{n:03d}%4Operational.evtx",
        Band("partly filled", 100, 2 * 64 * KIB, MIB),
    ),
    (
        "Microsoft-Windows-Full{n:03d}%4Operational.evtx",
        Band("full at 1 MiB", 45, ONE_MIB_FULL, ONE_MIB_FULL),
    ),
    ("Microsoft-Windows-Busy{n:03d}%4Operational.evtx", Band("busy", 8, 2 * MIB, 8 * MIB)),
    ("Application.evtx", Band("Application", 1, 20 * MIB, 20 * MIB)),
    ("System.evtx", Band("System", 1, 20 * MIB, 20 * MIB)),
    ("Windows PowerShell.evtx", Band("Windows PowerShell", 1, 15 * MIB, 15 * MIB)),
    ("Microsoft-Windows-PowerShell%4Operational.evtx", Band("PowerShell", 1, 15 * MIB, 15 * MIB)),
    ("Microsoft-Windows-Sysmon%4Operational.evtx", Band("Sysmon", 1, 64 * MIB, 64 * MIB)),
    ("Security.evtx", Band("Security", 1, 100 * MIB, 100 * MIB)),
)


def band_sizes(band: Band) -> list[int]:
    """The sizes of a band's logs in bytes (before rounding down to whole chunks)."""
    step = (band.high - band.low) / max(band.count - 1, 1)
    return [int(band.low + n * step) for n in range(band.count)]


@dataclasses.dataclass(slots=True)
class HostLogs:
    """What :func:`build` wrote."""

    folder: str
    files: int = 0
    bytes: int = 0
    records: int = 0
    pool_chunks: int = 0
    bands: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)


def build(out: Path, sources: Sequence[Path] | None = None) -> HostLogs:
    """Write the host's logs into ``out`` (created); returns what was written."""
    files = tile_evtx.distinct_files(tile_evtx.evtx_files(sources or [tile_evtx.default_corpus()]))
    pool = tile_evtx.build_pool(files)
    if not pool:
        raise ValueError("no intact EVTX chunk found in the sources")
    out.mkdir(parents=True, exist_ok=True)
    result = HostLogs(str(out), pool_chunks=len(pool))
    start = 0
    for pattern, band in LAYOUT:
        stats = result.bands.setdefault(band.what, {"files": 0, "bytes": 0, "records": 0})
        for n, size in enumerate(band_sizes(band)):
            # Each log starts at another chunk of the pool: no two logs are copies.
            rotated = [*pool[start % len(pool) :], *pool[: start % len(pool)]]
            tiled = tile_evtx.tile(out / pattern.format(n=n), size, pool=rotated)
            start += 1
            for key, value in (("files", 1), ("bytes", tiled.bytes), ("records", tiled.records)):
                stats[key] += value
            result.files += 1
            result.bytes += tiled.bytes
            result.records += tiled.records
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build the folder and print what was written as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the folder to write (created)")
    parser.add_argument("--from", dest="sources", type=Path, nargs="+", default=None)
    args = parser.parse_args(argv)
    print(json.dumps(dataclasses.asdict(build(args.out, args.sources)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
