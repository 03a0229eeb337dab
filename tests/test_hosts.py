"""One host, one name: spellings of a host resolved to one identity (irkit.store.hosts)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from irkit.store.hosts import canonical_hosts, host_expression

from .conftest import run_irkit


def test_case_and_fqdn_spellings_are_one_host() -> None:
    mapping = canonical_hosts(
        {
            "DESKTOP-BZ202CP": 40,
            "DESKTOP-BZ202CP.cybercorp.com": 10,
            "desktop-bz202cp.CYBERCORP.com": 1,
            "sec504student": 3,
            "Sec504Student": 36,
        }
    )
    assert mapping == {
        "DESKTOP-BZ202CP": "DESKTOP-BZ202CP.cybercorp.com",
        "desktop-bz202cp.CYBERCORP.com": "DESKTOP-BZ202CP.cybercorp.com",
        "sec504student": "Sec504Student",
    }


def test_a_short_name_of_two_domains_stays_apart() -> None:
    counts = {"DC1.internal.greendale.edu": 4278, "DC1": 1, "DC1.insecurebank.local": 132}
    assert canonical_hosts(counts) == {}


def test_addresses_are_only_themselves() -> None:
    assert canonical_hosts({"10.0.0.1": 1, "10.0.0.1.example": 1, "::1": 2}) == {}


def test_one_spelling_each_needs_no_mapping() -> None:
    assert canonical_hosts({"WS01": 3, "WS02.corp": 4, "": 9}) == {}


@given(st.dictionaries(st.text(max_size=12), st.integers(min_value=1, max_value=9), max_size=8))
def test_the_expression_gives_the_mapping_for_any_text(counts: dict[str, int]) -> None:
    mapping = canonical_hosts(counts)
    for name in mapping.values():
        assert name not in mapping  # a name shown is never itself renamed
    hosts = sorted(counts)
    if not hosts:
        return
    db = duckdb.connect()
    db.execute("CREATE TABLE e (host VARCHAR)")
    db.executemany("INSERT INTO e VALUES (?)", [[h] for h in hosts])
    got = dict(db.execute(f"SELECT host, {host_expression(mapping)} FROM e").fetchall())
    assert got == {h: mapping.get(h, h) for h in hosts}


@pytest.mark.corpus
def test_a_host_spelled_two_ways_is_one_host_everywhere(corpus: Path, tmp_path: Path) -> None:
    # plaso's System.evtx names one machine WIN-NBRJP24VCHB (307 events) and
    # WIN-NBRJP24VCHB.internal.greendale.edu (153 events).
    case = tmp_path / "case"
    log = corpus / "plaso-evtx" / "test_data" / "evtx" / "System.evtx"
    assert run_irkit("parse", str(log), "--case", str(case), "-q").returncode == 0
    rows = [
        json.loads(line)
        for line in run_irkit("timeline", str(case), "-f", "jsonl").stdout.splitlines()
    ]
    fqdn = "WIN-NBRJP24VCHB.internal.greendale.edu"
    same = [r for r in rows if r["host"].lower().startswith("win-nbrjp24vchb")]
    assert {r["host"] for r in same} == {fqdn}
    assert len(same) == 307 + 153
    # The event keeps the spelling its log has.
    spelled = {
        json.loads(r["fields"])["Computer"] if "fields" in r else r["Computer"] for r in same
    }
    assert spelled == {"WIN-NBRJP24VCHB", fqdn}
    assert run_irkit("scan", str(case), "-q").returncode == 0
    findings = run_irkit("findings", str(case), "-f", "jsonl").stdout.splitlines()
    hosts = {json.loads(line)["host"] for line in findings}
    assert "WIN-NBRJP24VCHB" not in hosts
    stacked = run_irkit("stack", str(case), "service", "-f", "jsonl").stdout.splitlines()
    assert all("WIN-NBRJP24VCHB" not in json.loads(line)["hosts"] for line in stacked)
    # A filter by either spelling finds the host's events.
    for name in ("win-nbrjp24vchb", fqdn):
        out = run_irkit("timeline", str(case), "--host", name, "--source", "evtx", "-f", "jsonl")
        assert len(out.stdout.splitlines()) == 307 + 153
