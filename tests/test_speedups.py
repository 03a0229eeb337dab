"""The C accelerator (``irkit/_evtxflat.c``) against its Python twins: same output.

Every record of every corpus EVTX file, and generated JSON shapes no real log has, go
through both; fields (with their order), the System count and the message must be equal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import evtx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irkit.sources.evtx import flatten_event_py
from irkit.sources.messages import load_catalog
from irkit.speedups import speedups
from tests.conftest import DATA, EVTX_CORPUS_DIRS

needs_c = pytest.mark.skipif(speedups is None, reason="the C accelerator is not built")


def _records(path: Path) -> list[Any]:
    """Every record pyevtx-rs reads of ``path``, as ``records_json()`` gives them."""
    parser = evtx.PyEvtxParser(str(path), number_of_threads=1, skip_errors=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # damaged corpus files: skipped chunks
        return list(parser.records_json())


def _corpus_evtx(corpus: Path) -> Iterator[Path]:
    """Every EVTX file (by its magic) below the corpus's EVTX folders, in order."""
    for folder in EVTX_CORPUS_DIRS:
        for path in sorted((corpus / folder).rglob("*")):
            if path.is_file() and path.read_bytes()[:8] == b"ElfFile\x00":
                yield path


def _events(path: Path) -> list[dict[str, Any]]:
    events = []
    for record in _records(path):
        try:
            event = orjson.loads(record["data"]).get("Event")
        except orjson.JSONDecodeError:
            continue
        events.append(event if type(event) is dict else {})
    return events


def _same(event: dict[str, Any]) -> None:
    assert speedups is not None
    catalog = load_catalog()
    want, want_n = flatten_event_py(event)
    got, got_n = speedups.flatten_event(event)
    assert list(got.items()) == list(want.items())
    assert got_n == want_n
    assert catalog.render(got, got_n) == catalog.render_py(want, want_n)


@needs_c
def test_accelerator_is_what_irkit_runs() -> None:
    from irkit.sources import evtx as module

    assert module.flatten_event is speedups.flatten_event  # type: ignore[union-attr]


@needs_c
def test_same_fields_and_messages_on_the_bundled_samples() -> None:
    paths = sorted(DATA.rglob("*.evtx"))
    assert paths
    count = 0
    for path in paths:
        for event in _events(path):
            _same(event)
            count += 1
    assert count >= 27


@needs_c
@pytest.mark.corpus
def test_same_fields_and_messages_on_every_corpus_record(corpus: Path) -> None:
    count = 0
    for path in _corpus_evtx(corpus):
        for event in _events(path):
            _same(event)
            count += 1
    assert count >= 35_578


_keys = st.sampled_from(
    [
        "System", "EventData", "UserData", "#attributes", "#text", "Data", "EventID",
        "TimeCreated", "Provider", "Correlation", "Execution", "Security", "Channel",
        "SystemTime", "Guid", "Name", "Qualifiers", "ActivityID", "xmlns", "xmlns:auto",
        "Binary", "Computer", "x", "Ünï", "EventRecordID",
    ]
)  # fmt: skip
_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "-", " padded ", "{abc-def}", "\x1b[31mred", "a\u202eb", "x" * 1100])
)
_json = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=25,
)


@needs_c
@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_keys, _json, max_size=5))
def test_same_output_on_generated_shapes(event: dict[str, Any]) -> None:
    try:
        want = flatten_event_py(event)
    except (AttributeError, TypeError) as exc:
        assert speedups is not None
        with pytest.raises(type(exc)):
            speedups.flatten_event(event)
        return
    assert speedups is not None
    got = speedups.flatten_event(event)
    assert list(got[0].items()) == list(want[0].items())
    assert got[1] == want[1]
    catalog = load_catalog()
    assert catalog.render(got[0], got[1]) == catalog.render_py(want[0], want[1])


def test_pure_python_switch_is_honoured() -> None:
    code = "from irkit.sources import evtx; print(evtx.flatten_event.__module__)"
    env = {**os.environ, "IRKIT_PURE_PYTHON": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "irkit.sources.evtx.flatten"


@needs_c
@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=70),
    st.lists(st.tuples(st.text(max_size=140), st.text(max_size=30)), max_size=20),
)
def test_uids_are_the_md5_of_the_python_uid(sha: str, pairs: list[tuple[str, str]]) -> None:
    from irkit.store.spool import uid

    assert speedups is not None
    records = [record for record, _ in pairs]
    descs = [desc for _, desc in pairs]
    assert speedups.uids(sha, records, descs) == [uid(sha, r, d) for r, d in pairs]


