"""Shared fixtures: the bundled samples, the shared corpus, and running the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
EVIDENCE = DATA / "evidence"
DIRTY = DATA / "dirty"
EVTX_CORPUS_DIRS = ("EVTX-ATTACK-SAMPLES", "omerbenamram-evtx", "python-evtx", "plaso-evtx")


def corpus_path() -> Path:
    """The shared corpus: $IRKIT_CORPUS, else ../shared/corpus beside the repository."""
    return Path(os.environ.get("IRKIT_CORPUS", REPO.parent / "shared" / "corpus"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared corpus folder; skips the test when it is absent."""
    path = corpus_path()
    if not (path / "EVTX-ATTACK-SAMPLES").is_dir():
        pytest.skip(f"shared corpus not found at {path} (set IRKIT_CORPUS)")
    return path


@pytest.fixture()
def evidence_copy(tmp_path: Path) -> Path:
    """A private copy of the bundled evidence, for tests that alter files."""
    target = tmp_path / "evidence"
    shutil.copytree(EVIDENCE, target)
    return target


def run_irkit(
    *args: str, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the real command line as a process."""
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("IRKIT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "irkit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def corpus_case(
    tmp_path_factory: pytest.TempPathFactory, corpus: Path
) -> Iterator[tuple[Path, dict[str, object]]]:
    """A case holding every EVTX file of the corpus, parsed once per test session."""
    import json

    case = tmp_path_factory.mktemp("corpus") / "case"
    result = run_irkit(
        "parse", *(str(corpus / d) for d in EVTX_CORPUS_DIRS), "--case", str(case), "--json"
    )
    assert result.returncode == 3, result.stderr
    yield case, json.loads(result.stdout)
