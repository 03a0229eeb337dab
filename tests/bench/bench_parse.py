"""Benchmark ``irkit parse`` against its ceiling and its peers, all in one run.

Usage: ``python tests/bench/bench_parse.py [--big-size 1G] [--repeat 3] [--json-out FILE]``

Every figure is measured in this run, on the same files, so ratios hold on a shared,
noisy machine; each row is the median of its repeats (ceiling and irkit repeats are
interleaved; the slow python-evtx and plaso rows run as a block beside them). Every
measured command runs as a child process: wall time is taken outside it, and memory is
watched from outside too (psutil every 0.2 s for the summed RSS of the whole process
tree; ``wait4`` rusage of every process of the tree for the exact largest single-process
peak and the CPU seconds, the benchmark being the tree's child subreaper so no worker
escapes it).

Rows:

1. ceiling: pyevtx-rs ``records_json()`` + ``orjson.loads``, one process, one thread;
2. ``irkit parse`` end to end (fresh case each repeat), on the same distinct files;
3. ``irkit parse --evtx-engine python-evtx`` on the same files; and, for scale, the
   python-evtx library itself (``record.xml()``) on a small subset against the ceiling;
4. plaso (``log2timeline`` + ``psort -o json_line``) on a subset folder, irkit on the same;
5. a big tiled EVTX file (tests/bench/tile_evtx.py): the ceiling and ``irkit parse``;
6. a host-shaped ``winevt/Logs`` folder (tests/bench/hostlogs.py: ~400 logs, most of them
   small, Security ~100 MiB, Sysmon 64 MiB): the ceiling and ``irkit parse`` of the folder.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import hostlogs  # the sibling modules: this script runs with tests/bench on sys.path
import psutil
import tile_evtx
from bytecode import installed_bytecode

EVTX_DIRS: Final = ("EVTX-ATTACK-SAMPLES", "omerbenamram-evtx", "python-evtx", "plaso-evtx")
PLASO_DIRS: Final = ("python-evtx", "plaso-evtx")
PYLIB_FILES: Final = ("python-evtx/tests/data/security.evtx",)
POLL: Final = 0.2
BIN: Final = Path(sys.executable).parent
PR_SET_CHILD_SUBREAPER: Final = 36
PACKAGES: Final = (
    "irkit",
    "evtx",
    "python-evtx",
    "plaso",
    "libevtx-python",
    "orjson",
    "duckdb",
    "pyarrow",
    "psutil",
)


# --------------------------------------------------------------------------- measuring


@dataclasses.dataclass(slots=True)
class Sample:
    """One measured run of one command."""

    wall: float
    records: int
    tree_rss_peak: int
    single_rss_peak: int
    cpu: float
    exit_code: int
    inner_seconds: float | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class Row:
    """A measured configuration: what ran, on what, and its samples."""

    key: str
    label: str
    files: int
    bytes: int
    command: list[str]
    samples: list[Sample] = dataclasses.field(default_factory=list)

    def median(self, get: Callable[[Sample], float]) -> float:
        """The median of one figure over the samples."""
        return float(statistics.median(get(s) for s in self.samples))

    @property
    def seconds(self) -> float:
        """Median wall seconds."""
        return self.median(lambda s: s.wall)

    @property
    def records(self) -> int:
        """Records the tool reported (the same every repeat; the median if not)."""
        return int(self.median(lambda s: s.records))

    @property
    def records_per_second(self) -> float:
        """Records per median wall second."""
        return self.records / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain data for --json-out."""
        return {
            "key": self.key,
            "label": self.label,
            "files": self.files,
            "bytes": self.bytes,
            "command": self.command,
            "records": self.records,
            "seconds_median": round(self.seconds, 3),
            "records_per_second": round(self.records_per_second, 1),
            "mb_per_second": round(self.bytes / 1e6 / self.seconds, 2) if self.seconds else 0,
            "tree_rss_peak_max": max(s.tree_rss_peak for s in self.samples),
            "single_rss_peak_max": max(s.single_rss_peak for s in self.samples),
            "samples": [dataclasses.asdict(s) for s in self.samples],
        }