class _Sink:
    def __init__(self) -> None:
        self.rows: list[Any] = []

    def add(self, row: Any) -> None:
        self.rows.append(row)


class _ColumnSink(_Sink):
    """A sink the C loop fills column by column, like ``SpoolWriter``, 7 rows at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.columns: tuple[list[Any], ...] = tuple([] for _ in range(9))
        self.grew = 0

    def open_columns(self) -> tuple[tuple[list[Any], ...], int]:
        return self.columns, 7

    def grown(self, count: int) -> None:
        assert len(self.columns[0]) == count and {len(c) for c in self.columns} == {count}
        self.grew += count
        self.rows.extend(zip(*self.columns, strict=True))
        self.columns = tuple([] for _ in range(9))


def _parse_both(
    path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, str] | None = None
) -> tuple[Any, Any]:
    """Rows and stats of one file from the C loop and from the Python loop; the C loop
    filling columns (as it fills ``SpoolWriter``) must give what it gives as rows."""
    from irkit.model import FileStats
    from irkit.sources.base import ParseContext
    from irkit.sources.evtx import source as module

    results = []
    for accelerated, sink in ((speedups, _Sink()), (speedups, _ColumnSink()), (None, _Sink())):
        monkeypatch.setattr(module, "speedups", accelerated)
        stats = FileStats(path=str(path))
        ctx = ParseContext(path, path.name, "0" * 64, stats, dict(options or {}))
        module.EvtxSource().parse(ctx, sink)
        seen = (stats.records, stats.skipped_records, stats.status, stats.record_ranges)
        results.append((sink.rows, seen, [(w.kind, w.message) for w in stats.warnings]))
    assert results[1] == results[0], path
    return results[0], results[2]


@needs_c
@pytest.mark.corpus
def test_c_loop_gives_the_python_loop_rows_on_every_corpus_file(
    corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``speedups.rows`` (keys, repeats, header times, users, bad JSON, warnings) against
    ``EvtxSource._parse_py`` on every corpus EVTX, whole rows compared."""
    files = rows = 0
    for path in _corpus_evtx(corpus):
        got, want = _parse_both(path, monkeypatch)
        assert got == want, path
        files += 1
        rows += len(got[0])
    assert files >= 308
    assert rows >= 35_578


@needs_c
def test_c_loop_on_dirty_samples_and_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import DIRTY

    paths = sorted(p for p in DIRTY.rglob("*") if p.is_file())
    paths += sorted(DATA.rglob("*.evtx"))
    assert paths
    for path in paths:
        got, want = _parse_both(path, monkeypatch)
        assert got == want, path
        got, want = _parse_both(path, monkeypatch, {"chunks": "0:1", "recover": "1"})
        assert got == want, path


def test_added_rows_make_parts_of_exactly_one_batch(tmp_path: Path) -> None:
    from irkit.store.spool import SpoolWriter

    rows = [
        ("2020-01-01T00:00:00.000000+00:00", "d", "a", "h", "u", "1", "m", b"{}", str(i))
        for i in range(25)
    ]
    writer = SpoolWriter(tmp_path, "part", batch=10, constants=("evtx", "e", "0" * 64))
    for row in rows:
        writer.add(row)
    writer.close()
    import pyarrow.parquet as pq

    sizes = [pq.read_metadata(part).num_rows for part in writer.parts]
    assert (sizes, writer.total) == ([10, 10, 5], 25)
    records = [r for part in writer.parts for r in pq.read_table(part)["record"].to_pylist()]
    assert records == [str(i) for i in range(25)]


def test_columns_filled_directly_make_the_same_parts(tmp_path: Path) -> None:
    from irkit.store.spool import SpoolWriter

    rows = [
        ("2020-01-01T00:00:00.000000+00:00", "d", "a", "h", "u", "1", "m", b"{}", str(i))
        for i in range(25)
    ]
    import pyarrow.parquet as pq

    tables = []
    for direct in (False, True):
        writer = SpoolWriter(
            tmp_path / str(direct), "p", batch=10, constants=("evtx", "e", "0" * 64)
        )
        if direct:
            taken = 0
            while taken < len(rows):
                columns, room = writer.open_columns()
                assert room == 10 - len(columns[0])
                for row in rows[taken : taken + min(room, 4)]:
                    for column, value in zip(columns, row, strict=True):
                        column.append(value)
                writer.grown(min(room, 4, len(rows) - taken))
                taken += min(room, 4)
        else:
            for row in rows:
                writer.add(row)
        writer.close()
        assert [pq.read_metadata(p).num_rows for p in writer.parts] == [10, 10, 5]
        tables.append([pq.read_table(p) for p in writer.parts])
    assert tables[0] == tables[1]


