"""Start-up cost: a command imports what it runs, not every command (#18).

``irkit hash`` of a few files is mostly start-up; each module a command imports but does
not use is paid on every run (the other command modules ~30 ms, the sources and their
message catalog ~0.1 s, DuckDB and Arrow ~0.25 s)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from irkit.cli import COMMANDS, GROUPS

PROBE = """
import json, sys
from irkit.cli import run
code = run(sys.argv[1:])
print(json.dumps([code, sorted(sys.modules)]))
"""


def _imported(*args: str) -> tuple[int, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    code, modules = json.loads(done.stdout.splitlines()[-1])
    return int(code), set(modules)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    root.mkdir()
    for n in range(3):
        (root / f"f{n}.txt").write_text(f"file {n}\n")
    return root


def test_hash_imports_neither_other_commands_nor_the_store(tree: Path, tmp_path: Path) -> None:
    code, modules = _imported("hash", str(tree), "-q", "-o", str(tmp_path / "list"))
    assert code == 0
    assert "irkit.cli.hashing" in modules
    for unused in ("irkit.cli.analytics", "irkit.cli.report", "irkit.cli.triage"):
        assert unused not in modules
    assert not {"duckdb", "pyarrow", "irkit.store.case", "irkit.sources"} & modules


def test_hash_into_a_case_does_not_import_the_parsers(tree: Path, tmp_path: Path) -> None:
    code, modules = _imported("hash", str(tree), "-q", "--case", str(tmp_path / "case"))
    assert code == 0
    assert {"duckdb", "irkit.store.case"} <= modules  # it did write the case
    assert not any(m == "irkit.sources" or m.startswith("irkit.sources.") for m in modules)


def test_every_command_is_still_there(tmp_path: Path) -> None:
    """The full command line (no command named) lists them all, and a command named
    alone works as in the full one."""
    from typer.testing import CliRunner

    from irkit.cli import build_app

    runner = CliRunner()
    listed = runner.invoke(build_app(), ["--help"], env={"COLUMNS": "200"}).output
    for name in (*COMMANDS, *GROUPS):
        assert f" {name} " in listed
        alone = runner.invoke(build_app(name), [name, "--help"], env={"COLUMNS": "200"})
        full = runner.invoke(build_app(), [name, "--help"], env={"COLUMNS": "200"})
        assert alone.exit_code == full.exit_code == 0
        assert alone.output == full.output
