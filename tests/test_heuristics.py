"""Built-in heuristics: each fires on its example and not on its counter-example; lint; corpus."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from irkit.detect import heuristics as heuristics_module
from irkit.detect.heuristics import (
    Heuristic,
    check_sql,
    compile_sql,
    heuristics_dir,
    load_heuristics,
    scan_heuristics,
)
from irkit.detect.heuristics_lint import example_findings
from irkit.detect.heuristics_run import BATCH, _units, run_heuristics
from irkit.errors import IrkitError
from irkit.model import severity_rank
from irkit.store.case import Case

from .conftest import run_irkit

HEURISTICS = load_heuristics()
BENIGN_DIRS = ("omerbenamram-evtx", "python-evtx", "plaso-evtx")


def test_shipped_set_is_big_enough_and_ids_are_file_names() -> None:
    assert len(HEURISTICS) >= 55
    for heuristic in HEURISTICS:
        assert Path(heuristic.path).stem == heuristic.id
        assert heuristic.attack and heuristic.falsepositives


@pytest.mark.parametrize("heuristic", HEURISTICS, ids=lambda h: h.id)
def test_fires_on_its_example_and_not_on_its_counter_example(heuristic: Heuristic) -> None:
    fired = example_findings(heuristic, "fires")
    assert fired, f"{heuristic.id}: the 'fires' example does not fire"
    for finding in fired:
        assert finding.rule == heuristic.id and finding.detector == "heuristic"
        assert finding.severity == heuristic.level and finding.attack == heuristic.attack
        assert finding.event_uid == finding.event_uids[0] and finding.count >= 1
        assert finding.ts <= finding.last_seen and finding.excerpt
    assert not example_findings(heuristic, "silent"), f"{heuristic.id}: 'silent' fires"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT uid, '' AS key FROM events; DROP TABLE events",
        "SELECT uid, '' AS key FROM findings",
        "SELECT uid, '' AS key FROM read_csv('/etc/passwd')",
        "SELECT uid, getenv('HOME') AS key FROM events",
        "DELETE FROM events",
        "SELECT * FROM main.events",
    ],
)
def test_unsafe_sql_is_refused(sql: str) -> None:
    assert check_sql(sql)


def test_ctes_and_subqueries_over_events_are_allowed() -> None:
    sql = (
        "WITH a AS (SELECT uid, host FROM events) SELECT uid, host AS key FROM a "
        "WHERE uid IN (SELECT uid FROM events)"
    )
    assert check_sql(sql) == []


def _broken_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "heuristics"
    folder.mkdir()
    shutil.copy(heuristics_dir() / "event_log_cleared.yaml", folder)
    text = (heuristics_dir() / "lsass_access.yaml").read_text(encoding="utf-8")
    (folder / "lsass_access.yaml").write_text(
        text.replace("level: high", "level: severe").replace("0x1010'}", "0x1000'}"),
        encoding="utf-8",
    )
    (folder / "bad_sql.yaml").write_text(
        "id: bad_sql\ntitle: t\nlevel: low\nattack: [T1000]\ndescription: d\n"
        'falsepositives: [none]\nwhere: "1 = 1; DROP TABLE events"\n'
        "examples: {fires: [{fields: {EventID: 1}}], silent: [{fields: {EventID: 2}}]}\n",
        encoding="utf-8",
    )
    return folder


def test_rules_lint_exit_codes(tmp_path: Path) -> None:
    clean = run_irkit("rules", "lint")
    assert clean.returncode == 0, clean.stderr
    broken = run_irkit("rules", "lint", "--json", "--folder", str(_broken_folder(tmp_path)))
    assert broken.returncode == 1, broken.stderr
    problems = json.loads(broken.stdout)["problems"]
    text = "\n".join(problems)
    assert "lsass_access.yaml: bad level 'severe'" in text
    assert "bad_sql.yaml: bad ATT&CK tag 'T1000'" in text
    assert "bad_sql.yaml: SQL must be one statement without ';'" in text
    assert not any(p.startswith("event_log_cleared") for p in problems)


def test_example_that_does_not_fire_is_a_lint_problem(tmp_path: Path) -> None:
    folder = tmp_path / "h"
    folder.mkdir()
    text = (heuristics_dir() / "lsass_access.yaml").read_text(encoding="utf-8")
    (folder / "lsass_access.yaml").write_text(text.replace("0x1010'}", "0x1000'}"), "utf-8")
    result = run_irkit("rules", "lint", "--folder", str(folder))
    assert result.returncode == 1
    assert "lsass_access.yaml: example 'fires' does not fire" in result.stderr


def test_load_refuses_a_broken_folder(tmp_path: Path) -> None:
    with pytest.raises(IrkitError, match=r"bad_sql\.yaml"):
        load_heuristics(_broken_folder(tmp_path))


def test_scan_reads_the_heuristics_from_a_cache_that_follows_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IRKIT_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "heuristics"
    shutil.copytree(heuristics_dir(), folder)
    want = [dataclasses.replace(h, fires=(), silent=()) for h in load_heuristics(folder)]
    assert scan_heuristics(folder) == want  # compiled, and the cache written
    (entry,) = (tmp_path / "cache" / "heuristics").iterdir()

    def no_compiling(*args: object) -> None:
        raise AssertionError("read the YAML though the cache was warm")

    with monkeypatch.context() as patched:
        patched.setattr(heuristics_module, "load_heuristics", no_compiling)
        assert scan_heuristics(folder) == want
        # the cache's SQL is known checked: not parsed again before it runs
        patched.setattr(heuristics_module, "_check", no_compiling)
        assert all(check_sql(h.sql) == [] for h in want)

    # an edited file is read again, not served stale
    first = folder / f"{want[0].id}.yaml"
    first.write_text(first.read_text().replace(f"title: {want[0].title}", "title: Edited"))
    assert scan_heuristics(folder)[0].title == "Edited"
    assert scan_heuristics(folder)[1:] == want[1:]
    # a cache that cannot be read is written again
    entry.write_text("[{]")
    first.write_text(first.read_text().replace("title: Edited", f"title: {want[0].title}"))
    assert scan_heuristics(folder) == want
    assert json.loads(entry.read_text())[0]["title"] == want[0].title


def test_rules_list() -> None:
    result = run_irkit("rules", "list", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [r["id"] for r in listed] == [h.id for h in HEURISTICS]
    table = run_irkit("rules", "list")
    assert table.returncode == 0 and "event_log_cleared" in table.stdout


def test_min_level_skips_lower_heuristics(tmp_path: Path) -> None:
    with Case(tmp_path / "case", create=True) as case:
        result = run_heuristics(case, min_level="high")
    assert result.report["heuristics"] == sum(h.level in ("high", "critical") for h in HEURISTICS)
    assert result.findings == [] and result.warnings == []


def test_corpus(corpus_case: tuple[Path, dict[str, object]]) -> None:
    """All heuristics over the corpus: counts, ATT&CK-samples coverage, benign high findings."""
    case_dir, _ = corpus_case
    with Case(case_dir, read_only=True) as case:
        result = run_heuristics(case)
        assert result.warnings == []
        medium_uids = [
            u for f in result.findings if severity_rank(f.severity) >= 2 for u in f.event_uids
        ]
        case.db.execute("CREATE TEMP TABLE medium_uids (uid VARCHAR)")
        case.db.executemany("INSERT INTO medium_uids VALUES (?)", [[u] for u in medium_uids])
        total, hit = case.db.execute(
            """SELECT count(DISTINCT evidence),
                      count(DISTINCT evidence) FILTER (WHERE uid IN (SELECT uid FROM medium_uids))
               FROM events WHERE evidence LIKE '%EVTX-ATTACK-SAMPLES%'"""
        ).fetchall()[0]
    counts = Counter(f.rule for f in result.findings)
    print("\nfindings per heuristic on the corpus:")
    for heuristic in HEURISTICS:
        print(f"  {heuristic.id:45} {heuristic.level:13} {counts.get(heuristic.id, 0)}")
    print(f"EVTX-ATTACK-SAMPLES files with a medium+ finding: {hit}/{total} = {hit / total:.1%}")
    benign = [
        f
        for f in result.findings
        if severity_rank(f.severity) >= 3 and any(f"/{d}/" in f.evidence for d in BENIGN_DIRS)
    ]
    print("high/critical findings on the benign folders:")
    for finding in benign:
        print(f"  {finding.rule} {finding.evidence} x{finding.count}: {finding.excerpt[:150]}")
    assert hit / total >= 0.5
    # Every high finding on the benign logs is known and explained in docs/detection.md.
    assert {(f.rule, Path(f.evidence).name) for f in benign} == {
        ("event_log_cleared", "system.evtx"),  # the user really cleared the Sysmon log
        ("lsass_access", "sysmon.evtx"),  # Procmon from Temp opened LSASS, full access
        ("service_installed_suspicious_path", "system.evtx"),  # a service from AppData\Temp
        ("shadow_copy_deletion", "issue_43.evtx"),  # vssadmin/wmic deleting shadow copies
    }
    for rule in (
        "event_log_cleared",
        "lsass_access",
        "wmi_persistence",
        "shadow_copy_deletion",
        "mssql_xp_cmdshell",
        "admin_share_executable_write",
        "remote_service_control_pipe",
        "renamed_windows_binary",
        "uac_bypass_registry_hijack",
        "wmi_spawned_process",
    ):
        assert counts[rule], rule


def test_a_failing_heuristic_is_named_and_the_others_of_its_batch_still_run(
    corpus_case: tuple[Path, dict[str, object]],
) -> None:
    """Heuristics run in batches of ``BATCH`` on DuckDB; a rule whose SQL fails at run time
    fails its batch, whose rules then run alone: the failure is one named warning, and
    every other rule's findings are as without it."""
    case_dir, _ = corpus_case
    bad = dataclasses.replace(
        HEURISTICS[0],
        id="casts_text_to_a_number",
        sql=compile_sql("CAST(uid AS INTEGER) > 0"),
        query=False,
    )
    with Case(case_dir, read_only=True) as case:
        clean = run_heuristics(case)
        with_bad = run_heuristics(case, [*HEURISTICS[:5], bad, *HEURISTICS[5:]])
    assert clean.warnings == []
    assert [(w.path, w.kind) for w in with_bad.warnings] == [
        ("casts_text_to_a_number", "heuristic-failed")
    ]
    assert "Conversion Error" in with_bad.warnings[0].message
    assert [dataclasses.asdict(f) for f in with_bad.findings] == [
        dataclasses.asdict(f) for f in clean.findings
    ]
    simple = [h.id for h in HEURISTICS if not h.query]
    assert len(clean.report["seconds_by_batch"]) == -(-len(simple) // BATCH)
    # each query runs alone; so did the failed batch's rules, and no other where: rule
    alone = set(with_bad.report["seconds_by_rule"]) - {h.id for h in HEURISTICS if h.query}
    assert len(alone) == BATCH


def test_queries_run_together_only_over_events_held_in_memory() -> None:
    """``where:`` rules run ``BATCH`` to a query; ``query:`` rules too when the case's events
    are held in memory, else one by one (their joins, sixteen at once over a big case's
    parts, ran out of the store's memory); on another engine every rule alone."""
    batch = BATCH
    queries = [i for i, h in enumerate(HEURISTICS) if h.query]
    held = _units(HEURISTICS, duck=True, held=True)
    parts = _units(HEURISTICS, duck=True, held=False)
    assert sorted(i for unit in held for i in unit) == list(range(len(HEURISTICS)))
    assert sorted(i for unit in parts for i in unit) == list(range(len(HEURISTICS)))
    assert all(len(unit) <= batch for unit in held + parts)
    assert [unit for unit in parts if set(unit) & set(queries)] == [[i] for i in queries]
    assert len([u for u in held if set(u) & set(queries)]) == -(-len(queries) // batch)
    assert _units(HEURISTICS, duck=False, held=True) == [[i] for i in range(len(HEURISTICS))]
