"""Windows XML event logs (EVTX): two engines, one flat field convention.

The fast engine is pyevtx-rs (``evtx``) with ``skip_errors``; the second engine is
python-evtx reading inactive chunks too. Both flatten a record to Sigma field names
(``EventID``, ``Channel``, ``Provider_Name``, named ``<Data>`` as their names, unnamed
as ``Data_1``…, UserData as dotted paths) so detections and exports never care which
engine read the file. ``ts`` is always ``System/TimeCreated/@SystemTime``.

The modules, each importing only modules listed below it:

- ``source``: :class:`EvtxSource`, which runs an engine over a file into the sink.
- ``python_engine``: the second engine, python-evtx's chunks and records; with
  ``binxml`` (a chunk's BinXML read into element trees), ``binxml_fill`` (templates
  filled with values), ``binxml_json`` (trees in pyevtx-rs's JSON shape),
  ``binxml_nodes`` (the tree types) and ``values`` (values by their declared type).
- ``fast_engine``: the fast engine, pyevtx-rs's records and its warnings.
- ``rows``: a flattened record to a timeline row; record keys.
- ``flatten``: an ``Event`` in pyevtx-rs's JSON shape to flat fields.
- ``chunks``: the file's structure (truncation, zeroed chunks, CRC32s) and slices.
"""

from __future__ import annotations

from irkit.sources.evtx.fast_engine import iter_fast
from irkit.sources.evtx.flatten import flatten_event, flatten_event_py
from irkit.sources.evtx.rows import RecordKeys, build_row, header_time
from irkit.sources.evtx.source import DAMAGE, ENGINES, SIGNATURE, EvtxSource

__all__ = [
    "DAMAGE",
    "ENGINES",
    "SIGNATURE",
    "EvtxSource",
    "RecordKeys",
    "build_row",
    "flatten_event",
    "flatten_event_py",
    "header_time",
    "iter_fast",
]
