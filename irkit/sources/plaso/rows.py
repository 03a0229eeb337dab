"""plaso event data as irkit rows: times, text fields, the message, host, user, event id.

Imported only when a file is parsed (it imports dfdatetime, plaso's time library).
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any, Final

import orjson
from dfdatetime import interface as dfdatetime_interface
from dfdatetime import semantic_time as dfdatetime_semantic_time

from irkit.model import one_line
from irkit.sources.base import ParseContext
from irkit.sources.plaso.mapping import Mapping

DateTimeValues: Final[type] = dfdatetime_interface.DateTimeValues
SemanticTime: Final[type] = dfdatetime_semantic_time.SemanticTime

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: plaso's timestamp_desc of an event data without a time.
NOT_A_TIME: Final = "Not a time"
#: Attributes of an event data that are plaso's bookkeeping, not the artifact's.
_INTERNAL: Final = frozenset({"_event_data_stream_identifier", "_event_values_hash"})
#: Registry values: (name, data type, data) tuples, written as plaso's JSON output does.
_REGISTRY_VALUES: Final = frozenset({"windows:registry:key_value", "windows:registry:service"})


@functools.lru_cache(maxsize=1 << 14)
def _day(days: int) -> str:
    return (_EPOCH + dt.timedelta(days=days)).date().isoformat()


def iso(micros: int) -> str:
    """A plaso timestamp (µs since 1970, UTC) as ISO 8601 with µs and ``+00:00``.

    Raises OverflowError or ValueError outside years 1-9999."""
    days, rest = divmod(micros, 86_400_000_000)
    seconds, fraction = divmod(rest, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{_day(days)}T{hours:02d}:{minutes:02d}:{secs:02d}.{fraction:06d}+00:00"


def time_text(value: Any) -> str:
    """A dfdatetime value as text: ISO 8601 as dfdatetime writes it (its own precision;
    no offset for a local time), or the semantic name (``Not set``, ``Never``)."""
    if isinstance(value, SemanticTime):
        return str(getattr(value, "string", "") or type(value).__name__)
    try:
        return str(value.CopyToDateTimeStringISO8601() or "")
    except (OverflowError, TypeError, ValueError):
        return ""


def jsonable(value: Any) -> Any:
    """A value orjson can write: bytes as upper-case hex, times as text, tuples as lists."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex().upper()
    if isinstance(value, DateTimeValues):
        return time_text(value)
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [jsonable(v) for v in items]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)


def text(value: Any) -> str:
    """Any attribute value as text: strings as they are, integers in decimal, booleans
    ``true``/``false``, bytes as upper-case hex, times as ISO 8601, lists and mappings as
    compact JSON (keys sorted)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex().upper()
    if isinstance(value, DateTimeValues):
        return time_text(value)
    if isinstance(value, list | tuple | set | frozenset | dict):
        return dumps(jsonable(value)).decode("utf-8")
    return str(value)


def dumps(value: Any) -> bytes:
    """orjson, keys sorted; text with lone surrogates (which orjson refuses) kept as
    ``\\udXXX`` escapes."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return orjson.dumps(_escape_surrogates(value), option=orjson.OPT_SORT_KEYS)


