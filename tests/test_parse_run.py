"""A parse run as a responder lives it: started from any folder, workers that die,
Ctrl-C part-way, a reader looking at the case meanwhile, --recover afterwards, and
counts that add up."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from irkit.errors import ExitCode
from irkit.ingest.options import ParseOptions
from irkit.ingest.parse import parse_evidence
from irkit.ingest.summary import Progress
from irkit.model import FileStats
from irkit.store.case import Case
from tests.bench import tile_evtx

from .conftest import DIRTY, EVIDENCE, EVTX_CORPUS_DIRS, run_irkit

#: The console script pip installs: what a responder runs (``python -m irkit`` puts the
#: current folder on sys.path of irkit itself, so it could not show the workers' bug).
IRKIT = Path(sys.executable).with_name("irkit")


def corpus_logs(corpus: Path) -> list[str]:
    return [str(corpus / d) for d in EVTX_CORPUS_DIRS]


_STARTED: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_process_left() -> Iterator[None]:
    """A failed test leaves no irkit (nor its workers) running."""
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(process.pid).children(recursive=True):
                    child.kill()
            process.kill()
            process.communicate()


def start(*args: str, cwd: Path | None = None) -> subprocess.Popen[str]:
    """The command line as a running process (stdout and stderr captured)."""
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("IRKIT_DEBUG", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "irkit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env,
    )
    _STARTED.append(process)
    return process


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    """Poll until ``condition``; fail if the process ends first or it takes a minute."""
    deadline = time.monotonic() + 60
    while not condition():
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"the run ended before {what}: {err}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {what} after a minute")
        time.sleep(0.05)


def registered(case: Path) -> int:
    """Evidence files the case holds (a reader's snapshot: works while a parse writes)."""
    if not (case / "irkit.duckdb").exists():
        return 0
    with Case(case, read_only=True) as store:
        return int(store.db.execute("SELECT count(*) FROM evidence").fetchall()[0][0])


def workers_of(pid: int) -> list[psutil.Process]:
    """The parse worker processes of irkit ``pid``: the children of its fork server."""
    found: list[psutil.Process] = []
    try:
        children = psutil.Process(pid).children()
    except psutil.Error:
        return found
    for child in children:
        try:
            if "forkserver" in " ".join(child.cmdline()):
                found += child.children()
        except psutil.Error:
            continue
    return found


def distinct_logs(folder: Path, count: int) -> Path:
    """``count`` distinct copies of sysmon.evtx (one byte of padding differs)."""
    folder.mkdir()
    data = (DIRTY / "sysmon.evtx").read_bytes()
    for index in range(count):
        (folder / f"log{index:02}.evtx").write_bytes(data + bytes([index]))
    return folder


def slow_logs(folder: Path, count: int) -> int:
    """``count`` distinct, clean EVTX logs of about 12 MB (chunks of the bundled samples,
    tiled: python-evtx takes over a second of CPU on each); returns their records."""
    folder.mkdir()
    records = 0
    for index in range(count):
        size = (12 << 20) + index * 65536  # one chunk more each: no two are copies
        records += tile_evtx.tile(folder / f"log{index:02}.evtx", size, [EVIDENCE]).records
    return records


def busy_worker(pid: int, found: list[psutil.Process], skip: set[int]) -> Callable[[], bool]:
    """A condition: a worker of irkit ``pid`` (not in ``skip``) is well into a file."""

    def condition() -> bool:
        for worker in workers_of(pid):
            try:
                if worker.pid not in skip and sum(worker.cpu_times()[:2]) > 0.3:
                    found.append(worker)
                    return True
            except psutil.Error:
                continue
        return False

    return condition


# 1. Workers import irkit from where irkit was imported, not from the current folder.


def test_workers_ignore_an_irkit_folder_in_the_current_folder(tmp_path: Path) -> None:
    """`git clone … irkit`, then irkit run from the parent folder: every worker used to
    import the clone's folder as the irkit package and die (worker-died on every file)."""
    assert IRKIT.is_file(), "the irkit console script is installed with the package"
    (tmp_path / "irkit").mkdir()  # an empty folder is enough
    result = subprocess.run(
        [str(IRKIT), "parse", str(EVIDENCE), "--case", "case", "--json", "--workers", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == ExitCode.OK, result.stderr
    data = json.loads(result.stdout)
    assert data["files_parsed"] == 4 and data["events_added"] == 27
    assert "worker-died" not in result.stdout and "Traceback" not in result.stderr


def test_a_killed_worker_costs_no_file(tmp_path: Path) -> None:
    """The kernel kills a worker (out of memory): its files are parsed again, alone,
    and every file is in the case; it used to fail every file still queued."""
    records = slow_logs(tmp_path / "ev", 4)
    case = tmp_path / "case"
    process = start(
        "parse", str(tmp_path / "ev"), "--case", str(case), "--evtx-engine", "python-evtx"
    )
    victim: list[psutil.Process] = []
    wait_for(busy_worker(process.pid, victim, set()), process, "a worker parsing a file")
    victim[0].kill()
    _, err = process.communicate(timeout=300)
    assert process.returncode == ExitCode.OK, err
    assert "worker-died" not in err
    with Case(case, read_only=True) as store:
        assert store.count() == records
        assert store.db.execute("SELECT count(*) FROM evidence").fetchall() == [(4,)]


def test_a_file_that_kills_its_worker_twice_is_a_warning(tmp_path: Path) -> None:
    """A worker dies, and the file it parsed kills its worker again when parsed alone:
    that file is a `worker-died` warning, every other file is parsed."""
    records = slow_logs(tmp_path / "ev", 4)
    case = tmp_path / "case"
    process = start(
        "parse", str(tmp_path / "ev"), "--case", str(case), "--evtx-engine", "python-evtx", "--json"
    )
    first: list[psutil.Process] = []
    wait_for(busy_worker(process.pid, first, set()), process, "a worker parsing a file")
    before = {worker.pid for worker in workers_of(process.pid)}
    first[0].kill()
    alone: list[psutil.Process] = []
    wait_for(busy_worker(process.pid, alone, before), process, "the file parsed alone")
    alone[0].kill()
    out, err = process.communicate(timeout=300)
    assert process.returncode == ExitCode.PARTIAL, err
    data = json.loads(out)
    died = [
        (path, message)
        for path, messages in data["errors_by_file"].items()
        for message in messages
        if message.startswith("worker-died")
    ]
    assert len(died) == 1 and "again when it was parsed alone" in died[0][1]
    assert data["files_failed"] == 1 and data["files_parsed"] == 3
    lost = tile_evtx.readable_records(Path(died[0][0]).read_bytes())[0]
    assert data["events_added"] == records - lost


@pytest.mark.parametrize("command", ["parse", "triage"])
def test_when_every_worker_dies_the_run_fails_loudly(tmp_path: Path, command: str) -> None:
    """Workers killed as soon as they start: exit 1 with one line, not a run that goes
    on to say "findings: none" (triage) or exit 3 (parse)."""
    slow_logs(tmp_path / "ev", 3)
    case = ["--case", str(tmp_path / "case")]
    process = start(command, str(tmp_path / "ev"), *case, "--evtx-engine", "python-evtx")
    killed = 0
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        for worker in workers_of(process.pid):
            try:
                worker.kill()
                killed += 1
            except psutil.Error:
                continue
        time.sleep(0.01)
    _, err = process.communicate(timeout=60)
    assert killed, "no worker was seen"
    assert process.returncode == ExitCode.FATAL, err
    assert "irkit: error: parse workers died" in err
    assert "Traceback" not in err and "findings" not in err


# 3. An interrupted run keeps the files it finished.


class _InterruptAfter(Progress):
    """Ctrl-C lands as the ``count``-th file is done (a KeyboardInterrupt, as Python
    raises it for SIGINT, at a point where SIGINT can land)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.done: list[FileStats] = []

    def file_done(self, stats: FileStats) -> None:
        self.done.append(stats)
        if len(self.done) == self.count:
            raise KeyboardInterrupt


def test_ctrl_c_keeps_the_files_finished_before_it(tmp_path: Path) -> None:
    case = tmp_path / "case"
    evidence = distinct_logs(tmp_path / "ev", 6)
    options = ParseOptions(workers=1, flush_seconds=3600)  # nothing entered the case yet
    progress = _InterruptAfter(3)
    with pytest.raises(KeyboardInterrupt):
        parse_evidence([evidence], case, options, progress)
    finished = {stats.sha256 for stats in progress.done}
    with Case(case, read_only=True) as store:
        rows = store.db.execute(
            "SELECT sha256, records, (SELECT count(*) FROM events WHERE evidence_sha256 = "
            "e.sha256) FROM evidence e"
        ).fetchall()
        stopped = store.db.execute("SELECT summary->>'stopped' FROM runs").fetchall()
    assert {row[0] for row in rows} == finished and len(finished) == 3
    assert all(row[1] == row[2] == 358 for row in rows)
    assert stopped == [("interrupted",)]
    again = parse_evidence([evidence], case, ParseOptions(workers=1))
    assert again.files_already == 3 and again.files_parsed == 3
    assert again.events_added == 3 * 358


@pytest.mark.corpus
@pytest.mark.slow
def test_sigint_part_way_keeps_what_was_parsed(tmp_path: Path, corpus: Path) -> None:
    """Ctrl-C after some files of the corpus: exit 130, the finished files are in the
    case whole, the run is recorded as interrupted, and the rerun parses only the rest."""
    case = tmp_path / "case"
    logs = corpus_logs(corpus)
    args = ("parse", *logs, "--case", str(case), "--evtx-engine", "python-evtx", "-q")
    process = start(*args)
    wait_for(lambda: registered(case) > 0, process, "files in the case")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == ExitCode.INTERRUPTED, err
    assert "interrupted" in err and "Traceback" not in err
    with Case(case, read_only=True) as store:
        db = store.db
        evidence = db.execute(
            "SELECT path, records, (SELECT count(*) FROM events WHERE evidence_sha256 = "
            "e.sha256) FROM evidence e WHERE status <> 'failed'"
        ).fetchall()
        stopped = db.execute("SELECT summary->>'stopped' FROM runs").fetchall()
    assert evidence and sum(row[2] for row in evidence) > 0
    assert [row for row in evidence if row[1] != row[2]] == [], "a file is half in the case"
    assert stopped == [("interrupted",)]
    rerun = run_irkit("parse", *logs, "--case", str(case), "--json")
    data = json.loads(rerun.stdout)
    assert data["files_already_in_case"] == len(evidence)
    assert data["files_parsed"] == 305 - len(evidence)


# 5. A case can be read while a parse writes it.


@pytest.mark.corpus
@pytest.mark.slow
def test_a_case_is_read_while_a_parse_writes_it(tmp_path: Path, corpus: Path) -> None:
    """`irkit timeline` and `irkit findings` during a long parse of the same case show
    what is registered so far (they used to fail on DuckDB's lock); a second writer is
    refused in one line, naming the run that writes."""
    case = tmp_path / "case"
    process = start(
        "parse", *corpus_logs(corpus), "--case", str(case), "--evtx-engine", "python-evtx", "-q"
    )
    try:
        wait_for((case / "irkit.duckdb").exists, process, "the case store")
        rows = 0
        deadline = time.monotonic() + 120
        while not rows and process.poll() is None and time.monotonic() < deadline:
            timeline = run_irkit("timeline", str(case), "--format", "jsonl")
            assert timeline.returncode == ExitCode.OK, timeline.stderr
            assert "lock" not in timeline.stderr.lower()
            rows = len(timeline.stdout.splitlines())
        assert rows > 0 and process.poll() is None, "no events were seen during the parse"
        findings = run_irkit("findings", str(case))
        assert findings.returncode == ExitCode.OK, findings.stderr
        second = run_irkit("parse", str(EVIDENCE), "--case", str(case))
        assert second.returncode == ExitCode.FATAL
        assert f"another irkit (process {process.pid}) is writing the case" in second.stderr
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=120)
    assert process.returncode == ExitCode.INTERRUPTED


# 4. --recover on a case parsed without it.


def _events(case: Path) -> list[str]:
    result = run_irkit("timeline", str(case), "--format", "jsonl")
    assert result.returncode == ExitCode.OK, result.stderr
    return sorted(result.stdout.splitlines())


def test_recover_later_adds_what_a_recovering_parse_adds(tmp_path: Path) -> None:
    """`parse` then `parse --recover` (as the hint says) gives the events of a fresh
    `parse --recover`, keyed the same; a third run adds nothing."""
    later, fresh = tmp_path / "later", tmp_path / "fresh"
    plain = run_irkit("parse", str(DIRTY), "--case", str(later))
    assert f"irkit parse {DIRTY} --case {shlex.quote(str(later))} --recover" in " ".join(
        plain.stderr.split()
    )
    again = run_irkit("parse", str(DIRTY), "--case", str(later), "--recover", "--json")
    data = json.loads(again.stdout)
    assert data["files_already_in_case"] == 3 and data["files_recovered"] == 3
    assert data["events_added"] == 31 + 89
    run_irkit("parse", str(DIRTY), "--case", str(fresh), "--recover")
    assert _events(later) == _events(fresh)
    assert len(_events(later)) == 942
    third = run_irkit("parse", str(DIRTY), "--case", str(later), "--recover", "--json")
    assert third.returncode == ExitCode.OK, third.stderr
    data = json.loads(third.stdout)
    assert data["events_added"] == 0 and data["files_recovered"] == 0
    assert data["files_already_in_case"] == 3


# 7. Counts that add up.


def test_the_files_line_adds_up(tmp_path: Path) -> None:
    """found = parsed + already + copies + failed; an empty or random `.evtx` is counted
    as refused (it is a warning), other files as not recognised; --json names what each
    copy is a copy of."""
    evidence = tmp_path / "ev"
    (evidence / "sub").mkdir(parents=True)
    shutil.copy(EVIDENCE / "issue_38.evtx", evidence / "a.evtx")
    shutil.copy(EVIDENCE / "issue_38.evtx", evidence / "sub" / "copy.evtx")
    (evidence / "empty.evtx").write_bytes(b"")
    (evidence / "random.evtx").write_bytes(os.urandom(5000))
    (evidence / "notes.txt").write_text("not evidence\n")
    result = run_irkit("parse", str(evidence), "--case", str(tmp_path / "c"), "--json")
    data = json.loads(result.stdout)
    parts = ("files_parsed", "files_already_in_case", "files_copies", "files_failed")
    assert data["files_found"] == sum(data[k] for k in parts) == 2
    assert data["files_copies"] == 1
    assert data["copies"] == {str(evidence / "sub" / "copy.evtx"): str(evidence / "a.evtx")}
    assert data["files_refused"] == 2 and data["unrecognised_files"] == 1
    text = run_irkit("parse", str(evidence), "--case", str(tmp_path / "d"))
    summary = " ".join(text.stderr.split())
    assert "2 found: 1 parsed, 0 already in case, 1 copy of a file in this run, 0 failed" in (
        summary
    )
    assert "1 not recognised (skipped), 2 refused" in summary


@pytest.mark.corpus
def test_the_progress_records_are_the_summary_records(tmp_path: Path, corpus: Path) -> None:
    """The bar's record count ends where the summary's is (it counted some records twice)."""

    class Count(Progress):
        shown = 0

        def records(self, count: int) -> None:
            self.shown += count

    progress = Count()
    logs = [Path(p) for p in corpus_logs(corpus)]
    summary = parse_evidence(logs, tmp_path / "case", progress=progress)
    assert summary.records > 30_000
    assert progress.shown == summary.records == summary.events_added


def test_quiet_partial_run_names_the_first_file(tmp_path: Path) -> None:
    result = run_irkit("parse", str(DIRTY), "--case", str(tmp_path / "c"), "-q")
    assert result.returncode == ExitCode.PARTIAL
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    first = DIRTY / "System2.evtx"
    assert lines[0].startswith("irkit: partial: ")
    assert f"warnings in 3 files, first: {first}: " in lines[0]
    assert lines[0].endswith("(run without -q for the list)")


def test_hash_without_a_case_says_nothing_of_a_case(tmp_path: Path) -> None:
    alone = run_irkit("hash", str(EVIDENCE), "-o", str(tmp_path / "sums"))
    assert alone.returncode == ExitCode.OK, alone.stderr
    assert "in the case" not in alone.stderr
    cased = run_irkit("hash", str(EVIDENCE), "--case", str(tmp_path / "c"))
    assert "new in the case" in cased.stderr


@pytest.mark.corpus
def test_scan_summary_names_the_real_case(tmp_path: Path, corpus: Path) -> None:
    case = tmp_path / "my case"
    run_irkit("parse", str(corpus / "EVTX-ATTACK-SAMPLES"), "--case", str(case), "-q")
    result = run_irkit("scan", str(case))
    assert f"more: irkit findings {shlex.quote(str(case))}" in result.stderr
    assert "irkit findings CASE" not in result.stderr


# 10. What runs after the last file is shown.


def test_the_work_after_the_last_file_is_shown(tmp_path: Path) -> None:
    class Stages(Progress):
        def __init__(self) -> None:
            self.seen: list[str] = []

        def file_done(self, stats: FileStats) -> None:
            self.seen.append("file")

        def stage(self, what: str) -> None:
            self.seen.append(what)

    progress = Stages()
    parse_evidence([EVIDENCE], tmp_path / "c", ParseOptions(flush_seconds=3600), progress)
    assert progress.seen == [
        "file",
        "file",
        "file",
        "file",
        "storing the last 4 files",
        "recording the run",
    ]
