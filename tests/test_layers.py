"""The pipeline's layering (pyproject.toml's import-linter contracts) holds, and breaks loudly.

Each bad import below is planted in a copy of the package; ``lint-imports`` must then fail
and name the contract it broke. The same command runs on the real tree in .ci/run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT), "--no-cache", "--no-logo", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """A copy of the package and its contracts, to plant bad imports in."""
    root = tmp_path / "tree"
    shutil.copytree(REPO / "irkit", root / "irkit", ignore=shutil.ignore_patterns("*.so"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def test_the_real_tree_keeps_every_contract(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout
    assert "Contracts: 5 kept, 0 broken." in result.stdout


BAD_IMPORTS = [
    # (module that gets the import, the import, the contract that must break)
    ("irkit/sources/base.py", "import irkit.store.case", "Sources never touch the case"),
    ("irkit/sources/osquery.py", "import duckdb", "Sources never touch the case"),
    ("irkit/detect/heuristics.py", "import irkit.cli.common", "The pipeline's stages"),
    ("irkit/detect/scan.py", "import irkit.ingest.parse", "The pipeline's stages"),
    ("irkit/store/case.py", "import irkit.files.hashing", "The pipeline's stages"),
    ("irkit/model.py", "import irkit.store.case", "The pipeline's stages"),
    ("irkit/collect/copy.py", "import irkit.store.case", "Collection copies files"),
    ("irkit/export/csv.py", "import rich.console", "Only the command line prints"),
    ("irkit/ingest/discovery.py", "import irkit.ingest.parse", "No import cycles"),
]


@pytest.mark.parametrize(("module", "line", "contract"), BAD_IMPORTS)
def test_a_bad_import_breaks_its_contract(
    tree: Path, module: str, line: str, contract: str
) -> None:
    target = tree / module
    text = target.read_text()
    marker = "from __future__ import annotations\n"
    assert marker in text
    target.write_text(text.replace(marker, f"{marker}\n{line}  # planted by the test\n", 1))
    result = _lint(tree)
    assert result.returncode == 1, result.stdout
    broken = [ln for ln in result.stdout.splitlines() if ln.endswith(" BROKEN")]
    assert any(ln.startswith(contract) for ln in broken), result.stdout
