"""BinXML values by their declared type, rendered the way pyevtx-rs renders them.

Part of the python-evtx engine (:mod:`irkit.sources.evtx.python_engine`): GUIDs, SIDs,
FILETIMEs, hex integers, binary and string arrays come out exactly as pyevtx-rs writes
them, so both engines flatten to identical fields.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable
from typing import Final

_EPOCH_1601: Final = dt.datetime(1601, 1, 1)

_unpack_from = struct.unpack_from

#: A rendered value: text, or an integer / boolean pyevtx-rs writes as a JSON number / bool.
Scalar = str | int | bool


def _filetime(raw: int) -> str:
    """A FILETIME as pyevtx-rs writes it: microseconds (truncated) and ``Z``."""
    stamp = _EPOCH_1601 + dt.timedelta(microseconds=raw // 10)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _filetime_bytes(data: bytes) -> str:
    return _filetime(_unpack_from("<Q", data)[0])


def _systemtime(data: bytes) -> str:
    year, month, _weekday, day, hour, minute, second, millis = _unpack_from("<8H", data)
    stamp = dt.datetime(year, month, day, hour, minute, second, millis * 1000)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _guid(data: bytes) -> str:
    """Upper case, no braces, like pyevtx-rs (python-evtx writes ``{lower}``)."""
    d1, d2, d3 = _unpack_from("<IHH", data)
    tail = data[8:16].hex().upper()
    return f"{d1:08X}-{d2:04X}-{d3:04X}-{tail[:4]}-{tail[4:]}"


def _sid(data: bytes) -> str:
    count = data[1]
    subs = _unpack_from(f"<{count}I", data, 8)
    return "-".join(("S", str(data[0]), str(int.from_bytes(data[2:8], "big")), *map(str, subs)))


def _utf16(data: bytes) -> str:
    """UTF-16LE up to the first NUL, unpaired surrogates dropped, as pyevtx-rs reads it."""
    text = data.decode("utf-16-le", "ignore")
    nul = text.find("\x00")
    return text if nul < 0 else text[:nul]


def _ansi(data: bytes) -> str:
    data = data.split(b"\x00", 1)[0]
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _int(fmt: str) -> Callable[[bytes], Scalar]:
    def render(data: bytes) -> Scalar:
        return int(_unpack_from(fmt, data)[0])

    return render


def _bool(data: bytes) -> Scalar:
    """0 and 1 are false and true; pyevtx-rs 0.14 writes any other value as its number."""
    (raw,) = _unpack_from("<i", data)
    return False if raw == 0 else True if raw == 1 else int(raw)


def _float32(data: bytes) -> Scalar:
    """The shortest text that reads back as the same float32 (as Rust prints floats).

    No corpus record has a float; pyevtx-rs's exact spelling of exponents is not checked.
    """
    value: float = _unpack_from("<f", data)[0]
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        if _unpack_from("<f", struct.pack("<f", float(text)))[0] == value:
            return str(float(text))
    return str(value)


def _float64(data: bytes) -> Scalar:
    return str(_unpack_from("<d", data)[0])


def _hex32(data: bytes) -> Scalar:
    return f"0x{_unpack_from('<I', data)[0]:x}"


def _hex64(data: bytes) -> Scalar:
    return f"0x{_unpack_from('<Q', data)[0]:x}"


def _size_t(data: bytes) -> Scalar:
    return _hex32(data) if len(data) == 4 else _hex64(data)


def _binary(data: bytes) -> Scalar:
    return data.hex().upper()


def _null(data: bytes) -> Scalar:
    return ""


#: Value type -> renderer of the value's bytes (nested BinXML 0x21 and arrays apart).
_RENDER: Final[dict[int, Callable[[bytes], Scalar]]] = {
    0x00: _null,
    0x01: _utf16,
    0x02: _ansi,
    0x03: _int("<b"),
    0x04: _int("<B"),
    0x05: _int("<h"),
    0x06: _int("<H"),
    0x07: _int("<i"),
    0x08: _int("<I"),
    0x09: _int("<q"),
    0x0A: _int("<Q"),
    0x0B: _float32,
    0x0C: _float64,
    0x0D: _bool,
    0x0E: _binary,
    0x0F: _guid,
    0x10: _size_t,
    0x11: _filetime_bytes,
    0x12: _systemtime,
    0x13: _sid,
    0x14: _hex32,
    0x15: _hex64,
}

#: Fixed-size value types -> size in bytes.
_SIZES: Final[dict[int, int]] = {
    0x00: 0, 0x03: 1, 0x04: 1, 0x05: 2, 0x06: 2, 0x07: 4, 0x08: 4, 0x09: 8, 0x0A: 8,
    0x0B: 4, 0x0C: 8, 0x0D: 4, 0x0F: 16, 0x10: 8, 0x11: 8, 0x12: 16, 0x14: 4, 0x15: 8,
}  # fmt: skip


def _string_items(data: bytes) -> list[Scalar]:
    """A string array: NUL-terminated UTF-16 strings back to back."""
    items: list[Scalar] = list(data.decode("utf-16-le", "ignore").split("\x00"))
    if items[-1] == "":
        items.pop()
    return items


def _sid_items(data: bytes) -> list[Scalar]:
    items: list[Scalar] = []
    offset = 0
    while offset + 8 <= len(data):
        size = 8 + 4 * data[offset + 1]
        items.append(_sid(data[offset : offset + size]))
        offset += size
    return items


def _fixed_items(size: int, render: Callable[[bytes], Scalar]) -> Callable[[bytes], list[Scalar]]:
    def items(data: bytes) -> list[Scalar]:
        return [render(data[i : i + size]) for i in range(0, len(data) - size + 1, size)]

    return items


#: Array value type & 0x7F -> the items of the array.
_ITEMS: Final[dict[int, Callable[[bytes], list[Scalar]]]] = {
    0x01: _string_items,
    0x13: _sid_items,
    **{kind: _fixed_items(size, _RENDER[kind]) for kind, size in _SIZES.items() if size},
}


def _text(value: Scalar) -> str:
    """A scalar as text: how it reads inside a longer string."""
    if type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    return str(value)


def _char(code: int) -> str:
    """A character reference; a lone surrogate is dropped, as in every string here."""
    return "" if 0xD800 <= code <= 0xDFFF else chr(code)


def _array_text(items: list[Scalar]) -> str:
    """An array that is not expanded (0 or 1 item) reads as its items joined by commas."""
    return ",".join(map(_text, items))
