"""plaso's l2tcsv: the 17 fixed columns of log2timeline's CSV, for the tools that read it.

``date,time,timezone,MACB,source,sourcetype,type,user,host,short,desc,version,filename,
inode,notes,format,extra``, one row per event (plaso merges the events of one MACB group
into one row; irkit keeps one row per event, so the row count is the CSV's), in irkit's
stable timeline order, UTC:

- ``date`` ``MM/DD/YYYY``, ``time`` ``HH:MM:SS`` (whole seconds, as plaso), ``timezone``
  ``UTC``. An event without a time (``ts`` NULL) or outside years 1-9999 gets the
  placeholder ``01/01/1970 00:00:00`` and ``notes`` says why: every row has a valid date.
- ``MACB`` from the time's description as plaso's output mediator maps it (``Content
  Modification Time`` ``M...``, ``Last Access Time`` ``.A..``…), irkit's ``File
  Modified/Accessed/Changed/Created`` as ``M...``, ``.A..``, ``..C.``, ``...B``; others ``....``.
- ``source``/``sourcetype``: for ``plaso`` rows plaso's own mapping of the ``data_type``
  (``short_source``/``source`` of its formatter files: ``REG``/``Registry Key``); for irkit's
  sources ``EVT``/``WinEVTX``, ``LOG``/``osquery``, ``FILE``/``File stat``,
  ``FILE``/``Bodyfile``, ``ALERT``/``irkit finding``.
- ``short`` is the message cut as plaso cuts it (77 characters and ``...`` past 80);
  ``desc`` the message; ``version`` ``2``; ``filename`` the evidence (a plaso row's
  ``display_name`` when it has one); ``inode`` the ``inode`` field; ``notes`` ``-``;
  ``format`` the parser chain for plaso rows (``winreg/windows_run``), ``source/artifact``
  for irkit's (``evtx/Security``); ``extra`` the other fields that have a value, ``key: value``
  sorted by key and joined with ``; `` as plaso does.

An empty value is ``-``, as in plaso's output. Every cell from the evidence is made safe
as in irkit's CSV (``irkit.export.csv``: control characters ``\\x{HH}``, formula cells
prefixed ``'``, ``restore`` gives the text back) and, so that each event stays one line
as in plaso's output, line feeds and CRs are ``\\x{0a}`` and ``\\x{0d}`` too. RFC 4180
(quoted where needed: a comma stays a comma; plaso writes a space), CRLF line ends.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TextIO

import orjson

from irkit.export.base import json_text
from irkit.export.csv import escape_controls, prefix_formula
from irkit.store.timeline import DEFAULT_FIELD_COLUMNS, Selection

HEADER: Final = (
    "date",
    "time",
    "timezone",
    "MACB",
    "source",
    "sourcetype",
    "type",
    "user",
    "host",
    "short",
    "desc",
    "version",
    "filename",
    "inode",
    "notes",
    "format",
    "extra",
)
NONE: Final = "-"
VERSION: Final = "2"
TIMEZONE: Final = "UTC"
#: The date and time of a row whose event has none that l2tcsv can write (``notes`` says).
PLACEHOLDER: Final = ("01/01/1970", "00:00:00")
#: plaso's short message: at most 80 characters, else 77 and ``...``.
SHORT_MAX: Final = 80

#: Time descriptions -> the MACB letter they set, as plaso's output mediator maps them
#: (plaso.lib.definitions' names), with irkit's file events and fs:stat's short names.
_MACB_LETTER: Final[Mapping[str, int]] = {
    **dict.fromkeys(
        ("Content Modification Time", "Content Deletion Time", "File Modified", "mtime"), 0
    ),
    **dict.fromkeys(
        (
            "Last Access Time",
            "Account Created",
            "Last Visited Time",
            "Start Time",
            "Last Shutdown Time",
            "Last Login Time",
            "Last Password Reset Time",
            "Last Connection Time",
            "Last Time Executed",
            "Last Printed Time",
            "File Accessed",
            "atime",
        ),
        1,
    ),
    **dict.fromkeys(("Metadata Modification Time", "File Changed", "ctime"), 2),
    **dict.fromkeys(
        (
            "Creation Time",
            "Added Time",
            "File Downloaded Time",
            "First Connection Time",
            "File Created",
            "crtime",
        ),
        3,
    ),
}
#: irkit's own sources -> (source, sourcetype); plaso's names where plaso reads the same.
SOURCES: Final[Mapping[str, tuple[str, str]]] = {
    "evtx": ("EVT", "WinEVTX"),
    "osquery": ("LOG", "osquery"),
    "file": ("FILE", "File stat"),
    "bodyfile": ("FILE", "Bodyfile"),
    "finding": ("ALERT", "irkit finding"),
}
#: Fields of a plaso row that are in a column of their own.
_PLASO_COLUMNS: Final = frozenset({"data_type", "parser", "display_name"})


def macb(ts_desc: str) -> str:
    """The legacy MACB string of a time description: ``M...``, ``.A..``, ``..C.``,
    ``...B``; ``....`` when it is none of them."""
    letter = _MACB_LETTER.get(ts_desc)
    if letter is None:
        return "...."
    return "." * letter + "MACB"[letter] + "." * (3 - letter)


def short_message(message: str) -> str:
    """The message as plaso's ``short``: cut to 77 characters and ``...`` past 80."""
    return message if len(message) <= SHORT_MAX else message[: SHORT_MAX - 3] + "..."


