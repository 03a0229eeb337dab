"""DuckDB SQL as Spark SQL, for ``irkit.store.spark.SparkConnection``.

The detectors write DuckDB SQL (the compiled Sigma rules, the heuristics, the analytics).
``SparkTranslator.translate`` translates each statement with sqlglot (DuckDB → Spark),
after the rewrites sqlglot cannot know: irkit's macros (``field()``, ``kv()``…) are
expanded in place; the event's fields, a JSON string in the dataset, are read from one
parsed map (``_f``, ``from_json(fields, 'map<string,string>')``) rather than re-parsed per
path; a statement's ``?`` parameters become literals; and DuckDB's functions Spark names or
behaves otherwise. What cannot be translated raises ``EngineError`` with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from irkit.errors import EngineError


def _key_of(path: Any) -> str | None:
    """The field a one-key JSON path names (``$."Image"``, ``$.Image``, ``Image``)."""
    from sqlglot import exp

    if isinstance(path, exp.Literal) and path.is_string:
        text = path.this
        if not text.startswith("$"):
            return str(text)
        match = re.fullmatch(r'\$\.(?:"((?:[^"\\]|\\.)*)"|([^.\[\]*"]+))', text)
        if match is None:
            return None
        quoted, plain = match.groups()
        return plain if quoted is None else re.sub(r"\\(.)", r"\1", quoted)
    if isinstance(path, exp.JSONPath):
        parts = path.expressions
        if len(parts) == 2 and isinstance(parts[1], exp.JSONPathKey):
            key = parts[1].this
            return key if isinstance(key, str) else None
    return None


def _field(key: Any) -> Any:
    from sqlglot import exp

    value = exp.Literal.string(key) if isinstance(key, str) else key
    return exp.Anonymous(this="TRY_ELEMENT_AT", expressions=[exp.column("_f"), value])


def _is_fields(node: Any) -> bool:
    from sqlglot import exp

    return isinstance(node, exp.Column) and node.name.lower() == "fields"


class SparkTranslator:
    """Translates DuckDB statements to Spark SQL; holds the macros it expands."""

    def __init__(self) -> None:
        self.macros: dict[str, tuple[list[str], Any]] = {}
        self._changed = False

    def translate(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> str:
        """``sql`` (DuckDB) as Spark SQL, or ``EngineError`` saying why not."""
        import sqlglot
        from sqlglot import exp

        try:
            tree = sqlglot.parse_one(sql, read="duckdb")
        except sqlglot.errors.ParseError as exc:
            raise EngineError(f"spark: cannot parse: {first_line(exc)}") from exc
        if isinstance(params, Mapping):  # $name parameters
            named = dict(params)

            def bind_named(node: Any) -> Any:
                if isinstance(node, exp.Placeholder | exp.Parameter):
                    name = node.name
                    if name not in named:
                        raise EngineError(f"spark: no value for parameter ${name}")
                    return _literal(named[name])
                return node

            tree = tree.transform(bind_named, copy=False)
        elif params:
            values = list(params)

            def bind(node: Any) -> Any:
                if isinstance(node, exp.Placeholder):
                    if not values:
                        raise EngineError("spark: more ? than parameters")
                    return _literal(values.pop(0))
                return node

            tree = tree.transform(bind, copy=False)
        for _ in range(16):  # until nothing changes: a rewrite's result may hold more
            self._changed = False
            tree = tree.transform(self._rewrite_once, copy=False)
            if not self._changed:
                break
        tree = tree.transform(_hex_cast, copy=False)
        unsupported: list[str] = []
        try:
            out = tree.sql(dialect="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)
        except sqlglot.errors.UnsupportedError as exc:
            unsupported.append(first_line(exc))
            out = ""
        if unsupported:
            raise EngineError(f"spark: sqlglot cannot translate: {unsupported[0]}")
        return str(out)

    def _rewrite_once(self, node: Any) -> Any:
        """``_rewrite``, noting whether it changed anything (an in-place transform does
        not visit what a rewrite returns: the caller runs it again)."""
        before = (node.meta.get("escaped"), node.meta.get("hex"))
        out = self._rewrite(node)
        if out is not node or (node.meta.get("escaped"), node.meta.get("hex")) != before:
            self._changed = True
        return out

    def _rewrite(self, node: Any) -> Any:
        from sqlglot import exp

        if (
            isinstance(node, exp.Window)
            and isinstance(node.this, exp.RowNumber)
            and not node.args.get("partition_by")
            and not node.args.get("order")
        ):  # a row's number as a key only: Spark numbers rows only in an order
            return exp.Anonymous(this="MONOTONICALLY_INCREASING_ID", expressions=[])

        if (
            isinstance(node, exp.Window)
            and isinstance(node.this, exp.Count)
            and isinstance(node.this.this, exp.Distinct)
            and len(node.this.this.expressions) == 1
        ):  # Spark counts no DISTINCT over a window: the size of the set instead
            window = node.copy()
            window.set("this", _call("COLLECT_SET", node.this.this.expressions[0].copy()))
            return _call("SIZE", window)
        if (
            isinstance(node, exp.Array)
            and len(node.expressions) == 1
            and isinstance(node.expressions[0], exp.Comprehension)
        ):  # [expr FOR v IN list IF cond]: Spark's higher-order functions
            return _comprehension(node.expressions[0])
        if isinstance(node, exp.Length) and isinstance(node.this, exp.Array):
            return _call("SIZE", node.this.copy())
        if (
            isinstance(node, exp.JSONExtract)
            and not _is_fields(node.this)
            and isinstance(node.expression, exp.JSONPath)
            and [type(p) for p in node.expression.expressions]
            == [exp.JSONPathRoot, exp.JSONPathSubscript]
            and isinstance(node.expression.expressions[1].this, exp.JSONPathWildcard)
        ):  # json_extract(x, '$[*]'): the array's items, each as JSON text
            return _call("FROM_JSON", node.this.copy(), exp.Literal.string("array<string>"))
        if isinstance(node, exp.Anonymous) and str(node.this).lower() == "json_valid":
            return exp.Not(
                this=exp.Is(this=_call("TRY_PARSE_JSON", *node.expressions), expression=exp.null())
            )
        if isinstance(node, exp.RegexpFullMatch):  # RE2's full match: anchored at both ends
            anchored = exp.DPipe(
                this=exp.DPipe(this=exp.Literal.string("^(?:"), expression=node.expression.copy()),
                expression=exp.Literal.string(")\\z"),
            )
            return exp.RegexpLike(this=node.this.copy(), expression=anchored)
        if isinstance(node, exp.Try):  # DuckDB's try(): NULL where the call fails
            inner = node.this
            if isinstance(inner, exp.Anonymous) and str(inner.this).lower() == "url_decode":
                return _call("TRY_URL_DECODE", *(e.copy() for e in inner.expressions))
            if isinstance(inner, exp.Decode):  # Spark decodes bad bytes as U+FFFD
                return inner.copy()
            raise EngineError(f"spark: try() around {inner.sql(dialect='duckdb')[:60]}")
        if isinstance(node, exp.Anonymous):
            name = str(node.this).lower()
            if name == "field" and len(node.expressions) == 1:
                return _field(node.expressions[0].copy())
            if name == "try_strptime" and len(node.expressions) == 2:
                text, pattern = node.expressions
                if not (isinstance(pattern, exp.Literal) and pattern.is_string):
                    raise EngineError("spark: try_strptime with a computed format")
                return _call(  # DuckDB's strptime gives a TIMESTAMP without time zone
                    "TO_TIMESTAMP_NTZ", text.copy(), exp.Literal.string(_java_format(pattern.this))
                )
            if (
                name == "json_exists"
                and len(node.expressions) == 2
                and _is_fields(node.expressions[0])
            ):  # the event has the field (a JSON null counts, as in DuckDB)
                key = _key_of(node.expressions[1])
                if key is None:
                    raise EngineError("spark: json_exists with a path other than one key")
                return _call("MAP_CONTAINS_KEY", exp.column("_f"), exp.Literal.string(key))
            if name == "regexp_escape" and len(node.expressions) == 1:
                return _call(
                    "REGEXP_REPLACE",
                    node.expressions[0].copy(),
                    exp.Literal.string(r"([\\.^$|?*+()\[\]{}-])"),
                    exp.Literal.string(r"\\$1"),
                )
            if name in self.macros:
                names, body = self.macros[name]
                if len(names) != len(node.expressions):
                    raise EngineError(f"spark: macro {name} takes {len(names)} arguments")
                given = dict(zip(names, node.expressions, strict=True))

                def put(inner: Any) -> Any:
                    if isinstance(inner, exp.Column) and not inner.table and inner.name in given:
                        return given[inner.name].copy()
                    return inner

                return body.copy().transform(put)
        if isinstance(node, exp.Bracket) and len(node.expressions) == 1:
            part = node.expressions[0]
            if isinstance(part, exp.Slice):
                return _slice(node.this, part)
        if isinstance(node, exp.ArrayAgg | exp.First | exp.GroupConcat) and isinstance(
            node.this, exp.Order
        ):
            return _ordered_aggregate(node)
        if (
            isinstance(node, exp.Filter)
            and isinstance(node.this, exp.ArrayAgg | exp.First | exp.GroupConcat)
            and isinstance(node.this.this, exp.Order)
        ):  # the FILTER goes on the aggregate inside
            return _ordered_aggregate(node.this, node.expression)
        if isinstance(node, exp.Escape) and isinstance(node.this, exp.Like | exp.ILike):
            node.this.meta["escaped"] = True
            return node
        if isinstance(node, exp.Like | exp.ILike) and not node.meta.get("escaped"):
            # DuckDB's LIKE has no escape character unless given; Spark's is \
            pattern = node.expression
            if isinstance(pattern, exp.Literal) and pattern.is_string:
                if "\\" in pattern.this:
                    node.set("expression", exp.Literal.string(pattern.this.replace("\\", "\\\\")))
            else:
                node.set(
                    "expression",
                    _call(
                        "REPLACE",
                        pattern.copy(),
                        exp.Literal.string("\\"),
                        exp.Literal.string("\\\\"),
                    ),
                )
            node.meta["escaped"] = True
            return node
        if isinstance(node, exp.JSONKeys) and _is_fields(node.this):
            return exp.Anonymous(this="MAP_KEYS", expressions=[exp.column("_f")])
        if isinstance(node, exp.JSONExtractScalar) and _is_fields(node.this):
            path = node.expression
            if isinstance(path, exp.Cast):
                path = path.this
            if isinstance(path, exp.Array):
                keys = [_key_of(p) for p in path.expressions]
                if any(k is None for k in keys):
                    raise EngineError("spark: a JSON path other than one key")
                return exp.Array(expressions=[_field(k) for k in keys])
            if isinstance(path, exp.JSONPath) and len(path.expressions) == 2:
                part = path.expressions[1]
                if isinstance(part, exp.JSONPathKey) and isinstance(
                    part.this, exp.JSONPathWildcard
                ):
                    return exp.Anonymous(this="MAP_VALUES", expressions=[exp.column("_f")])
            key = _key_of(path)
            if key is not None:
                return _field(key)
            if not isinstance(path, exp.Literal | exp.JSONPath):  # a key computed per row
                return _field(path.copy())
            raise EngineError(f"spark: JSON path {path.sql()} is not one key")
        return node


_JAVA_FORMAT: Final = {
    "Y": "yyyy", "m": "MM", "d": "dd", "H": "HH", "M": "mm", "S": "ss", "f": "SSSSSS",
    "y": "yy", "j": "DDD", "b": "MMM", "B": "MMMM", "z": "Z", "p": "a",
}  # fmt: skip


def _comprehension(node: Any) -> Any:
    from sqlglot import exp

    variable = node.expression
    listed = node.args["iterator"].copy()
    condition = node.args.get("condition")
    if condition is not None:
        listed = _call(
            "FILTER", listed, exp.Lambda(this=condition.copy(), expressions=[variable.copy()])
        )
    return _call(
        "TRANSFORM", listed, exp.Lambda(this=node.this.copy(), expressions=[variable.copy()])
    )


def _hex_cast(node: Any) -> Any:
    """DuckDB casts '0x1F' to the integer 31; Spark to NULL: the hex form is read too."""
    from sqlglot import exp

    if (
        not isinstance(node, exp.Cast)  # TryCast too
        or not node.to.is_type(*exp.DataType.INTEGER_TYPES)
        or node.meta.get("hex")
        or isinstance(node.this, exp.Literal)
    ):
        return node
    node.meta["hex"] = True
    digits = _call(
        "NULLIF",
        _call(
            "REGEXP_EXTRACT",
            _call("STRING", node.this.copy()),
            exp.Literal.string(r"^\s*0[xX]([0-9a-fA-F]+)\s*$"),
            exp.Literal.number(1),
        ),
        exp.Literal.string(""),
    )
    from_hex = exp.Cast(
        this=_call("CONV", digits, exp.Literal.number(16), exp.Literal.number(10)),
        to=node.to.copy(),
    )
    from_hex.meta["hex"] = True
    return exp.Coalesce(this=node, expressions=[from_hex])


def _java_format(pattern: str) -> str:
    """A ``strptime`` format as a Spark (Java) datetime pattern; other text quoted."""
    out, literal_text, index = [], "", 0
    while index < len(pattern):
        char = pattern[index]
        if char == "%" and index + 1 < len(pattern):
            code = pattern[index + 1]
            if code not in _JAVA_FORMAT:
                raise EngineError(f"spark: strptime code %{code}")
            if literal_text:
                out.append("'" + literal_text.replace("'", "''") + "'")
                literal_text = ""
            out.append(_JAVA_FORMAT[code])
            index += 2
            continue
        literal_text += char
        index += 1
    if literal_text:
        out.append("'" + literal_text.replace("'", "''") + "'")
    return "".join(out)


def _call(name: str, *args: Any) -> Any:
    from sqlglot import exp

    return exp.Anonymous(this=name, expressions=list(args))


def _slice(value: Any, part: Any) -> Any:
    """DuckDB's ``x[a:b]`` (1-based, both ends in): a list's ``SLICE`` or a string's
    ``SUBSTRING`` (a list when ``x`` is a list aggregate)."""
    from sqlglot import exp

    start, end = part.this, part.expression
    if start is None:
        start = exp.Literal.number(1)
    length: Any = None
    if end is not None:  # b - a + 1
        length = exp.Add(
            this=exp.Paren(this=exp.Sub(this=end.copy(), expression=start.copy())),
            expression=exp.Literal.number(1),
        )
    if isinstance(value, exp.ArrayAgg):
        if length is None:
            length = exp.Literal.number(2**31 - 1)
        return _call("SLICE", value.copy(), start.copy(), length)
    if length is None:
        return _call("SUBSTRING", value.copy(), start.copy())
    return _call("SUBSTRING", value.copy(), start.copy(), length)


def _order_key(order: Any) -> Any:
    """The ORDER BY of an aggregate as one struct Spark compares (ascending only; NULL
    where DuckDB puts it: last unless NULLS FIRST)."""
    from sqlglot import exp

    parts: list[Any] = []
    for index, item in enumerate(order.expressions):
        if item.args.get("desc"):
            raise EngineError("spark: an aggregate ordered descending")
        key = item.this.copy()
        flag: Any = exp.Is(this=key.copy(), expression=exp.null())
        if item.args.get("nulls_first"):
            flag = exp.Not(this=flag)
        parts += [exp.Literal.string(f"n{index}"), flag, exp.Literal.string(f"k{index}"), key]
    return parts


def _ordered_aggregate(node: Any, where: Any = None) -> Any:
    """``list(x ORDER BY …)``, ``first(x ORDER BY …)``, ``string_agg(x, s ORDER BY …)``:
    Spark's aggregates keep no order, so the order is sorted in (``ARRAY_SORT`` over
    structs, ``MIN_BY``)."""
    from sqlglot import exp

    def aggregate(name: str, *args: Any) -> Any:
        call = _call(name, *args)
        return call if where is None else exp.Filter(this=call, expression=where.copy())

    order = node.this
    value = order.this
    distinct = isinstance(value, exp.Distinct)
    if distinct:
        if len(value.expressions) != 1:
            raise EngineError("spark: DISTINCT over several values in an aggregate")
        value = value.expressions[0]
        keys = order.expressions
        if len(keys) != 1 or keys[0].this != value or keys[0].args.get("desc"):
            raise EngineError("spark: DISTINCT ordered by another value in an aggregate")
        listed = _call(
            "ARRAY_SORT", _call("ARRAY_DISTINCT", aggregate("COLLECT_LIST", value.copy()))
        )
    elif isinstance(node, exp.First):
        return aggregate("MIN_BY", value.copy(), _call("NAMED_STRUCT", *_order_key(order)))
    else:
        fields = [*_order_key(order), exp.Literal.string("v"), value.copy()]
        listed = _call(
            "TRANSFORM",
            _call("ARRAY_SORT", aggregate("COLLECT_LIST", _call("NAMED_STRUCT", *fields))),
            exp.Lambda(
                this=exp.Dot(this=exp.column("s"), expression=exp.to_identifier("v")),
                expressions=[exp.to_identifier("s")],
            ),
        )
    if isinstance(node, exp.GroupConcat):
        separator = node.args.get("separator") or exp.Literal.string(",")
        return _call("ARRAY_JOIN", listed, separator.copy())
    return listed


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _literal(value: Any) -> Any:
    from sqlglot import exp

    if value is None:
        return exp.null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    if isinstance(value, list | tuple):
        return exp.Array(expressions=[_literal(v) for v in value])
    return exp.Literal.string(str(value))
