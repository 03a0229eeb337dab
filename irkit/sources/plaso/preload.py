"""Importing this module sets plaso up in the importing process (``probe.warm``).

For the worker pool's fork server (``irkit.ingest.worker.WORKER_PRELOAD``): every worker
it forks then starts with plaso imported, its parsers built and its text grammars
compiled (~3 s saved per worker). Never raises: a failure here only means the workers
set plaso up themselves, and say why if they cannot.
"""

from __future__ import annotations

try:
    from irkit.sources.plaso.probe import warm

    warm()
except Exception:  # the worker that parses a plaso file will report it
    pass
