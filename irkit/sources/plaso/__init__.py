"""plaso (log2timeline) as an irkit source: plaso's parsers run in-process on one file.

- ``source``: ``PlasoSource`` (the Source protocol; imports plaso only when parsing);
- ``run``: one file through plaso (``FileRun``), event data to rows, warnings;
- ``options``: ``PlasoOptions``, what a run may change;
- ``result``: ``Result``, what plaso did with one file beyond its rows;
- ``probe``: ``probe`` (which parsers take a file) and ``warm`` (set plaso up now);
- ``engine``: plaso's worker, parsers, timeliner and formatters, set up once per process;
- ``collector``: the in-memory storage writer plaso's parsers write into;
- ``rows``: event data as text fields, message, host, user, event id, times;
- ``mapping``: the tables of ``artifacts/plaso/mapping.yaml``;
- ``preload``: importing it sets plaso up (for a worker pool's fork server).

Importing this package does not import plaso (~2 s): ``irkit.sources`` stays cheap.
"""

from __future__ import annotations

from irkit.sources.plaso.source import PlasoSource

__all__ = ["PlasoSource"]
