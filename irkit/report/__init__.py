"""The HTML report of a case: one self-contained file that opens offline in any browser.

``collect`` (``irkit.report.data``) reads what to show from the case; the sections
(``irkit.report.sections``) and the timeline chart (``irkit.report.timechart``, inline
SVG drawn here) turn it into HTML; ``irkit.report.page`` holds the escaping, the
Content-Security-Policy and the style sheet. No script, no request to the network, and
the same case gives the same bytes. docs/report.md describes the report.

May import: ``irkit.detect`` (stacking, ATT&CK tags), ``irkit.store`` and the base modules.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import BinaryIO

from irkit import __version__
from irkit.errors import IrkitError
from irkit.report.data import ReportData, ReportLimits, collect

__all__ = [
    "ReportData",
    "ReportLimits",
    "ReportSummary",
    "collect",
    "render",
    "report_bytes",
    "write_report",
]


def render(data: ReportData) -> str:
    """The report's HTML."""
    from irkit.report import sections, timechart
    from irkit.report.page import document, number, plural, text

    timeline = timechart.build(data.hourly, data.finding_hours, data.parsed_until)
    name = sections.case_name(data.case)
    header = (
        f"<h1>irkit report: {text(name)}</h1>"
        f"<p>{plural(data.events, 'event')} · {plural(data.findings_total, 'finding')} · "
        f"{number(sum(1 for h in data.hosts if h[0]))} hosts · case <code>{text(data.case)}</code>"
        "</p>"
    )
    nav = (
        ("glance", "At a glance"),
        ("timeline", "Timeline"),
        ("attack", "ATT&CK"),
        ("findings", "Findings"),
        ("hosts", "Hosts"),
    )
    body = "\n".join(
        (
            sections.glance(data, timeline),
            sections.timeline_section(data, timeline),
            sections.attack_section(data),
            sections.findings_section(data),
            sections.hosts_section(data),
        )
    )
    foot = (
        f"irkit {text(__version__)} · all times UTC · a self-contained page: no script, no "
        "request to the network; charts drawn as SVG by irkit itself (Apache-2.0)."
    )
    return document(f"irkit report: {name}", header, nav, body, foot)


@dataclasses.dataclass(frozen=True, slots=True)
class ReportSummary:
    """What a written report holds: for the command's closing line and ``--json``."""

    path: str
    bytes: int
    events: int
    findings: int
    findings_shown: int
    hosts: int
    seconds: float

    def as_dict(self) -> dict[str, object]:
        """Plain data for JSON."""
        return dataclasses.asdict(self)


def report_bytes(case_dir: Path, limits: ReportLimits | None = None) -> tuple[bytes, ReportData]:
    """The report of the case at ``case_dir`` as UTF-8 bytes, and the data it shows."""
    from irkit.store.case import Case

    with Case(case_dir, read_only=True) as case:
        data = collect(case, limits or ReportLimits())
    return render(data).encode("utf-8", "backslashreplace"), data


def write_report(
    case_dir: Path, target: Path | BinaryIO, limits: ReportLimits | None = None
) -> ReportSummary:
    """Write the report of the case at ``case_dir`` to ``target``: a file written
    atomically (a temporary name renamed into place), or an open binary stream."""
    started = time.perf_counter()
    content, data = report_bytes(case_dir, limits)
    if isinstance(target, Path):
        tmp = target.with_name(f".{target.name}.irkit-tmp")
        try:
            tmp.write_bytes(content)
            tmp.replace(target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise IrkitError(
                f"cannot write the report {target}: {exc.strerror or exc}",
                hint="choose another --output path",
            ) from exc
        where = str(target)
    else:
        target.write(content)
        target.flush()
        where = "-"
    return ReportSummary(
        path=where,
        bytes=len(content),
        events=data.events,
        findings=data.findings_total,
        findings_shown=len(data.findings),
        hosts=sum(1 for h in data.hosts if h[0]),
        seconds=round(time.perf_counter() - started, 3),
    )
