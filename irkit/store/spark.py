"""An exported dataset on Spark: the ``events`` view a scan reads, and a connection that
runs the detectors' DuckDB SQL as Spark SQL (``irkit scan DATASET --engine spark``).

The detectors write DuckDB SQL (the compiled Sigma rules, the heuristics, the analytics).
``SparkConnection.execute`` translates each statement (``irkit.store.spark_sql``: sqlglot,
DuckDB → Spark, after the rewrites sqlglot cannot know). What cannot be translated, or
Spark cannot run, raises ``EngineError`` with the reason: the rule is reported as not run
on this engine (docs/dataset.md), the others run.

A statement is one of: ``CREATE OR REPLACE TEMP MACRO`` (kept for expansion), ``CREATE OR
REPLACE TEMP TABLE … AS SELECT`` (a persisted temporary view), ``DROP TABLE`` or ``DROP
VIEW``, ``SET`` (ignored: DuckDB's settings), or a query whose rows are returned as DuckDB
returns them (timestamps timezone-aware UTC, lists as lists).
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
from irkit.store.spark_sql import SparkTranslator, first_line

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


class SparkConnection(SparkTranslator):
    """Runs the detectors' DuckDB statements on a SparkSession (see the module's doc)."""

    dialect: Final = DIALECT
    #: Sigma rules a pass (``sigma_run.evaluate``): Spark's optimizer slows down on one
    #: huge expression more than DuckDB's.
    pass_rules: int = int(os.environ.get("IRKIT_SPARK_PASS_RULES", "32"))

    def __init__(self, spark: Any) -> None:
        super().__init__()
        self.spark = spark
        self.tables: dict[str, Any] = {}

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
            raise EngineError(f"spark: {first_line(exc)}") from exc
        kinds = [field.dataType for field in frame.schema.fields]
        return SparkCursor(
            [tuple(_value(v, k) for v, k in zip(row, kinds, strict=True)) for row in rows],
            frame.columns,
        )

    def _run(self, sql: str) -> Any:
        try:
            return self.spark.sql(sql)
        except Exception as exc:  # Spark's AnalysisException, ParseException…
            raise EngineError(f"spark: {first_line(exc)}") from exc


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
        raise IrkitError(f"Spark did not start: {first_line(exc)}") from exc
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
            raise CaseError(f"Spark cannot read {events}: {first_line(exc)}") from exc
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
                f"Spark cannot copy the events to {self.scratch}: {first_line(exc)}",
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