def _reference(text: str) -> tuple[list[tuple[str, str]], int] | None:
    """orjson.loads + flatten_event_py of a record's JSON text, as the parser runs it."""
    try:
        loaded = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    event = loaded.get("Event") if type(loaded) is dict else None
    flat, n_system = flatten_event_py(event if type(event) is dict else {})
    return list(flat.items()), n_system


def _repeats_a_name(text: str) -> bool:
    import json

    repeated = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeated
        repeated |= len({k for k, _ in items}) < len(items)
        return dict(items)

    json.loads(text, object_pairs_hook=pairs)
    return repeated


def _reference_or_gives_up(
    read: Callable[[str], tuple[list[tuple[str, str]], int] | None], text: str
) -> None:
    """``read(text)`` gives the reference's fields, or gives up (None)."""
    try:
        want = _reference(text)
    except (AttributeError, TypeError):
        return  # the reference itself fails on this shape: the parser never sees it
    got = read(text)
    if got is not None:
        assert got == want


def _fused(text: str) -> tuple[list[tuple[str, str]], int] | None:
    assert speedups is not None
    got = speedups.fused(text)
    return None if got is None else (list(got[0].items()), got[1])


@needs_c
@pytest.mark.corpus
def test_fused_reader_equals_orjson_and_flatten_on_every_corpus_record(corpus: Path) -> None:
    """The JSON-to-fields reader never differs from the reference, and gives up only on
    the records whose JSON is broken or repeats a name in an object."""
    count = gave_up = 0
    for path in _corpus_evtx(corpus):
        for record in _records(path):
            want = _reference(record["data"])
            got = _fused(record["data"])
            count += 1
            if got is None:
                gave_up += 1
                assert want is None or _repeats_a_name(record["data"])
                continue
            assert got == want, (path, record["event_record_id"])
    assert count >= 35_578
    assert gave_up < count // 100


_names = st.sampled_from(
    ["Event", "System", "EventData", "UserData", "#attributes", "#text", "Data", "EventID",
     "TimeCreated", "Provider", "Execution", "SystemTime", "Name", "Qualifiers", "x", "Ünï"]
)  # fmt: skip
_text_leaves = (
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
).map(lambda v: orjson.dumps(v).decode()) | st.integers(min_value=-(2**64), max_value=2**65).map(
    str
)


