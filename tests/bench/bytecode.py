"""Run irkit as an install does: with its bytecode compiled (pip compiles it at install).

A checkout run with ``PYTHONDONTWRITEBYTECODE`` set (this machine sets it) compiles every
module it imports, in every run: 0.05–0.1 s a command, which a benchmark would charge to
irkit and not to its ceiling, whose libraries are installed. ``installed_bytecode``
compiles the trees once into ``PYTHONPYCACHEPREFIX`` under the benchmark's temporary
folder (never into the tree) and returns the environment the commands are to run with.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


def installed_bytecode(
    env: Mapping[str, str], tmp: Path, trees: Sequence[Path | str]
) -> tuple[dict[str, str], bool]:
    """``env`` with the bytecode of ``trees`` compiled once and used; True when it had to
    be (``PYTHONDONTWRITEBYTECODE`` was set), else ``env`` as it was (Python caches it)."""
    out = dict(env)
    if out.pop("PYTHONDONTWRITEBYTECODE", None) is None:
        return out, False
    out["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *map(str, trees)],
        env=out, check=False, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return out, True
