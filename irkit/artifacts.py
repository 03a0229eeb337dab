"""Where irkit's data lives: rules, message templates, collection definitions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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


def load_yaml(text: str) -> Any:
    """One YAML document with the safe schema, read by libyaml when PyYAML has it (the
    pure-Python reader took 1 s for the 204 heuristics); where libyaml refuses the text,
    the pure-Python reader decides, so a file reads (or fails) as ``yaml.safe_load`` does."""
    import yaml

    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return yaml.load(text, Loader=fast)  # the safe schema, in C
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)
