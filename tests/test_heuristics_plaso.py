"""The built-in heuristics over plaso's sources: every one runs on plaso-test-data's events
(registry hives, prefetch, syslog, shell histories, web logs…) without a warning, and its
high and critical findings there are the known, explained ones (docs/detection.md)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from irkit.detect.heuristics import load_heuristics
from irkit.detect.heuristics_run import run_heuristics
from irkit.model import severity_rank
from irkit.store.case import Case

from .conftest import run_irkit

pytestmark = pytest.mark.corpus

#: (heuristic, file) of every high or critical finding on plaso-test-data, each explained
#: in docs/detection.md ("High and critical findings on plaso's test data").
KNOWN_HIGH = {
    # apache_access.log holds requests to a planted `evil.php?cmd=…` answered 200: plaso's
    # own test of a webshell-like log, not benign traffic.
    ("web_webshell_command", "apache_access.log"),
}


@pytest.fixture(scope="module")
def plaso_case(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    case = tmp_path_factory.mktemp("plaso-heuristics") / "case"
    done = run_irkit("parse", str(corpus / "plaso-test-data"), "--case", str(case), "-q")
    assert done.returncode == 3, done.stderr  # partial: plaso's corrupt samples
    return case


def test_heuristics_over_plaso_test_data(plaso_case: Path) -> None:
    # The ones written for plaso's events: their examples are plaso events.
    plaso_rules = [
        h.id for h in load_heuristics() if any(e.get("source") == "plaso" for e in h.fires)
    ]
    assert len(plaso_rules) >= 15
    with Case(plaso_case, read_only=True) as case:
        result = run_heuristics(case)
        events = case.count()
    assert result.warnings == []
    counts = Counter(f.rule for f in result.findings)
    print(f"\nfindings on plaso-test-data ({events} events):")
    for rule, count in sorted(counts.items()):
        print(f"  {rule:45} {count}")
    high = {
        (f.rule, Path(f.evidence.split("::")[0]).name)
        for f in result.findings
        if severity_rank(f.severity) >= 3
    }
    assert high == KNOWN_HIGH
    # At most one high or critical finding per 1,000 events of this (mostly benign) data.
    assert len([f for f in result.findings if severity_rank(f.severity) >= 3]) <= events / 1000
