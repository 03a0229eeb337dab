"""`irkit export --format parquet`: cases into one Hive-partitioned Parquet dataset, read
back by DuckDB and pyarrow (pandas' engine) as they find it."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as pads
import pytest

from irkit.export.dataset import FIELD_COLUMNS
from irkit.store.case import Case

from .conftest import run_irkit

DATA = Path(__file__).parent / "data"


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def events_of(dataset: Path) -> list[tuple[str, ...]]:
    glob = str(dataset / "events" / "**" / "*.parquet")
    return duckdb.sql(
        f"SELECT uid, host, source, CAST(date AS VARCHAR), host_key FROM "
        f"read_parquet('{glob}', hive_partitioning = true) ORDER BY uid"
    ).fetchall()


def case_events(case: Path) -> list[tuple[str, ...]]:
    with Case(case, read_only=True) as store:
        return store.db.execute(
            "SELECT uid, host, source, CAST(CAST(ts AS DATE) AS VARCHAR) FROM events ORDER BY uid"
        ).fetchall()


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two real cases: EVTX logs (scanned, so with findings), and osquery results."""
    root = tmp_path_factory.mktemp("cases")
    first, second = root / "evtx", root / "osquery"
    done = run_irkit("triage", str(DATA / "evidence"), "--case", str(first), "-q")
    assert done.returncode in (0, 4), done.stderr  # 4: findings at --fail-on
    done = run_irkit("parse", str(DATA / "osquery"), "--case", str(second), "-q")
    assert done.returncode == 0, done.stderr
    return first, second


