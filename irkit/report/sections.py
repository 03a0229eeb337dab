"""The report's sections, each a function from ``ReportData`` to HTML.

Every value from the case goes through ``page.text``; anchors and ids are made from
positions (``ev-3``, ``f-12``), never from evidence text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Final

from irkit.report import timechart
from irkit.report.data import SEVERITIES, FindingView, HostView, ReportData
from irkit.report.page import number, plural, short_time, table, text

#: ATT&CK's enterprise tactics, in the order of its matrix.
TACTICS: Final[tuple[str, ...]] = (
    "reconnaissance",
    "resource-development",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "stealth",
    "defense-impairment",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
)


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1] or path


def evidence_index(data: ReportData) -> dict[str, int]:
    """sha256 → position in the evidence table (its anchor ``ev-N``)."""
    return {e.sha256: i for i, e in enumerate(data.evidence, 1)}


def _open(rows: Sequence[object]) -> str:
    """A short table is shown open; a long one folded (its count in the summary)."""
    return " open" if len(rows) <= OPEN_ROWS else ""


#: Tables of at most this many rows are shown unfolded at a glance.
OPEN_ROWS: Final = 12


def glance(data: ReportData, timeline: timechart.Timeline) -> str:
    """The case at a glance: counts, span, hosts, sources, evidence, warnings."""
    chips = "".join(
        f'<span class="sev sev-{level}">{text(level)} {number(n)}</span>'
        for level, n in data.severity_counts
        if n
    )
    lo, hi = timeline.plausible
    span = (
        f"{timechart.hour_text(lo, 24)} → {timechart.hour_text(hi, 24)}"
        if timeline.overview
        else "no dated events"
    )
    cards = [
        (number(data.events), "events"),
        (number(data.findings_total), "findings"),
        (number(sum(1 for h in data.hosts if h[0])), "hosts"),
        (number(data.evidence_total), "evidence files"),
        (number(data.warnings_total), "warnings"),
        (span, "time span (UTC)"),
    ]
    out = ['<section id="glance"><h2>The case at a glance</h2><div class="cards">']
    out += [f'<div class="card"><b>{v}</b><span>{text(k)}</span></div>' for v, k in cards]
    out.append("</div>")
    if chips:
        out.append(f'<p class="chips">{chips}</p>')
    first, last = short_time(data.first), short_time(data.last)
    out.append(
        f'<p class="note">Earliest event {text(first or "–")}, latest {text(last or "–")} (UTC).'
    )
    if timeline.outlier_events:
        out.append(
            f" {plural(timeline.outlier_events, 'event')} "
            f"{'has' if timeline.outlier_events == 1 else 'have'} impossible dates (before 1980 "
            'or after the case was parsed): see <a href="#timeline">the timeline</a>.'
        )
    out.append("</p>")
    named = sum(1 for h in data.hosts if h[0])
    out.append(f"<details{_open(data.hosts)}><summary><b>Hosts</b> ({number(named)})</summary>")
    out.append(
        table(
            ("host", "events", "findings", "first (UTC)", "last (UTC)"),
            (
                (
                    text(h or "(none)"),
                    number(n),
                    number(f),
                    text(short_time(a)),
                    text(short_time(b)),
                )
                for h, n, f, a, b in data.hosts
            ),
            cols=("a", "n", "n", "nw", "nw"),
        )
    )
    out.append("</details>")
    out.append(
        f"<details{_open(data.sources)}><summary><b>Sources and artifacts</b> "
        f"({number(len(data.sources))})</summary>"
    )
    out.append(
        table(
            ("source", "artifact", "events", "first (UTC)", "last (UTC)"),
            (
                (text(s), text(a or "–"), number(n), text(short_time(f)), text(short_time(t)))
                for s, a, n, f, t in data.sources
            ),
            cols=("", "a", "n", "nw", "nw"),
        )
    )
    out.append("</details>")
    out.append(
        f'<details id="evidence"><summary><b>Evidence files</b> '
        f"({number(data.evidence_total)}, with sha256)</summary>"
    )
    out.append(
        table(
            ("#", "path", "sha256", "bytes", "kind", "status", "records", "warnings"),
            (
                (
                    f'<span id="ev-{i}">{i}</span>',
                    text(e.path),
                    f"<code>{text(e.sha256)}</code>",
                    number(e.size),
                    text(e.kind),
                    text(e.status),
                    number(e.records),
                    number(e.warnings),
                )
                for i, e in enumerate(data.evidence, 1)
            ),
            cols=("n", "a", "a", "n", "", "", "n", "n"),
        )
    )
    if data.evidence_total > len(data.evidence):
        out.append(
            f'<p class="note">{number(len(data.evidence))} of {number(data.evidence_total)} '
            "shown (by path).</p>"
        )
    out.append("</details>")
    kinds = ", ".join(f"{text(k)} {number(n)}" for k, n in data.warning_kinds)
    out.append(
        f'<details id="warnings"><summary><b>Warnings</b> ({number(data.warnings_total)}'
        f"{': ' + kinds if kinds else ''})</summary>"
    )
    out.append(
        table(
            ("kind", "file", "message"),
            ((text(w.kind), text(w.path), text(w.message)) for w in data.warnings),
            cols=("nw", "a", "a"),
        )
    )
    if data.warnings_total > len(data.warnings):
        out.append(
            f'<p class="note">{number(len(data.warnings))} distinct warnings shown of '
            f"{number(data.warnings_total)}.</p>"
        )
    out.append("</details></section>")
    return "".join(out)


def timeline_section(data: ReportData, timeline: timechart.Timeline) -> str:
    """The overview chart, the zoomed views of the busiest bins, the impossible dates."""
    out = ['<section id="timeline"><h2>Timeline</h2>']
    chart = timeline.overview
    if chart is None:
        out.append('<p class="note">No event with a plausible date.</p>')
    else:
        single = len({s for s, *_ in data.sources}) == 1
        per = "artifact (the case has one source)" if single else "source"
        out.append(
            f'<p class="note">Events per {timechart.bin_name(chart.bin_hours)} and '
            f"{per}, {text(timechart.hour_text(chart.start, 24))} to "
            f"{text(timechart.hour_text(chart.end, 24))} UTC; bar heights on a log scale "
            "shared by every lane; ▲ marks bins with findings, coloured by the most severe. "
            "Hover a bar or mark for its numbers.</p>"
        )
        out.append(chart.svg)
        for zoom in timeline.zooms:
            out.append(
                f"<details><summary>Zoom: {text(timechart.hour_text(zoom.start, 1))} → "
                f"{text(timechart.hour_text(zoom.end + 1, 1))} per "
                f"{timechart.bin_name(zoom.bin_hours)}: {plural(zoom.events, 'event')}, "
                f"{plural(zoom.findings, 'finding')}</summary>{zoom.svg}</details>"
            )
    if timeline.outliers:
        out.append(
            f"<h3>Impossible dates: {plural(timeline.outlier_events, 'event')} left out of "
            "the chart</h3>"
            '<p class="note">Dated before 1980 or after the case was parsed: dirty logs carry '
            "such times (1601-01-01 is a zero Windows FILETIME, a bad clock gives 2100). They "
            "are in the case and the CSV; drawn, they would squash the years between into a "
            "pixel.</p>"
        )
        out.append(
            table(
                ("day (UTC)", "series", "events"),
                ((text(o.day), text(o.series), number(o.events)) for o in timeline.outliers[:50]),
                "narrow",
                ("nw", "", "n"),
            )
        )
        if len(timeline.outliers) > 50:
            out.append(f'<p class="note">50 of {number(len(timeline.outliers))} rows shown.</p>')
    out.append("</section>")
    return "".join(out)


def _first_anchor(findings: tuple[FindingView, ...]) -> dict[str, int]:
    return {f.uid: i for i, f in enumerate(findings, 1)}


def attack_section(data: ReportData) -> str:
    """Tactics × techniques of the findings, each cell coloured by its most severe finding."""
    rank = {level: i for i, level in enumerate(SEVERITIES)}
    anchors = _first_anchor(data.findings)
    cells: dict[str, dict[str, list[FindingView]]] = {}
    tactic_only: dict[str, int] = {}
    for f in data.findings:
        tactics = f.tactics or ("other",)
        for tactic in tactics:
            if not f.techniques:
                tactic_only[tactic] = tactic_only.get(tactic, 0) + 1
            for technique in f.techniques:
                cells.setdefault(tactic, {}).setdefault(technique, []).append(f)
    columns = [t for t in TACTICS if t in cells or t in tactic_only]
    columns += sorted(t for t in set(cells) | set(tactic_only) if t not in TACTICS)
    out = ['<section id="attack"><h2>ATT&amp;CK</h2>']
    if not columns:
        out.append('<p class="note">No finding carries an ATT&amp;CK tag.</p></section>')
        return "".join(out)
    out.append(
        '<p class="note">Tactics (columns) × techniques of the findings shown; the number is '
        "the findings tagged with both, the colour their most severe level; a technique "
        "links to its first finding.</p>"
    )
    heads = "".join(f"<th>{text(c.replace('-', ' '))}</th>" for c in columns)
    body = []
    for column in columns:
        items = []
        for technique, found in sorted(cells.get(column, {}).items()):
            worst = min(found, key=lambda f: (rank.get(f.severity, 9), anchors[f.uid]))
            titles = "; ".join(sorted({f.title for f in found}))[:600]
            items.append(
                f'<a class="tech sev-{text(worst.severity)}" href="#f-{anchors[worst.uid]}" '
                f'title="{text(titles)}">{text(technique)}<b>{number(len(found))}</b></a>'
            )
        if column in tactic_only:
            alone = number(tactic_only[column])
            items.append(f'<span class="note">{alone} without technique</span>')
        body.append("<td>" + "".join(items) + "</td>")
    out.append(
        f'<div class="scroll"><table class="matrix"><thead><tr>{heads}</tr></thead><tbody><tr>'
        f"{''.join(body)}</tr></tbody></table></div></section>"
    )
    return "".join(out)


def _finding(f: FindingView, index: int, evidence: Mapping[str, int], case: str) -> str:
    level = text(f.severity)
    when = short_time(f.first_seen)
    if f.last_seen and f.last_seen != f.first_seen:
        when += " → " + short_time(f.last_seen)
    attack = ", ".join([*f.tactics, *f.techniques])
    meta = [
        ("rule", f"<code>{text(f.rule)}</code>"),
        ("detector", text(f.detector)),
        ("ATT&amp;CK", text(attack or "–")),
        ("events", number(f.count)),
    ]
    if f.excerpt:
        meta.append(("excerpt", f'<span class="mono">{text(f.excerpt)}</span>'))
    if not f.events and f.evidence:
        meta.append(("evidence", f"{text(f.evidence)} · record {text(f.record)}"))
    meta.append(("uid", f"<code>{text(f.uid)}</code>"))
    out = [
        f'<details class="finding sev-{level}-b" id="f-{index}"><summary>'
        f'<span class="sev sev-{level}">{level}</span> <span class="t">{text(f.title)}</span>'
        f'<span class="when">{text(when)}</span><span class="where">{text(f.host or "–")} · '
        f'{plural(f.count, "event")}</span></summary><div class="body">'
    ]
    if f.description:
        out.append(f"<p>{text(f.description)}</p>")
    out.append(
        '<dl class="meta">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in meta) + "</dl>"
    )
    if f.events:
        rows = []
        for e in f.events:
            where = evidence.get(e.evidence_sha256)
            name = text(_basename(e.evidence))
            file_cell = (  # the evidence table names the whole path
                f'<a href="#ev-{where}">{name}</a>'
                if where is not None
                else f'<span title="{text(e.evidence)}">{name}</span>'
            )
            rows.append(
                (
                    text(short_time(e.ts)),
                    text(e.host),
                    text(e.user),
                    text(f"{e.artifact} {e.event_id}".strip()),
                    text(e.message),
                    file_cell,
                    text(e.record),
                )
            )
        out.append(
            table(
                ("time (UTC)", "host", "user", "event", "message", "evidence", "record"),
                rows,
                "events",
                ("nw", "", "", "", "a", "a", "nw"),
            )
        )
        if f.linked > len(f.events):
            out.append(
                f'<p class="note">{number(len(f.events))} of {number(f.linked)} events shown; '
                f"all: <code>irkit timeline {text(case)} --finding {text(f.uid)}</code></p>"
            )
    out.append("</div></details>")
    return "".join(out)


def findings_section(data: ReportData) -> str:
    """Findings by severity, most severe first, each opening onto its events."""
    evidence = evidence_index(data)
    out = ['<section id="findings"><h2>Findings</h2>']
    if not data.findings_total:
        out.append('<p class="note">No findings (was the case scanned? irkit scan CASE).</p>')
    if data.findings_total > len(data.findings):
        out.append(
            f'<p class="note">The {number(len(data.findings))} most severe of '
            f"{number(data.findings_total)} findings are shown; all: "
            f"<code>irkit findings {text(data.case)} --format csv</code>.</p>"
        )
    index = 0
    for level in SEVERITIES:
        found = [f for f in data.findings if f.severity == level]
        if not found:
            continue
        out.append(
            f'<h3><span class="sev sev-{level}">{level}</span> {plural(len(found), "finding")}</h3>'
        )
        for f in found:
            index += 1
            out.append(_finding(f, index, evidence, data.case))
    out.append("</section>")
    return "".join(out)


def _host(view: HostView) -> str:
    out = [
        f"<details><summary><b>{text(view.host or '(none)')}</b> "
        f'<span class="muted">{plural(view.events, "event")}, '
        f"{plural(view.findings, 'finding')}, {text(short_time(view.first))} → "
        f'{text(short_time(view.last))}</span></summary><div class="body">'
    ]
    if view.logons:
        out.append("<h3>Logons by user, type and source address</h3>")
        out.append(
            table(
                ("user", "logon type", "source address", "outcome", "logons"),
                (
                    (text(u or "–"), text(t or "–"), text(a or "–"), text(o or "–"), number(n))
                    for u, t, a, o, n in view.logons
                ),
                cols=("a", "", "a", "", "n"),
            )
        )
        if view.logons_total > len(view.logons):
            out.append(
                f'<p class="note">{number(len(view.logons))} of {number(view.logons_total)} '
                "rows (most logons first).</p>"
            )
    else:
        out.append('<p class="note">No logon events (Security 4624/4625).</p>')
    if view.rare:
        out.append("<h3>Rare entities (seen at most twice in the case)</h3>")
        out.append(
            table(
                ("kind", "entity", "times seen", "first seen (UTC)"),
                (
                    (
                        text(k),
                        f'<span class="mono">{text(v)}</span>',
                        number(n),
                        text(short_time(w)),
                    )
                    for k, v, n, w in view.rare
                ),
                cols=("nw", "a", "n", "nw"),
            )
        )
        if view.rare_total > len(view.rare):
            out.append(
                f'<p class="note">{number(len(view.rare))} of {number(view.rare_total)} '
                f"shown; all: <code>irkit stack CASE KIND --rare 2 --host …</code></p>"
            )
    out.append("</div></details>")
    return "".join(out)


def hosts_section(data: ReportData) -> str:
    """Per host: logons by user, type and source address; rare entities from stacking."""
    out = ['<section id="hosts"><h2>Hosts</h2>']
    out.append(
        '<p class="note">Logons: <code>irkit stack CASE logon --host HOST</code>. Rare '
        f"entities: <code>irkit stack CASE KIND --rare {data.limits.rare_count}</code> for "
        "process, parent-child, service, task, autorun and network, listed under each host "
        "that saw them.</p>"
    )
    out += [_host(v) for v in data.host_views]
    if len(data.hosts) > len(data.host_views):
        out.append(
            f'<p class="note">The {number(len(data.host_views))} busiest of '
            f"{number(len(data.hosts))} hosts.</p>"
        )
    out.append("</section>")
    return "".join(out)


def case_name(path: str) -> str:
    """The case folder's name, for the title."""
    return PurePath(path).name or path
