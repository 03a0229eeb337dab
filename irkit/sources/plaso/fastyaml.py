"""plaso's definition files read with libyaml: its set-up ~5× faster, the same data.

plaso and dtfabric read ~1,700 YAML documents as they set up (parser structures,
formatters, timeliner definitions) with ``yaml.safe_load_all``, PyYAML's pure-Python
loader: ~80 % of plaso's ~3 s set-up. Inside ``libyaml()``, ``yaml.safe_load_all`` reads
with PyYAML's C loader (``CSafeLoader``: the same safe schema, built on libyaml) when
PyYAML was built with it, and falls back to the pure-Python loader for a document libyaml
refuses (libyaml is stricter: ``{paths:['x']}``, which the ForensicArtifacts definitions
hold, is an error to it). Outside, nothing changes: other readers in the process (the
artifacts package of ``irkit collect``) keep PyYAML's own behaviour. ``safe_load``, which
plaso's ``fish_history`` parser calls on evidence, is never changed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import IO, Any

import yaml

_LOCK = threading.RLock()


def _fast_load_all(stream: str | bytes | IO[Any]) -> Iterator[Any]:
    """``safe_load_all`` with libyaml, the pure-Python loader where libyaml refuses."""
    text = stream if isinstance(stream, str | bytes) else stream.read()
    try:
        documents = list(yaml.load_all(text, Loader=yaml.CSafeLoader))  # the safe schema
    except yaml.YAMLError:
        documents = list(yaml.load_all(text, Loader=yaml.SafeLoader))
    return iter(documents)


@contextlib.contextmanager
def libyaml() -> Iterator[None]:
    """Within: ``yaml.safe_load_all`` reads with libyaml (when PyYAML has it)."""
    if not getattr(yaml, "__with_libyaml__", False):
        yield
        return
    with _LOCK:
        original = yaml.safe_load_all
        yaml.safe_load_all = _fast_load_all  # type: ignore[assignment]
        try:
            yield
        finally:
            yaml.safe_load_all = original
