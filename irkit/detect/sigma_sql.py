"""Sigma detections as DuckDB SQL: a rule's plan (``irkit.detect.sigma_compile`` makes it
from pySigma's condition tree) → a WHERE clause. Running rules needs no pySigma.

The plan is plain JSON (it is cached per rule file): ``["or", [...]]``, ``["and", [...]]``,
``["not", x]``, ``["const", bool]`` and ``["leaf", fields, sql, when_absent]``. A leaf's SQL
names its fields' columns as ``\\x01`` (and ``\\x02`` for a field reference); the runner
puts in the column of the logsource table. ``when_absent`` is the leaf's value when no
event has the field, which tells which rules can never fire on a case.

Matching follows the Sigma specification: strings compare case-insensitively, ``*`` and
``?`` are wildcards, regular expressions are case-sensitive unless flagged ``i``; every
leaf is false (never unknown) on a missing field, so ``not`` behaves as Sigma says.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Iterator
from typing import Any

#: Where a leaf's SQL names its field's column (and a referenced field's column).
COLUMN = "\x01"
OTHER_COLUMN = "\x02"
#: The column holding every field value and the message, for keyword searches.
KEYWORDS_COLUMN = "_all"

Plan = list[Any]


class UnsupportedError(Exception):
    """A rule uses something irkit cannot turn into SQL; ``reason`` groups it in the report."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class MissingPlaceholderError(Exception):
    """A rule names a placeholder (``%Admins_Workstations%``) no value was given for."""

    def __init__(self, names: set[str]) -> None:
        super().__init__(", ".join(sorted(names)))
        self.names = names


def literal(text: str) -> str:
    """``text`` as a SQL string literal."""
    if "\x00" in text or COLUMN in text or OTHER_COLUMN in text:
        raise UnsupportedError("control character in a value")
    return "'" + text.replace("'", "''") + "'"


def leaf_plan(fields: list[str], sql: str, when_absent: bool = False) -> Plan:
    """A leaf: the SQL of a test of ``fields`` (``COLUMN``, ``OTHER_COLUMN``)."""
    return ["leaf", fields, sql, when_absent]


def leaves(plan: Plan) -> Iterator[Plan]:
    """Every leaf of a plan."""
    if plan[0] == "leaf":
        yield plan
    elif plan[0] == "not":
        yield from leaves(plan[1])
    elif plan[0] in ("and", "or"):
        for child in plan[1]:
            yield from leaves(child)


def plan_fields(plan: Plan) -> Iterator[str]:
    """Every field a plan reads (keywords: ``_all``)."""
    for leaf in leaves(plan):
        yield from leaf[1]


#: A leaf testing a field's text for one literal (``contains``, ``starts_with``,
#: ``ends_with``), as ``value_plan`` writes it.
_TEXT_LEAF = re.compile(
    r"(contains|starts_with|ends_with)\((lower\(\x01\)|\x01), '((?:[^']|'')*)'\)\Z", re.DOTALL
)
_EQUALS_LEAF = re.compile(r"(lower\(\x01\)|\x01) = '((?:[^']|'')*)'\Z", re.DOTALL)
#: Literals of one field an ``or`` tests the same way, from which on they are one regular
#: expression; and at most how many a regular expression (RE2's memory stays small).
MERGE_MIN = 4
MERGE_MAX = 128
_ANCHORS = {"contains": ("", ""), "starts_with": ("^", ""), "ends_with": ("", "$")}
_RE_SPECIAL = frozenset(string.punctuation)


@functools.lru_cache(maxsize=1 << 16)
def _literal_test(sql: str) -> tuple[str, str, str] | None:
    """(test, target, literal) of a leaf's SQL testing one column against a literal
    (``contains``, ``starts_with``, ``ends_with``, ``=``; the target ``\x01`` or
    ``lower(\x01)``); None for any other SQL. Once a process for each text."""
    match = _TEXT_LEAF.match(sql)
    if match is not None:
        func, target, text = match.groups()
    else:
        equals = _EQUALS_LEAF.match(sql)
        if equals is None:
            return None
        func, (target, text) = "=", equals.groups()
    return func, target, text.replace("''", "'")


def _re_literal(text: str) -> str:
    return "".join("\\" + ch if ch in _RE_SPECIAL else ch for ch in text)


