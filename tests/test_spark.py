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

from irkit.detect.sigma_logsource import MACROS
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


#: DuckDB queries whose meaning Spark's words differ on (docs/dataset.md#spark): each is
#: run by DuckDB and, translated, by Spark over the same rows; the answers must agree.
SAME_ANSWER = (
    "SELECT count(*) FROM t WHERE path LIKE '%\\temp\\%'",
    "SELECT count(*) FROM t WHERE path ILIKE '%\\TEMP\\%'",
    "SELECT list(TRY_CAST(field('Mask') AS BIGINT) ORDER BY k) FROM t",
    "SELECT list(k ORDER BY ts NULLS LAST, k)[1:2] FROM t",
    "SELECT first(k ORDER BY ts, k), string_agg(DISTINCT host, '|' ORDER BY host) FROM t",
    "SELECT list(lower(path)[4:] ORDER BY k) FROM t",
    "SELECT list(n ORDER BY k) FROM (SELECT k, count(DISTINCT host) OVER (ORDER BY ts "
    "RANGE BETWEEN CURRENT ROW AND INTERVAL 60 SECONDS FOLLOWING) AS n FROM t)",
    "SELECT list(regexp_matches(path, '^' || regexp_escape(host) || '$') ORDER BY k) FROM t",
    "SELECT list(try_strptime(field('When'), '%Y-%m-%dT%H:%M:%S') ORDER BY k) FROM t",
    "SELECT list(len([v FOR v IN json_extract(field('Values'), '$[*]') "
    "IF json_extract_string(v, '$.data') <> '']) ORDER BY k) FROM t",
    "SELECT list(json_extract_string(fields, '$.\"Odd Name\"') ORDER BY k) FROM t",
    "SELECT list(regexp_full_match(host, '[A-Za-z0-9]+') ORDER BY k) FROM t",
    "SELECT list(json_exists(fields, '$.\"Odd Name\"') ORDER BY k) FROM t",
    "SELECT count(*) FROM t WHERE contains(path, '${jndi:ldap:/') OR contains(path, '${::-j}${')",
    "SELECT list(audit_value(field('Audit')) ORDER BY k) FROM t",
    "SELECT list(kv(field('Line'), 'exe') ORDER BY k), list(audit_args(field('Line')) ORDER BY k) "
    "FROM t",
)

ROWS = (
    ("a", "2024-01-01 10:00:00", "WS01", r"C:\Users\x\AppData\Local\Temp\a.exe",
     {"Mask": "0x1F", "When": "2024-01-01T10:00:00", "Odd Name": "1", "Audit": "2F62696E2F7368",
      "Line": 'type=EXECVE a0="ls" a1=2D6C61 exe="/bin/ls"',
      "Values": '[{"name": "x", "data": "1"}, {"name": "y", "data": ""}]'}),
    ("b", "2024-01-01 10:00:30", "WS.02", "WS.02",
     {"Mask": "255", "When": "not a time", "Values": "[]", "Audit": '"quoted"',
      "Line": "a0=id exe=/usr/bin/id"}),
    ("c", None, "ws01", r"c:\temp\b.ps1", {"Mask": "junk", "Audit": "1234"}),
)  # fmt: skip


def _duckdb_answers(folder: Path) -> tuple[Path, list[Any]]:
    import duckdb

    from irkit.detect.heuristics import FIELD_MACRO

    db = duckdb.connect()
    db.execute("SET TimeZone = 'UTC'")
    db.execute(
        "CREATE TABLE t (k VARCHAR, ts TIMESTAMPTZ, host VARCHAR, path VARCHAR, fields VARCHAR)"
    )
    for k, ts, host, path, fields in ROWS:
        db.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", [k, ts, host, path, json.dumps(fields)])
    db.execute(FIELD_MACRO)
    for macro in MACROS:
        db.execute(macro)
    data = folder / "t.parquet"
    db.execute(f"COPY t TO '{data}' (FORMAT PARQUET)")
    return data, [db.execute(sql).fetchall() for sql in SAME_ANSWER]


def test_spark_gives_duckdb_answers_where_the_words_differ(tmp_path: Path) -> None:
    _spark_ready()
    from pyspark.sql import functions

    from irkit.detect.heuristics import FIELD_MACRO
    from irkit.store.spark import SparkConnection, spark_session

    data, expected = _duckdb_answers(tmp_path)
    spark = spark_session()
    frame = spark.read.parquet(str(data)).withColumn(
        "_f", functions.from_json(functions.col("fields"), "map<string,string>")
    )
    frame.createOrReplaceTempView("t")
    engine = SparkConnection(spark)
    engine.execute(FIELD_MACRO)
    for macro in MACROS:
        engine.execute(macro)
    for sql, want in zip(SAME_ANSWER, expected, strict=True):
        got = engine.execute(sql).fetchall()
        assert got == want, (sql, engine.translate(sql))
