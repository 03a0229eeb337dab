"""The timeline chart: events per time bin, one lane per series, findings marked above.

Drawn as inline SVG by this module (no library, no script). Dirty logs carry impossible
dates (a zero FILETIME is 1601-01-01, a bad clock 2100): events dated before 1980 or
after the case was parsed are left out of the chart and listed beside it, so they do not
squash years of real activity into one pixel. The bin (an hour to a year) is chosen so
the span has at most ``MAX_BINS`` bins; the busiest bins are drawn again, finer, as
zoomed charts. Bar heights are on a log scale shared by every lane, so a quiet source
stays visible beside a busy one.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Sequence
from typing import Final

from irkit.report.page import text

#: 1980-01-01 in hours since the epoch: earlier events are not plausible log times.
PLAUSIBLE_FROM: Final = 87_648
#: Hours after the last parse that still count as plausible (clocks drift).
FUTURE_SLACK: Final = 24
MAX_BINS: Final = 400
#: Bin widths in hours, finest first.
BIN_HOURS: Final = (1, 2, 3, 6, 12, 24, 48, 168, 336, 672, 1344, 2184, 4368, 8736)
#: Hour of the epoch's first Monday (1970-01-05): weeks start on Mondays.
MONDAY: Final = 96
ZOOMS: Final = 4

SEVERITY_ORDER: Final = ("critical", "high", "medium", "low", "informational")
SEVERITY_COLOUR: Final = {
    "critical": "#7a0f2e",
    "high": "#c2272d",
    "medium": "#e07b24",
    "low": "#d9b42a",
    "informational": "#7c8a99",
}
PALETTE: Final = (
    "#3465a4", "#4e9a06", "#75507b", "#c17d11", "#06989a", "#a40000", "#5c3566", "#888a85",
)  # fmt: skip

WIDTH: Final = 1120
LEFT: Final = 230
RIGHT: Final = 16
LANE: Final = 30
MARKS: Final = 34
AXIS: Final = 34


@dataclasses.dataclass(frozen=True, slots=True)
class Outlier:
    """Events of one series on one day outside the plausible span."""

    day: str
    series: str
    events: int


@dataclasses.dataclass(frozen=True, slots=True)
class Chart:
    """A drawn chart and what it covers."""

    svg: str
    start: int
    end: int
    bin_hours: int
    events: int
    findings: int


@dataclasses.dataclass(frozen=True, slots=True)
class Timeline:
    """The overview chart, its zoomed views, and the events left out."""

    overview: Chart | None
    zooms: tuple[Chart, ...]
    outliers: tuple[Outlier, ...]
    outlier_events: int
    plausible: tuple[int, int]


def hour_text(hour: int, bin_hours: int = 1) -> str:
    """An hour since the epoch as text, as precise as the bin needs."""
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=hour)
    if bin_hours >= 24:
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%d %H:00")


def _bin_start(hour: int, width: int) -> int:
    base = MONDAY if width % 168 == 0 else 0
    return (hour - base) // width * width + base


def choose_bin(start: int, end: int) -> int:
    """The finest bin width (hours) giving at most ``MAX_BINS`` bins over [start, end]."""
    for width in BIN_HOURS:
        if (_bin_start(end, width) - _bin_start(start, width)) // width + 1 <= MAX_BINS:
            return width
    return BIN_HOURS[-1]


def build(
    hourly: Sequence[tuple[str, int, int]],
    finding_hours: Sequence[tuple[int, str, int]],
    parsed_until: int | None,
) -> Timeline:
    """The charts of a case's hourly counts (series, hour, events) and findings."""
    latest = None if parsed_until is None else parsed_until + FUTURE_SLACK
    plausible = [r for r in hourly if r[1] >= PLAUSIBLE_FROM and (latest is None or r[1] <= latest)]
    outside: dict[tuple[str, str], int] = {}
    for name, hour, count in hourly:
        if hour < PLAUSIBLE_FROM or (latest is not None and hour > latest):
            key = (hour_text(hour, 24), name)
            outside[key] = outside.get(key, 0) + count
    outliers = tuple(Outlier(d, s, n) for (d, s), n in sorted(outside.items()))
    series = sorted({r[0] for r in hourly}, key=lambda s: (s == "other", s))
    if not plausible:
        return Timeline(None, (), outliers, sum(outside.values()), (0, 0))
    start = min(r[1] for r in plausible)
    end = max(r[1] for r in plausible)
    overview = draw(plausible, finding_hours, series, start, end, "overview")
    zooms: list[Chart] = []
    if overview.bin_hours > 1:
        busy: dict[int, list[int]] = {}
        width = overview.bin_hours
        for _, hour, count in plausible:
            busy.setdefault(_bin_start(hour, width), [0, 0])[1] += count
        for hour, _, count in finding_hours:
            if start <= hour <= end:
                busy.setdefault(_bin_start(hour, width), [0, 0])[0] += count
        top = sorted(busy.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))[:ZOOMS]
        for index, (lo, _) in enumerate(sorted(top)):
            hi = lo + width - 1
            rows = [r for r in plausible if lo <= r[1] <= hi]
            zooms.append(draw(rows, finding_hours, series, lo, hi, f"zoom{index}"))
    return Timeline(overview, tuple(zooms), outliers, sum(outside.values()), (start, end))


