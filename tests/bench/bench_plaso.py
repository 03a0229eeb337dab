"""Benchmark ``irkit parse`` against ``log2timeline`` + ``psort`` on plaso's test data.

Usage: ``python tests/bench/bench_plaso.py [--repeat 3] [--json-out FILE]``

One run on ``plaso-test-data/test_data`` of the shared corpus, repeats interleaved (the
order alternates), every command a child process measured by ``bench_parse.measure``
(wall from spawn to reaping, summed RSS of the process tree every 0.2 s, the largest
single-process peak, CPU seconds of the whole tree):

- ``irkit parse FOLDER --case <fresh> --json --quiet``, its events counted in the case;
  and the same on a copy of the folder without its archives and disk images (``cp -p``,
  found by ``irkit.files.vfs.container_kind``), which log2timeline does not open;
- ``log2timeline --parsers '!filestat'`` (irkit leaves file times to ``irkit hash``;
  archives: the default, none) then ``psort -a -o json_line`` (``-a`` keeps duplicate
  events, as irkit does), summed; the first storage is also exported without ``-a``.

Then rows per file, irkit's (by evidence; inside an archive or image, under the file that
holds it) against psort's (the OS location of each line's ``pathspec``), each difference
with its cause; and the same for what both read with plaso's parsers.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import importlib.metadata
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import bench_parse  # the sibling module: this script runs with tests/bench on sys.path
import orjson
import tile_evtx
from bench_parse import Sample, measure

BIN: Final = Path(sys.executable).parent
MORE_PACKAGES: Final = ("dfvfs", "dfwinreg", "dfdatetime", "pytsk3", "libqcow-python")
PLASO_SOURCES: Final = ("plaso",)  # irkit sources that run plaso's parsers
#: Why a file's rows differ, where the counts alone do not tell (tests/test_plaso.py).
KNOWN: Final = {
    "regf/NTUSER.DAT": "a registry plugin error (windows_typed_urls_time): irkit contains it "
    "and reads the rest of the hive, log2timeline stops the hive there",
}


def log(text: str) -> None:
    """Progress on stderr, with the load average."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"[{time.strftime('%H:%M:%S')} load {load}] {text}", file=sys.stderr, flush=True)


def _rel(path: str, root: str) -> str:
    return path[len(root) + 1 :] if path.startswith(root + "/") else path


def irkit_counts(case: Path, root: str) -> dict[str, Any]:
    """Rows of the case: total, by source, by evidence path (content copies included)."""
    from irkit.store.case import Case

    # Every path of each content (a copy inside an archive is parsed once, its rows stored
    # under the first path): rows, "Not a time" rows.
    per_path: dict[str, dict[str, list[int]]] = collections.defaultdict(dict)
    query = """
        SELECT p.path, e.source, count(*), count(*) FILTER (WHERE ts_desc LIKE 'Not a time%')
        FROM events e JOIN evidence_paths p ON p.sha256 = e.evidence_sha256 GROUP BY ALL"""
    with Case(case, read_only=True) as opened:
        db = opened.db
        total = db.execute("SELECT count(*) FROM events").fetchone()[0]  # type: ignore[index]
        by_source = dict(db.execute("SELECT source, count(*) FROM events GROUP BY 1").fetchall())
        for path, source, rows, no_time in db.execute(query).fetchall():
            per_path[_rel(path, root)][source] = [rows, no_time]
        stored = db.execute("SELECT evidence, count(*) FROM events GROUP BY 1").fetchall()
    return {
        "events": total,
        "by_source": by_source,
        "per_path": dict(per_path),
        "per_evidence": {_rel(e, root): n for e, n in stored},
    }


def _os_location(spec: Any) -> str:
    """The file a psort line's path spec names: its OS location (under gzip and the like)."""
    found = ""
    while isinstance(spec, dict):
        if spec.get("type_indicator") == "OS":
            found = str(spec.get("location", ""))
        spec = spec.get("parent")
    return found


def psort_counts(jsonl: Path, root: str) -> dict[str, Any]:
    """Lines of a json_line export: total, by parser, per file (and those at time 0)."""
    per_file: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    parsers: collections.Counter[str] = collections.Counter()
    lines = 0
    with jsonl.open("rb") as handle:
        for line in handle:
            event = orjson.loads(line)
            lines += 1
            parsers[str(event.get("parser", "")).split("/")[0]] += 1
            name = _os_location(event.get("pathspec")) or str(event.get("filename", ""))
            counts = per_file[_rel(name, root)]
            counts[0] += 1
            counts[1] += not event.get("timestamp")
    return {"events": lines, "by_parser": dict(parsers), "per_file": dict(per_file)}


