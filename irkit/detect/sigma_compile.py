"""pySigma's condition tree → irkit's Sigma plan (``irkit.detect.sigma_sql``): run once a
rule file, when it is compiled (the plan is cached); a scan with a warm cache does not
import pySigma.

Matching follows the Sigma specification: strings compare case-insensitively, ``*`` and
``?`` are wildcards, regular expressions are case-sensitive unless flagged ``i``.
"""

from __future__ import annotations

from collections.abc import Mapping
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

from irkit.detect.sigma_sql import (
    COLUMN,
    KEYWORDS_COLUMN,
    OTHER_COLUMN,
    MissingPlaceholderError,
    Plan,
    UnsupportedError,
    leaf_plan,
    literal,
)


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
        return ["or", [leaf_plan(fields, _string_sql(v, cased)) for v in expanded]]
    if isinstance(value, SigmaString):
        if field is None and not value.contains_special():
            # A keyword is searched for anywhere in the event.
            value = SigmaString("*") + value + SigmaString("*")
        return leaf_plan(fields, _string_sql(value, isinstance(value, SigmaCasedString)))
    if isinstance(value, SigmaBool):
        return leaf_plan(fields, f"lower({COLUMN}) = {literal(str(value.boolean).lower())}")
    if isinstance(value, SigmaCompareExpression):
        number = value.number.number
        op = _COMPARE[value.op]
        return leaf_plan(fields, f"TRY_CAST({COLUMN} AS DOUBLE) {op} {float(number)!r}")
    if isinstance(value, SigmaNumber):
        return leaf_plan(fields, f"{COLUMN} = {literal(str(value.number))}")
    if isinstance(value, SigmaNull):
        return leaf_plan(fields, f"({COLUMN} IS NULL OR {COLUMN} = '')", when_absent=True)
    if isinstance(value, SigmaExists):
        if value.exists:
            return leaf_plan(fields, f"{COLUMN} IS NOT NULL")
        return leaf_plan(fields, f"{COLUMN} IS NULL", when_absent=True)
    if isinstance(value, SigmaRegularExpression):
        flags = "".join(sorted(_FLAGS[f] for f in value.flags))
        pattern = (f"(?{flags})" if flags else "") + str(value.regexp)
        return leaf_plan(fields, f"regexp_matches({COLUMN}, {literal(pattern)})")
    if isinstance(value, SigmaCIDRExpression):
        prefixes = value.expand(wildcard="*")
        return [
            "or",
            [leaf_plan(fields, _string_sql(SigmaString(p), cased=False)) for p in prefixes],
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
        return leaf_plan([field, value.field], sql)
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
