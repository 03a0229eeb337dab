"""An ``or`` of one field's literals as one regular expression (``IN`` list for equality):
the same rows as the leaves one by one, on values full of what regular expressions and
SQL treat specially, NULL and empty included."""

from __future__ import annotations

import random
import string
from typing import Any

import duckdb
import pytest

from irkit.detect import sigma_sql
from irkit.detect.sigma_sql import COLUMN, MERGE_MAX, MERGE_MIN, literal

ALPHABET = string.ascii_letters[:6] + string.punctuation + " \n\tÄéß€\\'"


def _values(rng: random.Random, count: int) -> list[str | None]:
    out: list[str | None] = [None, "", "'", "\\", ".*", "(?i)a", "a|b", "$", "^"]
    out += ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 9))) for _ in range(count)]
    return out


def _leaf(rng: random.Random, kind: str, cased: bool, values: list[str | None]) -> list[Any]:
    """One leaf as ``value_plan`` writes it, its literal cut from a stored value."""
    text = rng.choice([v for v in values if v])[: rng.randint(1, 4)]
    text = text if cased else text.lower()
    target = COLUMN if cased else f"lower({COLUMN})"
    if kind == "=":
        return ["leaf", ["F"], f"{target} = {literal(text)}", False]
    return ["leaf", ["F"], f"{kind}({target}, {literal(text)})", False]


def _rows(db: Any, where: str) -> list[int]:
    return [r[0] for r in db.execute(f"SELECT i FROM t WHERE {where} ORDER BY i").fetchall()]


@pytest.mark.parametrize("seed", range(6))
def test_merged_or_matches_the_same_rows(seed: int) -> None:
    rng = random.Random(seed)
    values = _values(rng, 400)
    db = duckdb.connect()
    db.execute("CREATE TABLE t (i INTEGER, o0 VARCHAR, c0 VARCHAR)")
    db.executemany(
        "INSERT INTO t VALUES (?, ?, lower(?))", [(i, v, v) for i, v in enumerate(values)]
    )

    def column(_field: str) -> tuple[str, str]:
        return "c0", "o0"

    for count in (2, MERGE_MIN, 17, MERGE_MAX + 5):
        for kind in ("contains", "starts_with", "ends_with", "="):
            leaves = [_leaf(rng, kind, rng.random() < 0.3, values) for _ in range(count)]
            plan: list[Any] = ["or", [*leaves, ["leaf", ["F"], f"{COLUMN} IS NULL", True]]]
            for tree in (plan, ["not", plan], ["and", [plan, ["not", ["or", leaves[:3]]]]]):
                plain = sigma_sql.plan_sql(tree, column)
                merged = sigma_sql.plan_sql(tree, column, merge=True)
                assert _rows(db, merged) == _rows(db, plain), (kind, count, merged[:300])
            merged = sigma_sql.plan_sql(plan, column, merge=True)
            if count >= MERGE_MIN * 2:  # both casings have a run this long (or one does)
                assert "regexp_matches" in merged or " IN (" in merged
            if count < MERGE_MIN:
                assert "regexp_matches" not in merged and " IN (" not in merged
    db.close()


def test_merged_regular_expressions_stay_small() -> None:
    """A long list (SigmaHQ's driver hashes: thousands) is cut into expressions of at
    most ``MERGE_MAX`` literals, each compiled by RE2 within its memory budget."""
    texts = [f"md5={i:032x}" for i in range(1000)]
    leaves = [
        ["leaf", ["Hashes"], f"contains(lower({COLUMN}), {literal(t)})", False] for t in texts
    ]
    sql = sigma_sql.plan_sql(["or", leaves], lambda _field: ("c0", "o0"), merge=True)
    assert sql.count("regexp_matches") == -(-len(texts) // MERGE_MAX)
    db = duckdb.connect()
    db.execute("CREATE TABLE t (i INTEGER, o0 VARCHAR, c0 VARCHAR)")
    db.execute(f"INSERT INTO t VALUES (1, 'x', 'sha1=1,md5={999:032x},x'), (2, 'y', 'md5=1')")
    assert _rows(db, sql) == [1]
    db.close()