def run_irkit(folder: Path, work: Path, env: dict[str, str], count: bool = True) -> Sample:
    """One ``irkit parse`` of ``folder`` into a fresh case; its counts in ``extra``."""
    case = work / "case"  # removed after each run
    cmd = [sys.executable, "-m", "irkit", "parse", str(folder), "--case", str(case)]
    cmd += ["--json", "--quiet"]
    before = bench_parse.source_digest()
    sample = measure(cmd, work, env)
    after = bench_parse.source_digest()
    summary = json.loads(sample.extra.pop("stdout"))
    sample.records = summary["records"]
    sample.inner_seconds = summary["seconds"]
    sample.extra["irkit_source_sha256"] = after if after == before else f"{before}->{after}"
    sample.extra["command"] = cmd
    keep = ("files_found", "files_parsed", "files_copies", "files_failed", "unrecognised_files")
    sample.extra["summary"] = {k: summary.get(k) for k in (*keep, "warnings", "peak_rss_bytes")}
    sample.extra["copies"] = summary.get("copies", {})
    if count:
        sample.extra["counts"] = irkit_counts(case, str(folder))
    shutil.rmtree(case, ignore_errors=True)
    log(f"irkit: {sample.records} events in {sample.wall:.2f} s, CPU {sample.cpu:.1f} s")
    return sample


def _figures(sample: Sample) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(sample).items() if k != "extra"}


def run_plaso(folder: Path, work: Path, env: dict[str, str], dedup_too: bool) -> Sample:
    """One log2timeline + ``psort -a``; ``dedup_too``: also psort's default, once, apart."""
    storage, output = work / "timeline.plaso", work / "timeline.jsonl"
    common = ["--status_view", "none", "--unattended"]
    l2t = [str(BIN / "log2timeline"), *common, "--parsers", "!filestat"]
    l2t += ["--logfile", str(work / "l2t.log.gz"), "--storage_file", str(storage), str(folder)]
    psort = [str(BIN / "psort"), *common, "--logfile", str(work / "psort.log.gz")]
    psort_all = [*psort, "-a", "-o", "json_line", "-w", str(output), str(storage)]
    first = measure(l2t, work, env)
    second = measure(psort_all, work, env)
    counts = psort_counts(output, str(folder))
    extra: dict[str, Any] = {"command": [*l2t, "&&", *psort_all], "counts": counts}
    extra |= {"log2timeline": _figures(first), "psort": _figures(second)}
    extra["plaso_bytes"] = storage.stat().st_size
    if dedup_too:
        deduped = work / "timeline-dedup.jsonl"
        cmd = [*psort, "-o", "json_line", "-w", str(deduped), str(storage)]
        third = measure(cmd, work, env)
        extra["psort_dedup"] = {"wall": third.wall, "cpu": third.cpu, "command": cmd}
        extra["psort_dedup"]["counts"] = psort_counts(deduped, str(folder))
    sample = Sample(
        wall=first.wall + second.wall,
        records=counts["events"],
        tree_rss_peak=max(first.tree_rss_peak, second.tree_rss_peak),
        single_rss_peak=max(first.single_rss_peak, second.single_rss_peak),
        cpu=first.cpu + second.cpu,
        exit_code=max(first.exit_code, second.exit_code),
        extra=extra,
    )
    log(f"plaso: {sample.records} events in {sample.wall:.2f} s (log2timeline {first.wall:.2f})")
    return sample


Entry = dict[str, Any]
OTHER_SOURCES: Final = ("bodyfile", "evtx", "osquery")  # irkit's own parsers, not plaso's


