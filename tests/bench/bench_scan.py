"""Parse + scan end to end (issue #18): ``irkit parse`` of a folder of logs, then ``irkit
scan CASE --sigma RULES``, each a fresh process, for one or more irkit trees paired round
by round (the rule cache is warmed first).

    python tests/bench/bench_scan.py --rounds 3 --code /tmp/before /tmp/after

``--code`` folders hold ``git archive REV irkit artifacts`` with the built ``_evtxflat*.so``
copied in (default: the installed irkit). Prints one line a round and tree: the two
commands' wall times, the heuristics' and Sigma's seconds, Sigma's tables and rules, its
findings and events × rules a second.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bytecode import installed_bytecode

CORPUS = Path(os.environ.get("IRKIT_CORPUS", Path(__file__).resolve().parents[3] / "shared/corpus"))


def _irkit(code: str | None, *args: str) -> tuple[float, bytes]:
    """One irkit command, from ``code`` when given. ``-P``: the working directory is not
    put first on the path (run from a checkout, ``python -m irkit`` would import the
    checkout's irkit whatever ``PYTHONPATH`` says)."""
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = code
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-P", "-m", "irkit", *args], env=env, capture_output=True, check=True
    )
    return time.perf_counter() - start, done.stdout


def _origin(code: str | None) -> str:
    """Where ``code``'s irkit is imported from, as the commands import it."""
    env = dict(os.environ, PYTHONPATH=code) if code else dict(os.environ)
    done = subprocess.run(
        [sys.executable, "-P", "-c", "import irkit; print(irkit.__file__)"],
        env=env, capture_output=True, check=True, text=True,
    )  # fmt: skip
    return done.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--evidence", type=Path, default=CORPUS / "EVTX-ATTACK-SAMPLES")
    parser.add_argument("--sigma", type=Path, default=CORPUS / "sigma")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--code", nargs="*", default=[""], help="irkit trees ('' installed)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="irkit-bench-scan-"))
    import irkit

    trees = [Path(c) / "irkit" if c else Path(irkit.__file__).parent for c in args.code]
    env, _ = installed_bytecode(os.environ, work, trees)
    os.environ.clear()
    os.environ.update(env)  # the commands, run from here, inherit it
    for code in args.code:
        origin = _origin(code)
        print(json.dumps({"code": code or "installed", "irkit": origin}), flush=True)
        if code and not origin.startswith(str(Path(code).resolve())):
            raise SystemExit(f"{code}: irkit is imported from {origin}, not from there")
    rows = []
    try:
        for round_ in range(args.rounds + 1):  # round 0 warms the rule cache, not shown
            for code in args.code:
                case = work / "case"
                shutil.rmtree(case, ignore_errors=True)
                parse_s, _ = _irkit(code, "parse", str(args.evidence), "--case", str(case), "-q")
                scan_s, out = _irkit(
                    code, "scan", str(case), "--sigma", str(args.sigma), "-q", "--json"
                )
                report = json.loads(out)
                sigma = report["detectors"]["sigma"]
                row = {
                    "round": round_, "code": code or "installed", "parse_s": round(parse_s, 2),
                    "scan_s": round(scan_s, 2),
                    "heuristics_s": report["detectors"]["heuristic"]["seconds"],
                    "sigma_s": sigma["seconds"], "sigma_parts_s": sigma["report"]["seconds"],
                    "sigma_findings": sigma["findings"],
                    "events_x_rules_per_s": sigma["report"]["events_x_rules_per_second"],
                    "load": os.getloadavg()[0],
                }  # fmt: skip
                if round_:
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
