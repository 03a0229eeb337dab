"""`irkit timeline` filters and output through the real command line: host and event-id
matching, usage errors for filters that cannot match, `-o -`, and `--where` confined to
the case."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import duckdb
import pytest

from irkit.errors import QueryError
from irkit.store.case import Case
from irkit.store.timeline import Selection, TimelineFilter, confine, event_id_key

from .conftest import DIRTY, EVIDENCE, run_irkit


@pytest.fixture(scope="module")
def sample_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    case = tmp_path_factory.mktemp("timeline") / "case"
    result = run_irkit("parse", str(EVIDENCE), str(DIRTY), "--case", str(case), "-q")
    assert result.returncode == 3, result.stderr
    return case


def jsonl(
    case: Path, *args: str
) -> tuple[list[dict[str, object]], subprocess.CompletedProcess[str]]:
    result = run_irkit("timeline", str(case), "--format", "jsonl", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()], result


# --host ----------------------------------------------------------------------------------


def test_host_matches_without_case(sample_case: Path) -> None:
    upper, _ = jsonl(sample_case, "--host", "DESKTOP-2KGM189")
    lower, _ = jsonl(sample_case, "--host", "desktop-2kgm189")
    assert len(upper) == 358
    assert lower == upper


def test_short_host_name_matches_its_fqdn_and_back(sample_case: Path) -> None:
    short, _ = jsonl(sample_case, "--host", "student-pc1")
    assert len(short) == 3
    assert {row["host"] for row in short} == {"Student-PC1.internal.greendale.edu"}
    fqdn, _ = jsonl(sample_case, "--host", "STUDENT-PC1.Internal.Greendale.edu")
    assert fqdn == short
    # An FQDN matches its short name too (the same host logged without its domain).
    back, _ = jsonl(sample_case, "--host", "desktop-2kgm189.example.com")
    assert len(back) == 358
    # Another domain is another host, and a name is not a prefix of a longer name.
    for other in ("student-pc1.other.edu", "desktop", "student"):
        rows, result = jsonl(sample_case, "--host", other)
        assert rows == [], other
        assert "0 events matched" in result.stderr


@pytest.mark.parametrize("option", ["--host", "--source", "--event-id"])
@pytest.mark.parametrize("value", ["", ",", " . "])
def test_an_empty_filter_value_is_a_usage_error(sample_case: Path, option: str, value: str) -> None:
    result = run_irkit("timeline", str(sample_case), option, value)
    assert result.returncode == 2, result.stderr
    assert f"{option} is given an empty value" in result.stderr


def test_hosts_take_a_list(sample_case: Path) -> None:
    both, _ = jsonl(sample_case, "--host", "itbdns03,desktop-0hijb49")
    repeated, _ = jsonl(sample_case, "--host", "ITBDNS03.itb.ie", "--host", "DESKTOP-0HIJB49")
    assert len(both) == 5 + 17
    assert both == repeated


# --event-id ------------------------------------------------------------------------------


def test_event_id_takes_a_list(sample_case: Path) -> None:
    listed, _ = jsonl(sample_case, "--event-id", "4624,4672")
    repeated, _ = jsonl(sample_case, "--event-id", "4624", "--event-id", " 04672 ")
    assert len(listed) == 47 + 37
    assert listed == repeated
    assert {row["event_id"] for row in listed} == {"4624", "4672"}


def test_event_id_list_on_the_corpus(corpus_case: tuple[Path, dict[str, object]]) -> None:
    case, _ = corpus_case
    rows, _ = jsonl(case, "--event-id", "1102,104")
    assert rows
    assert {row["event_id"] for row in rows} == {"1102", "104"}


@pytest.mark.parametrize("value", ["abc", "4624;", "4624 OR 1=1", "4624,abc"])
def test_event_id_that_matches_nothing_is_a_usage_error(sample_case: Path, value: str) -> None:
    result = run_irkit("timeline", str(sample_case), "--event-id", value)
    assert result.returncode == 2, result.stderr
    assert "--event-id" in result.stderr
    assert "Traceback" not in result.stderr


def test_event_id_key_normalises() -> None:
    assert event_id_key("04624") == "4624"
    assert event_id_key(" Added ") == "added"
    with pytest.raises(QueryError):
        event_id_key("4624 OR 1=1")


def test_event_id_word_of_a_source_is_not_an_error_where_absent(sample_case: Path) -> None:
    # `removed` is an osquery action: a case without osquery has none, which is no error.
    rows, result = jsonl(sample_case, "--event-id", "removed")
    assert rows == []
    assert "0 events matched" in result.stderr


def test_event_id_words_match_without_case(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "results.log").write_text(
        json.dumps(
            {
                "name": "processes",
                "hostIdentifier": "web01",
                "unixTime": "1714550400",
                "columns": {"pid": "1", "path": "/sbin/init"},
                "action": "added",
            }
        )
        + "\n"
    )
    (evidence / "status.log").write_text(
        json.dumps(
            {
                "hostIdentifier": "web01",
                "unixTime": "1714550460",
                "severity": "NOTICE",
                "filename": "x.cpp",
                "line": "1",
                "message": "hello",
            }
        )
        + "\n"
    )
    case = tmp_path / "case"
    assert run_irkit("parse", str(evidence), "--case", str(case), "-q").returncode == 0
    added, _ = jsonl(case, "--event-id", "ADDED")
    assert [row["event_id"] for row in added] == ["added"]
    # Not a word irkit's sources write, but this case holds it: accepted.
    notice, _ = jsonl(case, "--event-id", "notice")
    assert [row["event_id"] for row in notice] == ["NOTICE"]


# --from / --to, empty results ------------------------------------------------------------


def test_from_after_to_is_a_usage_error(sample_case: Path) -> None:
    result = run_irkit(
        "timeline", str(sample_case), "--from", "2020-01-02", "--to", "2020-01-01T23:59:59Z"
    )
    assert result.returncode == 2
    assert "after --to" in result.stderr
    same = run_irkit("timeline", str(sample_case), "--from", "2020-01-01", "--to", "2020-01-01")
    assert same.returncode == 0, same.stderr


@pytest.mark.parametrize("fmt", ["table", "csv", "jsonl", "bodyfile"])
def test_empty_result_is_said_on_stderr_not_in_the_data(sample_case: Path, fmt: str) -> None:
    result = run_irkit("timeline", str(sample_case), "-f", fmt, "--host", "no-such-host")
    assert result.returncode == 0, result.stderr
    assert "0 events matched" in result.stderr
    assert "matched" not in result.stdout
    expected = {"table": "", "jsonl": "", "bodyfile": ""}.get(fmt)
    if expected is None:  # CSV: the header alone, so the file is still a valid CSV
        assert len(result.stdout.splitlines()) == 1 and result.stdout.startswith("datetime,")
    else:
        assert result.stdout == expected


# -o - ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_output_dash_is_stdout(sample_case: Path, tmp_path: Path, fmt: str) -> None:
    dash = run_irkit("timeline", str(sample_case), "-f", fmt, "-o", "-", cwd=tmp_path)
    plain = run_irkit("timeline", str(sample_case), "-f", fmt, cwd=tmp_path)
    assert dash.returncode == 0, dash.stderr
    assert not (tmp_path / "-").exists()
    assert list(tmp_path.iterdir()) == []
    assert dash.stdout and dash.stdout == plain.stdout


def test_output_file_with_the_table_format_is_a_usage_error(
    sample_case: Path, tmp_path: Path
) -> None:
    result = run_irkit("timeline", str(sample_case), "-o", str(tmp_path / "t.csv"))
    assert result.returncode == 2
    assert "--format" in result.stderr
    assert not (tmp_path / "t.csv").exists()
    table = run_irkit("timeline", str(sample_case), "-o", "-", "--limit", "3")
    assert table.returncode == 0 and "datetime (UTC)" in table.stdout


def test_help_gives_examples() -> None:
    result = run_irkit("timeline", "--help")
    assert result.returncode == 0
    assert "Examples" in result.stdout
    assert "irkit timeline irkit-triage --host dc01 --event-id 4624,4625" in result.stdout
    assert "-o -" in result.stdout


# --where: SQL over the case, and nothing else ---------------------------------------------


def test_where_still_filters_on_fields(sample_case: Path) -> None:
    arrow, _ = jsonl(sample_case, "--where", "fields->>'Image' ILIKE '%ping.exe'")
    path, _ = jsonl(sample_case, "--where", "fields->>'$.Image' ILIKE '%ping.exe'")
    assert arrow and arrow == path
    # A ';' inside a string literal is text, not a second statement.
    semicolon, _ = jsonl(sample_case, "--where", "host <> 'a;b' AND event_id = '4624'")
    assert len(semicolon) == 47
    joined, _ = jsonl(
        sample_case, "--where", "uid IN (SELECT uid FROM events WHERE event_id = '4624')"
    )
    assert len(joined) == 47


@pytest.mark.parametrize(
    "sql",
    [
        "(SELECT count(*) FROM read_csv('/etc/passwd')) > 0",
        "(SELECT count(*) FROM read_text('/etc/passwd')) > 0",
        "(SELECT count(*) FROM read_blob('/etc/passwd')) > 0",
        "(SELECT count(*) FROM glob('/etc/*')) > 0",
        "(SELECT count(*) FROM read_json('/etc/hosts')) > 0",
        "(SELECT count(*) FROM read_parquet('https://example.com/x.parquet')) > 0",
    ],
)
def test_where_cannot_read_files(sample_case: Path, sql: str) -> None:
    result = run_irkit("timeline", str(sample_case), "--where", sql, "-f", "jsonl")
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "--where may read only the case" in result.stderr
    assert "root:" not in result.stderr
    assert "Traceback" not in result.stderr


def test_where_cannot_scan_a_file_by_name(sample_case: Path) -> None:
    # DuckDB's replacement scan of a path is off with external access: an unknown table.
    result = run_irkit("timeline", str(sample_case), "--where", "(FROM '/etc/passwd') IS NULL")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "/etc/passwd does not exist" in result.stderr
    assert "root:" not in result.stderr


def test_where_cannot_read_other_parquet_even_of_the_case_folder(
    sample_case: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "other.parquet"
    duckdb.execute(f"COPY (SELECT 42 AS answer) TO '{outside}' (FORMAT parquet)")
    glob = sample_case / "events" / "*.parquet"
    for sql in (f"(SELECT answer FROM '{outside}') = 42", f"(SELECT count(*) FROM '{glob}') > 0"):
        result = run_irkit("timeline", str(sample_case), "--where", sql)
        assert result.returncode == 2, sql
        assert "--where may read only the case" in result.stderr


@pytest.mark.parametrize(
    "statement",
    [
        "COPY (SELECT 1) TO '{tmp}/copied.csv'",
        "ATTACH '{tmp}/attached.duckdb'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "PRAGMA enable_profiling",
    ],
)
def test_where_cannot_run_a_second_statement(
    sample_case: Path, tmp_path: Path, statement: str
) -> None:
    sql = "true; " + statement.format(tmp=tmp_path)
    result = run_irkit("timeline", str(sample_case), "--where", sql, "-f", "jsonl")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "without ';'" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sql", ["true -- comment", "true /* c */", "true) OR (true", "(true"])
def test_where_is_one_condition(sample_case: Path, sql: str) -> None:
    result = run_irkit("timeline", str(sample_case), "--where", sql)
    assert result.returncode == 2, sql
    assert "--where" in result.stderr


def test_confined_connection_reads_the_case_and_nothing_else(
    sample_case: Path, tmp_path: Path
) -> None:
    """The lock is DuckDB's own: even a statement that got past the ';' check is refused."""
    with Case(sample_case, read_only=True) as case:
        before = case.db.execute("SELECT count(*) FROM timeline").fetchall()
        confine(case)
        assert case.db.execute("SELECT count(*) FROM timeline").fetchall() == before
        assert case.db.execute("SELECT count(*) FROM findings").fetchall()
        refused = [
            "SELECT * FROM read_csv('/etc/passwd')",
            "SELECT * FROM read_text('/etc/passwd')",
            "SELECT * FROM glob('/etc/*')",
            f"COPY (SELECT 1) TO '{tmp_path}/copied.csv'",
            f"ATTACH '{tmp_path}/attached.duckdb'",
            "INSTALL httpfs",
            "LOAD httpfs",
            "SET enable_external_access = true",
            "RESET enable_external_access",
            "SET allowed_paths = ['/etc/passwd']",
            "SET memory_limit = '8GB'",
            f"EXPORT DATABASE '{tmp_path}/exported'",
        ]
        for sql in refused:
            with pytest.raises(duckdb.Error):
                case.db.execute(sql).fetchall()
    assert list(tmp_path.iterdir()) == []


def test_selection_confines_only_for_user_sql(sample_case: Path) -> None:
    with Case(sample_case, read_only=True) as case:
        Selection.of(case, TimelineFilter(hosts=("desktop-2kgm189",)))
        assert case.db.execute("SELECT current_setting('lock_configuration')").fetchone() == (
            False,
        )
        Selection.of(case, TimelineFilter(where="true"))
        assert case.db.execute("SELECT current_setting('lock_configuration')").fetchone() == (True,)
