"""File events as Arrow columns (#18): the same table as the row path, stored in one go."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest

from irkit.files.eventcolumns import FileEventColumns, utf8_text
from irkit.files.events import entry_rows
from irkit.files.hashing import hash_paths
from irkit.files.options import HashOptions, HashSummary, parse_algorithms
from irkit.files.walk import FileEntry
from irkit.store.spool import build_table

from .conftest import run_irkit


@pytest.fixture
def odd_tree(tmp_path: Path) -> Path:
    """Files, a folder, links, a FIFO, names with control characters and bad UTF-8,
    a path near the message limit, a time before 1970."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "plain.txt").write_bytes(b"hello\n")
    (tree / "empty").write_bytes(b"")
    (tree / "new\nline\u202e.txt").write_bytes(b"x")
    (tree / "tab\there").write_bytes(b"y")
    (tree / "caf\u00e9").write_bytes(b"z")
    os.mknod(os.fsencode(tree) + b"/bad\xffname")
    deep = tree / "sub" / ("d" * 200) / ("e" * 200) / ("f" * 200) / ("g" * 200)
    deep.mkdir(parents=True)
    (deep / ("h" * 200)).write_bytes(b"long")
    old = tree / "sub" / "old"
    old.write_bytes(b"old")
    os.utime(old, ns=(-315_619_200_123_456_789, -315_619_200_987_654_321))  # 1960
    (tree / "link").symlink_to("plain.txt")
    (tree / "dangling").symlink_to("nowhere")
    os.mkfifo(tree / "fifo")
    return tree


def _entries(tree: Path, algorithms: tuple[str, ...]) -> list[FileEntry]:
    seen: list[FileEntry] = []
    hash_paths([tree], HashOptions(algorithms=algorithms), seen.append, HashSummary())
    return seen


@pytest.mark.parametrize("algorithms", [("md5", "sha1", "sha256"), ("sha256",), ()])
def test_columns_equal_the_row_path(odd_tree: Path, algorithms: tuple[str, ...]) -> None:
    entries = _entries(odd_tree, algorithms)
    columns = FileEventColumns()
    counts = [columns.add(entry) for entry in entries]
    table = columns.table()
    # The row path on the same entries (bad UTF-8 names aside: they never stored).
    rows, evidence, shas = [], [], []
    for entry, count in zip(entries, counts, strict=True):
        entry.path = utf8_text(entry.path)
        made = entry_rows(entry)
        assert len(made) == count
        rows += made
        evidence += [entry.path] * len(made)
        shas += [entry.digests.get("sha256", "")] * len(made)
    expected = build_table(rows, "file", evidence, shas)
    assert table.schema == expected.schema
    for name in table.column_names:
        assert table[name].to_pylist() == expected[name].to_pylist(), name
    long = [m for m in table["message"].to_pylist() if m.endswith("…")]
    assert long and all(len(m) == 1024 for m in long)  # the deep path's messages, cut


def test_bad_utf8_names_are_stored_as_escapes(odd_tree: Path, tmp_path: Path) -> None:
    case = tmp_path / "case"
    result = run_irkit("hash", str(odd_tree), "--case", str(case), "-q", "--json")
    assert result.returncode == 0, result.stderr
    paths = {
        row[0]
        for row in duckdb.sql(
            f"SELECT DISTINCT record FROM read_parquet('{case}/events/*.parquet')"
        ).fetchall()
    }
    assert str(odd_tree / "bad\\xffname") in paths
    assert str(odd_tree / "new\nline\u202e.txt") in paths


def test_algorithms_none_reads_no_file_and_stores_every_time(
    odd_tree: Path, tmp_path: Path
) -> None:
    assert parse_algorithms("none") == ()
    secret = odd_tree / "secret"
    secret.write_bytes(b"s")
    past = secret.stat().st_atime_ns - 10**12
    os.utime(secret, ns=(past, secret.stat().st_mtime_ns))  # an atime a read would move
    case = tmp_path / "case"
    result = run_irkit("hash", str(odd_tree), "--case", str(case), "-a", "none", "--json", "-q")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["files_hashed"] == 0 and data["algorithms"] == []
    assert data["events"] == data["events_added"] > 4 * 10
    assert secret.stat().st_atime_ns == past  # never opened
    assert not list(case.glob("hashes-*"))  # no digest, no digest list
    statuses = duckdb.sql(
        f"""SELECT DISTINCT json_extract_string(fields, '$.hash_status')
            FROM read_parquet('{case}/events/*.parquet')
            WHERE json_extract_string(fields, '$.type') = 'r'"""
    ).fetchall()
    assert statuses == [("not-hashed",)]
    # Again into the same case: nothing new (the uids are already there).
    again = run_irkit("hash", str(odd_tree), "--case", str(case), "-a", "none", "--json", "-q")
    assert json.loads(again.stdout)["events_added"] == 0, again.stderr


def test_nested_roots_store_each_event_once(odd_tree: Path, tmp_path: Path) -> None:
    case = tmp_path / "case"
    result = run_irkit(
        "hash", str(odd_tree), str(odd_tree / "sub"), "--case", str(case), "--json", "-q"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["events_added"] < data["events"]
    counts = duckdb.sql(
        f"""SELECT count(*), count(DISTINCT uid)
            FROM read_parquet('{case}/events/*.parquet')"""
    ).fetchall()[0]
    assert counts[0] == counts[1] == data["events_added"]


def test_many_parts_registered_in_one_go(tmp_path: Path) -> None:
    from irkit.store.case import Case
    from irkit.store.filewrite import PartWriter

    tree = tmp_path / "tree"
    for n in range(30):
        (tree / f"d{n % 3}").mkdir(parents=True, exist_ok=True)
        (tree / f"d{n % 3}" / f"f{n}").write_bytes(b"")
    columns = FileEventColumns()
    writer = PartWriter(tmp_path / "spool", "t", depth=1)
    total = 0
    for entry in _entries(tree, ()):
        total += columns.add(entry)
        if columns.events >= 20:
            writer.write(columns.table)
            columns = FileEventColumns()
    writer.write(columns.table)
    parts = writer.close()
    assert len(parts) > 3 and sum(writer.counts) == total
    with Case(tmp_path / "case", create=True) as case:
        added = case.add_file_parts(list(zip(parts, writer.counts, strict=True)), "t", True)
        assert added == total == case.count()
        assert not any(p.exists() for p in parts)  # moved, not copied
        assert len(list((tmp_path / "case" / "events").glob("t-*.parquet"))) == len(parts)
