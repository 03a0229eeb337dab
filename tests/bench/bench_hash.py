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
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
    args = parser.parse_args()
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
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        Path(args.json_out).write_text(text)
    return 1 if mismatch else 0


if __name__ == "__main__":
    raise SystemExit(main())
