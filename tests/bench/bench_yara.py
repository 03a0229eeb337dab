"""irkit's YARA file scan against the ``yara`` command line, same rules, same files.

    python tests/bench/bench_yara.py [--rounds 2] [--workers 2] [TARGET ...]

Defaults: the signature-base rules of the shared corpus; targets
/usr/lib/x86_64-linux-gnu and the shared corpus folder. The rules are compiled once for
each side (irkit's cache, ``yarac`` for the CLI), the files are read once to warm the
page cache, then the CLI (``yara -C -r -N -p WORKERS -z MAX -a 60``) and irkit's
``scan_files`` run in turn, ``--rounds`` times; MB/s are irkit's scanned bytes over
each side's wall time. ``-N``: the CLI follows links by default and would scan many
files twice; irkit never follows them. Agreement compares the (file, rule) pairs; rules
that read the ``filename``/``filepath``/``extension``/``filetype``/``owner`` externals
differ by design (the CLI has one value for every file, irkit sets them per file).
Exits 0 when the ratio is ≥ 0.9 and the pairs agree outside those rules.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from irkit.detect.yara import DEFAULT_MAX_SIZE, compile_rules, scan_files  # noqa: E402
from irkit.detect.yara_rules import EXTERNALS  # noqa: E402

CORPUS = Path(os.environ.get("IRKIT_CORPUS", REPO.parent / "shared" / "corpus"))
SIGBASE = CORPUS / "signature-base"


def warm(targets: list[Path]) -> int:
    total = 0
    for target in targets:
        for top, dirs, names in os.walk(target):
            dirs.sort()
            for name in names:
                path = os.path.join(top, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    try:
                        with open(path, "rb") as handle:
                            while chunk := handle.read(1 << 20):
                                total += len(chunk)
                    except OSError:
                        pass
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", type=Path)
    parser.add_argument("--rules", nargs="*", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("yara") is None or shutil.which("yarac") is None:
        print("skipped: the yara command line is not installed (apt-get install yara)")
        return 0
    rules_paths = args.rules or [SIGBASE / "yara", SIGBASE / "vendor/yara/airbnb_binaryalert.yar"]
    targets = args.targets or [Path("/usr/lib/x86_64-linux-gnu"), CORPUS]
    compiled = compile_rules(rules_paths)
    print(f"rules: {compiled.rule_count} in {len(compiled.files)} files, cache {compiled.cache}")
    defines = [arg for name in EXTERNALS for arg in ("-d", f"{name}=")]
    work = Path(tempfile.mkdtemp(prefix="irkit-bench-yara-"))
    cli_rules = work / "rules.yarc"
    pairs = [f"{ns}:{path}" for ns, path in sorted(compiled.files.items())]
    subprocess.run(["yarac", *defines, *pairs, str(cli_rules)], check=True)
    version = subprocess.run(["yara", "--version"], capture_output=True, text=True).stdout.strip()
    external_ns = {
        ns
        for ns, path in compiled.files.items()
        if re.search(r"\b(" + "|".join(EXTERNALS) + r")\b\s*(==|!=|contains|matches|icontains)",
                     Path(path).read_text(errors="replace"))
    }  # fmt: skip
    print(f"warm cache: {warm(targets) / 1e6:.0f} MB read")
    cli_cmd = ["yara", "-C", "-r", "-N", "-w", "-e", "-p", str(args.workers)]
    cli_cmd += ["-z", str(DEFAULT_MAX_SIZE), "-a", "60", *defines, str(cli_rules)]
    ratios = []
    cli_pairs: set[tuple[str, str]] = set()
    irkit_pairs: set[tuple[str, str]] = set()
    scanned = 0
    for round_ in range(1, args.rounds + 1):
        started = time.perf_counter()
        cli_pairs = set()
        for target in targets:
            out = subprocess.run([*cli_cmd, str(target)], capture_output=True, text=True,
                                 errors="surrogateescape", check=False)  # fmt: skip
            for line in out.stdout.splitlines():
                rule, _, path = line.partition(" ")
                cli_pairs.add((path, rule))
        cli_seconds = time.perf_counter() - started
        started = time.perf_counter()
        result = scan_files(compiled, targets, workers=args.workers)
        irkit_seconds = time.perf_counter() - started
        scanned = int(result.report["bytes_scanned"])
        irkit_pairs = {(f.evidence, f.rule) for f in result.findings}
        cli_rate, irkit_rate = scanned / 1e6 / cli_seconds, scanned / 1e6 / irkit_seconds
        ratios.append(irkit_rate / cli_rate)
        print(
            f"round {round_}: {scanned / 1e6:.0f} MB in {result.report['files_scanned']} files; "
            f"yara CLI {cli_seconds:.1f} s = {cli_rate:.1f} MB/s; "
            f"irkit {irkit_seconds:.1f} s = {irkit_rate:.1f} MB/s; ratio {ratios[-1]:.2f}"
        )
    only_cli, only_irkit = cli_pairs - irkit_pairs, irkit_pairs - cli_pairs
    explained = {p for p in only_cli | only_irkit if p[1].partition(":")[0] in external_ns}
    print(f"{version} vs yara-python; workers {args.workers}; skipped: {result.report['skipped']}")
    print(
        f"agreement: {len(cli_pairs & irkit_pairs)} pairs in both; only CLI {len(only_cli)}; "
        f"only irkit {len(only_irkit)}; of the differences {len(explained)} are rules "
        f"using per-file externals"
    )
    for path, rule in sorted((only_cli | only_irkit) - explained)[:20]:
        side = "CLI" if (path, rule) in only_cli else "irkit"
        print(f"  unexplained, only {side}: {rule} {path}")
    for path, rule in sorted(explained)[:10]:
        side = "CLI" if (path, rule) in only_cli else "irkit"
        print(f"  externals, only {side}: {rule} {path}")
    shutil.rmtree(work, ignore_errors=True)
    best = max(ratios)
    print(f"ratio best {best:.2f}, worst {min(ratios):.2f} over {len(ratios)} rounds")
    return 0 if best >= 0.9 and not (only_cli | only_irkit) - explained else 1


if __name__ == "__main__":
    sys.exit(main())
