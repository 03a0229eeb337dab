"""Sigma field names as rule authors write them (issue #15 item 4): Defender's EventData
names with spaces (``Threat Name``) answer to ``ThreatName``; a UserData value answers to
its leaf name (``Operation`` of WMI-Activity 5858's ``Operation_ClientFailure``). The
stored names stay as the event has them."""

from __future__ import annotations

import datetime as dt
import types
from pathlib import Path
from typing import Any

import pytest

from irkit.detect.sigma import load_sigma
from irkit.detect.sigma_logsource import field_names
from irkit.detect.sigma_run import run_sigma
from irkit.store.case import Case

from .test_sigma import write_rule

DEFENDER = {"product": "windows", "service": "windefend"}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRKIT_CACHE", str(tmp_path / "cache"))


def test_spellings_of_stored_names() -> None:
    names = field_names(["Threat Name", "Process Name", "Operation_ClientFailure.Operation"])
    assert names["threatname"] == ("Threat Name",)
    assert names["processname"] == ("Process Name",)
    assert names["operation"] == ("Operation_ClientFailure.Operation",)


def test_defender_rules_name_fields_without_spaces(
    corpus_case: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    with Case(corpus_case[0], read_only=True) as case:
        rows = case.db.execute(
            """SELECT uid, fields->>'Threat Name', fields->>'Process Name' FROM events
               WHERE artifact = 'Microsoft-Windows-Windows Defender/Operational'
                 AND event_id IN ('1116', '1117') ORDER BY uid"""
        ).fetchall()
    assert rows, "the corpus holds real Defender detections"
    uid, threat, process = rows[0]
    detection = {
        "selection": {
            "EventID": [1116, 1117],
            "ThreatName": threat,
            "ProcessName|endswith": process.rsplit("\\", 1)[-1],
        },
        "condition": "selection",
    }
    path = write_rule(tmp_path / "rules", detection, logsource=DEFENDER)
    with Case(corpus_case[0], read_only=True) as case:
        result = run_sigma(case, load_sigma([path]))
    assert any(uid in f.event_uids for f in result.findings), result.report
    # The name as Defender writes it still answers (the rule's own spelling first).
    spaced = {"selection": {"Threat Name": threat}, "condition": "selection"}
    other = write_rule(tmp_path / "spaced", spaced, logsource=DEFENDER)
    with Case(corpus_case[0], read_only=True) as case:
        result = run_sigma(case, load_sigma([other]))
    assert any(uid in f.event_uids for f in result.findings)


#: WMI-Activity/Operational 5858 as Microsoft documents it: UserData holds one
#: ``Operation_ClientFailure`` element (irkit stores its children as dotted paths).
WMI_5858 = {
    "EventID": 5858,
    "Channel": "Microsoft-Windows-WMI-Activity/Operational",
    "Provider_Name": "Microsoft-Windows-WMI-Activity",
    "Operation_ClientFailure.Id": "{00000000-0000-0000-0000-000000000000}",
    "Operation_ClientFailure.ClientMachine": "WS01",
    "Operation_ClientFailure.User": "CORP\\mallory",
    "Operation_ClientFailure.ClientProcessId": "4242",
    "Operation_ClientFailure.Component": "Unknown",
    "Operation_ClientFailure.Operation": "Start IWbemServices::ExecQuery - root\\cimv2 : "
    "SELECT * FROM AntiVirusProduct",
    "Operation_ClientFailure.ResultCode": "0x80041010",
    "Operation_ClientFailure.PossibleCause": "Unknown",
}


def test_wmi_rules_reach_userdata_by_leaf_name(tmp_path: Path) -> None:
    from irkit.detect.heuristics_lint import load_example

    example: Any = types.SimpleNamespace(
        id="wmi5858",
        fires=[{"ts": dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "fields": WMI_5858}],
        silent=[],
    )
    case_dir = tmp_path / "case"
    with Case(case_dir, create=True) as case:
        assert load_example(case, example, "fires", tmp_path) == 1
    detection = {
        "selection": {"EventID": 5858, "Operation|contains": "AntiVirusProduct"},
        "filter": {"ResultCode": "0x0"},
        "condition": "selection and not filter",
    }
    path = write_rule(
        tmp_path / "rules", detection, logsource={"product": "windows", "service": "wmi"}
    )
    with Case(case_dir, read_only=True) as case:
        result = run_sigma(case, load_sigma([path]))
        stored = case.db.execute("SELECT json_keys(fields) FROM events").fetchone()
    assert [f.count for f in result.findings] == [1], result.report
    assert stored is not None and "Operation_ClientFailure.Operation" in stored[0]