def _become_subreaper() -> bool:
    """Adopt orphaned descendants, so their rusage reaches this process (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _hwm(proc: psutil.Process) -> int:
    """A process's peak RSS so far (VmHWM), 0 if it is gone."""
    try:
        with open(f"/proc/{proc.pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class _Sampler(threading.Thread):
    """Sums the RSS of every descendant of this process every ``POLL`` seconds."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.tree_peak = 0
        self.single_peak = 0
        self.root = 0
        self.peaks: dict[int, tuple[str, int]] = {}  # pid -> (role, peak RSS)

    def run(self) -> None:
        me = psutil.Process()
        while not self.stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
                    hwm = _hwm(child)
                    self.single_peak = max(self.single_peak, hwm)
                    role, peak = self.peaks.get(child.pid, ("", 0))
                    if not role:
                        parent = child.ppid()
                        role = (
                            "main"
                            if child.pid == self.root
                            else "child"
                            if parent == self.root
                            else "grandchild"
                        )
                    self.peaks[child.pid] = (role, max(peak, hwm))
            self.tree_peak = max(self.tree_peak, total)
            self.stop.wait(POLL)

    def top(self, count: int = 6) -> list[list[object]]:
        """The processes with the highest peak RSS: [role, pid, MiB]."""
        ranked = sorted(self.peaks.items(), key=lambda item: -item[1][1])[:count]
        return [[role, pid, round(peak / (1 << 20))] for pid, (role, peak) in ranked]


def measure(cmd: Sequence[str], workdir: Path, env: dict[str, str] | None = None) -> Sample:
    """Run ``cmd``; wall time, memory and CPU of its whole process tree, its stdout.

    The wall time ends when the command's own process is reaped (a blocking ``wait4``,
    so no polling delay); descendants it leaves behind are then reaped too, for their
    rusage. Returns a sample whose ``extra['stdout']`` holds the command's standard output.
    """
    out_path = workdir / "stdout.txt"
    err_path = workdir / "stderr.txt"
    single_peak = 0
    cpu = 0.0
    status: int | None = None
    sampler = _Sampler()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env, cwd=workdir)
        sampler.root = proc.pid
        sampler.start()
        wall = 0.0
        deadline = 0.0
        while True:
            try:
                pid, code, usage = os.wait4(-1, 0 if status is None else os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:  # only orphans left, still running
                if time.monotonic() > deadline:
                    print(f"warning: descendants of {cmd[0]} still alive", file=sys.stderr)
                    break
                time.sleep(0.05)
                continue
            single_peak = max(single_peak, usage.ru_maxrss * 1024)
            cpu += usage.ru_utime + usage.ru_stime
            if pid == proc.pid:
                wall = time.perf_counter() - started
                status = code
                proc.returncode = os.waitstatus_to_exitcode(code)
                deadline = time.monotonic() + 30
        sampler.stop.set()
        sampler.join()
    assert status is not None
    stdout = out_path.read_text(errors="replace")
    exit_code = os.waitstatus_to_exitcode(status)
    if exit_code not in (0, 3):
        stderr = err_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(cmd[:4])}… exited {exit_code}: {stderr}")
    single_peak = max(single_peak, sampler.single_peak)
    extra = {"stdout": stdout, "process_peaks_mib": sampler.top()}
    return Sample(wall, 0, sampler.tree_peak, single_peak, cpu, exit_code, extra=extra)


# --------------------------------------------------------------------------- children


def child_ceiling(list_file: Path) -> None:
    """The ceiling: pyevtx-rs JSON records, each decoded by orjson, nothing else."""
    import evtx
    import orjson

    paths = list_file.read_text().splitlines()
    records = 0
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for path in paths:
            parser = evtx.PyEvtxParser(path, number_of_threads=1, skip_errors=True)
            for item in parser.records_json():
                orjson.loads(item["data"])
                records += 1
    seconds = time.perf_counter() - started
    print(json.dumps({"records": records, "seconds": seconds, "warnings": len(caught)}))


def child_python_evtx(list_file: Path) -> None:
    """The python-evtx library as its README shows it: ``record.xml()`` for every record."""
    from Evtx.Evtx import Evtx

    records = errors = 0
    started = time.perf_counter()
    for path in list_file.read_text().splitlines():
        with Evtx(path) as log:
            for chunk in log.get_file_header().chunks(include_inactive=True):
                for record in chunk.records():
                    try:
                        record.xml()
                        records += 1
                    except Exception:
                        errors += 1
    seconds = time.perf_counter() - started
    print(json.dumps({"records": records, "seconds": seconds, "errors": errors}))


# --------------------------------------------------------------------------- the runs


class Bench:
    """Runs and records every row; one temporary folder for all of it."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.rows: dict[str, Row] = {}
        self.notes: dict[str, Any] = {}
        self.env = {**os.environ, "COLUMNS": "120", "PYTHONUNBUFFERED": "1"}
        self.env.pop("IRKIT_DEBUG", None)
        import irkit

        trees = [Path(irkit.__file__).parent]
        if args.baseline is not None:
            trees.append(args.baseline / "irkit")
        self.env, compiled = installed_bytecode(self.env, tmp, trees)
        if compiled:
            self.notes["bytecode"] = "compiled once into PYTHONPYCACHEPREFIX"

    def row(self, key: str, label: str, files: Sequence[Path], command: list[str]) -> Row:
        """Register a row (once) for ``files``."""
        if key not in self.rows:
            size = sum(p.stat().st_size for p in files)
            self.rows[key] = Row(key, label, len(files), size, command)
        return self.rows[key]

    def log(self, text: str) -> None:
        """Progress on stderr."""
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"[{time.strftime('%H:%M:%S')} load {load}] {text}", file=sys.stderr, flush=True)

    def _workdir(self, name: str) -> Path:
        path = self.tmp / "runs" / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def _list(self, name: str, files: Sequence[Path]) -> Path:
        path = self.tmp / f"{name}.list"
        path.write_text("".join(f"{p}\n" for p in files))
        return path

    def _child(self, key: str, label: str, files: Sequence[Path], flag: str, detail: str) -> Sample:
        """One repeat of a child-process row (``flag``) over ``files``."""
        cmd = [sys.executable, str(Path(__file__).resolve()), flag, str(self._list(key, files))]
        row = self.row(key, label, files, cmd)
        sample = measure(cmd, self._workdir(key), self.env)
        data = json.loads(sample.extra.pop("stdout"))
        sample.records = data["records"]
        sample.inner_seconds = data["seconds"]
        sample.extra[detail] = data[detail]
        row.samples.append(sample)
        self.log(f"{key}: {sample.records} records in {sample.wall:.2f} s")
        return sample

    def ceiling(self, key: str, label: str, files: Sequence[Path]) -> Sample:
        """One repeat of the ceiling over ``files``."""
        return self._child(key, label, files, "--child-ceiling", "warnings")

    def python_evtx_lib(self, key: str, label: str, files: Sequence[Path]) -> Sample:
        """One repeat of the python-evtx library over ``files``."""
        return self._child(key, label, files, "--child-python-evtx", "errors")

    def irkit(
        self, key: str, label: str, files: Sequence[Path], inputs: Sequence[Path], *extra: str
    ) -> Sample:
        """One repeat of ``irkit parse`` (fresh case) over ``inputs`` (files or folders);
        with ``--baseline``, one of the baseline irkit too, right after (row ``key-baseline``)."""
        sample = self._irkit(key, label, files, inputs, extra)
        if self.args.baseline is not None:
            self._irkit(f"{key}-baseline", f"{label} (baseline)", files, inputs, extra, True)
        return sample

    def _irkit(
        self,
        key: str,
        label: str,
        files: Sequence[Path],
        inputs: Sequence[Path],
        extra: Sequence[str],
        baseline: bool = False,
    ) -> Sample:
        workdir = self._workdir(key)
        case = workdir / "case"
        cmd = [sys.executable, "-m", "irkit", "parse", *map(str, inputs)]
        cmd += ["--case", str(case), "--json", "--quiet", *extra]
        shown = [*cmd[:4], f"<{len(inputs)} inputs>", *cmd[4 + len(inputs) :]]
        row = self.row(key, label, files, shown)
        env = self.env
        if baseline:  # the other irkit first on the path: it is the one imported
            env = {**self.env, "PYTHONPATH": str(self.args.baseline)}
        before = source_digest()
        sample = measure(cmd, workdir, env)
        after = source_digest()
        if not baseline:
            sample.extra["irkit_source_sha256"] = after if after == before else f"{before}->{after}"
        summary = json.loads(sample.extra.pop("stdout"))
        sample.records = summary["records"]
        sample.inner_seconds = summary["seconds"]
        sample.extra.update(
            {
                k: summary.get(k)
                for k in (
                    "files_parsed",
                    "files_already_in_case",
                    "files_copies",
                    "files_failed",
                    "events_added",
                    "skipped_chunks",
                    "skipped_records",
                    "warnings",
                    "peak_rss_bytes",
                    "exit_code",
                    "events_per_second",
                )
            }
        )
        sample.extra["case_bytes"] = sum(p.stat().st_size for p in case.rglob("*") if p.is_file())
        shutil.rmtree(case, ignore_errors=True)
        row.samples.append(sample)
        self.log(
            f"{key}: {sample.records} records in {sample.wall:.2f} s "
            f"(inner {sample.inner_seconds} s), tree RSS {sample.tree_rss_peak >> 20} MiB"
        )
        return sample

    def plaso(self, key: str, label: str, files: Sequence[Path], folder: Path) -> Sample:
        """One repeat of log2timeline + psort (json_line) over ``folder``."""
        workdir = self._workdir(key)
        storage = workdir / "timeline.plaso"
        output = workdir / "timeline.jsonl"
        l2t = [str(BIN / "log2timeline"), "--status_view", "none", "--unattended"]
        l2t += ["--parsers", "winevtx", "--logfile", str(workdir / "l2t.log.gz")]
        l2t += ["--storage_file", str(storage), str(folder)]
        psort = [str(BIN / "psort"), "--status_view", "none", "--unattended"]
        psort += ["--logfile", str(workdir / "psort.log.gz"), "-o", "json_line"]
        psort += ["-w", str(output), str(storage)]
        row = self.row(key, label, files, [*l2t, "&&", *psort])
        first = measure(l2t, workdir, self.env)
        second = measure(psort, workdir, self.env)
        events = records = 0
        with output.open("rb") as handle:
            for line in handle:
                events += 1
                # winevtx makes one event per timestamp; the written time (record header)
                # is always there, so it counts records.
                records += b'"timestamp_desc": "Content Modification Time"' in line
        sample = Sample(
            wall=first.wall + second.wall,
            records=records,
            tree_rss_peak=max(first.tree_rss_peak, second.tree_rss_peak),
            single_rss_peak=max(first.single_rss_peak, second.single_rss_peak),
            cpu=first.cpu + second.cpu,
            exit_code=max(first.exit_code, second.exit_code),
            extra={
                "log2timeline_seconds": first.wall,
                "psort_seconds": second.wall,
                "events": events,
                "plaso_bytes": storage.stat().st_size,
            },
        )
        shutil.rmtree(workdir, ignore_errors=True)
        row.samples.append(sample)
        self.log(f"{key}: {records} records ({events} events) in {sample.wall:.2f} s")
        return sample


