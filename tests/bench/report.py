"""Time `irkit report` on a case: median of repeats, size, and the sha256 of each run
(the same case must give the same bytes). docs/report.md has the figures.

    /work/venv/bin/python tests/bench/report.py /tmp/corpus --repeat 3
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()

    from irkit.report import write_report

    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.repeat):
            target = Path(folder) / f"report-{i}.html"
            started = time.perf_counter()
            written = write_report(args.case, target)
            seconds = time.perf_counter() - started
            digest = hashlib.sha256(target.read_bytes()).hexdigest()
            runs.append({"seconds": round(seconds, 3), "bytes": written.bytes, "sha256": digest})
            print(
                f"run {i + 1}: {seconds:.2f} s, {written.bytes:,} bytes, {digest[:16]}",
                file=sys.stderr,
            )
    result = {
        "case": str(args.case.resolve()),
        "events": written.events,
        "findings": written.findings,
        "findings_shown": written.findings_shown,
        "median_seconds": statistics.median(r["seconds"] for r in runs),
        "bytes": runs[0]["bytes"],
        "same_bytes": len({r["sha256"] for r in runs}) == 1,
        "load_average": os.getloadavg(),
        "runs": runs,
    }
    print(json.dumps(result, indent=2))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["same_bytes"] else 1


if __name__ == "__main__":
    sys.exit(main())
