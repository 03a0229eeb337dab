"""`irkit report`: the case as one self-contained HTML page (docs/report.md).

The page itself is checked in a real browser by tests/test_report_browser.py; here: what
it holds, its size and build time on the whole corpus, its bytes on a second run, the
timeline's handling of impossible dates, and the command line.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path

import pytest

from irkit.report import ReportLimits, report_bytes, timechart, write_report
from irkit.report.page import POLICY, STYLE, STYLE_HASH, text

from .conftest import corpus_path, run_irkit

#: Evidence text an attacker controls, each meant to run or restyle something if a
#: report pasted it into HTML: a script, a textarea escape, an event handler,
#: javascript: links, CSS escapes, bidi controls, entities that must stay literal.
HOSTILE = {
    "script": "<script>window.__irkit_pwned=1</script>",
    "textarea": "</textarea><script>window.__irkit_pwned=2</script>",
    "img": '<img src=x onerror="window.__irkit_pwned=3">',
    "js": '<a href="javascript:window.__irkit_pwned=4">open</a> javascript:alert(1)',
    "css": r"</style><style>*{display:none}</style> \3c script\3e url(javascript:x) "
    "expression(alert(1))",
    "bidi": "invoice\u202egpj.exe \u2066iso\u2069 \u200fmark",
    "entity": "&lt;b&gt;not bold&lt;/b&gt; ]]> {{7*7}}",
}
#: Files named by attackers (a name cannot hold '/').
HOSTILE_NAMES = (
    "<img src=x onerror=alert(1)>.exe",
    "invoice\u202egpj.exe",
    "javascript:alert(1).lnk",
    r"\3c script\3e.txt",
)
SAMPLE = b"irkit hostile sample __irkit_pwned\n"


def build_hostile_case(root: Path) -> Path:
    """A case made by `irkit triage` from evidence full of hostile text: osquery results
    whose host, query and columns hold it, files named with it, an IOC list and a YARA
    rule that turn them into findings. Returns the case folder (report.html inside)."""
    evidence = root / "evidence"
    evidence.mkdir(parents=True)
    lines = []
    for i, (name, value) in enumerate(HOSTILE.items()):
        lines.append(
            json.dumps(
                {
                    "name": f"pack_ir_processes_{name}",
                    "hostIdentifier": HOSTILE["img"] if i % 2 else f"host-{name}",
                    "calendarTime": "Thu Dec  7 12:21:20 2017 UTC",
                    "unixTime": str(1512649280 + i * 3600),
                    "epoch": "0",
                    "counter": "0",
                    "columns": {
                        "path": value,
                        "cmdline": f"{value} __irkit_pwned",
                        "username": HOSTILE["script"],
                    },
                    "action": "added",
                }
            )
        )
    (evidence / "osqueryd.results.log").write_text("\n".join(lines) + "\n")
    for name in HOSTILE_NAMES:
        (evidence / name).write_bytes(SAMPLE)
    ioc = root / "ioc.txt"
    ioc.write_text(f"{hashlib.sha256(SAMPLE).hexdigest()};{HOSTILE['textarea']} {HOSTILE['js']}\n")
    rule = root / "rule.yar"
    rule.write_text(
        'rule hostile_text { meta: description = "</style><script>x</script>" '
        'strings: $a = "__irkit_pwned" condition: $a }\n'
    )
    case = root / "case"
    result = run_irkit(
        "triage", str(evidence), "--case", str(case), "--ioc", str(ioc), "--yara", str(rule), "-q"
    )
    assert result.returncode == 4, result.stderr  # the IOC matched
    return case


@pytest.fixture(scope="session")
def hostile_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hostile_case(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="session")
def scanned_corpus(
    tmp_path_factory: pytest.TempPathFactory, corpus_case: tuple[Path, dict[str, object]]
) -> Path:
    """The whole-corpus EVTX case, scanned with the built-in rules and SigmaHQ's Windows
    rules (~1k findings), in a copy of its own."""
    case = tmp_path_factory.mktemp("report") / "corpus"
    shutil.copytree(corpus_case[0], case)
    result = run_irkit(
        "scan", str(case), "--sigma", str(corpus_path() / "sigma" / "rules" / "windows"), "-q"
    )
    assert result.returncode in (0, 3), result.stderr
    return case


# --- the whole corpus -----------------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.slow
def test_corpus_report_is_small_fast_and_the_same_bytes_twice(
    scanned_corpus: Path, tmp_path: Path
) -> None:
    seconds = []
    for name in ("a.html", "b.html"):  # the faster of two: the machine may be shared
        started = time.perf_counter()
        written = write_report(scanned_corpus, tmp_path / name)
        seconds.append(time.perf_counter() - started)
    assert written.events > 35_000
    assert written.findings > 900
    assert written.findings_shown == written.findings
    assert written.bytes < 5_000_000, written.bytes
    assert min(seconds) < 5, seconds
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()


@pytest.mark.corpus
@pytest.mark.slow
def test_corpus_report_shows_the_case(scanned_corpus: Path) -> None:
    content, data = report_bytes(scanned_corpus)
    page = content.decode()
    # At a glance: every evidence file with its sha256, the warnings, hosts and sources.
    assert data.evidence_total == len(data.evidence) > 300
    for evidence in data.evidence:
        assert f"<code>{evidence.sha256}</code>" in page
    assert data.warnings_total > 0 and f"({data.warnings_total:,}: " in page
    assert "DESKTOP-1N4R894" in page and "Microsoft-Windows-Sysmon/Operational" in page
    # The timeline spans the real years; the 1601 record is listed, not drawn.
    assert re.search(r"Events per [^,]+, 2010-1\d-\d\d to 2023-0\d-\d\d UTC", page)
    assert "<h3>Impossible dates: 1 event left out of the chart</h3>" in page
    assert '<td class="nw">1601-01-01</td>' in page
    # ATT&CK: tactics in the matrix's order, techniques under them.
    matrix = page.split('<table class="matrix">', 1)[1].split("</table>", 1)[0]
    heads = re.findall(r"<th>([a-z ]+)</th>", matrix)
    assert heads.index("execution") < heads.index("persistence") < heads.index("impact")
    assert ">T1059.001<b>" in matrix
    # Findings by severity, each opening onto its events; logons and rare entities.
    levels = re.findall(r'<h3><span class="sev sev-(\w+)">', page)
    assert levels == [
        lv for lv in ("critical", "high", "medium", "low", "informational") if lv in levels
    ]
    assert page.count('<details class="finding') == data.findings_total
    assert page.count('<table class="events">') >= data.findings_total - 50
    assert page.count("<h3>Logons by user, type and source address</h3>") >= 10
    assert "<h3>Rare entities (seen at most twice in the case)</h3>" in page
    # No script anywhere, the policy first in <head>.
    assert "<script" not in page.lower()
    assert page.index("Content-Security-Policy") < page.index("<style>")


# --- a hostile case ---------------------------------------------------------------------


def test_hostile_text_is_escaped_in_the_page(hostile_case: Path) -> None:
    page = (hostile_case / "report.html").read_text()
    body = page.split("</head>", 1)[1]
    for name, value in HOSTILE.items():
        if name != "bidi":  # messages drop bidi controls when parsed (docs/schema.md)
            assert text(value) in body, name
    assert "<script" not in page and "<img" not in page and "<textarea" not in page
    # A file name keeps them: shown as escapes, so "invoice‮gpj.exe" cannot pose as .jpg.
    assert "\u202e" not in page and "invoice\\u202egpj.exe" in body
    assert re.findall(r'href="([^"]*)"', body) == [
        h for h in re.findall(r'href="([^"]*)"', body) if h.startswith("#")
    ]
    # Triage wrote it beside its CSVs; `irkit report` gives the same bytes.
    again = run_irkit("report", str(hostile_case), "-o", "-")
    assert again.returncode == 0, again.stderr
    assert again.stdout == page


def test_text_escapes_quotes_tags_and_invisible_characters() -> None:
    assert text('<a href="x">') == "&lt;a href=&quot;x&quot;&gt;"
    assert text("it's") == "it&#x27;s"
    assert text("a\u202eb\u2066c\x00d") == "a\\u202eb\\u2066c\\u0000d"
    assert text("&lt;") == "&amp;lt;"


def test_policy_allows_the_style_sheet_and_nothing_else() -> None:
    import base64

    digest = hashlib.sha256(STYLE.encode()).digest()
    assert base64.b64encode(digest).decode() == STYLE_HASH
    assert POLICY.startswith("default-src 'none'; ")
    assert "script-src 'none'" in POLICY and "unsafe" not in POLICY


# --- the timeline chart -----------------------------------------------------------------

HOUR_2017 = 1_483_228_800 // 3600  # 2017-01-01T00:00Z
HOUR_2019 = 1_546_300_800 // 3600  # 2019-01-01T00:00Z


def test_impossible_dates_are_listed_not_drawn() -> None:
    hourly = [
        ("Security", -3_234_576, 5),  # 1601-01-01
        ("Security", HOUR_2017, 10),
        ("System", HOUR_2017 + 30, 1),
        ("System", HOUR_2019, 7),
        ("Security", 1_130_000, 2),  # 2098-11
    ]
    findings = [(HOUR_2017, "high", 2), (HOUR_2017, "low", 1)]
    built = timechart.build(hourly, findings, parsed_until=HOUR_2019 + 100)
    assert [(o.day, o.series, o.events) for o in built.outliers] == [
        ("1601-01-01", "Security", 5),
        ("2098-11-28", "Security", 2),
    ]
    assert built.outlier_events == 7
    assert built.plausible == (HOUR_2017, HOUR_2019)
    assert built.overview is not None
    assert built.overview.bin_hours == 48  # two years: 366 bins of two days
    assert built.overview.events == 18 and built.overview.findings == 3
    assert "2 high, 1 low" in built.overview.svg
    assert ">2018-01</text>" in built.overview.svg  # a tick a quarter
    # The busiest bins are drawn again, finer: the one with findings first chosen.
    assert built.zooms and built.zooms[0].bin_hours == 1
    assert built.zooms[0].findings == 3


def test_bins_stay_few_over_any_span() -> None:
    assert timechart.choose_bin(0, 10) == 1
    assert timechart.choose_bin(0, 24 * 16) == 1
    assert timechart.choose_bin(0, 24 * 30) == 2
    assert timechart.choose_bin(0, 24 * 365 * 7) == 168
    assert timechart.choose_bin(0, 24 * 365 * 40) == 1344
    assert timechart.bin_name(336) == "2 weeks" and timechart.bin_name(1) == "hour"


def test_no_plausible_date_gives_no_chart() -> None:
    built = timechart.build([("evtx", -3_234_576, 3)], [], parsed_until=HOUR_2019)
    assert built.overview is None and built.outlier_events == 3


# --- the command line -------------------------------------------------------------------


def test_report_command_limits_and_errors(hostile_case: Path, tmp_path: Path) -> None:
    target = tmp_path / "r.html"
    result = run_irkit(
        "report", str(hostile_case), "-o", str(target), "--max-findings", "2",
        "--max-events", "1", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["findings_shown"] == 2 and summary["findings"] > 2
    page = target.read_text()
    assert f"The 2 most severe of {summary['findings']} findings are shown" in page
    assert page.count('<details class="finding') == 2
    missing = run_irkit("report", str(tmp_path / "nothing"))
    assert missing.returncode == 1 and "is not an irkit case" in missing.stderr
    both = run_irkit("report", str(hostile_case), "-o", "-", "--json")
    assert both.returncode == 2 and "--json" in both.stderr


def test_limits_default_to_the_documented_values() -> None:
    limits = ReportLimits()
    assert (limits.findings, limits.events_per_finding, limits.hosts) == (2_000, 20, 50)
    assert limits.events_total == 6_000


def test_events_shown_share_one_budget() -> None:
    from irkit.report.data import shared_cap

    assert shared_cap([3, 20, 1], 100) == 20  # everything fits: each shows all it has
    assert shared_cap([20] * 10, 100) == 10
    assert shared_cap([2, 20, 20], 22) == 10  # the small one keeps its 2
    assert shared_cap([20] * 1000, 10) == 1  # at least one each
    assert shared_cap([], 10) == 1
