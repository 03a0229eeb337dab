"""The command line as a process: exit codes, one-line errors, bad input, --json."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from irkit.errors import ExitCode
from irkit.ingest.discovery import Candidate
from irkit.ingest.options import ParseOptions
from irkit.ingest.worker import parse_file
from irkit.store.case import Case

from .conftest import DATA, DIRTY, EVIDENCE, run_irkit


def summary_of(result: object) -> dict[str, object]:
    data: dict[str, object] = json.loads(result.stdout)  # type: ignore[attr-defined]
    return data


def test_help_is_fast_and_lists_commands() -> None:
    started = time.perf_counter()
    result = run_irkit("--help")
    elapsed = time.perf_counter() - started
    assert result.returncode == 0
    for command in ("triage", "parse", "timeline", "crosscheck"):
        assert command in result.stdout
    assert elapsed < 3, f"irkit --help took {elapsed:.2f}s"  # process start included


def test_clean_evidence_exits_ok(tmp_path: Path) -> None:
    result = run_irkit("parse", str(EVIDENCE), "--case", str(tmp_path / "case"), "--json")
    assert result.returncode == ExitCode.OK, result.stderr
    data = summary_of(result)
    assert data["records"] == 27
    assert data["files_parsed"] == 4
    assert data["warnings"] == 0
    assert data["exit_code"] == 0
    for key in ("events_per_second", "peak_rss_bytes", "skipped_chunks", "skipped_records"):
        assert key in data


def test_reparse_adds_nothing(tmp_path: Path) -> None:
    case = str(tmp_path / "case")
    first = summary_of(run_irkit("parse", str(EVIDENCE), "--case", case, "--json"))
    second = summary_of(run_irkit("parse", str(EVIDENCE), "--case", case, "--json"))
    assert first["events_added"] == 27
    assert second["events_added"] == 0
    assert second["files_already_in_case"] == 4
    out = run_irkit("timeline", case, "--format", "jsonl")
    assert len(out.stdout.splitlines()) == 27


def test_same_file_twice_is_one_evidence(tmp_path: Path) -> None:
    evidence = tmp_path / "ev"
    evidence.mkdir()
    for name in ("b.bin", "a.evtx", "c.evtx"):  # a copy without .evtx: content decides
        shutil.copy(EVIDENCE / "new-user-security.evtx", evidence / name)
    data = summary_of(run_irkit("parse", str(evidence), "--case", str(tmp_path / "c"), "--json"))
    assert data["files_found"] == 3
    assert data["events_added"] == 4
    assert data["files_already_in_case"] == 0
    assert data["files_copies"] == 2
    import duckdb

    with duckdb.connect(str(tmp_path / "c" / "irkit.duckdb"), read_only=True) as db:
        paths = db.execute("SELECT path FROM evidence_paths ORDER BY path").fetchall()
    # The copy parsed is the first by path, whichever worker finishes first.
    out = run_irkit("timeline", str(tmp_path / "c"), "--format", "jsonl")
    parsed = {json.loads(line)["evidence"] for line in out.stdout.splitlines()}
    assert [Path(p[0]).name for p in paths] == ["a.evtx", "b.bin", "c.evtx"]
    assert [Path(p).name for p in parsed] == ["a.evtx"]


def test_dirty_evidence_is_partial_with_named_warnings(tmp_path: Path) -> None:
    result = run_irkit("parse", str(DIRTY), "--case", str(tmp_path / "case"), "--json")
    assert result.returncode == ExitCode.PARTIAL
    data = summary_of(result)
    assert data["records"] == 358 + 270 + 194
    assert data["skipped_chunks"] == 8 + 12
    errors = data["errors_by_file"]
    assert isinstance(errors, dict)
    assert any(path.endswith("sysmon.evtx") for path in errors)
    assert "Traceback" not in result.stderr


def test_summary_is_rendered_without_json(tmp_path: Path) -> None:
    result = run_irkit("parse", str(DIRTY), "--case", str(tmp_path / "case"))
    assert result.returncode == ExitCode.PARTIAL
    assert result.stdout == ""  # data on stdout only with --json
    assert "warnings by file" in result.stderr
    assert "sysmon.evtx" in result.stderr
    assert "peak memory" in result.stderr


def make_bad_inputs(root: Path) -> dict[str, str]:
    """Real files broken the ways evidence breaks; returns name -> expected warning kind."""
    source = (DIRTY / "System2.evtx").read_bytes()[: 4096 + 2 * 65536]
    (root / "text.evtx").write_text("this is not an event log\n")
    (root / "empty.evtx").write_bytes(b"")
    (root / "truncated.evtx").write_bytes(source[: 4096 + 65536 + 3000])
    zeroed = bytearray(source)
    zeroed[4096 + 65536 : 4096 + 2 * 65536] = bytes(65536)
    (root / "zeroed-chunk.evtx").write_bytes(bytes(zeroed))
    flipped = bytearray(source)
    flipped[4096 + 4000] ^= 0xFF  # inside chunk 0's records
    (root / "bad-checksum.evtx").write_bytes(bytes(flipped))
    (root / "header-only.evtx").write_bytes(source[:4096])
    return {
        "text.evtx": "unrecognised",
        "empty.evtx": "unrecognised",
        "bad-checksum.evtx": "bad-checksum",
        "zeroed-chunk.evtx": "zeroed-chunk",
        "truncated.evtx": "truncated",
        "header-only.evtx": "truncated",
    }


def test_bad_inputs_are_counted_warnings_and_the_run_goes_on(tmp_path: Path) -> None:
    evidence = tmp_path / "ev"
    evidence.mkdir()
    expected = make_bad_inputs(evidence)
    shutil.copy(EVIDENCE / "issue_38.evtx", evidence / "good.evtx")
    result = run_irkit("parse", str(evidence), "--case", str(tmp_path / "case"), "--json")
    assert result.returncode == ExitCode.PARTIAL, result.stderr
    assert "Traceback" not in result.stderr
    data = summary_of(result)
    errors = data["errors_by_file"]
    assert isinstance(errors, dict)
    for name, kind in expected.items():
        messages = errors.get(str(evidence / name))
        assert messages, f"no warning for {name}: {errors}"
        assert any(m.startswith(kind) for m in messages), (name, messages)
    timeline = run_irkit("timeline", str(tmp_path / "case"), "--format", "jsonl")
    events = [json.loads(line) for line in timeline.stdout.splitlines()]
    by_file: dict[str, int] = {}
    for event in events:
        name = Path(event["evidence"]).name
        by_file[name] = by_file.get(name, 0) + 1
    assert by_file["good.evtx"] == 1
    intact = by_file["bad-checksum.evtx"]  # every record of the two whole chunks
    assert 0 < by_file["zeroed-chunk.evtx"] < intact  # chunk 1's records are gone, chunk 0's read
    assert 0 < by_file["truncated.evtx"] < intact
    assert "header-only.evtx" not in by_file


def test_file_vanishing_mid_run_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "gone.evtx"
    shutil.copy(EVIDENCE / "issue_38.evtx", path)
    candidate = Candidate(path, str(path), path.stat().st_size, "evtx")
    path.unlink()
    stats = parse_file(candidate, str(tmp_path / "spool"), frozenset(), ParseOptions())
    assert stats.status == "failed"
    assert [w.kind for w in stats.warnings] == ["vanished"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable directories")
def test_unreadable_directory_is_a_warning(tmp_path: Path) -> None:
    evidence = tmp_path / "ev"
    locked = evidence / "locked"
    locked.mkdir(parents=True)
    shutil.copy(EVIDENCE / "issue_38.evtx", evidence / "good.evtx")
    locked.chmod(0)
    try:
        result = run_irkit("parse", str(evidence), "--case", str(tmp_path / "c"), "--json")
    finally:
        locked.chmod(0o755)
    assert result.returncode == ExitCode.PARTIAL
    assert "unreadable-directory" in result.stdout


def test_unreadable_directory_walk_error_is_counted(tmp_path: Path) -> None:
    """As root nothing is unreadable, so drive the walk's error path with a real OSError."""
    from irkit.ingest.discovery import _walk_error
    from irkit.model import ParseWarning

    found: list[ParseWarning] = []
    try:
        list((tmp_path / "no-such-dir").iterdir())
    except OSError as exc:
        _walk_error(found)(exc)
    assert [w.kind for w in found] == ["unreadable-directory"]


