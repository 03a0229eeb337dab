"""Where irkit's data lives: rules, message templates, collection definitions."""

from __future__ import annotations

import os
from pathlib import Path

from irkit.errors import IrkitError


def artifacts_dir() -> Path:
    """The ``artifacts/`` folder: ``$IRKIT_ARTIFACTS``, the copy in the wheel, or the checkout's."""
    env = os.environ.get("IRKIT_ARTIFACTS")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve().parent
    candidates += [here / "_artifacts", here.parent / "artifacts"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise IrkitError(
        "irkit's data folder (artifacts/) was not found",
        hint="reinstall irkit, or point $IRKIT_ARTIFACTS at the artifacts folder",
    )
