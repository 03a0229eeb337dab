"""Sigma rules decided from a logsource table's distinct values (``ValueIndex``, #18): a
rule that needs a literal no event holds is not run, and that must never drop a match."""

from __future__ import annotations

import dataclasses
import random
import string
from pathlib import Path
from typing import Any

import duckdb
import pytest

from irkit.detect import sigma_run, sigma_sql
from irkit.detect.sigma import load_sigma
from irkit.detect.sigma_run import ValueIndex, run_sigma
from irkit.detect.sigma_sql import COLUMN, literal
from irkit.store.case import Case

ALPHABET = string.ascii_letters[:5] + "ÄéK\\'%_. "
FIELDS = {"F": 0, "G": 1}


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 6)))


def _leaf(rng: random.Random, pool: list[str]) -> list[Any]:
    """A literal test of F or G as ``value_plan`` writes it: its literal cut from a value
    of the table (so that some tests pass) or made up (so that some cannot)."""
    field = rng.choice(list(FIELDS))
    cased = rng.random() < 0.3
    text = rng.choice(pool)[: rng.randint(0, 4)] if rng.random() < 0.6 else _text(rng)
    text = (text if cased else text.lower()).replace("\0", "")  # no rule holds a NUL
    target = COLUMN if cased else f"lower({COLUMN})"
    kind = rng.choice(["contains", "starts_with", "ends_with", "="])
    if kind == "=":
        return ["leaf", [field], f"{target} = {literal(text)}", False]
    return ["leaf", [field], f"{kind}({target}, {literal(text)})", False]


def _plan(rng: random.Random, pool: list[str], depth: int = 0) -> list[Any]:
    roll = rng.random()
    if depth > 2 or roll < 0.4:
        return _leaf(rng, pool)
    if roll < 0.5:
        return ["not", _plan(rng, pool, depth + 1)]
    if roll < 0.55:
        return ["leaf", [rng.choice(list(FIELDS))], f"{COLUMN} IS NULL", True]
    kind = "and" if roll < 0.8 else "or"
    return [kind, [_plan(rng, pool, depth + 1) for _ in range(rng.randint(0, 3))]]


def _table(rng: random.Random, nul: bool) -> tuple[Any, list[str]]:
    pool = [_text(rng) for _ in range(12)] + ["", "A\\b%", "x'y"]
    if nul:
        pool.append("ab\0cd")
    db = duckdb.connect()
    db.execute("CREATE TABLE t (i INTEGER, o0 VARCHAR, o1 VARCHAR, c0 VARCHAR, c1 VARCHAR)")
    rows = []
    for i in range(rng.randint(0, 25)):
        f = rng.choice([*pool, None])
        g = rng.choice([*pool, None]) if rng.random() < 0.8 else None
        rows.append((i, f, g, f, g))
    if rows:
        db.executemany("INSERT INTO t VALUES (?, ?, ?, lower(?), lower(?))", rows)
    return db, pool


def _matches(db: Any, plan: list[Any]) -> int:
    where = sigma_sql.plan_sql(plan, lambda field: (f"c{FIELDS[field]}", f"o{FIELDS[field]}"))
    return int(db.execute(f"SELECT count(*) FROM t WHERE {where}").fetchall()[0][0])


@pytest.mark.parametrize("seed", range(40))
def test_a_plan_decided_by_the_values_matches_no_row(seed: int) -> None:
    rng = random.Random(seed)
    db, pool = _table(rng, nul=seed % 4 == 0)
    plans = [_plan(rng, pool) for _ in range(60)]
    rows = int(db.execute("SELECT count(*) FROM t").fetchall()[0][0])
    index = ValueIndex(db, "t", FIELDS, plans, rows)
    decided = 0
    for plan in plans:
        if not sigma_sql.possible(plan, index.holds):
            decided += 1
            assert _matches(db, plan) == 0, plan
    # one literal test is decided exactly (values with a NUL aside: they only keep tests)
    for _ in range(40):
        leaf = _leaf(rng, pool)
        index = ValueIndex(db, "t", FIELDS, [leaf], rows)
        if seed % 4:
            assert sigma_sql.possible(leaf, index.holds) == (_matches(db, leaf) > 0), leaf
        elif not sigma_sql.possible(leaf, index.holds):
            assert _matches(db, leaf) == 0
    assert decided or seed % 4 == 0 or not rows
    db.close()


def test_the_corpus_case_gives_the_same_findings_without_the_index(
    corpus_case: tuple[Path, dict[str, object]], corpus: Path, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.setenv("IRKIT_CACHE", str(tmp_path / "cache"))
    rules = load_sigma([corpus / "sigma" / "rules" / "windows"])
    case_dir, _ = corpus_case
    with Case(case_dir, read_only=True) as case:
        indexed = run_sigma(case, rules)
        monkeypatch.setattr(sigma_run, "VALUES_ROWS", -1)
        every_rule = run_sigma(case, rules)
    assert indexed.report["decided_by_values"] > 1000
    assert every_rule.report["decided_by_values"] == 0
    assert indexed.report["run"] == every_rule.report["run"]
    assert indexed.findings and [dataclasses.asdict(f) for f in indexed.findings] == [
        dataclasses.asdict(f) for f in every_rule.findings
    ]


def test_columns_over_the_budget_are_not_indexed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory stays bounded: a column whose cells would pass ``VALUES_CELLS`` is left out,
    and a rule testing it runs (it is not decided)."""
    db = duckdb.connect()
    db.execute("CREATE TABLE t AS SELECT 'v' || (i % 7) AS o0, 'w' || i AS o1 FROM range(100) r(i)")
    db.execute("ALTER TABLE t ADD COLUMN c0 VARCHAR; ALTER TABLE t ADD COLUMN c1 VARCHAR")
    db.execute("UPDATE t SET c0 = lower(o0), c1 = lower(o1)")
    absent_f = ["leaf", ["F"], f"lower({COLUMN}) = 'nowhere'", False]
    absent_g = ["leaf", ["G"], f"lower({COLUMN}) = 'nowhere'", False]
    monkeypatch.setattr(sigma_run, "VALUES_CELLS", 150)  # room for one column of 100 rows
    index = ValueIndex(db, "t", FIELDS, [absent_f, absent_g], 100)
    assert list(index.values) == [("F", True)]
    assert not sigma_sql.possible(absent_f, index.holds)
    assert sigma_sql.possible(absent_g, index.holds)  # not indexed: it runs
    monkeypatch.setattr(sigma_run, "VALUES_BYTES", 10)  # F's 200 bytes of text are too many
    assert ValueIndex(db, "t", FIELDS, [absent_f], 100).values == {}
    db.close()
