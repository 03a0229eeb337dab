"""The benchmark tiler (tests/bench/tile_evtx.py) writes a valid EVTX file irkit reads whole.

A ~2 MB file is tiled from the shared corpus (skipped when absent); pyevtx-rs must read
every record without an error, the count must equal the tiled chunks' records, record
ids must be unique and increasing, and ``irkit parse`` must ingest every record.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import evtx
import orjson
import pytest

from irkit.store.case import Case
from tests.bench import tile_evtx

SIZE = 2 << 20


@pytest.fixture(scope="module")
def pool(corpus: Path) -> list[tile_evtx.PoolChunk]:
    """The intact, readable chunks of the corpus's EVTX files."""
    chunks = tile_evtx.build_pool(tile_evtx.distinct_files(tile_evtx.evtx_files([corpus])))
    assert len(chunks) > 100
    return chunks


@pytest.fixture(scope="module")
def tiled(
    tmp_path_factory: pytest.TempPathFactory, pool: list[tile_evtx.PoolChunk]
) -> tuple[Path, tile_evtx.TileResult]:
    """A ~2 MB tiled EVTX file and what the tiler says it wrote."""
    out = tmp_path_factory.mktemp("tiled") / "tiled.evtx"
    return out, tile_evtx.tile(out, SIZE, pool=pool)


def test_parse_size() -> None:
    assert tile_evtx.parse_size("1G") == 1 << 30
    assert tile_evtx.parse_size("256M") == 256 << 20
    assert tile_evtx.parse_size("2.5k") == 2560
    assert tile_evtx.parse_size("4096") == 4096


@pytest.mark.corpus
def test_header_and_chunks_are_valid(
    tiled: tuple[Path, tile_evtx.TileResult], pool: list[tile_evtx.PoolChunk]
) -> None:
    out, result = tiled
    data = out.read_bytes()
    assert len(data) == result.bytes <= SIZE
    assert result.chunks == tile_evtx.chunks_for_size(SIZE) == (len(data) - 4096) // 65536
    head = data[:4096]
    assert head[:8] == tile_evtx.FILE_MAGIC
    assert struct.unpack_from("<I", head, 124)[0] == tile_evtx.crc32(head[:120])
    first, last, next_id = struct.unpack_from("<QQQ", head, 8)
    assert (first, last, next_id) == (0, result.chunks - 1, result.records + 1)
    assert struct.unpack_from("<H", head, 42)[0] == result.chunks
    for index in range(result.chunks):
        chunk = data[4096 + index * 65536 : 4096 + (index + 1) * 65536]
        assert tile_evtx.chunk_is_intact(chunk), index
    # python-evtx's own checks agree: file header and every chunk verify.
    from Evtx.Evtx import Evtx

    with Evtx(str(out)) as log:
        header = log.get_file_header()
        assert header.verify()
        assert all(chunk.verify() for chunk in header.chunks())
    expected = sum(pool[i % len(pool)].records for i in range(result.chunks))
    assert result.records == expected


@pytest.mark.corpus
def test_pyevtx_rs_reads_every_record(tiled: tuple[Path, tile_evtx.TileResult]) -> None:
    out, result = tiled
    ids: list[int] = []
    json_ids: list[object] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a skipped chunk or record fails the test
        for item in evtx.PyEvtxParser(str(out)).records_json():
            ids.append(item["event_record_id"])
            system = orjson.loads(item["data"])["Event"].get("System", {})
            json_ids.append(system.get("EventRecordID"))
    assert len(ids) == result.records
    assert ids == list(range(1, result.records + 1))
    rewritten = [rid for rid, jid in zip(ids, json_ids, strict=True) if jid == rid]
    assert len(rewritten) == result.json_ids_rewritten
    assert result.json_ids_rewritten + result.json_ids_left == result.records
    assert result.json_ids_left == 0  # chunks with an id it cannot rewrite are left out


@pytest.mark.corpus
def test_irkit_parse_ingests_every_record(
    tiled: tuple[Path, tile_evtx.TileResult], tmp_path: Path
) -> None:
    out, result = tiled
    case = tmp_path / "case"
    env = {**os.environ, "COLUMNS": "200"}
    run = subprocess.run(
        [sys.executable, "-m", "irkit", "parse", str(out), "--case", str(case), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["records"] == summary["events_added"] == result.records
    assert summary["warnings"] == 0
    with Case(case, read_only=True) as store:
        db = store.db
        row = db.execute("SELECT count(*), count(DISTINCT record) FROM events").fetchone()
    assert row == (result.records, result.records)