def test_usage_error_exit_code() -> None:
    result = run_irkit("parse")
    assert result.returncode == ExitCode.USAGE
    result = run_irkit("parse", str(EVIDENCE), "--evtx-engine", "nope", "--case", "/tmp/x-irkit")
    assert result.returncode == ExitCode.USAGE
    assert "Traceback" not in result.stderr


def test_fatal_errors_are_one_line_with_a_hint(tmp_path: Path) -> None:
    result = run_irkit("timeline", str(tmp_path))
    assert result.returncode == ExitCode.FATAL
    assert "is not an irkit case" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_irkit("parse", str(tmp_path / "missing"), "--case", str(tmp_path / "c"))
    assert result.returncode == ExitCode.FATAL
    assert "no such file or directory" in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run_irkit("timeline", str(tmp_path), "--debug")
    assert result.returncode == ExitCode.FATAL
    assert "Traceback" in result.stderr


def test_output_inside_evidence_is_refused(evidence_copy: Path) -> None:
    result = run_irkit("triage", str(evidence_copy), "--out", str(evidence_copy / "out"))
    assert result.returncode == ExitCode.USAGE
    assert "inside the evidence" in result.stderr
    assert not (evidence_copy / "out").exists()


def test_triage_writes_timeline_and_leaves_evidence_untouched(
    evidence_copy: Path, tmp_path: Path
) -> None:
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in evidence_copy.iterdir()}
    out = tmp_path / "out"
    result = run_irkit("triage", str(evidence_copy), "--out", str(out))
    assert result.returncode == ExitCode.OK, result.stderr
    assert (out / "timeline.csv").is_file()
    assert "timeline:" in result.stderr
    with (out / "timeline.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    by_source: dict[str, set[str]] = {}
    for row in rows[1:]:
        by_source.setdefault(row[4], set()).add(row[9])
    assert sum(1 for row in rows if row[4] == "evtx") == 27
    # Every file and the folder itself as file events, the logs with their parse sha256.
    assert by_source["file"] == {str(evidence_copy), *(str(p) for p in evidence_copy.iterdir())}
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in evidence_copy.iterdir()}
    assert after == before


