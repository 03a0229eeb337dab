"""The IrkitError tree and the exit codes every command shares."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes, documented in docs/usage.md and tested in tests/test_cli.py."""

    OK = 0
    FATAL = 1
    USAGE = 2
    PARTIAL = 3
    FINDINGS = 4
    VERIFY_FAILED = 5
    INTERRUPTED = 130


class IrkitError(Exception):
    """An error with a one-line message for a responder and a hint on what to do."""

    exit_code: ExitCode = ExitCode.FATAL

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(IrkitError):
    """The command line asked for something that cannot be done as asked."""

    exit_code = ExitCode.USAGE


class CaseError(IrkitError):
    """The case directory is missing, locked, or not an irkit case."""


class EvidenceError(IrkitError):
    """No evidence could be found or read at the paths given."""


class QueryError(UsageError):
    """A timeline filter (--where, --from, --to) is not valid."""


def is_interrupt(exc: BaseException | None) -> bool:
    """Whether ``exc`` is Ctrl-C (or SIGTERM, which irkit turns into it) in disguise.

    DuckDB catches the KeyboardInterrupt that hits a running query and raises
    ``RuntimeError('Query interrupted')`` (2.x) or ``duckdb.InterruptException`` (1.x)
    instead; another error may carry either as its cause or context.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, KeyboardInterrupt):
            return True
        kind = type(exc)
        if kind.__name__ == "InterruptException" and "duckdb" in kind.__module__:
            return True
        if isinstance(exc, RuntimeError) and str(exc).startswith("Query interrupted"):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class EngineError(IrkitError):
    """A query an engine other than DuckDB cannot translate or run (``--engine spark``):
    the rule is reported as not run on that engine, with this reason; the others run."""