def compare(
    irkit: dict[str, Any], psort: dict[str, Any], dedup: dict[str, Any] | None
) -> tuple[list[Entry], list[Entry], list[Entry], dict[str, int]]:
    """Rows per file: every file, then what both read with plaso's parsers.

    Returns the files whose rows differ, those that still differ with the same files and
    parsers, the files left out of that second comparison, and its totals.
    """
    per_path, stored = irkit["per_path"], irkit["per_evidence"]
    tops: dict[str, list[str]] = collections.defaultdict(list)  # file -> its paths
    for path in set(per_path) | set(stored):
        tops[path.split("::")[0]].append(path)
    ps, dd = psort["per_file"], (dedup or {}).get("per_file", {})
    every, same, excluded = [], [], []
    totals = {"irkit": 0, "psort": 0}
    for name in sorted(set(tops) | set(ps)):
        sources = per_path.get(name, {})
        theirs = ps.get(name, [0, 0])
        plaso_rows = sum(sources.get(s, [0, 0])[0] for s in PLASO_SOURCES)
        no_time = sum(n for s, (_, n) in sources.items() if s != "file")
        own = sum(n for s, (n, _) in sources.items() if s != "file")
        entry: Entry = {
            "file": name,
            "irkit_rows": sum(stored.get(p, 0) for p in tops.get(name, [])),
            "psort_rows": theirs[0],
            "psort_dedup_rows": dd.get(name, [0, 0])[0] if dedup else None,
            "irkit_plaso_rows": plaso_rows,
            "irkit_not_a_time": no_time,  # of its own rows (not the image listing)
            "psort_time_zero": theirs[1],
        }
        causes = []
        for path in sorted(p for p in tops.get(name, []) if "::" in p):
            rows = sum(n for n, _ in per_path.get(path, {}).values())
            if path not in stored:
                causes.append(f"{path}: {rows} rows, stored under its identical content")
            elif rows:
                kinds = ", ".join(f"{s} {n}" for s, (n, _) in per_path[path].items())
                causes.append(f"{path}: {kinds} (irkit walks archives and images)")
        for source, (rows, _) in sources.items():
            if source not in PLASO_SOURCES:
                what = "the image listing" if source == "file" else "irkit's own reader"
                causes.append(f"{rows} {source} rows ({what})")
        if sources and name not in stored:
            causes.append("a copy of content found first elsewhere: rows stored there")
        why = [KNOWN[name]] if name in KNOWN else []
        if (no_time or theirs[1]) and own - no_time == theirs[0] - theirs[1]:
            why.append(
                f"equal but for rows without a time: irkit {no_time} 'Not a time' rows "
                f"(event data with no usable time), psort {theirs[1]} rows at time 0"
            )
        if entry["irkit_rows"] != entry["psort_rows"]:
            every.append(entry | {"causes": causes + why or ["UNEXPLAINED"]})
        # Same files, same parsers: irkit's plaso source on the files log2timeline opens.
        if any(s in sources for s in OTHER_SOURCES):
            excluded.append(entry | {"causes": [f"irkit reads it with {list(sources)}", *why]})
            continue
        totals["irkit"] += plaso_rows
        totals["psort"] += theirs[0]
        if plaso_rows != theirs[0]:
            same.append(entry | {"causes": why or ["UNEXPLAINED"]})
    return every, same, excluded, totals


def _version(name: str) -> str | None:
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        return importlib.metadata.version(name)
    return None


def without_containers(folder: Path, target: Path) -> list[str]:
    """Copy ``folder`` (times kept) but its archives and disk images; returns those."""
    from irkit.files.vfs.signatures import HEAD_SIZE, container_kind

    left = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                head = handle.read(HEAD_SIZE)
            rel = path.relative_to(folder)
            if container_kind(head, path):
                left.append(str(rel))
                continue
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / rel)
    return left