def test_terminal_text_is_escaped(tmp_path: Path) -> None:
    """Rich markup and ANSI sequences inside evidence never reach the terminal."""
    from irkit.cli.common import safe_text

    text = safe_text("[bold red]x[/] \x1b[31mred\x1b[0m")
    assert text.plain == "[bold red]x[/] \\x1b[31mred\\x1b[0m"
    assert not text.spans


def test_table_output_escapes_markup_and_ansi(tmp_path: Path) -> None:
    """An event whose text carries rich markup and an ANSI escape prints them as text."""

    case = tmp_path / "case"
    assert run_irkit("parse", str(EVIDENCE / "issue_38.evtx"), "--case", str(case)).returncode == 0
    hostile = "[bold red]PWNED[/] \x1b[2J\x1b[31mred"
    from irkit.store.case import Case

    with Case(case) as store:  # rewrite the one event part with hostile text
        (name,) = store.db.execute("SELECT file FROM parts").fetchone()
        part = store.events_dir / name
        store.db.execute(
            f"COPY (SELECT * REPLACE (? AS message, ? AS host) FROM read_parquet('{part}')) "
            f"TO '{part}.new' (FORMAT parquet)",
            [hostile, "[link=x]h[/link]"],
        )
    Path(f"{part}.new").replace(part)
    result = run_irkit("timeline", str(case), "--format", "table")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert "[bold red]PWNED[/]" in result.stdout
    assert "\\x1b[2J" in result.stdout


