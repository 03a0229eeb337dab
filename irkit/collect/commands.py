"""Commands run on the live host (COMMAND sources, osquery packs), outputs kept and hashed.

A command runs without a shell, with no standard input, ``LC_ALL=C`` and a time limit;
its standard output and error are stored as files, with its start and finish time
(UTC), exit code and digests. osquery packs (``artifacts/osquery/packs/*.json``, the
osquery pack format) run query by query with ``osqueryi --json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final

from irkit.artifacts import artifacts_dir
from irkit.collect.copy import utc_now

COMMAND_TIMEOUT: Final = 120.0
_PLATFORMS: Final = {
    "linux": {"linux", "posix", "all", "any"},
    "darwin": {"darwin", "posix", "all", "any"},
    "win32": {"windows", "all", "any"},
}


@dataclasses.dataclass(slots=True)
class CommandRecord:
    """One command run: what, when, how it ended, where its output is and its digest."""

    artifact: str
    argv: list[str]
    stdout_path: str = ""
    stderr_path: str = ""
    started_utc: str = ""
    finished_utc: str = ""
    seconds: float = 0.0
    exit_code: int | None = None
    stdout_size: int = 0
    stdout_sha256: str = ""
    stderr_size: int = 0
    stderr_sha256: str = ""
    status: str = "ran"
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The manifest entry."""
        return dataclasses.asdict(self)


def _digest(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def run_command(
    artifact: str, argv: list[str], out_dir: Path, stem: str, stored_base: Path
) -> CommandRecord:
    """Run ``argv``; stdout to ``out_dir/stem`` (+ ``.stderr``). Never raises for the
    command's own failure: it is in the record."""
    record = CommandRecord(artifact, list(argv))
    program = shutil.which(argv[0]) if argv else None
    if program is None:
        record.status = "not-found"
        record.error = f"{argv[0] if argv else '(empty)'} is not on the PATH"
        return record
    out_dir.mkdir(parents=True, exist_ok=True)
    stdout = out_dir / stem
    stderr = out_dir / f"{stem}.stderr"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    record.started_utc = utc_now()
    started = time.perf_counter()
    with stdout.open("wb") as out, stderr.open("wb") as err:
        try:
            done = subprocess.run(
                [program, *argv[1:]],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
            record.exit_code = done.returncode
            if done.returncode != 0:
                record.status = "failed"
                record.error = f"exit code {done.returncode}"
        except subprocess.TimeoutExpired:
            record.status = "timeout"
            record.error = f"killed after {COMMAND_TIMEOUT:.0f} s"
        except OSError as exc:
            record.status = "failed"
            record.error = exc.strerror or str(exc)
    record.finished_utc = utc_now()
    record.seconds = round(time.perf_counter() - started, 3)
    record.stdout_path = stdout.relative_to(stored_base).as_posix()
    record.stderr_path = stderr.relative_to(stored_base).as_posix()
    record.stdout_size, record.stdout_sha256 = _digest(stdout)
    record.stderr_size, record.stderr_sha256 = _digest(stderr)
    return record


def osquery_packs() -> list[Path]:
    """The packs irkit runs, in name order."""
    return sorted((artifacts_dir() / "osquery" / "packs").glob("*.json"))


def _applies(query: dict[str, Any]) -> bool:
    wanted = str(query.get("platform", "all")).lower()
    ours = _PLATFORMS.get(sys.platform, {"all", "any", "posix"})
    return any(p.strip() in ours for p in wanted.split(","))


def run_osquery(out: Path, base: Path) -> tuple[dict[str, Any], list[CommandRecord]]:
    """Run every pack query with ``osqueryi --json``; the status block and the runs."""
    program = shutil.which("osqueryi")
    packs = osquery_packs()
    status: dict[str, Any] = {
        "available": program is not None,
        "program": program or "",
        "packs": [p.name for p in packs],
    }
    if program is None:
        status["reason"] = "osqueryi was not found on the PATH: no osquery queries were run"
        return status, []
    version = subprocess.run(
        [program, "--version"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    status["version"] = version.stdout.strip()
    records = []
    for pack in packs:
        queries = json.loads(pack.read_text(encoding="utf-8")).get("queries", {})
        for name in sorted(queries):
            query = queries[name]
            if not _applies(query):
                continue
            records.append(
                run_command(
                    f"osquery:{pack.stem}/{name}",
                    [program, "--json", str(query["query"])],
                    out / pack.stem,
                    f"{name}.json",
                    base,
                )
            )
    return status, records
