"""The report's HTML document: escaping, the Content-Security-Policy, the style sheet.

Evidence text is attacker-controlled. Every value goes through ``text`` (HTML-escaped,
quotes too, so it is safe in an attribute; control, bidi and zero-width characters shown
as ``\\u202e``), nothing from the evidence ever becomes a tag, an attribute name, a URL,
a style or a script, and the page has no script at all: its policy allows one style
sheet (by hash) and nothing else, no image, font, frame, connection or form target.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from html import escape
from typing import Final

_HIDDEN: Final = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff"
    "\ud800-\udfff]"
)


def text(value: object) -> str:
    """Any value as HTML text, safe in an element or a quoted attribute."""
    raw = str(value)
    if _HIDDEN.search(raw):
        raw = _HIDDEN.sub(lambda m: f"\\u{ord(m.group()):04x}", raw)
    return escape(raw, quote=True)


def number(value: int) -> str:
    """An integer with thousands separators."""
    return f"{value:,}"


def plural(count: int, word: str) -> str:
    """``1 event``, ``2,000 events``."""
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def short_time(iso: str) -> str:
    """``2017-06-12T23:39:43.512986Z`` → ``2017-06-12 23:39:43``."""
    return iso[:19].replace("T", " ")


def table(
    headers: Iterable[str],
    rows: Iterable[Iterable[str]],
    css: str = "",
    cols: Sequence[str] = (),
) -> str:
    """A table of cells already made HTML (headers are plain words); ``cols`` gives each
    column's cell class: ``n`` a number, ``nw`` never wrapped, ``a`` broken anywhere
    (paths, hashes, messages)."""
    head = "".join(f"<th>{text(h)}</th>" for h in headers)
    opens = [f'<td class="{c}">' if c else "<td>" for c in cols]
    body = "".join(
        "<tr>"
        + "".join(f"{opens[i] if i < len(opens) else '<td>'}{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    cls = f' class="{css}"' if css else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE: Final = """
:root{--ink:#1d232b;--muted:#5d6b7a;--line:#d9dee4;--soft:#f4f6f8;--accent:#2c5d8f;
--critical:#7a0f2e;--high:#c2272d;--medium:#e07b24;--low:#d9b42a;--informational:#7c8a99}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:var(--ink);background:#fff}
header{padding:18px 28px 10px;border-bottom:1px solid var(--line);background:var(--soft)}
header h1{margin:0;font-size:20px;font-weight:600}
header p{margin:4px 0 0;color:var(--muted)}
nav{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--line);
padding:6px 28px}
nav a{margin-right:18px;color:var(--accent);text-decoration:none;font-weight:500}
main{padding:6px 28px 40px;max-width:1500px}
section{margin-top:22px}
h2{font-size:17px;margin:0 0 10px;padding-bottom:4px;border-bottom:2px solid var(--ink)}
h3{font-size:15px;margin:18px 0 6px}
code,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:12px}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:130px}
.card b{display:block;font-size:20px}
.card span{color:var(--muted);font-size:12.5px}
.sev{display:inline-block;min-width:92px;padding:1px 8px;border-radius:3px;color:#fff;
font-size:12px;font-weight:600;text-align:center;text-transform:uppercase}
.sev-critical{background:var(--critical)}.sev-high{background:var(--high)}
.sev-medium{background:var(--medium)}.sev-low{background:var(--low);color:#1d232b}
.sev-informational{background:var(--informational)}
.chips .sev{margin-right:6px;min-width:0}
table{border-collapse:collapse;margin:6px 0 12px;width:100%}
th,td{border-bottom:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600;font-size:12.5px}
td{overflow-wrap:break-word;unicode-bidi:isolate}
td.n{text-align:right;white-space:nowrap}td.nw{white-space:nowrap}td.a{overflow-wrap:anywhere}
.narrow{width:auto}
.muted,.note{color:var(--muted)}
.note{font-size:12.5px;margin:4px 0 10px}
details{margin:3px 0}
details>summary{cursor:pointer;padding:3px 4px;border-radius:4px}
details>summary:hover{background:var(--soft)}
details.finding{border-left:4px solid var(--line);padding-left:6px}
details.finding.sev-critical-b{border-color:var(--critical)}
details.finding.sev-high-b{border-color:var(--high)}
details.finding.sev-medium-b{border-color:var(--medium)}
details.finding.sev-low-b{border-color:var(--low)}
details.finding.sev-informational-b{border-color:var(--informational)}
details.finding .t{font-weight:600}
details.finding .when,details.finding .where{color:var(--muted);font-size:12.5px;margin-left:8px}
.body{padding:4px 8px 10px 10px}
.body p{margin:4px 0}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0}
dl.meta dt{color:var(--muted)}dl.meta dd{margin:0;overflow-wrap:anywhere}
table.events td{font-size:12.5px}
table.events td.msg{min-width:340px}
.chart{display:block;max-width:100%;height:auto;margin:4px 0 8px}
.chart .lane0{fill:#f7f8fa}.chart .lane1{fill:#eef1f4}
.chart .lane-label{font-size:12px;text-anchor:end;fill:#1d232b}
.chart .axis{stroke:#1d232b}.chart .tick{stroke:#b8c0c8;stroke-dasharray:2 3}
.chart .tick-label{font-size:11px;text-anchor:middle;fill:#5d6b7a}
.scroll{overflow-x:auto}
.matrix th{font-size:12px;text-transform:capitalize;min-width:86px}
.matrix td{padding:4px}
.tech{display:flex;justify-content:space-between;gap:8px;margin:0 0 4px;padding:2px 6px;
border-radius:3px;color:#fff;font-size:12px;text-decoration:none;white-space:nowrap}
.tech.sev-low{color:#1d232b}
footer{margin:30px 28px;color:var(--muted);font-size:12px}
"""

#: The one style sheet's hash: the only thing the policy lets the page load or run.
STYLE_HASH: Final = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
POLICY: Final = (
    f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; script-src 'none'; "
    "img-src 'none'; font-src 'none'; connect-src 'none'; frame-src 'none'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'"
)


def document(title: str, header: str, nav: Iterable[tuple[str, str]], body: str, foot: str) -> str:
    """The whole page: the policy first, then the style sheet, then the sections."""
    links = "".join(f'<a href="#{anchor}">{text(name)}</a>' for anchor, name in nav)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{text(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<header>{header}</header>\n<nav>{links}</nav>\n<main>\n{body}\n</main>\n"
        f"<footer>{foot}</footer>\n</body></html>\n"
    )