def clean(value: str) -> str:
    """Text a UTF-8 column can hold: lone surrogates (a UTF-16 string cut in half, as
    some Windows artifacts hold) kept as ``\\udXXX`` escapes."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def _escape_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list):
        return [_escape_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_escape_surrogates(k): _escape_surrogates(v) for k, v in value.items()}
    return value


def fields(event_data: Any, chain: str, times: dict[str, str]) -> dict[str, str]:
    """Every attribute of the event data under plaso's name, as text, plus ``parser``
    (the chain) and ``data_type``; ``corrupted``/``recovered`` when plaso flagged them.
    ``times`` has the text of the time attributes the timeliner placed (dfdatetime's own
    text, the slow path, is used for the others)."""
    out: dict[str, str] = {}
    values = event_data.__dict__
    for name, value in values.items():
        found = times.get(name)
        if found is not None:
            out[name] = found
        elif value is None:
            continue
        elif name[0] == "_":
            if name in ("_corrupted", "_recovered") and value is True:
                out[name[1:]] = "true"
        elif name == "values" and values.get("data_type") in _REGISTRY_VALUES:
            out[name] = _registry_values(value)
        else:
            out[name] = text(value)
    out["parser"] = chain
    return out


def _registry_values(value: Any) -> str:
    if not isinstance(value, list):
        return text(value)
    items: list[Any] = []
    for item in value:
        if isinstance(item, tuple | list) and len(item) == 3:
            name, data_type, data = item
            items.append(
                {"name": jsonable(name), "data_type": jsonable(data_type), "data": jsonable(data)}
            )
        else:
            items.append(jsonable(item))
    return dumps(items).decode("utf-8")


def _first(values: dict[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        value = values.get(name)
        if value and value != "-":
            return value
    return ""


def who(values: dict[str, str], data_type: str, mapping: Mapping) -> tuple[str, str, str]:
    """(host, user, event_id) from the text fields, as the mapping says."""
    attribute = mapping.event_id.get(data_type)
    event_id = values.get(attribute, "") if attribute else ""
    return (
        clean(_first(values, mapping.host)),
        clean(_first(values, mapping.user)),
        clean(event_id),
    )


def _event_values(event_data: Any) -> dict[str, Any]:
    """The values a formatter sees: the event data's attributes (psort passes its
    bookkeeping too, ``_event_data_stream_identifier`` and the like), times as text. When a
    format string names a missing attribute, plaso's formatter writes every value with
    ``str()``: an identifier or a dfdatetime object would put a memory address, different
    on every run, in the message."""
    values: dict[str, Any] = {}
    for name, value in event_data.__dict__.items():
        if value is None or name[0] == "_":
            continue
        if isinstance(value, DateTimeValues):
            value = _TimeText(value)
        elif isinstance(value, list) and value and isinstance(value[0], DateTimeValues):
            value = [_TimeText(v) for v in value]
        values[name] = value
    return values


class _TimeText:
    """A time as a formatter sees it: its text, made only if a message uses it."""

    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def __str__(self) -> str:
        return time_text(self._value)

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def message(formatter: Any, fallback: Any, output_mediator: Any, event_data: Any) -> str:
    """plaso's own message for the event data (what psort writes in ``message``), one line.

    A formatter that fails on odd values falls back to plaso's default formatter (every
    attribute as ``name: value``), then to the data type."""
    for candidate in (formatter, fallback):
        if candidate is None:
            continue
        try:
            event_values = _event_values(event_data)
            candidate.FormatEventValues(output_mediator, event_values)
            return clean(one_line(str(candidate.GetMessage(event_values) or "")))
        except Exception:  # a formatter's bug must not cost the event
            continue
    return clean(one_line(str(getattr(event_data, "data_type", "") or "")))


def fallback_time(ctx: ParseContext) -> tuple[str, str]:
    """(ts, ts_desc) of an event data without a usable time: the collection time, else the
    file's modification time, as the ts_desc says."""
    if ctx.collected_at:
        try:
            when = dt.datetime.fromisoformat(ctx.collected_at.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            ts = when.astimezone(dt.UTC).isoformat(timespec="microseconds")
            return ts, f"{NOT_A_TIME} (collection time)"
        except ValueError:
            pass
    micros = ctx.path.lstat().st_mtime_ns // 1000
    return iso(micros), f"{NOT_A_TIME} (file modified time)"


def time_texts(event_data: Any, texts: dict[str, list[str]]) -> dict[str, str]:
    """The field text of each time attribute: its one time, or a JSON list of them."""
    out: dict[str, str] = {}
    for attribute, shown in texts.items():
        if len(shown) == 1 and not isinstance(getattr(event_data, attribute, None), list):
            out[attribute] = shown[0]
        elif shown:
            out[attribute] = text(shown)
    return out
