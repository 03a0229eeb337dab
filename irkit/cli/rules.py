"""`irkit rules`: list and lint the built-in heuristics (artifacts/heuristics/*.yaml)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from irkit.cli.common import Debug, errors_handled, print_json, safe_text, stderr_console
from irkit.errors import ExitCode

app = typer.Typer(
    help="List and check irkit's built-in heuristics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: Another heuristics folder (tests, rule authors); else $IRKIT_HEURISTICS; else the shipped set.
Folder = Annotated[
    Path | None,
    typer.Option("--folder", hidden=True, help="Heuristics folder (default: the shipped set)."),
]


LintJson = Annotated[
    bool, typer.Option("--json", help="Print the problems as JSON on stdout (ok: no problem).")
]
ListJson = Annotated[
    bool, typer.Option("--json", help="Print the heuristics as a JSON list on stdout.")
]


def _folder(folder: Path | None) -> Path | None:
    env = os.environ.get("IRKIT_HEURISTICS")
    return folder or (Path(env) if env else None)


@app.command("lint")
@errors_handled
def lint(json_out: LintJson = False, folder: Folder = None, debug: Debug = False) -> None:
    """Check every heuristic: keys, level, ATT&CK tags, SQL, and that its examples behave.

    Exit 1 when a heuristic has a problem.

    Examples:

      irkit rules lint

      IRKIT_HEURISTICS=./my-heuristics irkit rules lint --json
    """
    from irkit.detect.heuristics_lint import lint_heuristics

    problems = lint_heuristics(_folder(folder))
    if json_out:
        print_json({"problems": problems, "ok": not problems})
    else:
        console = stderr_console()
        for problem in problems:
            console.print(safe_text(problem))
        if problems:
            console.print(safe_text(f"{len(problems)} problem(s)", "bold red"))
        else:
            console.print(safe_text("heuristics: no problems", "green"))
    if problems:
        raise typer.Exit(int(ExitCode.FATAL))


@app.command("list")
@errors_handled
def list_rules(json_out: ListJson = False, folder: Folder = None, debug: Debug = False) -> None:
    """Show every heuristic: id, level, title and ATT&CK tags.

    Examples:

      irkit rules list

      irkit rules list --json | jq -r '.[] | select(.level == "high") | .id'
    """
    from irkit.detect.heuristics import load_heuristics

    heuristics = load_heuristics(_folder(folder))
    if json_out:
        print_json(
            [
                {"id": h.id, "level": str(h.level), "title": h.title, "attack": list(h.attack)}
                for h in heuristics
            ]
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    table.add_column("id", no_wrap=True)
    for column in ("level", "title", "ATT&CK"):
        table.add_column(column)
    for h in heuristics:
        table.add_row(
            safe_text(h.id),
            safe_text(str(h.level)),
            safe_text(h.title),
            safe_text(" ".join(a.removeprefix("attack.") for a in h.attack)),
        )
    Console(highlight=False, soft_wrap=False).print(table)