def _merged(children: list[Plan]) -> list[Plan]:
    """The children of an ``or``, with each run of ``MERGE_MIN`` or more leaves testing
    one field for a literal the same way made one ``regexp_matches`` (RE2: one pass over
    the text, where 60 ``contains`` are 60; and one literal to parse, not 60). The same
    truth on every row, NULL included: a leaf is NULL exactly when its field is."""
    runs: dict[tuple[str, str, tuple[str, ...]], list[tuple[str, Plan]]] = {}
    kept: list[Plan] = []
    for child in children:
        leaf = child[0] == "leaf" and not child[3] and len(child[1]) == 1
        test = _literal_test(child[2]) if leaf else None
        if test is None:
            kept.append(child)
            continue
        func, target, text = test
        runs.setdefault((func, target, tuple(child[1])), []).append((text, child))
    out = list(kept)
    for (func, target, fields), run in runs.items():
        if len(run) < MERGE_MIN:  # too few to be worth it: the leaves as they were
            out += [child for _, child in run]
            continue
        texts = [text for text, _ in run]
        if func == "=":  # x = 'a' OR x = 'b' is x IN ('a', 'b'), NULL as NULL
            listed = ", ".join(literal(t) for t in texts)
            out.append(leaf_plan(list(fields), f"{target} IN ({listed})"))
            continue
        start, end = _ANCHORS[func]
        for first in range(0, len(texts), MERGE_MAX):
            chunk = "|".join(_re_literal(t) for t in texts[first : first + MERGE_MAX])
            pattern = f"{start}(?:{chunk}){end}"
            out.append(leaf_plan(list(fields), f"regexp_matches({target}, {literal(pattern)})"))
    return out


def plan_sql(plan: Plan, column: Callable[[str], tuple[str, str]], merge: bool = False) -> str:
    """The WHERE clause of a plan; ``column`` names the table columns of a Sigma field:
    its lower-cased copy and its value as stored.

    A missing field makes a leaf NULL, which AND and OR treat as false; only under NOT is
    it turned into false explicitly, so that ``not`` matches events without the field.
    ``merge``: an ``or``'s literals of one field as one regular expression (``_merged``;
    for DuckDB, whose RE2 reads an alternation in one pass).
    """
    kind = plan[0]
    if kind == "leaf":
        fields, sql = plan[1], plan[2]
        for marker, field in zip((COLUMN, OTHER_COLUMN), fields, strict=False):
            lowered, stored = column(field)
            sql = sql.replace(f"lower({marker})", lowered).replace(marker, stored)
        return f"({sql})"
    if kind == "not":
        return f"(NOT coalesce({plan_sql(plan[1], column, merge)}, false))"
    if kind == "const":
        return "true" if plan[1] else "false"
    joiner = " OR " if kind == "or" else " AND "
    items = _merged(plan[1]) if merge and kind == "or" else plan[1]
    children = [plan_sql(child, column, merge) for child in items]
    if not children:
        return "false" if kind == "or" else "true"
    return "(" + joiner.join(children) + ")"


def can_match(plan: Plan, present: Callable[[str], bool]) -> bool | None:
    """Whether a plan can be true when only ``present`` fields exist: ``False`` if never,
    else ``None`` (it depends on the values)."""

    def walk(node: Plan) -> bool | None:
        kind = node[0]
        if kind == "const":
            return bool(node[1])
        if kind == "leaf":
            return None if all(present(f) for f in node[1]) else bool(node[3])
        if kind == "not":
            inner = walk(node[1])
            return None if inner is None else not inner
        values = [walk(child) for child in node[1]]
        if kind == "and":
            return False if False in values else (True if all(values) else None)
        return True if True in values else (None if None in values else False)

    result = walk(plan)
    return False if result is False else None


def _text_test(leaf: Plan) -> tuple[str, bool, str, str] | None:
    """(field, lower-cased?, test, literal) of a leaf testing one field's text against a
    literal (``_literal_test``); None for any other leaf."""
    if leaf[3] or len(leaf[1]) != 1:
        return None
    test = _literal_test(leaf[2])
    if test is None:
        return None
    func, target, text = test
    return leaf[1][0], target.startswith("lower("), func, text


def text_fields(plan: Plan) -> Iterator[tuple[str, bool]]:
    """The (field, lower-cased?) columns a plan's literal tests read."""
    for leaf in leaves(plan):
        test = _text_test(leaf)
        if test is not None:
            yield test[0], test[1]


def possible(plan: Plan, holds: Callable[[str, bool, str, str], bool]) -> bool:
    """False when the plan is true on no event: it needs a literal test no event passes.
    ``holds(field, lower-cased?, test, literal)`` says whether some event's value passes
    one (True when it cannot tell). Under ``not`` nothing is concluded."""
    kind = plan[0]
    if kind == "const":
        return bool(plan[1])
    if kind == "leaf":
        test = _text_test(plan)
        return True if test is None else holds(*test)
    if kind == "and":
        return all(possible(child, holds) for child in plan[1])
    if kind == "or":
        return any(possible(child, holds) for child in plan[1])
    return True
