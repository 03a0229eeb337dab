"""`irkit scan DATASET --engine spark`: the same detections as Spark SQL (PySpark
``local[*]``), translated from DuckDB's SQL by sqlglot (irkit/store/spark.py).

The corpus case's dataset is scanned three ways: the case itself, its dataset with DuckDB
and its dataset with Spark. The (rule, event uid) pairs must be the same; a rule Spark
cannot run must be named in the report with its reason, never dropped unsaid.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from irkit.store.case import Case
from irkit.store.dataset import Dataset

from .conftest import run_irkit

#: Built-in heuristics Spark cannot run, and why (the report must name each).
SPARK_CANNOT: dict[str, str] = {
    "winrm_inbound_session": "an ASOF JOIN, which Spark SQL has not",
}


def _spark_ready() -> None:
    pytest.importorskip("pyspark")
    pytest.importorskip("sqlglot")
    if shutil.which("java") is None:
        pytest.skip("no java on PATH: Spark needs Java 17")


def _pairs(db: Any) -> set[tuple[str, str]]:
    rows = db.execute(
        "SELECT f.rule, l.event_uid FROM findings f JOIN finding_events l ON l.finding_uid = f.uid"
    ).fetchall()
    return {(str(r[0]), str(r[1])) for r in rows}


def _scan(target: Path, *extra: str) -> dict[str, Any]:
    done = run_irkit("scan", str(target), "-q", "--json", *extra, timeout=3000)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.corpus
def test_spark_finds_what_duckdb_and_the_case_find(
    corpus: Path,
    corpus_case: tuple[Path, dict[str, object]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _spark_ready()
    monkeypatch.setenv("IRKIT_CACHE", str(tmp_path / "cache"))
    source, _ = corpus_case
    case = tmp_path / "case"
    shutil.copytree(source, case, ignore=shutil.ignore_patterns("*.lock"))
    with Case(case) as store:  # the session's case may hold another test's findings
        store.db.execute("DELETE FROM finding_events")
        store.db.execute("DELETE FROM findings")
    duck, spark = tmp_path / "duck", tmp_path / "spark"
    assert run_irkit("export", str(case), "--out", str(duck), "-q").returncode == 0
    shutil.copytree(duck, spark)
    rules = corpus / "sigma" / "rules" / "windows"
    _scan(case, "--sigma", str(rules))
    on_duck = _scan(duck, "--sigma", str(rules))
    on_spark = _scan(spark, "--sigma", str(rules), "--engine", "spark")
    with Case(case, read_only=True) as store:
        case_pairs = _pairs(store.db)
    with Dataset(duck) as data:
        duck_pairs = _pairs(data.db)
    with Dataset(spark) as data:
        spark_pairs = _pairs(data.db)
    assert len(case_pairs) > 1000
    assert duck_pairs == case_pairs
    # What Spark could not run is said, rule by rule, with the reason.
    heuristics = on_spark["detectors"]["heuristic"]["report"]
    skipped = dict(heuristics["not_run_on_engine"])
    assert set(skipped) == set(SPARK_CANNOT), skipped
    assert all(reason.startswith("spark: ") for reason in skipped.values())
    sigma = on_spark["detectors"]["sigma"]["report"]
    not_on_spark = {r["id"] for r in sigma["not_run_on_engine"]}
    assert all(r["reason"] for r in sigma["not_run_on_engine"])
    assert sigma["run"] + len(not_on_spark) == on_duck["detectors"]["sigma"]["report"]["run"]
    assert len(not_on_spark) <= 10, sigma["not_run_on_engine"]
    assert "not_run_on_engine" not in on_spark["detectors"]["analytics"]["report"]
    # Every other rule: the same events on Spark as on DuckDB and on the case.
    expected = {
        (rule, uid) for rule, uid in duck_pairs if rule not in skipped and rule not in not_on_spark
    }
    assert spark_pairs == expected
    # irkit findings reads what Spark wrote as it reads DuckDB's.
    listed = run_irkit("findings", str(spark), "-f", "jsonl", "-o", "-", "--min-level", "high")
    assert listed.returncode == 0 and listed.stdout.count("\n") > 10
