"""Benchmark `irkit hash` against its ceiling and coreutils, on the same tree, same run.

    python tests/bench/bench_hash.py [TREE] [--repeat 5] [--json-out FILE]

Rows (each a fresh process, wall time from spawn to reap, medians of interleaved repeats):

1. ceiling: a bare loop that lists the tree's regular files (os.walk, no links), reads
   each once and feeds md5, sha1 and sha256 on two threads. Nothing else.
2. ``irkit hash TREE -o FILE -q``: walk, all three digests, events counted, digest list.
3. ``irkit hash TREE --case DIR -q``: the same, plus every file event stored in a case.
4. ``irkit hash -a sha256``: sha256 alone, like for like with coreutils.
5. ``sha256sum`` alone, two parallel workers: the files split into two lists of about
   equal bytes (largest first, each to the lighter list), one ``sha256sum`` process per
   list, both running at once. This is the strongest two-worker split coreutils allows.

Every irkit digest is compared with coreutils' output (md5sum, sha1sum, sha256sum).
The tree is read once before timing: the figures are warm-cache, CPU-bound figures.

File events (#18), on a tree of ``--events-files`` empty files (``filetree.py`` builds it
under ``/tmp`` once and keeps it), ``--events-repeat`` times, interleaved:

6. walk ceiling: a bare loop that lists the tree (scandir, lstat each entry, statx for
   the birth time, as irkit must), nothing else;
7. ``irkit hash TREE --case DIR -a none -q --json``: every entry's times as file events
   in a fresh case; events/s over the whole process, peak RSS from ``wait4``.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bytecode import installed_bytecode

CEILING = r"""
import hashlib, os, sys
from concurrent.futures import ThreadPoolExecutor
files = []
for d, dirs, names in os.walk(sys.argv[1]):
    dirs.sort()
    for n in sorted(names):
        p = os.path.join(d, n)
        if os.path.isfile(p) and not os.path.islink(p):
            files.append(p)