def test_a_case_becomes_a_partitioned_dataset_readers_take_as_is(
    cases: tuple[Path, Path], tmp_path: Path
) -> None:
    first, _ = cases
    out = tmp_path / "ds"
    done = run_irkit("export", str(first), "--format", "parquet", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    [report] = json.loads(done.stdout)
    rows = events_of(out)
    expected = case_events(first)
    assert report["events"] == len(expected) == len(rows) > 20
    # The same events, their host as the case names it, the partition values right.
    assert [r[:4] for r in rows] == expected
    for _uid, host, source, date, key in rows:
        # No host (the file listing of a folder): Hive's default partition, read as NULL.
        assert key == (host.lower().replace(" ", "_") if host else None)
        folder = key or "__HIVE_DEFAULT_PARTITION__"
        assert (
            out / "events" / f"source={source}" / f"host_key={folder}" / f"date={date}"
        ).is_dir()
    # The field columns, typed columns as in the case, findings and their events.
    glob = out / "events" / "**" / "*.parquet"
    described = duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{glob}', hive_partitioning=true)")
    columns = {str(row[0]): str(row[1]) for row in described.fetchall()}
    assert columns["ts"] == "TIMESTAMP WITH TIME ZONE" and set(FIELD_COLUMNS) <= set(columns)
    users = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning=true) "
        "WHERE TargetUserName IS NOT NULL"
    ).fetchall()[0][0]
    assert users > 0
    with Case(first, read_only=True) as store:
        findings = store.db.execute("SELECT count(*) FROM findings").fetchall()[0][0]
        linked = store.db.execute("SELECT count(*) FROM finding_events").fetchall()[0][0]
    assert findings == report["findings"] > 0
    fglob = out / "findings" / "**" / "*.parquet"
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{fglob}')").fetchall()[0][0] == findings
    eglob = out / "finding_events" / "*.parquet"
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{eglob}')").fetchall()[0][0] == linked
    # pyarrow (what pandas reads Parquet with) takes the folder as a Hive dataset.
    table = pads.dataset(out / "events", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == len(rows)
    assert {"source", "host_key", "date", "Image", "CommandLine"} <= set(table.schema.names)


def test_exports_add_cases_and_replace_their_own_files_with_the_same_bytes(
    cases: tuple[Path, Path], tmp_path: Path
) -> None:
    first, second = cases
    out = tmp_path / "ds"
    assert run_irkit("export", str(first), "--out", str(out), "-q").returncode == 0
    once = digests(out)
    again = run_irkit("export", str(first), "--out", str(out), "--json")
    assert json.loads(again.stdout)[0]["replaced"] == json.loads(again.stdout)[0]["files"]
    assert digests(out) == once  # the same case: the same bytes
    # Another case adds its own files, and leaves the first case's alone.
    assert run_irkit("export", str(second), "--out", str(out), "-q").returncode == 0
    both = digests(out)
    assert {k: v for k, v in both.items() if k in once and "_irkit" not in k} == {
        k: v for k, v in once.items() if "_irkit" not in k
    }
    assert len(events_of(out)) == len(case_events(first)) + len(case_events(second))
    assert (out / "events" / "source=osquery").is_dir()
    # A fresh export of both cases gives the same files.
    fresh = tmp_path / "fresh"
    assert run_irkit("export", str(first), str(second), "--out", str(fresh)).returncode == 0
    assert digests(fresh) == both


def test_a_grown_case_replaces_its_earlier_files(cases: tuple[Path, Path], tmp_path: Path) -> None:
    first, _ = cases
    case = tmp_path / "case"
    shutil.copytree(first, case)
    out = tmp_path / "ds"
    assert run_irkit("export", str(case), "--out", str(out), "-q").returncode == 0
    before = len(events_of(out))
    done = run_irkit("parse", str(DATA / "dirty" / "System2.evtx"), "--case", str(case), "-q")
    assert done.returncode in (0, 3), done.stderr
    assert run_irkit("export", str(case), "--out", str(out), "-q").returncode == 0
    rows = events_of(out)
    assert len(rows) == len(case_events(case)) > before
    assert len({r[0] for r in rows}) == len(rows)  # no event twice


def test_out_must_be_a_dataset_or_empty(cases: tuple[Path, Path], tmp_path: Path) -> None:
    first, _ = cases
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    done = run_irkit("export", str(first), "--out", str(busy))
    assert done.returncode == 2
    assert "not an irkit dataset" in done.stderr
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    missing = run_irkit("export", str(tmp_path / "nope"), "--out", str(tmp_path / "ds"))
    assert missing.returncode == 1 and "not an irkit case" in missing.stderr


def _fleet_module() -> Any:
    """tests/bench/fleet.py (the bench folder is not a package)."""
    import importlib.util

    path = Path(__file__).parent / "bench" / "fleet.py"
    spec = importlib.util.spec_from_file_location("irkit_bench_fleet", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.corpus
def test_fleet_stacking_finds_the_one_host_with_a_rare_pair(corpus: Path, tmp_path: Path) -> None:
    sample = (
        corpus / "EVTX-ATTACK-SAMPLES" / "Lateral Movement" / "powercat_revShell_sysmon_1_3.evtx"
    )
    case, one = tmp_path / "case", tmp_path / "one"
    assert run_irkit("parse", str(sample), "--case", str(case), "-q").returncode == 0
    assert run_irkit("export", str(case), "--out", str(one), "-q").returncode == 0
    [(uid,)] = duckdb.sql(
        f"SELECT uid FROM read_parquet('{one}/events/**/*.parquet', hive_partitioning=true) "
        "WHERE event_id = '1' ORDER BY ts LIMIT 1"
    ).fetchall()
    fleet = tmp_path / "fleet"
    planted = {
        "ParentImage": r"C:\Windows\System32\spoolsv.exe",
        "Image": r"C:\Users\Public\svc.exe",
    }
    events = _fleet_module().build_fleet(
        one, fleet, 50, plant={"host": 17, "uid": uid, "fields": planted}
    )
    assert events == 50 * case_events_count(case) + 1
    done = run_irkit("stack", str(fleet), "parent-child", "--rare", "1", "-f", "jsonl", "-o", "-")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    # Every pair of the sample is on all 50 hosts; only the planted one is rare.
    [row] = rows
    assert row["image"].endswith("\\users\\public\\svc.exe") and "spoolsv" in row["parent_image"]
    assert [h[-5:] for h in row["hosts"]] == ["-h017"]
    common = run_irkit("stack", str(fleet), "parent-child", "-f", "jsonl", "-o", "-")
    counts = [json.loads(line)["count"] for line in common.stdout.splitlines()]
    assert min(counts) == 1 and sorted(counts)[1] >= 50


def case_events_count(case: Path) -> int:
    return len(case_events(case))


def test_sql_reads_a_case_or_a_dataset_and_refuses_writes(
    cases: tuple[Path, Path], tmp_path: Path
) -> None:
    first, _ = cases
    out = tmp_path / "ds"
    assert run_irkit("export", str(first), "--out", str(out), "-q").returncode == 0
    query = "SELECT source, count(*) AS n FROM events GROUP BY 1 ORDER BY 1"
    on_case = run_irkit("sql", str(first), query, "-f", "csv", "-o", "-")
    on_dataset = run_irkit("sql", str(out), query, "-f", "csv", "-o", "-")
    assert on_case.returncode == on_dataset.returncode == 0, on_case.stderr + on_dataset.stderr
    assert on_case.stdout == on_dataset.stdout and on_case.stdout.startswith("source,n\n")
    rows = run_irkit("sql", str(out), "SELECT uid, message FROM events", "-f", "jsonl", "-o", "-")
    assert len(rows.stdout.splitlines()) == len(case_events(first))
    for refused in ("DROP VIEW events", "COPY events TO 'x.csv'", "SELECT 1; SELECT 2"):
        done = run_irkit("sql", str(out), refused)
        assert done.returncode == 2, refused
    assert sorted(p.name for p in out.iterdir()) == [
        "_irkit",
        "events",
        "finding_events",
        "findings",
    ]


def _pairs(db: Any) -> set[tuple[str, str]]:
    rows = db.execute(
        "SELECT f.rule, l.event_uid FROM findings f JOIN finding_events l ON l.finding_uid = f.uid"
    ).fetchall()
    return {(str(r[0]), str(r[1])) for r in rows}


@pytest.mark.corpus
def test_scan_of_a_dataset_finds_what_the_scan_of_its_case_finds(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IRKIT_CACHE", str(tmp_path / "cache"))
    attacks = corpus / "EVTX-ATTACK-SAMPLES"
    samples = [
        attacks / "Lateral Movement" / "powercat_revShell_sysmon_1_3.evtx",
        attacks / "Credential Access" / "CA_sysmon_hashdump_cmd_meterpreter.evtx",
        attacks / "Privilege Escalation" / "Sysmon_UACME_33.evtx",
        attacks / "Defense Evasion" / "DE_WinEventLogSvc_Crash_System_7036.evtx",
    ]
    case, out = tmp_path / "case", tmp_path / "ds"
    assert run_irkit("parse", *map(str, samples), "--case", str(case), "-q").returncode == 0
    assert run_irkit("export", str(case), "--out", str(out), "-q").returncode == 0
    sigma = corpus / "sigma" / "rules" / "windows" / "process_creation"
    for target in (case, out):
        done = run_irkit("scan", str(target), "--sigma", str(sigma), "-q", "--json")
        assert done.returncode == 0, done.stderr
    with Case(case, read_only=True) as store:
        on_case = _pairs(store.db)
    from irkit.store.dataset import Dataset

    with Dataset(out) as data:
        on_dataset = _pairs(data.db)
    assert on_case and on_dataset == on_case
    assert {rule for rule, _ in on_case} >= {"discovery_commands_burst_one_parent"}
    # Scanning the dataset again adds nothing; irkit findings reads it as it reads a case.
    again = run_irkit("scan", str(out), "--sigma", str(sigma), "-q", "--json")
    assert json.loads(again.stdout)["findings_added"] == 0
    listed = run_irkit("findings", str(out), "-f", "jsonl", "-o", "-")
    from_case = run_irkit("findings", str(case), "-f", "jsonl", "-o", "-")
    assert sorted(listed.stdout.splitlines()) == sorted(from_case.stdout.splitlines())
    refused = run_irkit("scan", str(out), "--yara", str(tmp_path))
    assert refused.returncode == 2 and "dataset holds events only" in refused.stderr


DESCRIBE = "SELECT column_name, column_type FROM (DESCRIBE events)"


def test_a_scan_copies_the_events_in_sorted_batches_with_their_partition_types(
    cases: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Dataset.materialise``: every event once, each batch of files sorted by log and
    event id (what lets a rule's filter skip row groups), and a host key of digits read as
    text, in the view and in the copy alike."""
    from irkit.store import dataset as dataset_module

    first, second = cases
    out = tmp_path / "ds"
    for case in (first, second):
        assert run_irkit("export", str(case), "--out", str(out), "-q").returncode == 0
    # One host's folder renamed to digits: a type guessed from names would make it a number.
    folder = next((out / "events").glob("source=*/host_key=*"))
    folder.rename(folder.with_name("host_key=1234"))
    monkeypatch.setattr(dataset_module, "MATERIALISE_BYTES", 4096)  # many small batches
    with dataset_module.Dataset(out) as data:
        before = sorted(data.db.execute("SELECT uid, host_key, date FROM events").fetchall())
        kinds = dict(data.db.execute(DESCRIBE).fetchall())
        batches = dataset_module._batches(sorted(out.glob("events/**/*.parquet")), 4096)
        (tmp_path / "scratch").mkdir()
        data.materialise(tmp_path / "scratch")
        after = sorted(data.db.execute("SELECT uid, host_key, date FROM events").fetchall())
        copied = dict(data.db.execute(DESCRIBE).fetchall())
        order = data.db.execute(
            "SELECT artifact, event_id FROM scratch.events ORDER BY rowid"
        ).fetchall()
    order = [tuple((v is None, v or "") for v in row) for row in order]  # NULLs sort last
    assert len(batches) > 2
    assert after == before and len(before) > 20
    assert kinds["host_key"] == copied["host_key"] == "VARCHAR"
    assert kinds["date"] == copied["date"] == "DATE"
    assert "1234" in {row[1] for row in after}
    # The copy is runs of sorted rows, one run a batch (a new run starts where the order
    # goes back), not one run for all (the osquery and EVTX cases' logs are interleaved
    # across batches) and not unsorted.
    runs = 1 + sum(1 for a, b in itertools.pairwise(order) if b < a)
    assert 1 < runs <= len(batches)
