"""Build a fleet: one exported dataset's events copied as N distinct hosts, and measure
what runs over it.

Usage: ``python tests/bench/fleet.py DATASET --hosts 1 10 50 [--work DIR] [--json-out F]
[--scan duckdb spark --sigma RULES] [--keep]``

``build_fleet(dataset, out, hosts)`` rewrites each event's host (``<host>-h007``), its
``host_key`` partition, its ``uid`` and ``record`` (so no two hosts share an event) into a
new dataset of the same layout (docs/dataset.md). ``plant`` adds one rewritten event to
one host: a test plants a parent-child pair no other host has. The script builds fleets
of the sizes asked from DATASET (``irkit export`` of the corpus case, say) and times
``irkit stack`` and ``irkit sql`` over each, in a child process each (wall, its peak RSS),
and with ``--scan`` ``irkit scan FLEET --sigma RULES --engine E`` for each engine named
(the findings of one engine's scan are removed before the next). A Spark scan's peak RSS
is the irkit process and its JVM together.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


#: Hosts written by one COPY.
BATCH = 10


def build_fleet(dataset: Path, out: Path, hosts: int, plant: dict[str, Any] | None = None) -> int:
    """Write ``hosts`` copies of ``dataset``'s events to ``out``; return the events written.

    ``plant``: ``{"host": n, "uid": uid, "fields": {...}}`` copies the event ``uid`` once
    more to host ``n`` with its fields updated."""
    shutil.rmtree(out, ignore_errors=True)
    (out / "_irkit" / "cases").mkdir(parents=True)
    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    db.execute("SET preserve_insertion_order = false")
    glob = _literal(str(dataset / "events" / "**" / "*.parquet"))
    db.execute(f"CREATE VIEW base AS SELECT * FROM read_parquet({glob}, hive_partitioning = true)")
    db.execute(f"SET temp_directory = {_literal(str(out.parent / (out.name + '.tmp')))}")
    db.execute("SET memory_limit = '2GB'")
    # One copy of the events in memory; the hosts written BATCH at a time (one COPY of all
    # 200 hosts, partitioned, spilled 30 GB).
    db.execute("CREATE TABLE one AS SELECT * FROM base")
    columns = [str(r[0]) for r in db.execute("DESCRIBE one").fetchall()]
    suffix = "'-h' || lpad(CAST(n AS VARCHAR), 3, '0')"
    renamed = (
        f"coalesce(host, 'nohost') || {suffix} AS host, "
        f"coalesce(host_key, 'nohost') || {suffix} AS host_key"
    )
    select = ", ".join(f'"{c}"' for c in columns)
    for first in range(1, hosts + 1, BATCH):
        last = min(first + BATCH, hosts + 1)
        copies = (
            f"SELECT * REPLACE ({renamed}, md5(uid || {suffix}) AS uid, "
            f"record || {suffix} AS record) FROM one CROSS JOIN range({first}, {last}) AS r(n)"
        )
        if plant and first <= int(plant["host"]) < last:
            patch = _literal(json.dumps(plant["fields"]))
            changed = [f"CAST(json_merge_patch(fields, {patch}) AS VARCHAR) AS fields"]
            changed += [
                f'{_literal(str(v))} AS "{k}"' for k, v in plant["fields"].items() if k in columns
            ]
            planted = (
                f"SELECT * REPLACE ({', '.join(changed)}), {int(plant['host'])} AS n "
                f"FROM one WHERE uid = {_literal(str(plant['uid']))}"
            )
            copies += (
                f" UNION ALL BY NAME SELECT * REPLACE ({renamed}, "
                f"md5(uid || 'planted') AS uid, record || '-planted' AS record) "
                f"FROM ({planted})"
            )
        db.execute(
            f"COPY (SELECT {select} FROM ({copies})) TO {_literal(str(out / 'events'))} "
            "(FORMAT PARQUET, COMPRESSION ZSTD, PARTITION_BY (source, host_key, date), "
            f"FILENAME_PATTERN 'part-b{first:03d}-{{i}}', OVERWRITE_OR_IGNORE)"
        )
    count = db.execute(
        f"SELECT count(*) FROM read_parquet({_literal(str(out / 'events' / '**' / '*.parquet'))})"
    ).fetchall()[0][0]
    (out / "_irkit" / "cases" / "fleet.json").write_text(
        json.dumps({"built_from": str(dataset), "hosts": hosts, "events": count}) + "\n"
    )
    return int(count)


def _timed(args: list[str], work: Path) -> dict[str, Any]:
    """One irkit command in a child process: wall, its peak RSS (sampled every 20 ms: a
    forked child's own ``ru_maxrss`` starts at this process's size), exit code."""
    import psutil

    start = time.perf_counter()
    peak = 0
    with (work / "stdout.txt").open("wb") as out, (work / "stderr.txt").open("wb") as err:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "irkit"), *args], stdout=out, stderr=err
        )
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):  # the process and its children (a JVM)
                rss = watched.memory_info().rss
                for child in watched.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        rss += child.memory_info().rss
                peak = max(peak, rss)
            time.sleep(0.05)
    return {
        "command": " ".join(args[:1] + args[2:4]),
        "rc": proc.returncode,
        "wall_s": round(time.perf_counter() - start, 2),
        "peak_mib": peak // 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--work", type=Path, default=Path("fleet-work"))
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--scan", nargs="*", default=[], choices=["duckdb", "spark"])
    parser.add_argument("--sigma", type=Path, help="Sigma rules for --scan")
    parser.add_argument("--keep", action="store_true", help="keep each fleet (else removed)")
    args = parser.parse_args()
    stack_args = ["stack", "parent-child", "--rare", "1", "-f", "csv", "-o", "/dev/null"]
    sql_args = ["sql", "SELECT host, count(*) FROM events GROUP BY 1", "-f", "csv", "-o", "-"]
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    for hosts in args.hosts:
        out = args.work / f"fleet-{hosts}"
        start = time.perf_counter()
        events = build_fleet(args.dataset, out, hosts)
        built = time.perf_counter() - start
        size = sum(p.stat().st_size for p in out.rglob("*.parquet"))
        row: dict[str, Any] = {
            "hosts": hosts,
            "events": events,
            "bytes": size,
            "build_s": round(built, 2),
            "stack": _timed([*stack_args[:1], str(out), *stack_args[1:]], args.work),
            "sql": _timed([*sql_args[:1], str(out), *sql_args[1:]], args.work),
        }
        for engine in args.scan:
            for folder in ("findings", "finding_events"):
                shutil.rmtree(out / folder, ignore_errors=True)
            scan_args = ["scan", str(out), "-q", "--json", "--engine", engine]
            if args.sigma:
                scan_args += ["--sigma", str(args.sigma)]
            timed = _timed(scan_args, args.work)
            with contextlib.suppress(ValueError, OSError):
                report = json.loads((args.work / "stdout.txt").read_text())
                timed["findings"] = report["findings"]
                sigma = report["detectors"].get("sigma", {}).get("report", {})
                timed["sigma_run"] = sigma.get("run")
                timed["not_run_on_engine"] = sigma.get("not_run", {}).get("not_run_on_engine")
            row[f"scan_{engine}"] = timed
        print(json.dumps(row), flush=True)
        results.append(row)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
