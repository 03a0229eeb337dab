"""The whole shared corpus: 308 EVTX files parse with no crash and lose nothing.

Skipped when the corpus is absent. The case is built once per session (conftest).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest

from irkit.store.case import Case

from .conftest import EVTX_CORPUS_DIRS, run_irkit
from .test_export import assert_no_formula, assert_timesketch_ready

pytestmark = pytest.mark.corpus


def inventory(corpus: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for folder in EVTX_CORPUS_DIRS:
        lines = (corpus / folder / "_evtx_inventory.tsv").read_text().splitlines()
        table = [line for line in lines if not line.startswith("#")]
        for row in csv.DictReader(table, delimiter="\t"):
            row["folder"] = folder
            rows.append(row)
    return rows


def test_every_file_yields_at_least_its_inventory(
    corpus: Path, corpus_case: tuple[Path, dict[str, object]]
) -> None:
    case, summary = corpus_case
    rows = inventory(corpus)
    assert len(rows) == 308
    assert summary["files_found"] == 308
    assert summary["files_failed"] == 0
    distinct = {row["sha256"] for row in rows}
    assert summary["files_parsed"] + summary["files_copies"] == 308
    assert summary["files_parsed"] == len(distinct)  # byte-identical copies are parsed once
    with Case(case, read_only=True) as store:
        db = store.db
        stored = dict(db.execute("SELECT sha256, records FROM evidence").fetchall())
        per_file = dict(
            db.execute("SELECT evidence_sha256, count(*) FROM events GROUP BY 1").fetchall()
        )
    short = []
    for row in rows:
        want = int(row["records"])
        got = per_file.get(row["sha256"], 0)
        if got < want or stored.get(row["sha256"]) != got:
            short.append((row["path"], want, got))
    assert short == []
    assert sum(per_file.values()) == sum(
        int(r["records"]) for r in {r["sha256"]: r for r in rows}.values()
    )
    # Named examples from the issue.
    by_path = {r["path"]: per_file[r["sha256"]] for r in rows}
    assert by_path["samples/sysmon.evtx"] >= 358
    assert by_path["samples/sample_with_a_bad_chunk_magic.evtx"] >= 270
    assert by_path["test_data/evtx/System2.evtx"] >= 194


def test_files_with_parse_errors_are_named_in_the_summary(
    corpus: Path, corpus_case: tuple[Path, dict[str, object]]
) -> None:
    _, summary = corpus_case
    errors = summary["errors_by_file"]
    assert isinstance(errors, dict)
    named = {Path(p).name for p in errors}
    for row in inventory(corpus):
        if int(row["parse_errors"]) > 0:
            assert Path(row["path"]).name in named, row["path"]
    assert summary["skipped_records"] == 7  # the inventory's record-level parse errors


def test_corpus_timeline_csv_is_fast_deterministic_and_timesketch_ready(
    corpus_case: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    case, summary = corpus_case
    outputs = []
    for name in ("first.csv", "second.csv"):
        out = tmp_path / name
        started = time.perf_counter()
        result = run_irkit("timeline", str(case), "--format", "csv", "-o", str(out))
        elapsed = time.perf_counter() - started
        assert result.returncode == 0, result.stderr
        assert elapsed < 10, f"timeline export took {elapsed:.1f}s"
        outputs.append(out)
    assert outputs[0].read_bytes() == outputs[1].read_bytes()
    with outputs[0].open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    assert len(body) == summary["events_added"]
    assert_timesketch_ready(header, body)
    assert_no_formula(body)