def summarise(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians and peaks of one tool's repeats (``Sample`` fields as a dict)."""
    return {
        "tool": name,
        "n": len(runs),
        "wall_median": statistics.median(r["wall"] for r in runs),
        "wall_samples": [round(r["wall"], 2) for r in runs],
        "cpu_median": statistics.median(r["cpu"] for r in runs),
        "tree_rss_peak_max": max(r["tree_rss_peak"] for r in runs),
        "single_rss_peak_max": max(r["single_rss_peak"] for r in runs),
        "events": sorted({r["records"] for r in runs if r.get("records")}),
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The figures as a Markdown table."""
    out = [
        "| tool | n | wall s (median) | samples | CPU s | tree RSS MiB | 1-proc RSS MiB | events |",
        "|" + "---|" * 8,
    ]
    for r in rows:
        cells = [r["tool"], str(r["n"]), f"{r['wall_median']:.2f}"]
        cells += [", ".join(f"{w:.2f}" for w in r["wall_samples"]), f"{r['cpu_median']:.1f}"]
        cells += [f"{r[k] / (1 << 20):,.0f}" for k in ("tree_rss_peak_max", "single_rss_peak_max")]
        cells.append(" / ".join(f"{e:,}" for e in r["events"]))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="repeats of each tool (median)")
    parser.add_argument("--json-out", type=Path, help="write all results as JSON here")
    parser.add_argument("--corpus", type=Path, default=tile_evtx.default_corpus())
    parser.add_argument("--tmp", type=Path, default=None, help="where temporary files go")
    args = parser.parse_args(argv)
    folder = (args.corpus / "plaso-test-data" / "test_data").resolve()
    if not folder.is_dir():
        raise SystemExit(f"{folder} not found (set IRKIT_CORPUS or --corpus)")
    info = bench_parse.machine() | {"subreaper": bench_parse._become_subreaper()}
    info["packages"] |= {name: _version(name) for name in MORE_PACKAGES}
    git = ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "--short", "HEAD"]
    info["git_head"] = subprocess.run(git, capture_output=True, text=True).stdout.strip()
    import irkit

    info["irkit_imported_from"] = str(Path(irkit.__file__).parent)
    files = [p for p in folder.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    info["corpus"] = {"folder": str(folder), "files": len(files), "bytes": size}
    env = {**os.environ, "COLUMNS": "120", "PYTHONUNBUFFERED": "1"}
    env.pop("IRKIT_DEBUG", None)
    tmp = Path(tempfile.mkdtemp(prefix="irkit-bench-plaso-", dir=args.tmp))
    mine: list[Sample] = []
    bare: list[Sample] = []
    theirs: list[Sample] = []
    try:
        info["containers"] = without_containers(folder, tmp / "bare")
        log(f"{folder}: {len(files)} files; {args.repeat} repeats, order alternating")
        for index in range(args.repeat):
            work = tmp / f"run{index}"
            work.mkdir()
            for tool in ("irkit", "plaso") if index % 2 == 0 else ("plaso", "irkit"):
                if tool == "irkit":
                    mine.append(run_irkit(folder, work, env))
                    bare.append(run_irkit(tmp / "bare", work, env, count=False))
                else:
                    theirs.append(run_plaso(folder, work, env, dedup_too=index == 0))
            shutil.rmtree(work, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    info["load_average_end"] = os.getloadavg()
    rows = [
        summarise("irkit parse", [_figures(s) for s in mine]),
        summarise("log2timeline + psort -a", [_figures(s) for s in theirs]),
        summarise("  log2timeline alone", [s.extra["log2timeline"] for s in theirs]),
        summarise("  psort -a alone", [s.extra["psort"] for s in theirs]),
        summarise("irkit parse, no archives or images", [_figures(s) for s in bare]),
    ]
    dedup = theirs[0].extra.get("psort_dedup")
    every, same, excluded, restricted = compare(
        mine[0].extra["counts"], theirs[0].extra["counts"], dedup and dedup["counts"]
    )
    ratio = rows[1]["wall_median"] / rows[0]["wall_median"]
    bare_ratio = rows[1]["wall_median"] / rows[4]["wall_median"]
    samples = {"irkit": mine, "irkit_no_containers": bare, "plaso": theirs}
    results = {
        "command": [Path(sys.executable).name, *sys.argv],
        "machine": info,
        "figures": rows,
        "ratio_wall_plaso_over_irkit": round(ratio, 3),
        "ratio_cpu_plaso_over_irkit": round(rows[1]["cpu_median"] / rows[0]["cpu_median"], 3),
        "ratio_wall_plaso_over_irkit_no_containers": round(bare_ratio, 3),
        "irkit_by_source": mine[0].extra["counts"]["by_source"],
        "psort_by_parser": theirs[0].extra["counts"]["by_parser"],
        "psort_dedup_events": dedup and dedup["counts"]["events"],
        "same_files_same_parsers": restricted,
        "files_differing": every,
        "files_differing_same_parsers": same,
        "files_left_out_of_same_parsers": excluded,
        "irkit_sources_measured": sorted({s.extra["irkit_source_sha256"] for s in mine + bare}),
        "samples": {k: [_figures(s) | s.extra for s in v] for k, v in samples.items()},
    }
    print(table(rows))
    print(
        f"\nlog2timeline+psort / irkit, median wall: {ratio:.2f}x (goal: >= 3x); without "
        f"archives and images: {bare_ratio:.2f}x"
    )
    print(
        f"same files, same parsers: {restricted}; psort without -a: "
        f"{dedup and dedup['counts']['events']} events"
    )
    for title, diff in (
        ("files whose rows differ", every),
        ("files whose rows differ, same files and parsers", same),
        ("left out of the same-parsers comparison", excluded),
    ):
        print(f"\n{title}: {len(diff)}")
        for e in diff:
            print(
                f"  {e['file']}: irkit {e['irkit_rows']} (plaso source "
                f"{e['irkit_plaso_rows']}), psort {e['psort_rows']}: {'; '.join(e['causes'])}"
            )
    if len(results["irkit_sources_measured"]) > 1:
        print("warning: irkit's source changed during the run", file=sys.stderr)
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