def date_time(micros: int | None) -> tuple[str, str, str]:
    """(``MM/DD/YYYY``, ``HH:MM:SS``, note) of epoch µs in UTC; the placeholder and a
    note when there is no time or it is outside years 1-9999."""
    if micros is None:
        return (*PLACEHOLDER, "irkit: no time; 01/01/1970 00:00:00 is a placeholder")
    try:
        when = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=micros)
    except OverflowError:
        return (
            *PLACEHOLDER,
            f"irkit: time outside years 1-9999 (epoch µs {micros}); "
            "01/01/1970 00:00:00 is a placeholder",
        )
    return f"{when.month:02d}/{when.day:02d}/{when.year:04d}", f"{when:%H:%M:%S}", ""


def safe(text: str) -> str:
    """A cell from the evidence: ``-`` when empty; control characters and line breaks
    ``\\x{HH}`` (``irkit.export.csv.restore`` reads them back); a formula prefixed ``'``."""
    if not text or text == NONE:
        return NONE
    escaped = escape_controls(text)
    if "\n" in escaped or "\r" in escaped:
        escaped = escaped.replace("\r", "\\x{0d}").replace("\n", "\\x{0a}")
    return prefix_formula(escaped)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json_text(value, sort_keys=True)


@functools.cache
def plaso_sources() -> dict[str, tuple[str, str]]:
    """plaso's (short_source, source) per data type, from its formatter files (what psort
    reads); empty when plaso's data cannot be read. plaso itself is not imported."""
    import yaml

    spec = importlib.util.find_spec("plaso")
    if spec is None or not spec.submodule_search_locations:
        return {}
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / "formatters"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    found: dict[str, tuple[str, str]] = {}
    try:
        for path in sorted(folder.glob("*.yaml")):
            for entry in yaml.load_all(path.read_text(encoding="utf-8"), Loader=loader):
                if not isinstance(entry, dict):
                    continue
                data_type, short, long = (
                    entry.get(k) for k in ("data_type", "short_source", "source")
                )
                if isinstance(data_type, str) and isinstance(short, str) and isinstance(long, str):
                    found.setdefault(data_type.lower(), (short, long))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return found


def l2t_row(row: tuple[Any, ...]) -> tuple[list[str], bool]:
    """One ``Selection.rows()`` row as the 17 l2tcsv cells, and whether its time is a
    placeholder."""
    _, ts_desc, message, micros, source, artifact, host, user, _, evidence, _, _, blob = row
    fields: dict[str, Any] = orjson.loads(blob) if blob else {}
    ts_desc, message, source, artifact = (v or "" for v in (ts_desc, message, source, artifact))
    date, time, note = date_time(micros)
    filename = evidence or ""
    used = {"inode"}
    if source == "plaso":
        used |= _PLASO_COLUMNS
        chain = _text(fields.get("parser") or artifact)
        data_type = _text(fields.get("data_type", "")).lower()
        short, long = plaso_sources().get(data_type) or ("N/A", chain)
        filename = _text(fields.get("display_name") or filename)
        parser = artifact or chain
    else:
        short, long = SOURCES.get(source) or (source.upper() or NONE, source)
        parser = f"{source}/{artifact}" if artifact else source
    extra = "; ".join(
        f"{key}: {_text(value)}"
        for key, value in sorted(fields.items())
        if key not in used and value not in ("", None)
    )
    cells = [
        date,
        time,
        TIMEZONE,
        macb(ts_desc),
        safe(short),
        safe(long),
        safe(ts_desc),
        safe(user or ""),
        safe(host or ""),
        safe(short_message(message)),
        safe(message),
        VERSION,
        safe(filename),
        safe(_text(fields.get("inode", ""))),
        safe(note),
        safe(parser),
        safe(extra),
    ]
    return cells, bool(note)


class L2tCsvWriter:
    """Timeline rows as plaso's l2tcsv; ``untimed`` counts the rows of the last ``write``
    whose date is the placeholder."""

    def __init__(self, field_columns: int = DEFAULT_FIELD_COLUMNS) -> None:
        self.field_columns = field_columns  # unused: l2tcsv has 17 fixed columns
        self.untimed = 0

    def write(self, selection: Selection, out: TextIO) -> int:
        """Write the header and one row per event; returns the row count."""
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(HEADER)
        self.untimed = 0
        count = 0
        for row in selection.rows():
            cells, placeholder = l2t_row(row)
            writer.writerow(cells)
            self.untimed += placeholder
            count += 1
        return count
