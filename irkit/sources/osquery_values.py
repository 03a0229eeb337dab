"""osquery's JSON values as text, and its times as microseconds since 1970.

Times outside 1980 to the end of 9999 are not valid event times and come out as None.
"""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import orjson

#: Valid event times: 1980-01-01 to the end of 9999, in microseconds since 1970.
MIN_MICROS: Final = 315_532_800 * 1_000_000
MAX_MICROS: Final = 253_402_300_799 * 1_000_000
EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MONTHS: Final = {
    "JanFebMarAprMayJunJulAugSepOctNovDec"[i * 3 : i * 3 + 3]: i + 1 for i in range(12)
}


def text(value: Any) -> str:
    """One JSON value as text, deterministically (``--logger_numerics`` numbers included)."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int or kind is float:
        return repr(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def epoch_micros(value: Any) -> int | None:
    """Seconds since 1970 (int, float or their text) as microseconds; None if not a valid time."""
    if type(value) is int:
        micros = value * 1_000_000
    else:
        raw = value if isinstance(value, str) else text(value)
        raw = raw.strip()
        if raw.isdigit():
            micros = int(raw) * 1_000_000
        else:
            try:
                micros = int(Decimal(raw) * 1_000_000)
            except (InvalidOperation, ValueError, OverflowError):
                return None
    return micros if MIN_MICROS <= micros <= MAX_MICROS else None


def date_micros(value: Any) -> int | None:
    """A ``yyyymmdd`` date (Windows ``programs.install_date``) as microseconds at 00:00 UTC."""
    raw = text(value).strip()
    if len(raw) != 8 or not raw.isdigit():
        return None
    try:
        day = dt.datetime(int(raw[:4]), int(raw[4:6]), int(raw[6:]), tzinfo=dt.UTC)
    except ValueError:
        return None
    micros = (day - EPOCH) // dt.timedelta(microseconds=1)
    return micros if micros >= MIN_MICROS else None


@functools.lru_cache(maxsize=4096)
def iso(micros: int) -> str:
    """Microseconds since 1970 as ISO 8601 UTC with microseconds (``…T17:57:15.000000+00:00``)."""
    return (EPOCH + dt.timedelta(microseconds=micros)).isoformat(timespec="microseconds")


def calendar_micros(value: Any) -> int | None:
    """osquery's ``calendarTime`` (``Thu Dec  7 12:21:20 2017 UTC``) as microseconds."""
    parts = text(value).split()
    if len(parts) == 6 and parts[5] == "UTC":
        parts = parts[:5]
    if len(parts) != 5 or parts[1] not in MONTHS:
        return None
    try:
        hour, minute, second = (int(x) for x in parts[3].split(":"))
        when = dt.datetime(
            int(parts[4]), MONTHS[parts[1]], int(parts[2]), hour, minute, second, tzinfo=dt.UTC
        )
    except ValueError:
        return None
    micros = (when - EPOCH) // dt.timedelta(microseconds=1)
    return micros if MIN_MICROS <= micros <= MAX_MICROS else None


def line_time(obj: dict[str, Any]) -> int | None:
    """A log line's time: ``unixTime``, else ``calendarTime`` (when unixTime is absent or 0)."""
    micros = epoch_micros(obj["unixTime"]) if "unixTime" in obj else None
    if micros is None and "calendarTime" in obj:
        micros = calendar_micros(obj["calendarTime"])
    return micros
