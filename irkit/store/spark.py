"""An exported dataset on Spark: the ``events`` view a scan reads, and a connection that
runs the detectors' DuckDB SQL as Spark SQL (``irkit scan DATASET --engine spark``).

The detectors write DuckDB SQL (the compiled Sigma rules, the heuristics, the analytics).
``SparkConnection.execute`` translates each statement with sqlglot (DuckDB → Spark), after
three rewrites sqlglot cannot know: irkit's macros (``field()``, ``kv()``…) are expanded in
place; the event's fields, a JSON string in the dataset, are read from one parsed map
(``_f``, ``from_json(fields, 'map<string,string>')``) rather than re-parsed per path; a
statement's ``?`` parameters become literals. What sqlglot cannot translate, or Spark
cannot run, raises ``EngineError`` with the reason: the rule is reported as not run on
this engine (docs/dataset.md), the others run.

A statement is one of: ``CREATE OR REPLACE TEMP MACRO`` (kept for expansion), ``CREATE OR
REPLACE TEMP TABLE … AS SELECT`` (a persisted temporary view), ``DROP TABLE``, ``SET``
(ignored: DuckDB's settings), or a query whose rows are returned as DuckDB returns them
(timestamps timezone-aware UTC, lists as lists).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from irkit.errors import CaseError, EngineError, IrkitError, UsageError

#: The SQL dialect a connection speaks; the detectors pick their own SQL by it.
DIALECT: Final = "spark"
#: Spark's memory in local mode (``IRKIT_SPARK_MEMORY`` overrides).
LOCAL_MEMORY: Final = "4g"
#: Where a Spark scan keeps its sorted copy of the events, under the dataset (removed after).
SCRATCH: Final = "_irkit/scratch"
#: Parquet row groups of that copy: small, so a rule's filter skips most of them.
ROW_GROUP_BYTES: Final = 8 * 1024 * 1024

_MACRO = re.compile(
    r"\s*CREATE\s+OR\s+REPLACE\s+TEMP\s+MACRO\s+(\w+)\s*\(([^)]*)\)\s+AS\s+(.*)\Z",
    re.IGNORECASE | re.DOTALL,
)
_TABLE = re.compile(
    r"\s*CREATE\s+OR\s+REPLACE\s+TEMP\s+TABLE\s+(\w+)\s+AS\s+(.*)\Z", re.IGNORECASE | re.DOTALL
)
_DROP = re.compile(r"\s*DROP\s+(?:TABLE|VIEW)\s+(?:IF\s+EXISTS\s+)?(\w+)\s*\Z", re.IGNORECASE)
_SET = re.compile(r"\s*SET\s", re.IGNORECASE)


class SparkCursor:
    """The rows of one statement, read as from a DuckDB cursor."""

    def __init__(self, rows: list[tuple[Any, ...]], names: Sequence[str] = ()) -> None:
        self._rows = rows
        self._at = 0
        self.description = [(name, None, None, None, None, None, None) for name in names]

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._at = self._rows[self._at :], len(self._rows)
        return rows

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:
        rows = self._rows[self._at : self._at + size]
        self._at += len(rows)
        return rows


def _value(value: Any, kind: Any) -> Any:
    """A Spark value of type ``kind`` as DuckDB gives it: a timestamp (PySpark hands it
    over naive, in the Python process's local time) timezone-aware UTC, a timestamp
    without time zone naive as it is; lists and structs as lists and tuples."""
    from pyspark.sql import types

    if value is None:
        return None
    if isinstance(kind, types.TimestampType) and isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.astimezone()).astimezone(dt.UTC)
    if isinstance(kind, types.ArrayType):
        return [_value(v, kind.elementType) for v in value]
    if isinstance(kind, types.StructType):
        return tuple(_value(v, f.dataType) for v, f in zip(value, kind.fields, strict=True))
    return value


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


class SparkConnection:
    """Runs the detectors' DuckDB statements on a SparkSession (see the module's doc)."""

    dialect: Final = DIALECT
    #: Sigma rules a pass (``sigma_run.evaluate``): Spark's optimizer slows down on one
    #: huge expression more than DuckDB's.
    pass_rules: int = int(os.environ.get("IRKIT_SPARK_PASS_RULES", "32"))

    def __init__(self, spark: Any) -> None:
        self.spark = spark
        self.macros: dict[str, tuple[list[str], Any]] = {}
        self.tables: dict[str, Any] = {}
        self._changed = False

    # -- translation -------------------------------------------------------------------

    def translate(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> str:
        """``sql`` (DuckDB) as Spark SQL, or ``EngineError`` saying why not."""
        import sqlglot
        from sqlglot import exp

        try:
            tree = sqlglot.parse_one(sql, read="duckdb")
        except sqlglot.errors.ParseError as exc:
            raise EngineError(f"spark: cannot parse: {_first_line(exc)}") from exc
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
            unsupported.append(_first_line(exc))
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

    # -- statements --------------------------------------------------------------------

    def execute(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> SparkCursor:
        """Run one DuckDB statement on Spark (see the module's doc)."""
        import sqlglot

        if _SET.match(sql):
            return SparkCursor([])
        macro = _MACRO.match(sql)
        if macro:
            name, args, body = macro.groups()
            names = [a.strip() for a in args.split(",") if a.strip()]
            self.macros[name.lower()] = (names, sqlglot.parse_one(body, read="duckdb"))
            return SparkCursor([])
        drop = _DROP.match(sql)
        if drop:
            frame = self.tables.pop(drop.group(1), None)
            if frame is not None:
                frame.unpersist()
            self.spark.catalog.dropTempView(drop.group(1))
            return SparkCursor([])
        table = _TABLE.match(sql)
        if table:
            frame = self._run(self.translate(table.group(2), params or ()))
            frame = frame.persist()
            frame.count()
            frame.createOrReplaceTempView(table.group(1))
            self.tables[table.group(1)] = frame
            return SparkCursor([])
        return self.query(self.translate(sql, params or ()))

    def register(self, name: str, schema: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """``rows`` as the temporary view ``name`` (``schema``: Spark DDL, ``"uid
        string, key string"``): a few values from the driver a query joins with."""
        frame = self.spark.createDataFrame(list(rows), schema=schema)
        frame.createOrReplaceTempView(name)

    def query(self, sql: str) -> SparkCursor:
        """Run Spark SQL as written (irkit's own wrappers around translated rules)."""
        frame = self._run(sql)
        try:
            rows = frame.collect()
        except Exception as exc:
            raise EngineError(f"spark: {_first_line(exc)}") from exc
        kinds = [field.dataType for field in frame.schema.fields]
        return SparkCursor(
            [tuple(_value(v, k) for v, k in zip(row, kinds, strict=True)) for row in rows],
            frame.columns,
        )

    def _run(self, sql: str) -> Any:
        try:
            return self.spark.sql(sql)
        except Exception as exc:  # Spark's AnalysisException, ParseException…
            raise EngineError(f"spark: {_first_line(exc)}") from exc


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


def _first_line(exc: BaseException) -> str:
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


#: The session irkit's SQL needs: UTC; DuckDB's lenient casts and lookups (a missing map
#: key NULL, not an error; the size of NULL NULL); Parquet dates read as written (no
#: Julian rebase: 1601 stays 1601); partition values as text (a host named 1234 stays
#: text). A pass of many rules is one huge expression: compiling it to Java (Janino)
#: costs minutes where evaluating it without generated code costs seconds.
SETTINGS: Final = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "false",
    "spark.sql.legacy.sizeOfNull": "false",  # size(NULL) is NULL, as DuckDB's len
    "spark.sql.variable.substitute": "false",  # '${jndi:' in a rule is text, not a variable
    "spark.sql.parquet.datetimeRebaseModeInRead": "CORRECTED",
    "spark.sql.parquet.int96RebaseModeInRead": "CORRECTED",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    # A dataset's files are small (a host, source and day each): pack many a task.
    "spark.sql.files.openCostInBytes": "65536",
    "spark.ui.showConsoleProgress": "false",
    "spark.ui.enabled": "false",
}


def spark_session(master: str | None = None) -> Any:
    """A SparkSession for irkit: ``local[*]`` unless ``master`` names a cluster; UTC;
    Parquet dates read as written (no Julian rebase: 1601 stays 1601)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise UsageError(
            "--engine spark needs PySpark, which is not installed",
            hint="pip install 'irkit[spark]' (PySpark needs Java 17 or newer)",
        ) from exc
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise UsageError("--engine spark needs Java (17 or newer): no java on PATH or JAVA_HOME")
    builder = SparkSession.builder.appName("irkit scan").master(master or "local[*]")
    for key, value in SETTINGS.items():
        builder = builder.config(key, value)
    if master is None or master.startswith("local"):  # one machine: few, big partitions
        builder = builder.config(
            "spark.driver.memory", os.environ.get("IRKIT_SPARK_MEMORY", LOCAL_MEMORY)
        ).config("spark.sql.shuffle.partitions", str(2 * (os.cpu_count() or 1)))
    try:
        spark = builder.getOrCreate()
    except Exception as exc:
        raise IrkitError(f"Spark did not start: {_first_line(exc)}") from exc
    spark.sparkContext.setLogLevel("OFF")
    configure(spark)
    return spark


def configure(spark: Any) -> None:
    """irkit's session settings on a running session (one irkit did not start)."""
    for key, value in SETTINGS.items():
        if key.startswith("spark.sql."):
            with contextlib.suppress(Exception):  # a platform may hold some fixed
                spark.conf.set(key, value)
    # PySpark logs every failed query's plan (JSON, to stderr): a rule Spark cannot run
    # is reported in the scan's report instead.
    logging.getLogger("SQLQueryContextLogger").disabled = True


class SparkDataset:
    """A dataset's events on Spark, with the connection the detectors use; a context
    manager (the session stays up for the process: starting the JVM costs seconds)."""

    def __init__(
        self,
        root: Path,
        master: str | None = None,
        session: Any = None,
        uri: str | None = None,
    ) -> None:
        """``root`` is the dataset as this process reads it; ``uri`` as Spark's executors
        do (``dbfs:/…``, ``s3a://…``, ``hdfs://…``; default: ``root``). ``session`` is a
        SparkSession to use (a Databricks notebook's ``spark``), else one is started on
        ``master`` (``local[*]`` when None)."""
        from irkit.store.dataset import is_dataset

        if not is_dataset(root):
            raise CaseError(f"{root} is not an irkit dataset (no _irkit/ and events/)")
        self.root = root
        self.spark = session if session is not None else spark_session(master)
        if session is not None:
            configure(session)
        from pyspark.sql import functions

        base = uri.rstrip("/") if uri else str(root)
        events = base + "/events"
        try:
            frame = self.spark.read.option("basePath", events).parquet(events)
        except Exception as exc:
            raise CaseError(f"Spark cannot read {events}: {_first_line(exc)}") from exc
        frame = frame.withColumn("date", functions.col("date").cast("date")).withColumn(
            "_f", functions.from_json(functions.col("fields"), "map<string,string>")
        )
        # A dataset is many small files (one a host, source and day): read once, with
        # the fields parsed, and written again as a few files sorted by log and event id
        # in small row groups, so each rule reads the row groups its log and ids are in.
        self.scratch = f"{base}/{SCRATCH}/scan-{uuid.uuid4().hex}"
        try:
            frame.sortWithinPartitions("artifact", "event_id").write.option(
                "parquet.block.size", str(ROW_GROUP_BYTES)
            ).parquet(self.scratch)
            self._events = self.spark.read.parquet(self.scratch)
        except Exception as exc:
            self._delete_scratch()
            raise CaseError(
                f"Spark cannot copy the events to {self.scratch}: {_first_line(exc)}",
                hint="the dataset's _irkit/ folder must be writable (findings go there too)",
            ) from exc
        self._events.createOrReplaceTempView("events")
        self._db = SparkConnection(self.spark)
        self._count: int | None = None

    @property
    def db(self) -> SparkConnection:
        return self._db

    def count(self) -> int:
        if self._count is None:
            self._count = int(self._events.count())
        return self._count

    def __enter__(self) -> SparkDataset:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for frame in self._db.tables.values():
            frame.unpersist()
        self.spark.catalog.dropTempView("events")
        self._delete_scratch()

    def _delete_scratch(self) -> None:
        """Remove the scan's copy of the events (any file system Spark writes to)."""
        with contextlib.suppress(Exception):
            jvm = self.spark.sparkContext._jvm
            path = jvm.org.apache.hadoop.fs.Path(self.scratch)
            path.getFileSystem(self.spark.sparkContext._jsc.hadoopConfiguration()).delete(
                path, True
            )
