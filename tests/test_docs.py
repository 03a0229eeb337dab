"""Docs are kept true by tests: commands, options, exit codes, schema columns, sources."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from irkit.cli import app
from irkit.errors import ExitCode
from irkit.model import EVENT_COLUMNS, FINDING_COLUMNS

from .conftest import REPO

DOCS = REPO / "docs"


def test_every_command_and_option_is_documented() -> None:
    usage = (DOCS / "usage.md").read_text()
    readme = (REPO / "README.md").read_text()
    runner = CliRunner()
    root = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    commands = re.findall(r"^│ (\w+)\s{2,}", root.stdout, flags=re.M)
    assert set(commands) >= {"triage", "parse", "timeline", "crosscheck"}
    for command in commands:
        assert f"## `irkit {command}" in usage, command
        assert f"irkit {command}" in readme, command
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0
        for option in set(re.findall(r"(--[a-z][a-z-]+)", result.stdout)) - {"--help"}:
            assert option in usage, f"{command} {option} is not in docs/usage.md"


def test_exit_codes_documented() -> None:
    usage = (DOCS / "usage.md").read_text()
    readme = (REPO / "README.md").read_text()
    for code in ExitCode:
        assert f"| {code.value} | `{code.name}` |" in usage, code
        assert f"| {code.value} |" in readme, code


def test_schema_documents_every_column() -> None:
    schema = (DOCS / "schema.md").read_text()
    for column in EVENT_COLUMNS:
        assert f"| `{column}` |" in schema, column
    findings = schema.split("## Findings", 1)[1]
    for column in FINDING_COLUMNS:
        assert f"`{column}`" in findings.split("\n\n`irkit timeline`")[0], column


def test_readme_starts_with_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split("```")[1]
    assert "pip install -e '.[test]' && irkit triage tests/data/evidence" in block
    assert "\npytest" in block
    ci = (REPO / ".ci" / "run").read_text()
    assert "\npytest\n" in ci
