"""Findings a responder can follow: a finding that rests on events of several files names
every file; ``irkit timeline --finding UID`` lists every event it rests on (more than the
100 uids the findings table keeps); the findings CSV gives ATT&CK tactic and technique."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from irkit.detect.attack import attack_columns
from irkit.detect.heuristics import parse_heuristic
from irkit.detect.heuristics_run import run_heuristics
from irkit.model import MAX_EVENT_UIDS
from irkit.store.case import Case

from .conftest import run_irkit

HEURISTIC = """\
id: dropper_in_tmp
title: A file named like a dropper in a temporary folder
level: high
attack: [attack.execution, attack.defense_evasion, attack.t1204.002]
description: Test heuristic, files called dropper-N under /tmp.
falsepositives: [none]
query: |
  SELECT uid, '' AS key FROM events
  WHERE source = 'bodyfile' AND starts_with(field('path'), '/tmp/dropper-')
excerpt: [path]
examples:
  fires:
    - ts: 2024-01-01T10:00:00Z
      fields: {path: /tmp/dropper-1}
  silent:
    - ts: 2024-01-01T10:00:00Z
      fields: {path: /home/dropper-1}
"""


def _bodyfile(path: Path, first: int, count: int) -> None:
    lines = ["# test bodyfile"]
    for n in range(first, first + count):
        # atime, mtime, ctime: three file events per line
        times = f"1714550{n:03d}|1714551{n:03d}|1714552{n:03d}"
        lines.append(f"0|/tmp/dropper-{n}|{1000 + n}|r/rrw-r--r--|0|0|10|{times}|0")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def followed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], str]:
    root = tmp_path_factory.mktemp("follow")
    evidence = root / "evidence"
    evidence.mkdir()
    files = [evidence / f"host{n}.body" for n in (1, 2, 3)]
    for n, path in enumerate(files):
        _bodyfile(path, n * 20, 20)  # 3 files × 20 lines × 3 times = 180 events
    case = root / "case"
    result = run_irkit("parse", str(evidence), "--case", str(case), "-q")
    assert result.returncode == 0, result.stderr
    rule = root / "dropper_in_tmp.yaml"
    rule.write_text(HEURISTIC)
    heuristic, problems = parse_heuristic(rule)
    assert heuristic is not None, problems
    with Case(case) as store:
        found = run_heuristics(store, [heuristic]).findings
        assert len(found) == 1 and found[0].count == 180 > MAX_EVENT_UIDS
        store.add_findings(found, "test-run")
        store.add_findings(found, "test-run-again")  # the same finding: nothing twice
        links = store.db.execute("SELECT count(*) FROM finding_events").fetchone()
        assert links == (180,)
    return case, files, found[0].uid


def test_a_finding_names_every_file_it_rests_on(followed: tuple[Path, list[Path], str]) -> None:
    case, files, uid = followed
    result = run_irkit("findings", str(case), "--format", "csv", "-o", "-")
    assert result.returncode == 0, result.stderr
    [row] = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row["uid"] == uid and row["count"] == "180"
    assert row["evidence_files"].split(" | ") == [str(p) for p in files]
    assert row["evidence"] == str(files[0])  # the first event's file, as before
    assert row["tactic"] == "execution,defense-evasion"
    assert row["technique"] == "T1204.002"


def test_timeline_lists_every_event_of_a_finding(followed: tuple[Path, list[Path], str]) -> None:
    case, files, uid = followed
    result = run_irkit("timeline", str(case), "--finding", uid[:8], "-f", "jsonl", "-o", "-")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(events) == 180  # all of them, not the 100 the findings table keeps
    assert {e["evidence"] for e in events} == {str(p) for p in files}
    assert all(e["source"] == "bodyfile" for e in events)


def test_a_finding_uid_that_matches_nothing_is_a_usage_error(
    followed: tuple[Path, list[Path], str],
) -> None:
    case, _, _ = followed
    for value in ("0123456789abcdef", "xyz"):
        result = run_irkit("timeline", str(case), "--finding", value)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("irkit: "), result.stderr


def test_attack_columns_split_tactics_and_techniques() -> None:
    tags = ["attack.t1059.001", "attack.execution", "attack.privilege-escalation", "attack.s0002"]
    assert attack_columns(tags) == ("execution,privilege-escalation", "T1059.001")
    assert attack_columns(["attack.t1003", "attack.credential_access", "cve.2021-1"]) == (
        "credential-access",
        "T1003",
    )