def corpus_files(corpus: Path, dirs: Sequence[str]) -> list[Path]:
    """Distinct EVTX files (by sha256) under ``corpus/<dirs>``, in a stable order."""
    roots = [corpus / d for d in dirs if (corpus / d).exists()]
    return tile_evtx.distinct_files(tile_evtx.evtx_files(roots))


def copy_subset(files: Sequence[Path], folder: Path) -> list[Path]:
    """Copy ``files`` into ``folder`` under unique names; returns the copies."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for index, path in enumerate(files):
        target = folder / f"{index:03d}-{path.name}"
        shutil.copyfile(path, target)
        copies.append(target)
    return copies


def source_digest() -> str:
    """sha256 over irkit's Python sources (path and content): which code was measured."""
    import irkit

    root = Path(irkit.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "irkit_source_sha256": source_digest(),
        "nproc": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "load_average_start": os.getloadavg(),
    }


def ratio(top: Row | None, bottom: Row | None) -> float | None:
    """records/s of ``top`` over records/s of ``bottom``."""
    if top is None or bottom is None or not bottom.records_per_second:
        return None
    return top.records_per_second / bottom.records_per_second


def cpu_ratio(top: Row | None, bottom: Row | None) -> float | None:
    """CPU seconds per record of ``bottom`` over those of ``top`` (1.0: as frugal)."""
    if top is None or bottom is None or not top.records or not bottom.records:
        return None
    top_cpu = top.median(lambda s: s.cpu) / top.records
    bottom_cpu = bottom.median(lambda s: s.cpu) / bottom.records
    return bottom_cpu / top_cpu if top_cpu else None


