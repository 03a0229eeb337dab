"""Detection coverage and benign noise of ``irkit scan`` on the shared corpus's EVTX.

Usage: ``python tests/bench/coverage.py [--sigma PATH] [--json-out FILE]``

Parses the corpus's EVTX folders (EVTX-ATTACK-SAMPLES and the three benign sets) into a
fresh case, runs ``irkit scan`` twice (a cold Sigma rule cache in a fresh ``IRKIT_CACHE``,
then warm) and prints:

- how many distinct EVTX-ATTACK-SAMPLES files get a finding of level medium or above, by
  all detectors, by the built-ins (heuristics and analytics) and by Sigma alone (a file
  counts when one of the finding's events came from it: ``finding_events``);
- the findings by level, and the wall time and peak RSS of both scans;
- every high or critical finding on the benign folders, with its file, and the number of
  benign events (the false-positive rate the heuristics are held to).

``--sigma`` defaults to the corpus's SigmaHQ folder (``sigma``: every rule it holds).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import duckdb

ATTACKS: Final = "EVTX-ATTACK-SAMPLES"
BENIGN: Final = ("omerbenamram-evtx", "plaso-evtx", "python-evtx")
BIN: Final = Path(sys.executable).parent


def corpus() -> Path:
    here = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("IRKIT_CORPUS") or here.parent / "shared" / "corpus")


def timed(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and the children's peak RSS (MiB) of one irkit command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run([str(BIN / "irkit"), *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 3):  # 3: partial (the corpus has corrupt files)
        sys.exit(f"irkit {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) // 1024


def measure(case: Path) -> dict[str, Any]:
    con = duckdb.connect(str(case / "irkit.duckdb"), read_only=True)
    events = f"(SELECT uid, evidence FROM read_parquet('{case}/events/**/*.parquet'))"
    hits = con.sql(
        f"""SELECT f.detector, e.evidence, f.severity, f.title FROM findings f
            JOIN finding_events fe ON fe.finding_uid = f.uid JOIN {events} e
            ON e.uid = fe.event_uid"""
    ).fetchall()
    attack_files = {
        r[0]
        for r in con.sql(f"SELECT DISTINCT evidence FROM {events}").fetchall()
        if ATTACKS in r[0]
    }
    medium = [h for h in hits if h[2] in ("medium", "high", "critical") and ATTACKS in h[1]]
    by = {
        "all": {h[1] for h in medium},
        "built-ins": {h[1] for h in medium if h[0] in ("heuristic", "analytics")},
        "sigma": {h[1] for h in medium if h[0] == "sigma"},
    }
    benign_events = con.sql(
        f"SELECT count(*) FROM {events} WHERE "
        + " OR ".join(f"evidence LIKE '%/{name}/%'" for name in BENIGN)
    ).fetchall()
    benign = sorted(
        {
            (h[0], h[2], h[3], Path(h[1]).name)
            for h in hits
            if h[2] in ("high", "critical") and any(f"/{name}/" in h[1] for name in BENIGN)
        }
    )
    levels = dict(
        con.sql("SELECT severity, count(*) FROM findings GROUP BY 1 ORDER BY 1").fetchall()
    )
    return {
        "attack_files": len(attack_files),
        "files_medium_or_above": {k: len(v) for k, v in by.items()},
        "findings": levels,
        "benign_events": benign_events[0][0],
        "benign_high_or_critical": [list(b) for b in benign],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigma", type=Path, default=None)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    root = corpus()
    sigma = args.sigma or root / "sigma"
    with tempfile.TemporaryDirectory(prefix="irkit-coverage-") as work:
        case, env = Path(work) / "case", {**os.environ, "IRKIT_CACHE": str(Path(work) / "cache")}
        folders = [str(root / ATTACKS), *(str(root / name) for name in BENIGN)]
        parse = timed(["parse", *folders, "--case", str(case), "-q"], env)
        scans = [timed(["scan", str(case), "--sigma", str(sigma), "-q"], env) for _ in range(2)]
        result = measure(case)
    result.update(
        parse_s=round(parse[0], 2),
        scan_cold_s=round(scans[0][0], 2),
        scan_warm_s=round(scans[1][0], 2),
        peak_rss_mib=max(s[1] for s in scans),  # the largest child so far: parse or scan
        sigma=str(sigma),
        load=os.getloadavg(),
    )
    n = result["attack_files"]
    for name, count in result["files_medium_or_above"].items():
        share = f"{100 * count / n:.1f} %"
        print(f"{name:>10}: {count} of {n} attack files with a finding >= medium ({share})")
    print(f"  findings: {result['findings']}")
    cold, warm, rss = result["scan_cold_s"], result["scan_warm_s"], result["peak_rss_mib"]
    print(f"      scan: {cold} s cold, {warm} s warm, peak RSS {rss} MiB (parse or scan)")
    noisy, benign = len(result["benign_high_or_critical"]), result["benign_events"]
    print(f"    benign: {noisy} high/critical findings over {benign} events")
    for row in result["benign_high_or_critical"]:
        print("           ", " | ".join(row))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
