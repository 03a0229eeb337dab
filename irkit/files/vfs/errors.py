"""The errors of reading inside an image: ``irkit.errors`` subclasses a responder can read."""

from __future__ import annotations

from irkit.errors import EvidenceError


class ImageReadError(EvidenceError):
    """An entry inside an image or archive cannot be opened or read."""


class EntryTooBigError(ImageReadError):
    """An entry is larger than ``copy_out`` was allowed to write."""
