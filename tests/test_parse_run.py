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
    assert "findings" not in err and "internal error" not in err
    # Python's own fork server may print the traceback of a send its killed peer cut
    # (multiprocessing/forkserver.py, recvfds): never one from irkit's code.
    assert "/irkit/" not in "\n".join(
        line for line in err.splitlines() if line.lstrip().startswith("File ")
    ), err


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


# 3b. Ctrl-C at any moment: exit 130, no traceback, no hang, a case that opens.


def ignores_sigint(process: psutil.Process) -> bool:
    """Whether the kernel says ``process`` ignores SIGINT (``SigIgn`` in its status)."""
    try:
        status = Path(f"/proc/{process.pid}/status").read_text()
    except FileNotFoundError:  # gone: Ctrl-C (or its pool breaking) killed it
        return False
    mask = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("SigIgn:")), 16)
    return bool(mask & (1 << (signal.SIGINT - 1)))


def test_the_fork_server_and_the_workers_ignore_ctrl_c(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group, and the parent stops the workers itself.
    A worker that took it printed a KeyboardInterrupt traceback (and stopped its file);
    the fork server, hit while it imported the parsers, died with one."""
    slow_logs(tmp_path / "ev", 4)
    case = tmp_path / "case"
    engine = ("--evtx-engine", "python-evtx")  # over a second a file: the workers stay
    process = start("parse", str(tmp_path / "ev"), "--case", str(case), "-j", "2", *engine)
    server: list[psutil.Process] = []

    def fork_server() -> bool:
        for child in psutil.Process(process.pid).children():
            with contextlib.suppress(psutil.Error):
                if "forkserver" in " ".join(child.cmdline()):
                    server.append(child)
                    return True
        return False

    wait_for(fork_server, process, "the fork server")
    server[0].send_signal(signal.SIGINT)  # as early as it can be seen: still importing
    wait_for(lambda: len(workers_of(process.pid)) == 2, process, "two workers")
    workers = workers_of(process.pid)
    assert all(ignores_sigint(p) for p in (server[0], *workers))
    for worker in workers:
        worker.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=300)
    assert process.returncode == ExitCode.OK, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert registered(case) == 4


#: Case creation in a process of its own, cut short by Ctrl-C at its first line, then its
#: second, and so on (a KeyboardInterrupt raised where the line starts, as Python raises
#: it for SIGINT) until one creation gets through; prints how many were cut.
CREATION_CUT = """
import gc, sys
from pathlib import Path
from irkit.store.case import Case

base = Path(sys.argv[1])
lines, stop = 0, 0

def trace(frame, event, arg):
    global lines
    if event == "call":
        return trace if "/irkit/store/" in frame.f_code.co_filename else None
    if event == "line":
        lines += 1
        if lines == stop:
            raise KeyboardInterrupt
    return trace

while True:
    lines, stop = 0, stop + 1
    sys.settrace(trace)
    try:
        with Case(base / f"cut{stop:04}", create=True):
            pass
    except KeyboardInterrupt:
        continue
    finally:
        sys.settrace(None)
        gc.collect()
    break
print(stop - 1)
"""


def test_case_creation_cut_at_any_line_leaves_no_store_without_tables(tmp_path: Path) -> None:
    """Ctrl-C in the first second of a parse could leave a store without its tables:
    `irkit timeline` and `irkit findings` then failed with "internal error: Table with
    name parts does not exist". The store now appears whole, or not at all."""
    import re

    import duckdb

    from irkit.store.schema import DDL, STORE_NAME

    tables = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", " ".join(DDL)))

    result = subprocess.run(
        [sys.executable, "-c", CREATION_CUT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    cuts = int(result.stdout)
    assert cuts > 20  # every line of the creation, each cut once
    stores = 0
    for number in range(1, cuts + 1):
        root = tmp_path / f"cut{number:04}"
        if (root / STORE_NAME).exists():
            stores += 1
            db = duckdb.connect(str(root / STORE_NAME), read_only=True)
            try:
                found = {
                    row[0]
                    for row in db.execute("SELECT table_name FROM duckdb_tables()").fetchall()
                }
            finally:
                db.close()
            assert found >= tables, (number, sorted(tables - found))
            with Case(root, read_only=True) as store:  # what `irkit timeline` opens
                assert store.db.execute("SELECT count(*) FROM events").fetchall() == [(0,)]
        with Case(root, create=True):  # the next run takes the case as it is
            pass
    assert 0 < stores < cuts


def test_a_store_without_tables_reads_as_an_empty_case(tmp_path: Path) -> None:
    """A store an older irkit left without its tables (Ctrl-C as it created them)."""
    import duckdb

    case = tmp_path / "case"
    case.mkdir()
    db = duckdb.connect(str(case / "irkit.duckdb"))
    db.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    db.close()
    timeline = run_irkit("timeline", str(case), "-f", "jsonl")
    assert (timeline.returncode, timeline.stdout) == (ExitCode.OK, ""), timeline.stderr
    assert "0 events matched" in timeline.stderr
    findings = run_irkit("findings", str(case), "-f", "jsonl")
    assert findings.returncode == ExitCode.OK, findings.stderr
    assert run_irkit("parse", str(EVIDENCE), "--case", str(case), "-q").returncode == 0
    assert registered(case) == 4


def run_script(
    script: str, *args: str, module: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """A Python script in a process (and process group) of its own; killed, with its
    children, if it does not end in ``timeout`` seconds (a hang fails the test).
    ``module``: the script is written there and run as ``python -m irkit`` runs."""
    command = [sys.executable, "-c", script, *args]
    if module is not None:
        module.write_text(script)
        command = [sys.executable, "-m", module.stem, *args]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=module.parent if module is not None else None,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"still running {timeout:.0f} s after Ctrl-C: {err[-2000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


#: A parse whose parent gets Ctrl-C (a real SIGINT) while it holds the lock of one of its
#: futures, half-way into ``concurrent.futures.wait``.
HOLDING_A_LOCK = """
import os, signal, sys
from concurrent.futures import _base
from pathlib import Path
from irkit.ingest.options import ParseOptions
from irkit.ingest.parse import parse_evidence

enter = _base._AcquireFutures.__enter__.__code__
lines = 0

def trace(frame, event, arg):
    global lines
    if event == "call":
        return trace if frame.f_code is enter else None
    if event == "line":
        lines += 1
        if lines == 3:  # the loop's second pass: the first future's lock is held
            sys.settrace(None)
            os.kill(os.getpid(), signal.SIGINT)
    return trace

sys.settrace(trace)
try:
    parse_evidence([Path(sys.argv[1])], Path(sys.argv[2]), ParseOptions(workers=2))
except KeyboardInterrupt:
    print("interrupted")
"""


def test_ctrl_c_while_a_future_is_locked_does_not_hang(tmp_path: Path) -> None:
    """Python raised KeyboardInterrupt wherever the parent was, even inside
    `concurrent.futures.wait` with a future's lock taken: the pool's thread then waited
    for that lock for ever, and the parent for the pool (a run that never ended)."""
    evidence = distinct_logs(tmp_path / "ev", 6)
    result = run_script(HOLDING_A_LOCK, str(evidence), str(tmp_path / "case"))
    assert result.stdout.strip() == "interrupted", result.stderr
    assert "Traceback" not in result.stderr


#: A command whose Ctrl-C lands in code Python runs from a string (``exec`` of source:
#: every dataclass and namedtuple being defined, C extensions' start-up code).
FROM_A_STRING = """
import sys
import rich.console, rich.text  # as on a run's way: the line said then defines nothing
import typer
from irkit.cli.common import errors_handled

@errors_handled
def command(debug: bool = False) -> None:
    exec("raise KeyboardInterrupt")

try:
    command()
except typer.Exit as done:
    sys.exit(done.exit_code)
"""

#: A command whose Ctrl-C lands in a weakref callback, where Python cannot raise it.
IN_A_CALLBACK = """
import sys, time, weakref
import typer
from irkit.cli.common import errors_handled

class Thing:
    pass

def callback(ref):
    raise KeyboardInterrupt

@errors_handled
def command(debug: bool = False) -> None:
    thing = Thing()
    ref = weakref.ref(thing, callback)
    del thing
    time.sleep(0.5)
    print("went on")

try:
    command()
except typer.Exit as done:
    sys.exit(done.exit_code)
"""

#: Ctrl-C while the command line itself is imported (before any command runs).
WHILE_LOADING = """
import sys

class Cut:
    def find_spec(self, name, path=None, target=None):
        if name == "typer":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, Cut())
from irkit.cli import main
"""


@pytest.mark.parametrize(
    ("script", "where"),
    [(FROM_A_STRING, "exec"), (IN_A_CALLBACK, "callback"), (WHILE_LOADING, "start-up")],
)
def test_ctrl_c_anywhere_exits_130_with_one_line(script: str, where: str, tmp_path: Path) -> None:
    """Measured with tests/bench/ctrl_c.py: a Ctrl-C that landed in code run from a string
    ended the process by SIGINT (exit -2) after `irkit: interrupted`, whatever exit code
    irkit asked for; one in a weakref callback (the import system's) was printed as
    "Exception ignored" and lost, the run going on to its end; one while the command line
    was imported was a traceback and exit -2."""
    result = run_script(script, module=tmp_path / "interrupted_command.py")
    assert result.returncode == ExitCode.INTERRUPTED, (where, result.stderr)
    assert result.stderr.strip() == "irkit: interrupted", (where, result.stderr)
    assert "went on" not in result.stdout


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
