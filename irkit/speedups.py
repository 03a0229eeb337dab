"""The optional C accelerator of the EVTX hot path, or None.

``_evtxflat.c`` holds C twins of :func:`irkit.sources.evtx.flatten.flatten_event_py` and
:meth:`irkit.sources.messages.MessageCatalog.render_py`, with the same output (the tests compare
them on every corpus record), the per-record loop of the fast engine (``rows``), and the
spool's row columns (``Column``: Arrow buffers, no Python object per row; the loop writes
a record's row, message and fields JSON into them straight from its JSON text). It is
built by ``pip install`` where a C compiler exists;
without it irkit runs the Python versions, about 2x slower to parse. Setting
``IRKIT_PURE_PYTHON=1`` makes irkit ignore a built accelerator.
"""

from __future__ import annotations

import os
from types import ModuleType


def _load() -> ModuleType | None:
    if os.environ.get("IRKIT_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from irkit import _evtxflat
    except ImportError:
        return None
    return _evtxflat


#: The compiled module, or None when it is not built (or IRKIT_PURE_PYTHON is set).
speedups: ModuleType | None = _load()
