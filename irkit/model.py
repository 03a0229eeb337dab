"""The unified event schema: one row per timestamped fact, the same for every source.

docs/schema.md documents each column. ``EVENT_COLUMNS`` is the single source of truth
for the column order used by the store, the parsers' batches and the exports.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import re
from typing import Any, Final

UTC: Final = dt.UTC

#: The columns of a parser's row, in order. Every value travels as text; ``ts`` is ISO
#: 8601 and the store casts it once, in bulk, to TIMESTAMP WITH TIME ZONE (UTC).
ROW_COLUMNS: Final[tuple[str, ...]] = (
    "ts",
    "ts_desc",
    "artifact",
    "host",
    "user",
    "event_id",
    "message",
    "fields",
    "record",
)

#: Columns that are the same for every row of one evidence file: the spool adds them.
FILE_COLUMNS: Final[tuple[str, ...]] = ("source", "evidence", "evidence_sha256")

#: The columns of the stored events (the Parquet parts, the ``events`` view), in order.
EVENT_COLUMNS: Final[tuple[str, ...]] = (
    "uid",
    "ts",
    "ts_desc",
    "source",
    "artifact",
    "host",
    "user",
    "event_id",
    "message",
    "fields",
    "evidence",
    "evidence_sha256",
    "record",
)
assert set(EVENT_COLUMNS) == {"uid", *ROW_COLUMNS, *FILE_COLUMNS}

#: Columns of an exported timeline row before the event's own fields.
EXPORT_COLUMNS: Final[tuple[str, ...]] = (
    "datetime",
    "timestamp_desc",
    "message",
    "timestamp",
    "source",
    "artifact",
    "host",
    "user",
    "event_id",
    "evidence",
    "record",
    "uid",
)


@dataclasses.dataclass(frozen=True, slots=True)
class ParseWarning:
    """A counted, named problem with one input: the run goes on."""

    path: str
    kind: str
    message: str


@dataclasses.dataclass(slots=True)
class FileStats:
    """What parsing one evidence file produced."""

    path: str
    sha256: str = ""
    size: int = 0
    kind: str = ""
    engine: str = ""
    records: int = 0
    skipped_chunks: int = 0
    skipped_records: int = 0
    status: str = "ok"
    seconds: float = 0.0
    #: For status "copy": the file of this run with the same bytes, parsed in its place.
    copy_of: str = ""
    warnings: list[ParseWarning] = dataclasses.field(default_factory=list)
    spool: list[str] = dataclasses.field(default_factory=list)
    tables: list[Any] = dataclasses.field(default_factory=list)
    sliced: bool = False
    #: Record ids each slice saw, as (first, last) ranges, one list per slice: two slices
    #: of a big file can only repeat a record key where their ranges meet.
    record_ranges: list[list[tuple[int, int]]] = dataclasses.field(default_factory=list)
    #: A sliced file's spool parts, one list per slice (in step with ``record_ranges``).
    slice_spool: list[list[str]] = dataclasses.field(default_factory=list)
    #: Rows per parser family (``evtx``, ``osquery``, ``winreg``, ``text/syslog``…).
    families: dict[str, int] = dataclasses.field(default_factory=dict)
    #: For status "unrecognised": why no parser took the file (``empty file``, ``no parser
    #: matched``, ``encrypted``…). Such a file is not evidence in the case.
    unrecognised: str = ""


class Severity(enum.StrEnum):
    """How urgent a finding is, lowest first (Sigma's levels)."""

    INFORMATIONAL = "informational"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


#: The columns of the ``findings`` table, in order; docs/schema.md documents each one.
FINDING_COLUMNS: Final[tuple[str, ...]] = (
    "uid",
    "ts",
    "last_seen",
    "count",
    "severity",
    "detector",
    "rule",
    "title",
    "description",
    "attack",
    "event_uid",
    "event_uids",
    "source",
    "host",
    "evidence",
    "record",
    "excerpt",
    "details",
    "run_id",
)

#: The longest one-line message (characters): longer text is cut, with "…".
MAX_MESSAGE: Final = 1024
#: C0/C1 controls, line and paragraph separators, and the invisible format characters
#: (bidi overrides such as U+202E, zero-width marks) that can disguise text on a screen.
MESSAGE_CONTROL: Final = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]+"
)


def one_line(text: str) -> str:
    """Control characters and line breaks become single spaces; long text is cut."""
    # isprintable() is False for every control, separator and format character (and a few
    # more), so the regex runs only on the rare message that needs it.
    if not text.isprintable():
        text = MESSAGE_CONTROL.sub(" ", text)
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 1] + "…"
    return text


#: At most this many event uids are kept on one finding (``count`` has the full number).
MAX_EVENT_UIDS: Final = 100


def severity_rank(level: str) -> int:
    """0 (informational) … 4 (critical); an unknown level ranks as informational."""
    order = [s.value for s in Severity]
    return order.index(level) if level in order else 0


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """Something a detector says deserves a responder's eyes, resting on events or a file.

    - ``detector``: the engine: ``ioc``, ``yara``, ``sigma``, ``heuristic``, ``analytics``.
    - ``rule``: the rule's id; ``title``, ``description``: one line each.
    - ``ts`` and ``last_seen``: first and last time of the events it rests on (ISO 8601
      UTC); ``count``: how many events (or matches) in all.
    - ``attack``: ATT&CK ids and tactics as Sigma tags them (``attack.t1059.001``,
      ``attack.execution``).
    - ``event_uid``: the first event it rests on (empty for a file match, which names
      ``evidence`` and gives offsets in ``details``); ``event_uids``: up to
      ``MAX_EVENT_UIDS`` of them.
    - ``excerpt``: a short piece of what matched, for a person; ``details``: the rest.

    ``uid`` is stable, so finding the same thing again in the same case adds nothing.
    """

    ts: str
    severity: Severity
    detector: str
    rule: str
    title: str
    description: str
    event_uid: str
    source: str
    host: str
    evidence: str
    record: str
    details: dict[str, str] = dataclasses.field(default_factory=dict)
    last_seen: str = ""
    count: int = 1
    attack: tuple[str, ...] = ()
    event_uids: tuple[str, ...] = ()
    excerpt: str = ""
    #: Every event uid it rests on, when more than ``event_uids`` holds (the case's
    #: ``finding_events`` table keeps them all); empty: ``event_uids`` is all of them.
    all_event_uids: tuple[str, ...] = ()

    @property
    def uid(self) -> str:
        """md5 of detector, rule, the first event's uid, evidence and record, in hex."""
        key = f"{self.detector}|{self.rule}|{self.event_uid}|{self.evidence}|{self.record}"
        return hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()
