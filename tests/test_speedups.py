"""The C accelerator (``irkit/_evtxflat.c``) against its Python twins: same output.

Every record of every corpus EVTX file, and generated JSON shapes no real log has, go
through both; fields (with their order), the System count and the message must be equal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import evtx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from irkit.messages import load_catalog
from irkit.sources.evtx import flatten_event_py
from irkit.speedups import speedups
from tests.conftest import DATA, EVTX_CORPUS_DIRS

needs_c = pytest.mark.skipif(speedups is None, reason="the C accelerator is not built")


def _events(path: Path) -> list[dict[str, Any]]:
    parser = evtx.PyEvtxParser(str(path), number_of_threads=1, skip_errors=True)
    events = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # damaged corpus files: skipped chunks
        records = list(parser.records_json())
    for record in records:
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
    for folder in EVTX_CORPUS_DIRS:
        for path in sorted((corpus / folder).rglob("*")):
            if not path.is_file() or path.read_bytes()[:8] != b"ElfFile\x00":
                continue
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
    assert out.stdout.strip() == "irkit.sources.evtx"


@needs_c
@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=70),
    st.lists(st.tuples(st.text(max_size=140), st.text(max_size=30)), max_size=20),
)
def test_uids_are_the_md5_of_the_python_uid(sha: str, pairs: list[tuple[str, str]]) -> None:
    from irkit.spool import uid

    assert speedups is not None
    records = [record for record, _ in pairs]
    descs = [desc for _, desc in pairs]
    assert speedups.uids(sha, records, descs) == [uid(sha, r, d) for r, d in pairs]