def one(p):
    hs = [hashlib.md5(), hashlib.sha1(), hashlib.sha256()]
    buf = bytearray(1 << 20); mv = memoryview(buf)
    with open(p, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            for h in hs:
                h.update(mv[:n])
    return [h.hexdigest() for h in hs]
with ThreadPoolExecutor(2) as pool:
    out = list(pool.map(one, files, chunksize=16))
print(len(out))
"""


WALK_CEILING = r"""
import ctypes, os, sys
statx = ctypes.CDLL(None).statx
buf = ctypes.create_string_buffer(256)
count = 0
def walk(path):
    global count
    with os.scandir(path) as it:
        children = sorted(it, key=lambda e: e.name)
    for child in children:
        info = child.stat(follow_symlinks=False)
        statx(-100, os.fsencode(child.path), 0x4100, 0x800, buf)
        count += 1
        if child.is_dir(follow_symlinks=False):
            walk(child.path)
walk(sys.argv[1])
print(count)
"""


def timed_rss(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes) and stdout of one process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"{cmd} exited {proc.returncode}")
        out.seek(0)
        return seconds, usage.ru_maxrss * 1024, out.read().decode()


def file_events(args: argparse.Namespace, work: Path) -> dict[str, object]:
    """Rows 6 and 7: the walk ceiling and ``irkit hash --case -a none`` on a big tree."""
    sys.path.insert(0, str(Path(__file__).parent))
    from filetree import build

    tree = Path(args.events_tree)
    info = build(tree, args.events_files, 100)
    times: dict[str, list[float]] = {"walk_ceiling": [], "irkit_events": []}
    rss: list[int] = []
    summary: dict[str, object] = {}
    for i in range(args.events_repeat):
        seconds, _, _ = timed_rss([sys.executable, "-c", WALK_CEILING, str(tree)])
        times["walk_ceiling"].append(seconds)
        case = work / f"events{i}"
        seconds, peak, out = timed_rss(
            [sys.executable, "-m", "irkit", "hash", str(tree), "--case", str(case),
             "-a", "none", "-q", "--json"]
        )  # fmt: skip
        times["irkit_events"].append(seconds)
        rss.append(peak)
        summary = json.loads(out)
        shutil.rmtree(case)
        print(f"events {i}: {seconds:.1f} s, {peak >> 20} MiB, load {os.getloadavg()[0]:.1f}",
              file=sys.stderr)  # fmt: skip
    med = {k: statistics.median(v) for k, v in times.items()}
    events = int(summary["events"])  # type: ignore[call-overload]
    return {
        "events_tree": str(tree),
        "events_tree_files": info["files"],
        "events_entries": summary["entries"],
        "events": events,
        "events_added": summary["events_added"],
        "events_seconds": times,
        "events_median_s": med,
        "events_per_s": events / med["irkit_events"],
        "events_peak_rss_bytes": rss,
        "events_walk_ceiling_over_irkit": med["walk_ceiling"] / med["irkit_events"],
    }


def regular_files(tree: Path) -> list[str]:
    files = []
    for d, dirs, names in os.walk(tree):
        dirs.sort()
        for n in sorted(names):
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append(p)
    return files


def timed(cmd: list[str], **kw: object) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - start


def coreutils(files: list[str], tool: str) -> dict[str, str]:
    listing = "\0".join(files).encode() + b"\0"
    out = subprocess.run(
        ["xargs", "-0", "-P2", "-n", "64", tool],
        input=listing,
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8", "surrogateescape")
    result = {}
    for line in out.splitlines():
        digest, _, name = line.partition("  ")
        result[name] = digest
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tree", nargs="?", default="/usr/lib/x86_64-linux-gnu")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json-out")
    parser.add_argument("--events-tree", default="/tmp/irkit-filetree")
    parser.add_argument("--events-files", type=int, default=1_000_000)
    parser.add_argument("--events-repeat", type=int, default=3)
    parser.add_argument("--only", choices=("hash", "events"), help="one group of rows")
    args = parser.parse_args()
    import irkit

    bytecode = Path(tempfile.mkdtemp(prefix="irkit-bench-bytecode-"))
    atexit.register(shutil.rmtree, bytecode, ignore_errors=True)
    env, _ = installed_bytecode(os.environ, bytecode, [Path(irkit.__file__).parent])
    os.environ.clear()
    os.environ.update(env)  # the commands, run from here, inherit it
    if args.only == "events":
        work = Path(tempfile.mkdtemp(prefix="irkit-bench-events-"))
        try:
            result = file_events(args, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        text = json.dumps(result, indent=2)
        print(text)
        if args.json_out:
            Path(args.json_out).write_text(text)
        return 0
    tree = Path(args.tree)
    files = regular_files(tree)
    total = sum(os.path.getsize(f) for f in files)
    for f in files:  # warm the page cache
        with open(f, "rb") as h:
            while h.read(1 << 20):
                pass
    work = Path(tempfile.mkdtemp(prefix="irkit-bench-hash-"))
    halves: list[list[str]] = [[], []]
    loads = [0, 0]
    for f in sorted(files, key=os.path.getsize, reverse=True):
        lighter = loads.index(min(loads))
        halves[lighter].append(f)
        loads[lighter] += os.path.getsize(f)
    times: dict[str, list[float]] = {
        "ceiling": [], "irkit": [], "irkit_case": [], "irkit_sha256": [], "sha256sum": []
    }  # fmt: skip
    try:
        for i in range(args.repeat):
            times["ceiling"].append(timed([sys.executable, "-c", CEILING, str(tree)]))
            times["irkit"].append(
                timed([sys.executable, "-m", "irkit", "hash", str(tree), "-q", "-o",
                       str(work / "list.txt")])
            )  # fmt: skip
            case = work / f"case{i}"
            times["irkit_case"].append(
                timed([sys.executable, "-m", "irkit", "hash", str(tree), "-q", "--case",
                       str(case), "-o", str(work / "list2.txt")])
            )  # fmt: skip
            times["irkit_sha256"].append(
                timed([sys.executable, "-m", "irkit", "hash", str(tree), "-q", "-a", "sha256",
                       "-o", str(work / "list3.txt")])
            )  # fmt: skip
            start = time.perf_counter()
            workers = [
                subprocess.Popen(
                    ["xargs", "-0", "sha256sum"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                )
                for _ in halves
            ]
            for worker, half in zip(workers, halves, strict=True):
                assert worker.stdin is not None
                worker.stdin.write("\0".join(half).encode() + b"\0")
                worker.stdin.close()
            for worker in workers:
                worker.wait()
            times["sha256sum"].append(time.perf_counter() - start)
            shutil.rmtree(case)
        # Correctness: every digest equals coreutils'.
        subprocess.run(
            [sys.executable, "-m", "irkit", "hash", str(tree), "-q", "--json", "-o",
             str(work / "sha256.txt"), "--case", str(work / "check")],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        import duckdb

        rows = duckdb.sql(
            f"""SELECT DISTINCT json_extract_string(fields, '$.path') AS path,
                       json_extract_string(fields, '$.md5'), json_extract_string(fields, '$.sha1'),
                       json_extract_string(fields, '$.sha256')
                FROM read_parquet('{work / "check" / "events"}/*.parquet')
                WHERE json_extract_string(fields, '$.sha256') <> ''"""
        ).fetchall()
        ours = {r[0]: r[1:] for r in rows}
        refs = [coreutils(files, t) for t in ("md5sum", "sha1sum", "sha256sum")]
        mismatch = [f for f in files if ours.get(f) != tuple(ref[f] for ref in refs)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "tree": str(tree),
        "files": len(files),
        "bytes": total,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "sha256sum_split_bytes": loads,
        "seconds": times,
        "median_s": med,
        "mb_per_s": {k: total / 1e6 / v for k, v in med.items()},
        "irkit_over_ceiling": med["ceiling"] / med["irkit"],
        "irkit_case_over_ceiling": med["ceiling"] / med["irkit_case"],
        "irkit_over_sha256sum_2p": med["sha256sum"] / med["irkit"],
        "ceiling_over_sha256sum_2p": med["sha256sum"] / med["ceiling"],
        "irkit_sha256_only_over_sha256sum_2p": med["sha256sum"] / med["irkit_sha256"],
        "digests_checked": len(files),
        "digest_mismatches": len(mismatch),
    }
    if args.only != "hash":
        work = Path(tempfile.mkdtemp(prefix="irkit-bench-events-"))
        try:
            result.update(file_events(args, work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text)
    return 1 if mismatch else 0


if __name__ == "__main__":
    raise SystemExit(main())
