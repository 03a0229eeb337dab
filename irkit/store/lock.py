"""One writer per case: an exclusive lock on ``CASE/irkit.lock``, held for a whole run.

DuckDB's own file lock lasts only while the store is open; a parse opens it only for
each transaction, so that readers get in between. This lock keeps a second writer
(another parse, ``irkit hash --case``, ``irkit scan``) out for the whole run; readers
never take it. The lock dies with its process: a killed run leaves nothing to remove.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Final

from irkit.errors import CaseError

LOCK_NAME: Final = "irkit.lock"

_wait_notice: Callable[[str], None] | None = None


def on_wait(notice: Callable[[str], None] | None) -> None:
    """Who is told, in one line, that opening a case waits for another process (the
    command line says it on stderr; the library never prints). Here, not in
    ``irkit.store.case``: every command sets it, and most need no store."""
    global _wait_notice
    _wait_notice = notice


def tell_waiting(message: str) -> bool:
    """Say ``message`` to whoever ``on_wait`` named; False when nobody listens."""
    if _wait_notice is None:
        return False
    _wait_notice(message)
    return True


class WriteLock:
    """The case's write lock, taken at once or refused (``CaseError``)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(self.fd)
            os.close(self.fd)
            self.fd = -1
            raise CaseError(
                f"another irkit{holder} is writing the case {root}",
                hint="wait for it to finish; irkit timeline, findings and stack can read "
                "the case meanwhile",
            ) from exc
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        """Let go of the lock (closing the file releases it)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> WriteLock:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _holder(fd: int) -> str:
    """`` (process 1234)``: who holds the lock, as its holder wrote it, or ''."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (process {text})" if text.isdigit() else ""
