"""Ctrl-C at a random moment of `irkit triage`: exit 130, no traceback, a sound case.

    python tests/bench/ctrl_c.py [EVIDENCE] [--runs 20] [--seed N] [--json-out FILE]

EVIDENCE defaults to the shared corpus (``../shared/corpus`` or ``$IRKIT_CORPUS``).

One uninterrupted run first measures the full run time T and records, for every evidence
file, how many events it gives. Then each run starts ``irkit triage EVIDENCE --case TMP -q``
in its own process group and sends SIGINT to the group (what Ctrl-C in a terminal does)
after a delay drawn uniformly from [0, T]. Each run is checked:

- exit code 130 with ``irkit: interrupted`` on stderr (a run that finished before the
  signal, exit 0 or 3, is counted apart: nothing was interrupted);
- no ``Traceback`` and no ``internal error`` on stderr;
- the case, if one was created, opens: ``irkit findings CASE -f jsonl`` and
  ``irkit timeline CASE -f jsonl`` exit 0;
- every file the case lists in its ``evidence`` table has all its events: as many as its
  ``records`` column says and as many as the uninterrupted run gave it (no file half in
  the case), and no event of a parsed source points at a file the case does not list.

It prints one line per run and a summary table (Markdown); how many files each
interrupted case kept is reported, not judged (whether files parsed before the interrupt
are kept is the parse's business). Exit status: 0 when every run passed every check.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from irkit.store.schema import STORE_NAME

REPO = Path(__file__).resolve().parents[2]
#: Sources whose events come from a parsed evidence file (file events and findings do not).
PARSED_SOURCES = ("evtx", "osquery", "bodyfile")


@dataclass
class Run:
    """One interrupted (or not) run and what was found afterwards."""

    index: int
    delay: float
    seconds: float = 0.0
    exit_code: int = 0
    outcome: str = ""  # interrupted | finished | ignored | wrong-exit
    traceback: bool = False
    case_exists: bool = False
    case_opens: bool = True
    files_kept: int = 0
    files_incomplete: int = 0
    orphan_events: int = 0
    file_events: int = 0
    findings: int = 0
    problems: list[str] = field(default_factory=list)
    stderr: str = ""  # kept when the run has a problem

    @property
    def ok(self) -> bool:
        return not self.problems


def corpus_default() -> Path:
    return Path(os.environ.get("IRKIT_CORPUS", REPO.parent / "shared" / "corpus"))


def irkit(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "irkit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def triage_argv(evidence: Path, case: Path) -> list[str]:
    return [sys.executable, "-m", "irkit", "triage", str(evidence), "--case", str(case), "-q"]


def inspect_case(case: Path) -> dict[str, Any]:
    """Per evidence file: records and events in the case; orphan and other event counts."""
    from irkit.store.case import Case

    sources = ", ".join(f"'{s}'" for s in PARSED_SOURCES)
    with Case(case, read_only=True) as store:
        rows = store.db.execute(
            f"""
            SELECT e.sha256, e.path, e.status, e.records,
                   (SELECT count(*) FROM events v
                     WHERE v.evidence_sha256 = e.sha256 AND v.source IN ({sources})) AS events
            FROM evidence e
            """
        ).fetchall()
        orphans = store.db.execute(
            f"""
            SELECT count(*) FROM events v
            WHERE v.source IN ({sources})
              AND v.evidence_sha256 NOT IN (SELECT sha256 FROM evidence)
            """
        ).fetchone()
        file_events = store.db.execute(
            "SELECT count(*) FROM events WHERE source = 'file'"
        ).fetchone()
        findings = store.db.execute("SELECT count(*) FROM findings").fetchone()
    return {
        "files": {
            sha: {"path": path, "status": status, "records": records, "events": events}
            for sha, path, status, records, events in rows
        },
        "orphans": orphans[0] if orphans else 0,
        "file_events": file_events[0] if file_events else 0,
        "findings": findings[0] if findings else 0,
    }


def calibrate(evidence: Path, work: Path) -> tuple[float, dict[str, Any], int]:
    """One uninterrupted run: its wall time, the case it gives, its exit code."""
    case = work / "calibration"
    started = time.perf_counter()
    result = subprocess.run(
        triage_argv(evidence, case), capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if result.returncode not in (0, 3):
        sys.exit(f"calibration run failed ({result.returncode}): {result.stderr.strip()}")
    reference = inspect_case(case)
    shutil.rmtree(case)
    return seconds, reference, result.returncode


def one_run(index: int, delay: float, evidence: Path, work: Path, reference: dict[str, Any]) -> Run:
    case = work / f"run{index}"
    run = Run(index, delay)
    started = time.perf_counter()
    process = subprocess.Popen(
        triage_argv(evidence, case),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    time.sleep(delay)
    signalled = process.poll() is None
    if signalled:
        os.killpg(process.pid, signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, stderr = process.communicate()
        run.problems.append("did not stop within 300 s of SIGINT")
    run.seconds = time.perf_counter() - started
    run.exit_code = process.returncode
    if run.exit_code == 130:
        run.outcome = "interrupted"
        if "irkit: interrupted" not in stderr:
            run.problems.append("exit 130 without 'irkit: interrupted'")
    elif run.exit_code in (0, 3) and (not signalled or run.seconds - delay < 1.0):
        run.outcome = "finished"  # done before the signal, or exiting when it came
    elif run.exit_code in (0, 3):
        run.outcome = "ignored"  # ran on for seconds after SIGINT: the signal was swallowed
        run.problems.append(f"exit {run.exit_code} {run.seconds - delay:.1f} s after SIGINT")
    else:
        run.outcome = "wrong-exit"
        last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
        run.problems.append(f"exit {run.exit_code}: {last[:160]}")
    if "Traceback" in stderr or "internal error" in stderr:
        run.traceback = True
        run.problems.append("traceback or internal error on stderr")
    if run.problems:
        run.stderr = stderr[-4000:]
    run.case_exists = (case / STORE_NAME).exists()
    if run.case_exists:
        check_case(run, case, reference)
    shutil.rmtree(case, ignore_errors=True)
    return run


def check_case(run: Run, case: Path, reference: dict[str, Any]) -> None:
    for args in (("findings", str(case), "-f", "jsonl"), ("timeline", str(case), "-f", "jsonl")):
        result = irkit(*args)
        if result.returncode != 0:
            run.case_opens = False
            last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
            run.problems.append(f"irkit {args[0]} exit {result.returncode}: {last[:160]}")
    try:
        seen = inspect_case(case)
    except Exception as exc:  # the case does not open at all: that is the finding
        run.case_opens = False
        run.problems.append(f"case does not open: {type(exc).__name__}: {exc}")
        return
    run.files_kept = len(seen["files"])
    run.orphan_events = seen["orphans"]
    run.file_events = seen["file_events"]
    run.findings = seen["findings"]
    for sha, info in seen["files"].items():
        expected = reference["files"].get(sha, {}).get("events")
        if info["events"] != info["records"] or (
            expected is not None and info["events"] != expected
        ):
            run.files_incomplete += 1
            run.problems.append(
                f"{info['path']}: {info['events']} events, records {info['records']}, "
                f"uninterrupted run {expected}"
            )
    if run.orphan_events:
        run.problems.append(f"{run.orphan_events} events of files the case does not list")


def summary_table(runs: list[Run], total_files: int, full_seconds: float) -> str:
    interrupted = [r for r in runs if r.outcome == "interrupted"]
    finished = [r for r in runs if r.outcome == "finished"]
    wrong = [r for r in runs if r.outcome == "wrong-exit"]
    ignored = [r for r in runs if r.outcome == "ignored"]
    kept = [r.files_kept for r in interrupted if r.case_exists]
    rows = [
        ("runs", f"{len(runs)}"),
        ("full run (uninterrupted)", f"{full_seconds:.1f} s, {total_files} evidence files"),
        ("interrupted: exit 130", f"{len(interrupted)}"),
        ("finished before the signal (exit 0/3)", f"{len(finished)}"),
        ("exit 0/3 seconds after the signal (swallowed)", f"{len(ignored)}"),
        ("other exit code", f"{len(wrong)}"),
        ("traceback or internal error on stderr", f"{sum(r.traceback for r in runs)}"),
        ("case created", f"{sum(r.case_exists for r in runs)}"),
        ("case does not open", f"{sum(not r.case_opens for r in runs)}"),
        ("files half in the case", f"{sum(r.files_incomplete for r in runs)}"),
        ("orphan events", f"{sum(r.orphan_events for r in runs)}"),
        (
            "files kept after Ctrl-C (interrupted runs with a case)",
            "none interrupted with a case"
            if not kept
            else f"median {statistics.median(kept):.0f}, min {min(kept)}, max {max(kept)} "
            f"of {total_files}; {sum(1 for k in kept if k == 0)} runs kept none",
        ),
        ("runs with a problem", f"{sum(not r.ok for r in runs)}"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'check'.ljust(width)} | result |", f"|{'-' * (width + 2)}|--------|"]
    lines += [f"| {k.ljust(width)} | {v} |" for k, v in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("evidence", nargs="?", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    # Started from a script's background job (`cmd &`, nohup), this process inherits
    # SIGINT ignored, and so would each irkit it starts: a terminal's foreground job
    # never does. A handler of our own is reset to the default in every child.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    evidence = args.evidence or corpus_default()
    if not evidence.exists():
        sys.exit(f"no evidence at {evidence} (set IRKIT_CORPUS or give a path)")
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="irkit-ctrl-c-"))
    try:
        print(f"calibrating: irkit triage {evidence} (uninterrupted)…", file=sys.stderr)
        full_seconds, reference, code = calibrate(evidence, work)
        total_files = len(reference["files"])
        print(
            f"full run: {full_seconds:.1f} s, exit {code}, {total_files} evidence files; "
            f"seed {seed}",
            file=sys.stderr,
        )
        runs = []
        for index in range(args.runs):
            delay = rng.uniform(0, full_seconds)
            run = one_run(index, delay, evidence, work, reference)
            runs.append(run)
            verdict = "ok" if run.ok else "FAIL: " + "; ".join(run.problems[:3])
            if run.traceback:
                verdict += "\n" + "\n".join(
                    f"    | {line}" for line in run.stderr.splitlines()[-12:]
                )
            print(
                f"run {index:2d}: SIGINT at {delay:5.1f} s -> exit {run.exit_code:3d} "
                f"({run.outcome}), files kept {run.files_kept}, {verdict}",
                file=sys.stderr,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(summary_table(runs, total_files, full_seconds))
    if args.json_out:
        args.json_out.write_text(
            json.dumps(
                {
                    "evidence": str(evidence),
                    "seed": seed,
                    "full_seconds": full_seconds,
                    "total_files": total_files,
                    "runs": [asdict(r) for r in runs],
                },
                indent=2,
            )
        )
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