def test_crosscheck_lists_disagreeing_files(tmp_path: Path) -> None:
    result = run_irkit("crosscheck", str(DIRTY), "--json")
    assert result.returncode == ExitCode.OK, result.stderr
    report = json.loads(result.stdout)
    assert report["files"] == 3
    rows = {Path(r["path"]).name: r for r in report["disagree"]}
    # python-evtx reads on past damage and into the cut chunk; pyevtx-rs stops there.
    assert rows["System2.evtx"]["evtx_records"] == 194
    assert rows["System2.evtx"]["python_evtx_records"] == 283
    assert rows["sample_with_a_bad_chunk_magic.evtx"]["only_python_evtx"] == 31
    assert "sysmon.evtx" not in rows
    assert all(r["differing"] == 0 for r in rows.values())


def test_parse_with_cross_check_and_the_python_engine(tmp_path: Path) -> None:
    result = run_irkit(
        "parse",
        str(DIRTY),
        "--case",
        str(tmp_path / "c"),
        "--json",
        "--cross-check",
        "--evtx-engine",
        "python-evtx",
    )
    assert result.returncode == ExitCode.PARTIAL, result.stderr
    data = json.loads(result.stdout)
    assert data["records"] == 358 + 301 + 283
    assert data["cross_check"]["files"] == 3
    assert len(data["cross_check"]["disagree"]) == 2


def test_sigterm_stops_cleanly_without_orphans(tmp_path: Path) -> None:
    """A killed run (a script's timeout) exits 130 with one line and leaves no workers."""
    import signal
    import subprocess
    import sys

    import psutil

    evidence = tmp_path / "ev"
    evidence.mkdir()
    data = (DIRTY / "sysmon.evtx").read_bytes()
    for index in range(80):  # distinct copies (one byte of padding differs): no dedup
        (evidence / f"copy{index}.evtx").write_bytes(data + bytes([index]))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "irkit",
            "parse",
            str(evidence),
            "--case",
            str(tmp_path / "c"),
            "--evtx-engine",
            "python-evtx",
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    children: list[psutil.Process] = []
    # forkserver, resource tracker and two workers; a TERM while a worker is still being
    # spawned makes that worker print a traceback of its own (see the closing note).
    while time.monotonic() < deadline and len(children) < 4:
        time.sleep(0.2)
        children = psutil.Process(process.pid).children(recursive=True)
    assert len(children) >= 4, "workers did not start"
    time.sleep(1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == ExitCode.INTERRUPTED
    assert "interrupted" in stderr and "Traceback" not in stderr
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


def test_recover_adds_what_only_python_evtx_reads(tmp_path: Path) -> None:
    plain = run_irkit("parse", str(DIRTY), "--case", str(tmp_path / "a"))
    assert "--recover" in plain.stderr  # the hint on damaged logs
    result = run_irkit("parse", str(DIRTY), "--case", str(tmp_path / "b"), "--json", "--recover")
    assert result.returncode == ExitCode.PARTIAL, result.stderr
    data = json.loads(result.stdout)
    # pyevtx-rs: 358 + 270 + 194; python-evtx reads 31 more past zeroed records and 89
    # more in System2's cut last chunk (the same counts irkit crosscheck reports).
    assert data["records"] == data["events_added"] == 358 + 301 + 283
    recovered = {
        Path(path).name: [m for m in messages if m.startswith("recovered")]
        for path, messages in data["errors_by_file"].items()
    }
    assert recovered["System2.evtx"] == [
        "recovered: 89 records past the damage were recovered with python-evtx"
    ]
    assert recovered["sysmon.evtx"] == []
    timeline = run_irkit("timeline", str(tmp_path / "b"), "--format", "jsonl")
    records = [json.loads(line)["record"] for line in timeline.stdout.splitlines()]
    assert len(records) == 942


def _scan_started(process: subprocess.Popen[str], timeout: float = 120) -> bool:
    """Wait until triage's parse workers have come and gone: the scan is running."""
    import psutil

    deadline = time.monotonic() + timeout
    workers_seen = False
    while time.monotonic() < deadline and process.poll() is None:
        try:
            children = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return False
        # forkserver and resource tracker stay; more than those are parse workers
        if len(children) > 2:
            workers_seen = True
        elif workers_seen:
            return True
        time.sleep(0.05)
    return False


def _triage(corpus: Path, case: Path) -> subprocess.Popen[str]:
    import sys

    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "irkit",
            "triage",
            str(corpus / "EVTX-ATTACK-SAMPLES"),
            "--sigma",
            str(corpus / "sigma"),
            "--case",
            str(case),
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )


@pytest.fixture(scope="module")
def triage_scan_seconds(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> float:
    """How long triage runs after its parse on this machine (the scan, then the exports):
    the Ctrl-C below lands at fractions of it, whatever the machine's speed (a fixed
    4.5 s came after the end once the scan got faster, #18)."""
    process = _triage(corpus, tmp_path_factory.mktemp("timed") / "case")
    if not _scan_started(process):
        process.kill()
        pytest.fail(f"the parse did not finish: {process.communicate()[1]}")
    started = time.monotonic()
    process.communicate(timeout=600)
    return time.monotonic() - started


@pytest.mark.corpus
@pytest.mark.parametrize("fraction", [0.15, 0.4, 0.65])
def test_ctrl_c_during_triage_scan_is_interrupted_not_an_internal_error(
    corpus: Path, tmp_path: Path, fraction: float, triage_scan_seconds: float
) -> None:
    """DuckDB turns Ctrl-C during a query into RuntimeError('Query interrupted'); triage
    must still say 'interrupted' and exit 130, as parse and scan alone do.

    Measured before the fix, a signal this long after the parse: 1-3 s into the heuristics
    gave 'internal error' (exit 1), 4 s into the Sigma rules a swallowed rule (exit 3),
    later the timeline export a 'not valid SQL' usage error (exit 2). The signal lands at
    ``fraction`` of the time triage takes after its parse here: the heuristics, Sigma,
    the later part of the run."""
    import signal

    process = _triage(corpus, tmp_path / "case")
    try:
        if not _scan_started(process):
            process.kill()
            pytest.fail(f"the parse did not finish: {process.communicate()[1]}")
        time.sleep(fraction * triage_scan_seconds)
        assert process.poll() is None, "triage finished before the signal"
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == ExitCode.INTERRUPTED, stderr
    assert "irkit: interrupted" in stderr
    assert "Traceback" not in stderr and "internal error" not in stderr


def test_a_query_cut_by_ctrl_c_is_recognised_as_an_interrupt() -> None:
    """The forms DuckDB gives Ctrl-C, bare or wrapped in another error, are interrupts."""
    from irkit.errors import IrkitError, is_interrupt

    assert is_interrupt(RuntimeError("Query interrupted"))
    assert is_interrupt(KeyboardInterrupt())
    import duckdb

    assert is_interrupt(duckdb.InterruptException("INTERRUPT Error: Interrupted!"))
    try:
        try:
            raise RuntimeError("Query interrupted")
        except RuntimeError as exc:
            raise IrkitError("SQL failed: Query interrupted") from exc
    except IrkitError as wrapped:
        assert is_interrupt(wrapped)
    assert not is_interrupt(RuntimeError("Binder Error: column x not found"))
    assert not is_interrupt(IrkitError("SQL failed"))


# -- -q names what made a run partial; the --recover hint; progress after the parse ----


def bad_ioc_list(folder: Path) -> Path:
    """An IOC list with one line that is no hash (a ``bad-ioc`` warning) and one hash."""
    iocs = folder / "iocs.txt"
    iocs.write_text("not-a-digest;no hash on this line\n" + "0" * 64 + ";nothing has this\n")
    return iocs


def only_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("irkit: partial: "), lines[0]
    assert lines[0].endswith(" (run without -q for the list)"), lines[0]
    return lines[0]


def test_quiet_partial_triage_names_the_first_file_and_warning(tmp_path: Path) -> None:
    """-q and exit 3: one line naming the first file and warning kind, from the parse,
    else the hashing, else the scan (it used to print nothing at all)."""
    parsed = run_irkit("triage", str(DIRTY), "--case", str(tmp_path / "a"), "--no-scan", "-q")
    assert parsed.returncode == ExitCode.PARTIAL, parsed.stderr
    line = only_line(parsed)
    assert f" warnings in 3 files, first: {DIRTY / 'System2.evtx'}: truncated " in line
    iocs = bad_ioc_list(tmp_path)
    hashed = run_irkit(
        "triage", str(EVIDENCE), "-c", str(tmp_path / "b"), "--ioc", str(iocs), "--no-scan", "-q"
    )
    assert hashed.returncode == ExitCode.PARTIAL, hashed.stderr
    assert f"1 warnings in 1 files, first: {iocs}: bad-ioc " in only_line(hashed)
    rule = tmp_path / "broken.yml"
    rule.write_text("title: [not closed\n")
    scanned = run_irkit(
        "triage", str(EVIDENCE), "-c", str(tmp_path / "c"), "--sigma", str(rule), "-q"
    )
    assert scanned.returncode == ExitCode.PARTIAL, scanned.stderr
    assert f"first: {rule}: rule-file-error " in only_line(scanned)
    clean = run_irkit("triage", str(EVIDENCE), "-c", str(tmp_path / "d"), "--no-scan", "-q")
    assert (clean.returncode, clean.stderr) == (ExitCode.OK, "")


def test_quiet_partial_hash_names_the_first_file_and_warning(tmp_path: Path) -> None:
    iocs = bad_ioc_list(tmp_path)
    result = run_irkit("hash", str(EVIDENCE), "--ioc", str(iocs), "-o", str(tmp_path / "s"), "-q")
    assert result.returncode == ExitCode.PARTIAL, result.stderr
    assert f"1 warnings in 1 files, first: {iocs}: bad-ioc " in only_line(result)


def test_triage_recover_hint_names_the_evidence(tmp_path: Path) -> None:
    case = tmp_path / "my case"
    result = run_irkit("triage", str(DIRTY), "--case", str(case), "--no-scan")
    assert result.returncode == ExitCode.PARTIAL, result.stderr
    shown = " ".join(result.stderr.split())  # as printed, whatever the wrapping
    assert f"`irkit parse {DIRTY} --case '{case}' --recover`" in shown
    assert "EVIDENCE..." not in shown


def big_bodyfile(folder: Path, lines: int) -> Path:
    """A bodyfile of ``lines`` files (four events each): a long timeline, parsed fast."""
    folder.mkdir()
    with (folder / "big.body").open("w") as handle:
        for i in range(lines):
            times = "|".join(str(1_600_000_000 + i * 7 + k) for k in range(4))
            handle.write(
                f"0|/home/u/file{i:06}.txt|{1000 + i}|r/rrw-r--r--|1000|1000|{i}|{times}\n"
            )
    return folder


def test_triage_shows_the_export_and_hashing_on_a_terminal_only(tmp_path: Path) -> None:
    """The timeline export (seconds on a big case) and the hashing had no progress: the
    terminal stayed blank after the scan. Rows written of the case's count, time left."""
    from .test_scan_ux import _on_terminal

    evidence = big_bodyfile(tmp_path / "ev", 12_000)
    code, shown = _on_terminal("triage", str(evidence), "-c", str(tmp_path / "a"), "--no-scan")
    assert code == ExitCode.OK, shown
    assert re.search(r"writing timeline\.csv .*\d+/48,008 rows .*left", shown), shown
    assert "hashing files" in shown
    assert "timeline: " in shown  # the summary follows
    code, quiet = _on_terminal("triage", str(evidence), "-c", str(tmp_path / "b"), "-q")
    assert (code, quiet.strip()) == (ExitCode.OK, "")
    piped = run_irkit("triage", str(evidence), "-c", str(tmp_path / "c"), "--no-scan")
    assert "writing timeline.csv" not in piped.stderr and "hashing files" not in piped.stderr
    assert "timeline: " in piped.stderr


def test_hash_shows_its_progress_on_a_terminal_only(tmp_path: Path) -> None:
    from .test_scan_ux import _on_terminal

    tree = tmp_path / "t"
    tree.mkdir()
    block = os.urandom(2 << 20)
    for index in range(48):  # long enough to be drawn; the bar advances file by file
        (tree / f"f{index:02}.bin").write_bytes(block)
    code, shown = _on_terminal("hash", str(tree), "-o", str(tmp_path / "sums"))
    assert code == ExitCode.OK, shown
    assert re.search(r"hashing files .*MB read", shown), shown
    piped = run_irkit("hash", str(tree), "-o", str(tmp_path / "sums"))
    assert "hashing files" not in piped.stderr


# -- evidence is named by its absolute path in the case -------------------------------


def evidence_paths(case: Path) -> set[str]:
    """Every path the case names evidence by: evidence rows, their paths, events, warnings."""
    with Case(case, read_only=True) as store:
        db = store.db
        rows = db.execute(
            "SELECT path FROM evidence UNION SELECT path FROM evidence_paths "
            "UNION SELECT evidence FROM events UNION SELECT record FROM events "
            "WHERE source = 'file' UNION SELECT artifact FROM events WHERE source = 'file' "
            "UNION SELECT path FROM warnings"
        ).fetchall()
    return {row[0] for row in rows if row[0]}


def test_parse_from_a_relative_path_stores_absolute_paths(tmp_path: Path) -> None:
    """`irkit parse evidence` run in tests/data stored `evidence/…`: useless to `irkit
    verify`, YARA over the case's files, or a responder in another folder."""
    case = tmp_path / "c"
    result = run_irkit("parse", "evidence", "../data/dirty", "--case", str(case), cwd=DATA)
    assert result.returncode == ExitCode.PARTIAL, result.stderr
    expected = {str(p) for p in (*EVIDENCE.iterdir(), *DIRTY.iterdir())}
    assert evidence_paths(case) == expected
    again = run_irkit("parse", str(EVIDENCE), "--case", str(case), "--json")
    assert summary_of(again)["files_already_in_case"] == 4
    assert evidence_paths(case) == expected  # the same files, named the same way


def test_hash_from_a_relative_path_stores_absolute_paths_and_lists_them_as_typed(
    tmp_path: Path,
) -> None:
    tree = tmp_path / "d"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("a\n")
    (tree / "sub" / "b.txt").write_text("b\n")
    iocs = tmp_path / "iocs.txt"
    iocs.write_text(hashlib.sha256(b"a\n").hexdigest() + ";planted\n")
    args = ("hash", "d", "--case", "c", "-o", "sums", "--bodyfile", "body", "--ioc", "iocs.txt")
    result = run_irkit(*args, cwd=tmp_path)
    assert result.returncode == ExitCode.FINDINGS, result.stderr
    every = {str(tree), str(tree / "a.txt"), str(tree / "sub"), str(tree / "sub" / "b.txt")}
    assert evidence_paths(tmp_path / "c") == every
    findings = run_irkit("findings", str(tmp_path / "c"), "-f", "jsonl").stdout.splitlines()
    assert [json.loads(line)["evidence"] for line in findings] == [str(tree / "a.txt")]
    # What the responder reads and `sha256sum -c` checks keeps the paths as typed.
    listed = (tmp_path / "sums").read_text().splitlines()
    assert [line.split("  ", 1)[1] for line in listed] == ["d/a.txt", "d/sub/b.txt"]
    body = [line.split("|")[1] for line in (tmp_path / "body").read_text().splitlines()]
    assert body == ["d", "d/a.txt", "d/sub", "d/sub/b.txt"]
    again = run_irkit("hash", str(tree), "--case", str(tmp_path / "c"), "--json")
    assert json.loads(again.stdout)["events_added"] == 0  # the same files, named the same way


def test_triage_names_evidence_one_way_however_it_is_typed(tmp_path: Path) -> None:
    """The same evidence typed relative, then absolute: the case, timeline.csv and
    findings.csv are the same, byte for byte (the relative run used to name every file
    `ev/…`, the second run added each file's events again under `/…/ev/…`)."""
    shutil.copytree(EVIDENCE, tmp_path / "ev")
    first = run_irkit("triage", "ev", "--case", "c", cwd=tmp_path)
    assert first.returncode == ExitCode.OK, first.stderr
    out = tmp_path / "c"
    before = {name: (out / name).read_bytes() for name in ("timeline.csv", "findings.csv")}
    assert f",{tmp_path / 'ev' / 'new-user-security.evtx'}," in before["timeline.csv"].decode()
    assert (out / "hashes.sha256").read_text().split("  ")[1].startswith("ev/")
    second = run_irkit("triage", str(tmp_path / "ev"), "--case", str(out), "--json")
    assert second.returncode == ExitCode.OK, second.stderr
    data = summary_of(second)
    assert data["events_added"] == 0 and data["hash"]["events_added"] == 0  # type: ignore[index]
    after = {name: (out / name).read_bytes() for name in ("timeline.csv", "findings.csv")}
    assert after == before


def test_a_collection_typed_relative_is_named_absolute_and_still_checked(tmp_path: Path) -> None:
    """A collection folder typed relative: its files are named absolute in the case, and
    one whose sha256 is not the manifest's is still a collection-mismatch warning."""
    files = tmp_path / "coll" / "files"
    files.mkdir(parents=True)
    shutil.copy(EVIDENCE / "new-user-security.evtx", files / "good.evtx")
    shutil.copy(EVIDENCE / "issue_38.evtx", files / "altered.evtx")
    good = hashlib.sha256((files / "good.evtx").read_bytes()).hexdigest()
    when = "2024-05-01T00:00:00Z"
    manifest = {
        "format": "irkit-collection",
        "collection_id": "c-1",
        "files": [
            {"stored_path": "files/good.evtx", "collected_utc": when, "sha256": good},
            {"stored_path": "files/altered.evtx", "collected_utc": when, "sha256": "0" * 64},
        ],
    }
    (tmp_path / "coll" / "manifest.json").write_text(json.dumps(manifest))
    result = run_irkit("parse", "coll", "--case", "case", "--json", cwd=tmp_path)
    assert result.returncode == ExitCode.PARTIAL, result.stderr
    errors = summary_of(result)["errors_by_file"]
    assert isinstance(errors, dict)
    altered = str(files / "altered.evtx")
    assert any(m.startswith("collection-mismatch") for m in errors[altered]), errors
    assert {str(files / "good.evtx"), altered} <= evidence_paths(tmp_path / "case")
    with Case(tmp_path / "case", read_only=True) as store:
        paths = store.db.execute("SELECT path FROM collections").fetchall()
    assert paths == [(str(tmp_path / "coll"),)]
