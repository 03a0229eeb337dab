"""Sigma detections as DuckDB SQL: pySigma's condition tree → a small plan → a WHERE clause.

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

import re
import string
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)

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


def _like_pattern(parts: list[str | SpecialChars]) -> str:
    out = []
    for part in parts:
        if part is SpecialChars.WILDCARD_MULTI:
            out.append("%")
        elif part is SpecialChars.WILDCARD_SINGLE:
            out.append("_")
        else:
            text = str(part)
            out.append(text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"))
    return "".join(out)


def _string_sql(value: SigmaString, cased: bool) -> str:
    """One Sigma string against the column: the cheapest DuckDB form that is exact."""
    parts: list[str | SpecialChars] = []
    for part in value.s:
        if isinstance(part, Placeholder):
            raise MissingPlaceholderError({part.name})
        if isinstance(part, str) and not cased:
            part = part.lower()
        if parts and part is SpecialChars.WILDCARD_MULTI and parts[-1] is part:
            continue
        if parts and isinstance(part, str) and isinstance(parts[-1], str):
            parts[-1] = parts[-1] + part
        else:
            parts.append(part)
    column = COLUMN if cased else f"lower({COLUMN})"
    star = SpecialChars.WILDCARD_MULTI
    if not parts:
        return f"{COLUMN} = ''"
    if all(isinstance(p, str) for p in parts):
        return f"{column} = {literal(''.join(str(p) for p in parts))}"
    if len(parts) == 1 and parts[0] is star:
        return f"{COLUMN} IS NOT NULL"
    if len(parts) == 3 and parts[0] is star and parts[2] is star and isinstance(parts[1], str):
        return f"contains({column}, {literal(parts[1])})"
    if len(parts) == 2 and parts[0] is star and isinstance(parts[1], str):
        return f"ends_with({column}, {literal(parts[1])})"
    if len(parts) == 2 and parts[1] is star and isinstance(parts[0], str):
        return f"starts_with({column}, {literal(parts[0])})"
    return f"{column} LIKE {literal(_like_pattern(parts))} ESCAPE '\\'"


_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}

_COMPARE = {
    CompareOperators.LT: "<",
    CompareOperators.LTE: "<=",
    CompareOperators.GT: ">",
    CompareOperators.GTE: ">=",
    CompareOperators.NEQ: "<>",
}


def _leaf(fields: list[str], sql: str, when_absent: bool = False) -> Plan:
    return ["leaf", fields, sql, when_absent]


def value_plan(field: str | None, value: Any, placeholders: Mapping[str, list[str]]) -> Plan:
    """The plan of one field (``None``: keyword search) compared with one Sigma value."""
    fields = [field] if field is not None else [KEYWORDS_COLUMN]
    if isinstance(value, SigmaExpansion):
        return ["or", [value_plan(field, v, placeholders) for v in value.values]]
    if isinstance(value, SigmaString) and value.contains_placeholder():
        missing = {
            p.name for p in value.s if isinstance(p, Placeholder) and p.name not in placeholders
        }
        if missing:
            raise MissingPlaceholderError(missing)
        expanded = value.replace_placeholders(lambda p: iter(placeholders[p.name]))
        cased = isinstance(value, SigmaCasedString)
        return ["or", [_leaf(fields, _string_sql(v, cased)) for v in expanded]]
    if isinstance(value, SigmaString):
        if field is None and not value.contains_special():
            # A keyword is searched for anywhere in the event.
            value = SigmaString("*") + value + SigmaString("*")
        return _leaf(fields, _string_sql(value, isinstance(value, SigmaCasedString)))
    if isinstance(value, SigmaBool):
        return _leaf(fields, f"lower({COLUMN}) = {literal(str(value.boolean).lower())}")
    if isinstance(value, SigmaCompareExpression):
        number = value.number.number
        op = _COMPARE[value.op]
        return _leaf(fields, f"TRY_CAST({COLUMN} AS DOUBLE) {op} {float(number)!r}")
    if isinstance(value, SigmaNumber):
        return _leaf(fields, f"{COLUMN} = {literal(str(value.number))}")
    if isinstance(value, SigmaNull):
        return _leaf(fields, f"({COLUMN} IS NULL OR {COLUMN} = '')", when_absent=True)
    if isinstance(value, SigmaExists):
        if value.exists:
            return _leaf(fields, f"{COLUMN} IS NOT NULL")
        return _leaf(fields, f"{COLUMN} IS NULL", when_absent=True)
    if isinstance(value, SigmaRegularExpression):
        flags = "".join(sorted(_FLAGS[f] for f in value.flags))
        pattern = (f"(?{flags})" if flags else "") + str(value.regexp)
        return _leaf(fields, f"regexp_matches({COLUMN}, {literal(pattern)})")
    if isinstance(value, SigmaCIDRExpression):
        prefixes = value.expand(wildcard="*")
        return [
            "or",
            [_leaf(fields, _string_sql(SigmaString(p), cased=False)) for p in prefixes],
        ]
    if isinstance(value, SigmaFieldReference):
        if field is None:
            raise UnsupportedError("fieldref without a field")
        other = f"lower({OTHER_COLUMN})"
        if value.starts_with:
            sql = f"starts_with(lower({COLUMN}), {other})"
        elif value.ends_with:
            sql = f"ends_with(lower({COLUMN}), {other})"
        else:
            sql = f"lower({COLUMN}) = {other}"
        return _leaf([field, value.field], sql)
    raise UnsupportedError(f"value type {type(value).__name__}")


def condition_plan(node: Any, placeholders: Mapping[str, list[str]]) -> Plan:
    """The plan of a postprocessed pySigma condition tree."""
    if isinstance(node, ConditionOR):
        return ["or", [condition_plan(arg, placeholders) for arg in node.args]]
    if isinstance(node, ConditionAND):
        return ["and", [condition_plan(arg, placeholders) for arg in node.args]]
    if isinstance(node, ConditionNOT):
        return ["not", condition_plan(node.args[0], placeholders)]
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return value_plan(node.field, node.value, placeholders)
    if isinstance(node, ConditionValueExpression):
        return value_plan(None, node.value, placeholders)
    raise UnsupportedError(f"condition {type(node).__name__}")


def plan_fields(plan: Plan) -> Iterator[str]:
    """Every field a plan reads (keywords: ``_all``)."""
    if plan[0] == "leaf":
        yield from plan[1]
    elif plan[0] == "not":
        yield from plan_fields(plan[1])
    elif plan[0] in ("and", "or"):
        for child in plan[1]:
            yield from plan_fields(child)


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
        match = _TEXT_LEAF.match(child[2]) if leaf else None
        equals = _EQUALS_LEAF.match(child[2]) if leaf and match is None else None
        if match is not None:
            func, target, text = match.groups()
        elif equals is not None:
            func, (target, text) = "=", equals.groups()
        else:
            kept.append(child)
            continue
        runs.setdefault((func, target, tuple(child[1])), []).append(
            (text.replace("''", "'"), child)
        )
    out = list(kept)
    for (func, target, fields), run in runs.items():
        if len(run) < MERGE_MIN:  # too few to be worth it: the leaves as they were
            out += [child for _, child in run]
            continue
        texts = [text for text, _ in run]
        if func == "=":  # x = 'a' OR x = 'b' is x IN ('a', 'b'), NULL as NULL
            listed = ", ".join(literal(t) for t in texts)
            out.append(_leaf(list(fields), f"{target} IN ({listed})"))
            continue
        start, end = _ANCHORS[func]
        for first in range(0, len(texts), MERGE_MAX):
            chunk = "|".join(_re_literal(t) for t in texts[first : first + MERGE_MAX])
            pattern = f"{start}(?:{chunk}){end}"
            out.append(_leaf(list(fields), f"regexp_matches({target}, {literal(pattern)})"))
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