def _ticks(start: int, end: int) -> list[tuple[int, str]]:
    """Axis ticks (hour, label) on calendar boundaries, at most about ten."""
    span = max(end - start, 1)
    first = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=start)
    last = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(hours=end)
    for hours in (1, 2, 3, 6, 12, 24, 48, 168):
        if span / hours <= 10:
            step = dt.timedelta(hours=hours)
            moment = first.replace(minute=0, second=0, microsecond=0)
            if hours >= 24:
                moment = moment.replace(hour=0)
                if moment < first:
                    moment += dt.timedelta(days=1)
            fmt = "%Y-%m-%d" if hours >= 24 else "%m-%d %H:00"
            out = []
            while moment <= last:
                out.append((_hours(moment), moment.strftime(fmt)))
                moment += step
            return out
    for months in (1, 2, 3, 6, 12, 24, 60, 120, 240, 600):
        if span / (730 * months) <= 10:
            index = first.year * 12 + first.month - 1
            index = -(-index // months) * months
            out = []
            while True:
                year, month = divmod(index, 12)
                moment = dt.datetime(year, month + 1, 1, tzinfo=dt.UTC)
                if moment > last:
                    return out
                if moment >= first:
                    out.append((_hours(moment), moment.strftime("%Y" if months >= 12 else "%Y-%m")))
                index += months
    return []


def _hours(moment: dt.datetime) -> int:
    return calendar.timegm(moment.utctimetuple()) // 3600


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _label(text: str, limit: int = 30) -> str:
    """A lane's name, short: ``Microsoft-Windows-`` dropped, the end cut with ``…``."""
    text = text.removeprefix("Microsoft-Windows-")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def draw(
    rows: Iterable[tuple[str, int, int]],
    finding_hours: Sequence[tuple[int, str, int]],
    series: Sequence[str],
    start: int,
    end: int,
    name: str,
) -> Chart:
    """One chart of [start, end] (hours): a lane per series, findings on top."""
    width = choose_bin(start, end)
    first_bin = _bin_start(start, width)
    bins = (_bin_start(end, width) - first_bin) // width + 1
    counts: dict[tuple[str, int], int] = {}
    total = 0
    for s, hour, count in rows:
        key = (s, _bin_start(hour, width))
        counts[key] = counts.get(key, 0) + count
        total += count
    marks: dict[int, dict[str, int]] = {}
    for hour, severity, count in finding_hours:
        if start <= hour <= end:
            level = marks.setdefault(_bin_start(hour, width), {})
            level[severity] = level.get(severity, 0) + count
    lanes = [s for s in series if any(k[0] == s for k in counts)]
    plot = WIDTH - LEFT - RIGHT
    step = plot / bins
    height = MARKS + LANE * len(lanes) + AXIS
    top = max(counts.values(), default=1)
    scale = math.log10(1 + top)
    bottom = MARKS + LANE * len(lanes)
    out = [
        f'<svg class="chart" id="{name}" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" role="img" aria-label="events per {width}-hour bin">'
    ]
    out.append(f'<text x="{LEFT - 8}" y="{MARKS - 12}" class="lane-label">findings</text>')
    for index, lane in enumerate(lanes):
        y = MARKS + LANE * index
        colour = PALETTE[series.index(lane) % len(PALETTE)]
        out.append(
            f'<rect x="{LEFT}" y="{y}" width="{_num(plot)}" height="{LANE}" '
            f'class="lane{index % 2}"/>'
        )
        out.append(
            f'<text x="{LEFT - 8}" y="{y + LANE - 10}" class="lane-label">'
            f"<title>{text(lane)}</title>{text(_label(lane))}</text>"
        )
        for (s, b), count in sorted(counts.items()):
            if s != lane:
                continue
            h = max(1.5, (LANE - 4) * math.log10(1 + count) / scale)
            x = LEFT + (b - first_bin) // width * step
            out.append(
                f'<rect x="{_num(x)}" y="{_num(y + LANE - h)}" width="{_num(max(step - 0.4, 1))}"'
                f' height="{_num(h)}" fill="{colour}"><title>{text(lane)} · '
                f"{hour_text(b, width)}: {count:,} events</title></rect>"
            )
    for b, levels in sorted(marks.items()):
        worst = next(level for level in SEVERITY_ORDER if level in levels)
        n = sum(levels.values())
        x = LEFT + (b - first_bin) // width * step + step / 2
        h = 6 + min(14.0, 4 * math.log10(1 + n) * 2)
        what = ", ".join(f"{levels[lv]:,} {lv}" for lv in SEVERITY_ORDER if lv in levels)
        out.append(
            f'<path d="M{_num(x)} {_num(MARKS - 4 - h)} l4 {_num(h)} h-8 z" '
            f'fill="{SEVERITY_COLOUR[worst]}"><title>{hour_text(b, width)}: findings: {what}'
            "</title></path>"
        )
    out.append(f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" class="axis"/>')
    for hour, label in _ticks(first_bin, first_bin + bins * width):
        x = LEFT + (hour - first_bin) / width * step
        if LEFT <= x <= WIDTH - RIGHT - 36:  # a label at the right edge would be cut
            out.append(
                f'<line x1="{_num(x)}" y1="{MARKS}" x2="{_num(x)}" y2="{bottom + 4}" class="tick"/>'
                f'<text x="{_num(x)}" y="{bottom + 18}" class="tick-label">{label}</text>'
            )
    out.append("</svg>")
    return Chart(
        svg="".join(out),
        start=first_bin,
        end=first_bin + bins * width - 1,
        bin_hours=width,
        events=total,
        findings=sum(sum(v.values()) for v in marks.values()),
    )


def bin_name(hours: int) -> str:
    """A bin width in words: ``hour``, ``6 hours``, ``day``, ``week``…"""
    if hours % 168 == 0:
        weeks = hours // 168
        return "week" if weeks == 1 else f"{weeks} weeks"
    if hours % 24 == 0:
        days = hours // 24
        return "day" if days == 1 else f"{days} days"
    return "hour" if hours == 1 else f"{hours} hours"