def _pairs(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """A JSON object as text, names possibly repeated (json.dumps cannot write that)."""
    return st.lists(st.tuples(_names, inner), max_size=5).map(
        lambda items: "{" + ",".join(orjson.dumps(k).decode() + ":" + v for k, v in items) + "}"
    )


_json_text = st.recursive(
    _text_leaves
    | st.sampled_from(['"\\u00e9\\n\\t\\"\\\\\\/"', '"\\ud83d\\ude00"', '"\\ud800"', "-0", "1E400",
                       "1.0e2", "01", '"a\u0001"', "[1,]", "tru"]),
    lambda inner: st.lists(inner, max_size=4).map(lambda v: "[" + ", ".join(v) + "]")
    | _pairs(inner),
    max_leaves=30,
)  # fmt: skip


@needs_c
@settings(max_examples=600, deadline=None)
@given(_pairs(_pairs(_json_text)), st.sampled_from(["", " ", "\n  "]))
def test_fused_reader_equals_the_reference_on_generated_json(text: str, pad: str) -> None:
    """Repeated names, escapes, big and negative integers, floats, odd sections, broken
    JSON: the reader gives the reference's fields or gives up, never something else."""
    _reference_or_gives_up(_fused, text.replace(",", "," + pad).replace(":", pad + ":"))


@needs_c
@pytest.mark.parametrize(
    ("text", "reads"),
    [
        ('{"Event":{"System":{"EventID":4624,"Channel":"Security"},"EventData":{"A":"b"}}}', True),
        ('{"Event":{"EventData":{"A":"\\u00e9\\n\\ud83d\\ude00","B":-7,"C":1.5e3}}}', True),
        ('{"Event":{"EventData":{"Data":[{"#text":"x"},2,null,true]},"UserData":{"U":{}}}}', True),
        ('{"Event":{"EventData":{"n":18446744073709551615,"m":-9223372036854775808}}}', True),
        ('{"Event":null}', True),
        ('{"Other":1}', True),
        ('{"Event":{"EventData":{"A":"1","A":"2"}}}', False),  # repeated: orjson keeps the last
        ('{"Event":{"EventData":{"A":1},"System":{"EventID":1}}}', False),  # System after a section
        ('{"Event":{"EventData":{"n":18446744073709551616}}}', False),  # orjson: a float
        ('{"Event":{"EventData":{"n":-0}}}', False),
        ('{"Event":{"EventData":{"s":"\\ud800"}}}', False),  # lone surrogate: orjson's error
        ('{"Event":{}} x', False),
    ],
)  # fmt: skip
def test_fused_reader_reads_or_gives_up(text: str, reads: bool) -> None:
    got = _fused(text)
    assert (got is not None) == reads
    if got is not None:
        assert got == _reference(text)


# ---- The native reader and the C columns (rows() into ``Column``s) ----


def _native(text: str) -> tuple[list[tuple[str, str]], int] | None:
    assert speedups is not None
    got = speedups.native(text)
    return None if got is None else (got[0], got[1])


@needs_c
@pytest.mark.corpus
def test_native_reader_equals_the_reference_on_every_corpus_record(corpus: Path) -> None:
    """The reader with no Python object per field never differs from the reference, and
    gives up on few records (those then go the dict path)."""
    count = gave_up = 0
    for path in _corpus_evtx(corpus):
        for record in _records(path):
            got = _native(record["data"])
            count += 1
            if got is None:
                gave_up += 1
                continue
            assert got == _reference(record["data"]), (path, record["event_record_id"])
    assert count >= 35_578
    assert gave_up < count // 100


@needs_c
@settings(max_examples=600, deadline=None)
@given(_pairs(_pairs(_json_text)), st.sampled_from(["", " ", "\n  "]))
def test_native_reader_equals_the_reference_on_generated_json(text: str, pad: str) -> None:
    _reference_or_gives_up(_native, text.replace(",", "," + pad).replace(":", pad + ":"))


@needs_c
@pytest.mark.parametrize(
    ("text", "reads"),
    [
        ('{"Event":{"System":{"EventID":4624,"Channel":"Security"},"EventData":{"A":"b"}}}', True),
        ('{"Event":{"#attributes":{"xmlns":"x"},"System":{"Provider":{"#attributes":'
         '{"Name":"P","Guid":"{ab-cd}"}},"TimeCreated":{"#attributes":{"SystemTime":"t"}},'
         '"Execution":{"#attributes":{"ProcessID":4,"ThreadID":null}},"Correlation":{'
         '"#attributes":{"ActivityID":"{x-y}"}},"EventID":{"#attributes":{"Qualifiers":0},'
         '"#text":7}},"EventData":{"EventID":"again","Data":{"#text":["a","b"]}}}}', True),
        ('{"Event":{"EventData":{"A":"\\u00e9\\n\\ud83d\\ude00","B":-7,"C":true,"D":null}}}',
         True),
        ('{"Event":{"EventData":{"Data":[{"#text":"x"},2,null,true]},"UserData":{"U":{}}}}', True),
        ('{"Event":{"UserData":{"X":{"#attributes":{"xmlns:a":"n","k":1},"Y":[1,{"Z":"z"}]}}}}',
         True),
        ('{"Event":{"EventData":{"A":1.5}}}', False),  # floats: the dict path
        ('{"Event":{"EventData":{"A":"1","A":"2"}}}', False),  # repeated: orjson keeps the last
        ('{"Event":{"EventData":{"A":1},"System":{"EventID":1}}}', False),
        ('{"Event":{"System":{"Provider":{"#attributes":{"Guid":"é"}}}}}', False),
        ('{"Event":{"System":{"TimeCreated":{"#attributes":"x"}}}}', False),
        ('{"Event":null}', False),
        ('{"Other":1}', False),
        ('{"Event":{"EventData":{"s":"\\ud800"}}}', False),
        ('{"Event":{}} x', False),
    ],
)  # fmt: skip
def test_native_reader_reads_or_gives_up(text: str, reads: bool) -> None:
    got = _native(text)
    assert (got is not None) == reads
    if got is not None:
        assert got == _reference(text)


def _c_rows(
    records: list[dict[str, Any]], into_columns: bool, keys: Any = None
) -> list[tuple[Any, ...]]:
    """``speedups.rows`` over ``records``, into lists or into C Columns, as 9-tuples."""
    from irkit.model import one_line
    from irkit.sources.evtx.rows import TS_DESC, TS_DESC_HEADER, RecordKeys, header_time

    assert speedups is not None
    resolved, resolve = load_catalog().render_state()
    make = speedups.Column if into_columns else list
    out = tuple(make() for _ in range(9))
    keys = RecordKeys() if keys is None else keys
    rows: list[tuple[Any, ...]] = []
    it = iter(records)
    while True:
        odd = speedups.rows(
            it, out, 1000, keys, None, orjson.loads, orjson.dumps, header_time, resolved,
            resolve, one_line, TS_DESC, TS_DESC_HEADER,
        )  # fmt: skip
        columns = [c.to_list() if into_columns else list(c) for c in out]  # type: ignore[attr-defined]
        if into_columns:
            for column in out:
                column.take()  # type: ignore[attr-defined]
        else:
            for column in out:
                column.clear()  # type: ignore[attr-defined]
        rows += list(zip(*columns, strict=True))
        if odd is None:
            return rows
        if odd is not True:
            rows.append(("odd", odd["event_record_id"]))


def _as_text(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [tuple(v.decode() if isinstance(v, bytes) else v for v in row) for row in rows]


@needs_c
@pytest.mark.corpus
def test_rows_into_columns_equal_rows_into_lists_on_every_corpus_file(corpus: Path) -> None:
    """The native path (fields, message, JSON written from C slices) against the dict
    path (orjson.dumps of the fields), whole rows, every corpus record."""
    count = 0
    for path in _corpus_evtx(corpus):
        records = [r for r in _records(path) if isinstance(r, dict)]
        assert _c_rows(records, True) == _as_text(_c_rows(records, False)), path
        count += len(records)
    assert count >= 35_578


@needs_c
@settings(max_examples=400, deadline=None)
@given(_pairs(_json_text), st.text(max_size=30), st.integers(min_value=1, max_value=9))
def test_rows_into_columns_equal_rows_into_lists_on_generated_json(
    sections: str, value: str, rid: int
) -> None:
    """Control characters, quotes, non-ASCII and long values through both paths."""
    event = orjson.dumps(
        {"System": {"EventID": 4624, "Channel": "Security", "EventRecordID": rid},
         "EventData": {"TargetUserName": value, "Other": value * 40}}
    ).decode()  # fmt: skip
    records = [
        {"data": text, "event_record_id": rid, "timestamp": "2020-01-01 00:00:00.5 UTC"}
        for text in (
            '{"Event":' + event + "}",
            '{"Event":{"System":{"EventID":1},"UserData":' + sections + "}}",
            '{"Event":' + sections + "}",
        )
    ]
    try:
        want = _as_text(_c_rows(records, False))
    except (AttributeError, TypeError, ValueError):
        return  # the reference itself fails on this shape
    assert _c_rows(records, True) == want


@needs_c
def test_column_buffers() -> None:
    import pyarrow as pa

    from irkit.store.spool import _string_array

    assert speedups is not None
    column = speedups.Column()
    column.append("a")
    column.append(b"\xc3\xa9")
    column.append(None)
    column += ["", "\u20ac"]
    assert len(column) == 5
    assert column.to_list() == ["a", "é", None, "", "€"]
    column.truncate(2)
    column.append(None)
    assert column.to_list() == ["a", "é", None]
    with pytest.raises(TypeError):
        column.append(1)
    assert _string_array(column).equals(pa.array(["a", "é", None], pa.string()))
    assert len(column) == 0
    column.append(b"\xff")
    with pytest.raises(pa.ArrowInvalid):
        _string_array(column)  # bytes appended are checked as the binary cast checked them


@needs_c
@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=40), max_size=60), st.booleans())
def test_c_record_keys_are_record_keys(rids: list[int], into_columns: bool) -> None:
    """Repeats, new ranges and ids back in old ranges: the C loop's keys are
    ``RecordKeys.key``'s, and it leaves the same ranges behind."""
    from irkit.sources.evtx.rows import RecordKeys

    records = [
        {"data": f'{{"Event":{{"System":{{"EventRecordID":{rid}}}}}}}', "event_record_id": rid,
         "timestamp": "2020-01-01 00:00:00 UTC"}
        for rid in rids
    ]  # fmt: skip
    want, got = RecordKeys(), RecordKeys()
    assert [row[8] for row in _c_rows(records, into_columns, got)] == [want.key(r) for r in rids]
    assert (got.ranges(), got.ordinal) == (want.ranges(), want.ordinal)
