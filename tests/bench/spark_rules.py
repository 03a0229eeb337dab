"""Which Sigma rules and built-in heuristics translate to Spark SQL, and which do not (why).

Usage: ``python tests/bench/spark_rules.py SIGMA_DIR... [--json-out F]``

Every runnable Sigma rule's predicate (its columns named as on a logsource table) and every
heuristic's query is translated by ``irkit.store.spark.SparkConnection.translate``, as
``irkit scan --engine spark`` does, without running it: what fails here fails there with
the same reason. Whether Spark then runs a translated rule, and gives DuckDB's matches,
is ``tests/test_spark.py``'s part (it needs events the rule can match).
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
from pathlib import Path
from typing import Any


def _columns(index: dict[str, int], field: str) -> tuple[str, str]:
    number = index.setdefault(field, len(index))
    return f"c{number}", f"o{number}"


def main() -> None:
    from irkit.detect import sigma_logsource, sigma_sql
    from irkit.detect.heuristics import FIELD_MACRO, load_heuristics
    from irkit.detect.sigma import load_sigma
    from irkit.errors import EngineError
    from irkit.store.spark import SparkConnection

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sigma", type=Path, nargs="+")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    engine = SparkConnection(None)
    engine.execute(FIELD_MACRO)
    for macro in sigma_logsource.MACROS:
        engine.execute(macro)
    rules = load_sigma(list(args.sigma), {})
    failed: dict[str, str] = {}
    runnable = [r for r in rules.runnable if r.plan is not None]
    for rule in runnable:
        index: dict[str, int] = {}
        assert rule.plan is not None
        where = sigma_sql.plan_sql(rule.plan, functools.partial(_columns, index))
        try:
            engine.translate(f"SELECT _row FROM t WHERE {where}")
        except EngineError as exc:
            failed[rule.id] = exc.message
    heuristics = load_heuristics()
    not_heuristics: dict[str, str] = {}
    for heuristic in heuristics:
        try:
            engine.translate(heuristic.sql)
        except EngineError as exc:
            not_heuristics[heuristic.id] = exc.message
    reasons = collections.Counter(v.split(":")[1].strip() for v in failed.values())
    out: dict[str, Any] = {
        "sigma_rules_found": len(rules.rules),
        "sigma_runnable_by_irkit": len(runnable),
        "sigma_translate": len(runnable) - len(failed),
        "sigma_not_translated": failed,
        "sigma_reasons": dict(reasons),
        "heuristics": len(heuristics),
        "heuristics_translate": len(heuristics) - len(not_heuristics),
        "heuristics_not_translated": not_heuristics,
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")


if __name__ == "__main__":
    main()