def _mib(value: int) -> str:
    return f"{value / (1 << 20):,.0f}"


def table(rows: Sequence[Row]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| row | files | MB | records | wall s (median) | inner s | n | records/s | MB/s "
        "| tree RSS MiB | max 1-proc RSS MiB | CPU s |",
        "|" + "---|" * 12,
    ]
    for row in rows:
        inner = [s.inner_seconds for s in row.samples if s.inner_seconds is not None]
        inner_text = f"{statistics.median(inner):.2f}" if inner else "–"
        cells = [
            row.label,
            str(row.files),
            f"{row.bytes / 1e6:.1f}",
            f"{row.records:,}",
            f"{row.seconds:.2f}",
            inner_text,
            str(len(row.samples)),
            f"{row.records_per_second:,.0f}",
            f"{row.bytes / 1e6 / row.seconds:.2f}",
            _mib(max(s.tree_rss_peak for s in row.samples)),
            _mib(max(s.single_rss_peak for s in row.samples)),
            f"{row.median(lambda s: s.cpu):.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every row, in one run; returns the results."""
    corpus = args.corpus
    if not (corpus / "EVTX-ATTACK-SAMPLES").is_dir():
        raise SystemExit(f"corpus not found at {corpus} (set IRKIT_CORPUS or --corpus)")
    subreaper = _become_subreaper()
    info = machine()
    info["subreaper"] = subreaper
    tmp = Path(tempfile.mkdtemp(prefix="irkit-bench-", dir=args.tmp))
    bench = Bench(args, tmp)
    repeat, slow = args.repeat, args.slow_repeat
    try:
        files = corpus_files(corpus, EVTX_DIRS)
        all_paths = tile_evtx.evtx_files([corpus / d for d in EVTX_DIRS])
        bench.notes["corpus_files_total"] = len(all_paths)
        bench.notes["corpus_files_distinct"] = len(files)
        bench.log(f"corpus: {len(all_paths)} EVTX files, {len(files)} distinct")

        if "corpus" in args.only:
            for _ in range(repeat):
                bench.ceiling("ceiling-corpus", "1. ceiling (pyevtx-rs+orjson), corpus", files)
                bench.irkit("irkit-corpus", "2. irkit parse, corpus", files, files)
        if "python-evtx" in args.only:
            for _ in range(slow):
                bench.irkit(
                    "irkit-pyevtx-corpus",
                    "3. irkit parse --evtx-engine python-evtx, corpus",
                    files,
                    files,
                    "--evtx-engine",
                    "python-evtx",
                )
            if "corpus" not in args.only:
                for _ in range(repeat):
                    bench.irkit("irkit-corpus", "2. irkit parse, corpus", files, files)
            lib = [corpus / f for f in PYLIB_FILES]
            for _ in range(slow):
                bench.python_evtx_lib("pylib-subset", "3b. python-evtx library xml(), S1", lib)
            for _ in range(repeat):
                bench.ceiling("ceiling-pylib", "3b. ceiling, S1", lib)
        if "plaso" in args.only:
            subset = [p for p in files if any(d in p.parts for d in args.plaso_dirs)]
            folder = tmp / "plaso-subset"
            copies = copy_subset(subset, folder)
            for _ in range(slow):
                bench.plaso("plaso-subset", "4. plaso log2timeline+psort, S2", copies, folder)
            for _ in range(repeat):
                bench.irkit("irkit-subset", "4. irkit parse, S2", copies, [folder])
                bench.ceiling("ceiling-subset", "4. ceiling, S2", copies)
        if "big" in args.only:
            big = tmp / "big" / "tiled.evtx"
            big.parent.mkdir()
            started = time.perf_counter()
            tiled = tile_evtx.tile(big, tile_evtx.parse_size(args.big_size), [corpus])
            bench.notes["tile"] = dataclasses.asdict(tiled) | {
                "seconds": round(time.perf_counter() - started, 2)
            }
            bench.log(f"tiled {tiled.bytes >> 20} MiB, {tiled.records} records")
            for _ in range(repeat):
                bench.ceiling("ceiling-big", f"5. ceiling, tiled {args.big_size}", [big])
                bench.irkit("irkit-big", f"5. irkit parse, tiled {args.big_size}", [big], [big])
            if "python-evtx" in args.only:
                # The python-evtx library on one pass over the same chunk pool the big file
                # cycles through: its rate on the big file's records, without the hour that
                # reading the whole big file would take.
                once = tmp / "big" / "pool-once.evtx"
                size = tile_evtx.HEADER_SIZE + tiled.pool_chunks * tile_evtx.CHUNK_SIZE
                pool_tile = tile_evtx.tile(once, size, [corpus])
                bench.notes["pool_tile"] = {"bytes": pool_tile.bytes, "records": pool_tile.records}
                bench.log(f"pool tile {pool_tile.bytes >> 20} MiB, {pool_tile.records} records")
                for _ in range(slow):
                    bench.python_evtx_lib(
                        "pylib-pool",
                        "5b. python-evtx library xml(), the big file's chunks once",
                        [once],
                    )
        if "hostlogs" in args.only:
            logs = tmp / "winevt" / "Logs"
            started = time.perf_counter()
            host = hostlogs.build(logs, [corpus])
            bench.notes["hostlogs"] = dataclasses.asdict(host) | {
                "seconds": round(time.perf_counter() - started, 2)
            }
            bench.log(f"host-shaped Logs: {host.files} logs, {host.bytes >> 20} MiB")
            host_files = sorted(logs.iterdir())
            for _ in range(repeat):
                bench.ceiling("ceiling-hostlogs", "6. ceiling, host-shaped Logs", host_files)
                label = "6. irkit parse, host-shaped Logs"
                bench.irkit("irkit-hostlogs", label, host_files, [logs])
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    info["load_average_end"] = os.getloadavg()
    rows = bench.rows
    sources = sorted(
        {
            str(sample.extra["irkit_source_sha256"])
            for row in rows.values()
            for sample in row.samples
            if "irkit_source_sha256" in sample.extra
        }
    )
    info["irkit_sources_measured"] = sources
    if len(sources) > 1:
        print("warning: irkit's source changed during the run; see --json-out", file=sys.stderr)
    ratios = {
        "irkit/ceiling corpus": ratio(rows.get("irkit-corpus"), rows.get("ceiling-corpus")),
        "irkit/ceiling big": ratio(rows.get("irkit-big"), rows.get("ceiling-big")),
        "irkit/ceiling S2": ratio(rows.get("irkit-subset"), rows.get("ceiling-subset")),
        "irkit/ceiling host-shaped Logs": ratio(
            rows.get("irkit-hostlogs"), rows.get("ceiling-hostlogs")
        ),
        "baseline/ceiling corpus": ratio(
            rows.get("irkit-corpus-baseline"), rows.get("ceiling-corpus")
        ),
        "baseline/ceiling big": ratio(rows.get("irkit-big-baseline"), rows.get("ceiling-big")),
        "baseline/ceiling host-shaped Logs": ratio(
            rows.get("irkit-hostlogs-baseline"), rows.get("ceiling-hostlogs")
        ),
        "irkit/irkit-python-evtx corpus": ratio(
            rows.get("irkit-corpus"), rows.get("irkit-pyevtx-corpus")
        ),
        "ceiling/python-evtx library S1": ratio(
            rows.get("ceiling-pylib"), rows.get("pylib-subset")
        ),
        "irkit big/python-evtx library, same chunks": ratio(
            rows.get("irkit-big"), rows.get("pylib-pool")
        ),
        "ceiling big/python-evtx library, same chunks": ratio(
            rows.get("ceiling-big"), rows.get("pylib-pool")
        ),
        "irkit/plaso S2": ratio(rows.get("irkit-subset"), rows.get("plaso-subset")),
        "CPU per record, ceiling/irkit corpus": cpu_ratio(
            rows.get("irkit-corpus"), rows.get("ceiling-corpus")
        ),
        "CPU per record, ceiling/irkit big": cpu_ratio(
            rows.get("irkit-big"), rows.get("ceiling-big")
        ),
    }
    return {
        "command": [Path(sys.executable).name, *sys.argv],
        "machine": info,
        "notes": bench.notes,
        "subsets": {"S1": list(PYLIB_FILES), "S2": list(args.plaso_dirs)},
        "rows": [row.as_dict() for row in rows.values()],
        "ratios": {k: (round(v, 4) if v is not None else None) for k, v in ratios.items()},
        "table": table(list(rows.values())),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-size", default="1G", help="tiled EVTX size (default 1G)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats of fast rows (median)")
    parser.add_argument(
        "--slow-repeat", type=int, default=1, help="repeats of python-evtx and plaso rows"
    )
    parser.add_argument("--json-out", type=Path, help="write all results as JSON here")
    parser.add_argument("--corpus", type=Path, default=tile_evtx.default_corpus())
    parser.add_argument("--tmp", type=Path, default=None, help="where temporary files go")
    parser.add_argument(
        "--plaso-dirs",
        nargs="+",
        default=list(PLASO_DIRS),
        help="corpus folders of the plaso subset S2",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        default=["corpus", "python-evtx", "plaso", "big", "hostlogs"],
        choices=["corpus", "python-evtx", "plaso", "big", "hostlogs"],
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="a folder holding another irkit (git archive REV irkit artifacts, and its built "
        "_evtxflat*.so): each irkit row is run with it too, as a row of its own",
    )
    parser.add_argument("--child-ceiling", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-python-evtx", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_ceiling:
        child_ceiling(args.child_ceiling)
        return 0
    if args.child_python_evtx:
        child_python_evtx(args.child_python_evtx)
        return 0
    results = run(args)
    print(results["table"])
    print()
    for name, value in results["ratios"].items():
        print(f"{name}: {value:.4g}" if value is not None else f"{name}: –")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
