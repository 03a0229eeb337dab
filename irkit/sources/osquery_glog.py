"""osquery's glog status files (``osqueryd.INFO``…): one event per log line.

A glog line carries month and day but (in glog's default format) no year: it comes from
the ``Log file created at:`` header, else from the file's modification time. Lines that
do not start a log line continue the message of the one before.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import IO, Any, Final

import orjson

from irkit.model import one_line
from irkit.sources.base import ParseContext, Row
from irkit.sources.osquery_stream import MAX_LINE, Cursor, iter_lines, skip_record
from irkit.sources.osquery_values import EPOCH, iso

STATUS_ARTIFACT: Final = "osquery status"
GLOG_SEVERITIES: Final = {"I": "INFO", "W": "WARNING", "E": "ERROR", "F": "FATAL"}

_GLOG = re.compile(
    r"^([IWEF])(\d{4})?(\d\d)(\d\d) (\d\d):(\d\d):(\d\d)\.(\d{6})\s+(\d+)\s+([^\s:\]]+):(\d+)\] ?"
)
_GLOG_CREATED = re.compile(r"^Log file created at: (\d{4})/(\d\d)/(\d\d)")
_GLOG_MACHINE = "Running on machine: "
_GLOG_HEADER = (
    "Log file created at:",
    "Running on machine:",
    "Running duration",
    "Log line format:",
)


class GlogReader:
    """One glog file's lines as events; a line is held until its continuations are in."""

    def __init__(
        self,
        ctx: ParseContext,
        add: Callable[[Row], None],
        cursor: Cursor,
        mtime: Callable[[], int],
    ) -> None:
        self.ctx = ctx
        self.add = add
        self.cursor = cursor
        self.mtime = mtime
        self._pending: list[Any] | None = None

    def read(self, stream: IO[bytes]) -> None:
        """Every line of the stream; the last stays held until ``flush``."""
        year: int | None = None
        created_month = 0
        host = ""
        for number, raw in iter_lines(stream, self.ctx):
            self.cursor.line = number
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            match = _GLOG.match(line)
            if match is None:
                if number <= 8 and line.startswith(_GLOG_HEADER):
                    if found := _GLOG_CREATED.match(line):
                        year, created_month = int(found.group(1)), int(found.group(2))
                    elif line.startswith(_GLOG_MACHINE):
                        host = line.removeprefix(_GLOG_MACHINE).strip()
                elif self._pending is not None and len(self._pending[5]) < MAX_LINE:
                    self._pending[5] += "\n" + line
                continue
            self.flush()
            sev, yyyy, mm, dd, hh, mi, ss, us, thread, filename, lineno = match.groups()
            if yyyy:
                when_year = int(yyyy)
            elif year is not None:  # the header's year; a line in January after a December start
                when_year = year + (1 if int(mm) < created_month else 0)
            else:
                mtime = EPOCH + dt.timedelta(microseconds=self.mtime())
                when_year = mtime.year - (1 if int(mm) > mtime.month else 0)
            try:
                when = dt.datetime(
                    when_year, int(mm), int(dd), int(hh), int(mi), int(ss), int(us), tzinfo=dt.UTC
                )
            except ValueError:
                skip_record(self.ctx, "bad-line", f"line {number}: invalid glog time {line[:22]!r}")
                continue
            fields = {
                "severity": GLOG_SEVERITIES[sev],
                "thread": thread,
                "filename": filename,
                "line": lineno,
                "glog_time": line[: match.end()].rstrip(),
            }
            self._pending = [when, host, fields, str(number), "", line[match.end() :]]

    def flush(self) -> None:
        """Emit the held line, if any."""
        if self._pending is None:
            return
        when, host, fields, record, _, message = self._pending
        self._pending = None
        fields["message"] = message
        severity = fields["severity"]
        micros = (when - EPOCH) // dt.timedelta(microseconds=1)
        self.add(
            (
                iso(micros),
                "osquery status (host local time)",
                STATUS_ARTIFACT,
                host,
                "",
                severity,
                one_line(f"{severity} {fields['filename']}:{fields['line']}] {message}"),
                orjson.dumps(fields),
                record,
            )
        )
        self.ctx.stats.records += 1
