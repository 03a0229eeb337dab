"""The second EVTX engine: python-evtx, flattened exactly like the fast engine.

python-evtx (pure Python) opens the file, finds the chunks (inactive ones too) and parses
each template definition (element and attribute names, static text, where each
substitution goes). This module walks each chunk's records, fills the templates with the
records' substitution values, builds the same JSON shape pyevtx-rs 0.14 builds and
flattens it with the very same :func:`irkit.sources.evtx.flatten_event`, so both engines
give identical field dicts wherever they read the same record (the whole shared corpus:
37,847 records, no field differs, same key order).

Why not ``record.xml()``: the text python-evtx renders has lost each value's type, so a
GUID (``{94f748d5-…}`` vs ``94F748D5-…``), a ``HexInt64`` (``0x00000000000003e7`` vs
``0x3e7``), binary (base64 vs hex), a string array (one ``Data`` vs one per item), a
boolean or a FILETIME (read through a float, off by a microsecond) cannot be put right
from a string that might just look like one. ``xml()`` is not always well-formed either
(a ``"`` in an attribute value), fails on every record that holds BinXML written out
without a template (forwarded events, CAPI2 ``UserData``), and is slow: it re-parses the
record's template for every record, where this module compiles each template once per
chunk. Measured (one core): ``xml()`` + ElementTree 100-115 records/s; this module
1,700-3,000 records/s on a file, 2,180 over the whole corpus.

What follows pyevtx-rs (``binxml/ir.rs``, ``ir_json.rs``, ``array_expand.rs``,
``value_render.rs``): values rendered by their declared type; an element whose only
content is one integer or boolean value is a JSON number or boolean; optional
substitutions with an empty value are dropped; empty attributes are left out and empty
elements are ``null``; repeated child elements are keyed ``Name``, ``Name_1``…;
``<Data Name="X">`` children of ``EventData``/``UserData`` are keyed by name, unnamed ones
go to ``Data.#text`` (a list when there are several); an array value repeats its element
once per item; strings stop at the first NUL and lose unpaired surrogates.

What this module adds to plain python-evtx iteration, so that a damaged log gives all it
still holds (python-evtx would stop, or raise): a bad chunk or record is a counted warning
and reading goes on; each record must carry the record magic and keep its values inside
itself; past a damaged record, reading resumes at the next intact one (the corpus has 114
intact records after one of size 0 that both python-evtx and pyevtx-rs stop at); records
the chunk header declares but that are zeroed are counted as lost; BinXML without a
template is read by a small token reader here (python-evtx has none); a file cut short is
read into its last, partial chunk (89 more records in plaso's ``System2.evtx``).
"""

from __future__ import annotations

import datetime as dt
import logging
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, cast

from irkit.sources.base import ParseContext
from irkit.sources.evtx import flatten_event

CHUNK_SIZE: Final = 0x10000
_CHUNK_HEADER_SIZE: Final = 0x200
_ZERO_CHUNK: Final = bytes(CHUNK_SIZE)
_RECORD_MAGIC: Final = b"**\x00\x00"
_EPOCH_1601: Final = dt.datetime(1601, 1, 1)
_MAX_UNIQUE_NAMES: Final = 64  # pyevtx-rs stops numbering repeated names past 64 distinct ones
_CONTAINERS: Final = frozenset({"EventData", "UserData"})
_MAX_COPIES: Final = 0x10000  # array expansion beyond this many copies is treated as damage
#: XML entity references pyevtx-rs resolves to their character.
_ENTITIES: Final = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}

_unpack_from = struct.unpack_from
_QUIET: Final = logging.NullHandler()

#: A rendered value: text, or an integer / boolean pyevtx-rs writes as a JSON number / bool.
Scalar = str | int | bool
#: One row: (EventRecordID of the record header, header time, flat fields, n_system).
Row = tuple[int, str, dict[str, str], int]


class _Elem:
    """One element of a record, its values rendered."""

    __slots__ = ("attrs", "has_elem", "kids", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.attrs: dict[str, Scalar] = {}
        self.kids: list[_Elem | Scalar] = []
        self.has_elem = False


class _Array:
    """An array value of two or more items: its element is repeated once per item."""

    __slots__ = ("items",)

    def __init__(self, items: list[Scalar]) -> None:
        self.items = items


class _Sub:
    """A substitution slot in a compiled template; optional ones vanish when empty."""

    __slots__ = ("index", "optional")

    def __init__(self, index: int, optional: bool) -> None:
        self.index = index
        self.optional = optional


class _Template:
    """A template element compiled once per chunk."""

    __slots__ = ("attrs", "kids", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.attrs: list[tuple[str, tuple[Scalar | _Sub, ...]]] = []
        self.kids: list[_Template | Scalar | _Sub] = []


_Value = _Elem | _Array | Scalar


# --------------------------------------------------------------------------- values


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


# --------------------------------------------------------------------------- BinXML


def _compile(node: Any, walker: _Walker) -> _Template:
    """Compile a python-evtx ``OpenStartElementNode`` of a template definition."""
    nodes = walker.nodes
    element = _Template(node.tag_name())
    for child in node.children():
        kind = type(child)
        if kind is nodes.AttributeNode:
            parts = walker.compile_parts(child.children())
            element.attrs.append((child.attribute_name().string(), parts))
        elif kind is nodes.OpenStartElementNode:
            element.kids.append(_compile(child, walker))
        else:
            element.kids.extend(walker.compile_parts([child]))
    return element


class _Walker:
    """Reads the records of one chunk; compiled templates live as long as the chunk."""

    __slots__ = ("buf", "chunk", "end", "names", "nodes", "start", "templates")

    def __init__(self, buf: Any, chunk: Any, nodes: Any) -> None:
        self.buf = buf
        self.chunk = chunk
        self.nodes = nodes
        self.start: int = chunk.offset()
        self.end = self.start + CHUNK_SIZE  # end of the current record
        self.templates: dict[int, _Template | Exception | None] = {}
        self.names: dict[int, str] = {}
        self._guard_tables()

    def _guard_tables(self) -> None:
        """Keep python-evtx out of endless loops on a damaged chunk.

        python-evtx follows the chunk's string-table and template-table linked lists with
        no check, so a corrupt next-offset pointing back loops forever (found by
        fuzzing). The template table serves only python-evtx's own rendering: it is left
        empty. A string table with a cycle is loaded here as python-evtx would load it,
        each chain cut where it comes back on itself.
        """
        chunk, buf, start = self.chunk, self.buf, self.start
        chunk._templates = {}
        try:
            buckets = _unpack_from("<64I", buf, start + 0x80)
        except struct.error:
            return
        cyclic = False
        for offset in buckets:
            chain: set[int] = set()
            while offset > 0 and start + offset + 4 <= len(buf):  # as far as python-evtx goes
                if offset in chain:
                    cyclic = True
                    break
                chain.add(offset)
                (offset,) = _unpack_from("<I", buf, start + offset)
        if not cyclic:
            return
        strings: dict[int, Any] = {}
        chunk._strings = strings
        for offset in buckets:
            chain = set()
            try:
                while 0 < offset < CHUNK_SIZE and offset not in chain:
                    chain.add(offset)
                    node = self.nodes.NameStringNode(buf, start + offset, chunk, chunk)
                    strings[offset] = node
                    offset = node.next_offset()
            except Exception:  # the rest of this chain is unreadable; names then fail alone
                continue

    # -- templates: python-evtx parses the definition ----------------------------------

    def template(self, offset: int) -> _Template | None:
        """The template defined at ``offset`` in this chunk, compiled on first use."""
        if offset not in self.templates:
            compiled: _Template | Exception | None = None
            try:
                definition = self.nodes.TemplateNode(
                    self.buf, self.start + offset, self.chunk, None
                )
                for child in definition.children():
                    if type(child) is self.nodes.OpenStartElementNode:
                        compiled = _compile(child, self)
                        break
            except Exception as exc:  # a broken definition fails every record using it
                compiled = exc
            self.templates[offset] = compiled
        found = self.templates[offset]
        if isinstance(found, Exception):
            raise ValueError(f"template at {offset:#x}: {type(found).__name__}: {found}")
        return found

    def compile_parts(self, children: list[Any]) -> tuple[Scalar | _Sub, ...]:
        nodes = self.nodes
        parts: list[Scalar | _Sub] = []
        for child in children:
            kind = type(child)
            if kind is nodes.NormalSubstitutionNode:
                parts.append(_Sub(child.index(), False))
            elif kind is nodes.ConditionalSubstitutionNode:
                parts.append(_Sub(child.index(), True))
            elif kind is nodes.ValueNode:
                parts.append(self.inline_value(child.offset())[0])
            elif kind is nodes.CharacterReferenceNode:
                parts.append(_char(child.entity()))
            elif kind is nodes.EntityReferenceNode:
                name = self.name(child.string_offset())
                parts.append(_ENTITIES.get(name, f"&{name};"))
            elif kind is nodes.CDataSectionNode:
                parts.append(child.cdata())
        return tuple(parts)

    # -- fragments and template instances ---------------------------------------------

    def fragment(self, pos: int) -> list[_Elem]:
        """The element(s) of the BinXML fragment at ``pos`` (a record or a nested value)."""
        buf = self.buf
        if buf[pos] == 0x0F:
            pos += 4
        token = buf[pos]
        if token == 0x0C:
            return self.instance(pos)[0]
        if token == 0x00:  # an empty fragment (seen zero-filled): no element, like pyevtx-rs
            return []
        if token & 0x0F == 0x01:
            return self.raw_element(pos)[0]
        raise ValueError(f"unexpected BinXML token {token:#04x} at offset {pos:#x}")

    def instance(self, pos: int) -> tuple[list[_Elem], int]:
        """A template instance: the template (compiled once) filled with its values."""
        (offset,) = _unpack_from("<I", self.buf, pos + 6)
        pos += 10
        if self.start + offset == pos:  # the definition follows inline: skip it
            (size,) = _unpack_from("<I", self.buf, pos + 20)
            pos += 24 + size
        template = self.template(offset)
        values, pos = self.values(pos)
        return (_instantiate(template, values) if template is not None else []), pos

    def values(self, pos: int) -> tuple[list[_Value], int]:
        """Decode a substitution array, each value by its declared type."""
        buf = self.buf
        (count,) = _unpack_from("<I", buf, pos)
        pos += 4
        if pos + 4 * count > self.end:
            raise ValueError(f"substitution array at {pos:#x} runs past the record")
        descriptors = _unpack_from("<" + "HBx" * count, buf, pos)
        pos += 4 * count
        if pos + sum(descriptors[::2]) > self.end:
            raise ValueError(f"substitution values at {pos:#x} run past the record")
        values: list[_Value] = []
        append = values.append
        for index in range(0, 2 * count, 2):
            size = descriptors[index]
            if not size:
                append("")
                continue
            kind = descriptors[index + 1]
            render = _RENDER.get(kind)
            if render is not None:
                append(render(buf[pos : pos + size]))
            elif kind == 0x21:
                elems = self.fragment(pos)
                append(elems[0] if elems else "")
            elif kind & 0x80 and kind & 0x7F in _ITEMS:
                items = _ITEMS[kind & 0x7F](buf[pos : pos + size])
                append(_Array(items) if len(items) > 1 else _array_text(items))
            else:
                raise ValueError(f"unsupported value type {kind:#04x}")
            pos += size
        return values, pos

    # -- BinXML without a template (forwarded events, some UserData) -----------------

    def name(self, offset: int) -> str:
        name = self.names.get(offset)
        if name is None:
            at = self.start + offset
            (chars,) = _unpack_from("<H", self.buf, at + 6)
            name = _utf16(self.buf[at + 8 : at + 8 + 2 * chars])
            self.names[offset] = name
        return name

    def name_ref(self, pos: int) -> tuple[str, int]:
        """A name reference at ``pos``; skips the name when it is defined right there."""
        (offset,) = _unpack_from("<I", self.buf, pos)
        pos += 4
        if self.start + offset == pos:
            (chars,) = _unpack_from("<H", self.buf, pos + 6)
            pos += 10 + 2 * chars
        return self.name(offset), pos

    def inline_value(self, pos: int) -> tuple[Scalar, int]:
        """A value token (type byte and an unsized value): its value and what follows."""
        buf = self.buf
        kind = buf[pos + 1]
        pos += 2
        if kind == 0x01 or kind == 0x02:
            (chars,) = _unpack_from("<H", buf, pos)
            size = 2 * chars if kind == 0x01 else chars
            pos += 2
        elif kind == 0x0E:
            (size,) = _unpack_from("<I", buf, pos)
            pos += 4
        elif kind == 0x13:
            size = 8 + 4 * buf[pos + 1]
        elif kind in _SIZES:
            size = _SIZES[kind]
        else:
            raise ValueError(f"unsupported inline value type {kind:#04x} at offset {pos:#x}")
        return _RENDER[kind](buf[pos : pos + size]), pos + size

    def raw_element(self, pos: int) -> tuple[list[_Elem], int]:
        """An element written out in BinXML rather than instantiated from a template."""
        buf = self.buf
        token = buf[pos]
        name, pos = self.name_ref(pos + 5)
        element = _Elem(name)
        if token & 0x40:
            pos += 4
            while buf[pos] & 0x0F == 0x06:
                attr, pos = self.name_ref(pos + 1)
                nodes, pos = self.raw_content(pos, False)
                if _has_text(nodes):
                    element.attrs[attr] = _node_value(nodes)
        token = buf[pos]
        if token == 0x03:
            return [element], pos + 1
        if token != 0x02:
            raise ValueError(f"unexpected BinXML token {token:#04x} at offset {pos:#x}")
        kids, pos = self.raw_content(pos + 1, True)
        element.kids = kids
        element.has_elem = any(type(kid) is _Elem for kid in kids)
        return [element], pos

    def raw_content(self, pos: int, elements: bool) -> tuple[list[_Elem | Scalar], int]:
        """Content tokens up to the close-element token (for an attribute: up to the
        next token that is not a value)."""
        buf = self.buf
        kids: list[_Elem | Scalar] = []
        while True:
            token = buf[pos]
            kind = token & 0x0F
            if kind == 0x05:
                value, pos = self.inline_value(pos)
                kids.append(value)
            elif kind == 0x08:
                (char,) = _unpack_from("<H", buf, pos + 1)
                kids.append(_char(char))
                pos += 3
            elif kind == 0x09:
                entity, pos = self.name_ref(pos + 1)
                kids.append(_ENTITIES.get(entity, f"&{entity};"))
            elif kind == 0x07:
                (chars,) = _unpack_from("<H", buf, pos + 1)
                kids.append(_utf16(buf[pos + 3 : pos + 3 + 2 * chars]))
                pos += 3 + 2 * chars
            elif not elements:
                return kids, pos
            elif kind == 0x04:
                return kids, pos + 1
            elif kind == 0x01:
                elems, pos = self.raw_element(pos)
                kids.extend(elems)
            elif token == 0x0C:
                elems, pos = self.instance(pos)
                kids.extend(elems)
            elif token == 0x0F:
                pos += 4
            elif kind == 0x0A:
                pos = self.name_ref(pos + 1)[1]
            elif kind == 0x0B:
                (chars,) = _unpack_from("<H", buf, pos + 1)
                pos += 3 + 2 * chars
            else:
                raise ValueError(f"unexpected BinXML token {token:#04x} at offset {pos:#x}")


_Pieces = list[Scalar | _Array]
_Attrs = list[tuple[str, _Pieces]]
_Kids = list[_Elem | Scalar | _Array]


def _empty(value: _Value) -> bool:
    """pyevtx-rs's ``is_optional_empty``: what an optional substitution drops."""
    return value == ""


def _instantiate(template: _Template, values: list[_Value]) -> list[_Elem]:
    """Fill a template element with values; an array value repeats the element per item."""
    n_values = len(values)
    arrays = False
    attrs: _Attrs = []
    for name, parts in template.attrs:
        pieces: _Pieces = []
        for part in parts:
            if isinstance(part, _Sub):
                if part.index < n_values:
                    value = values[part.index]
                    if isinstance(value, _Elem) or (part.optional and _empty(value)):
                        continue
                    if type(value) is _Array:
                        arrays = True
                    pieces.append(value)
            else:
                pieces.append(part)
        attrs.append((name, pieces))
    kids: _Kids = []
    has_elem = False
    for kid in template.kids:
        if isinstance(kid, _Sub):
            if kid.index < n_values:
                value = values[kid.index]
                if kid.optional and _empty(value):
                    continue
                if type(value) is _Elem:
                    has_elem = True
                elif type(value) is _Array:
                    arrays = True
                kids.append(value)
        elif isinstance(kid, _Template):
            elems = _instantiate(kid, values)
            kids.extend(elems)
            has_elem = has_elem or bool(elems)
        else:
            kids.append(kid)
    if arrays:
        copies = 1
        for piece in [*kids, *(piece for _, pieces in attrs for piece in pieces)]:
            if type(piece) is _Array:
                copies *= len(piece.items)
        if copies > _MAX_COPIES:  # a cross product that big is damage, not an event
            raise ValueError(f"array values would repeat <{template.name}> {copies} times")
        return [
            _element(template.name, some_attrs, some_kids, has_elem)
            for some_attrs, some_kids in _expand(attrs, kids)
        ]
    return [_element(template.name, attrs, kids, has_elem)]


def _element(name: str, attrs: _Attrs, kids: _Kids, has_elem: bool) -> _Elem:
    """An element from its resolved attributes and children (arrays expanded)."""
    element = _Elem(name)
    for attr, pieces in attrs:
        if _has_text(pieces):
            element.attrs[attr] = _node_value(pieces)
    element.kids = cast("list[_Elem | Scalar]", kids)  # no arrays left
    element.has_elem = has_elem
    return element


def _expand(attrs: _Attrs, kids: _Kids) -> Iterator[tuple[_Attrs, _Kids]]:
    """pyevtx-rs's array expansion: one element per item of the first array (children
    first, then attributes), recursively, so several arrays give their cross product.
    An empty string item leaves its slot empty."""
    for index, kid in enumerate(kids):
        if type(kid) is _Array:
            for item in kid.items:
                slot: _Kids = [item] if item != "" else []
                yield from _expand(attrs, [*kids[:index], *slot, *kids[index + 1 :]])
            return
    for a_index, (name, pieces) in enumerate(attrs):
        for index, piece in enumerate(pieces):
            if type(piece) is _Array:
                for item in piece.items:
                    part: _Pieces = [item] if item != "" else []
                    replaced = (name, [*pieces[:index], *part, *pieces[index + 1 :]])
                    yield from _expand([*attrs[:a_index], replaced, *attrs[a_index + 1 :]], kids)
                return
    yield attrs, kids


# --------------------------------------------------------------------------- JSON shape


def _has_text(nodes: Sequence[object]) -> bool:
    """Any content that is not an element and not empty."""
    for node in nodes:
        if isinstance(node, str):
            if node:
                return True
        elif isinstance(node, int):  # bool is an int
            return True
    return False


def _node_value(nodes: Sequence[object]) -> Scalar:
    """Content as pyevtx-rs writes it: one integer/boolean value as itself, else text."""
    if len(nodes) == 1:
        node = nodes[0]
        if isinstance(node, (str, int)):
            return node
    return "".join([_text(node) for node in nodes if isinstance(node, (str, int))])


def _own_text(nodes: Sequence[object]) -> Scalar:
    """``#text`` of an element that also has children: elements and empty values left
    out, one integer/boolean value as itself."""
    values = [node for node in nodes if isinstance(node, (str, int)) and node != ""]
    if len(values) == 1:
        return values[0]
    return "".join([_text(node) for node in values])


def _value(element: _Elem, container: bool) -> Any:
    """What pyevtx-rs writes for an element: null, its content, or an object."""
    if not element.has_elem and not element.attrs:
        kids = element.kids
        return _node_value(kids) if _has_text(kids) else None
    return _body(element, container)


def _data_value(element: _Elem) -> Any:
    """A ``<Data>`` of ``EventData``/``UserData``: never null, ``""`` when empty."""
    if element.has_elem:
        return _body(element, False)
    kids = element.kids
    return _node_value(kids) if _has_text(kids) else ""


def _body(element: _Elem, container: bool) -> dict[str, Any]:
    """An element as a JSON object: ``#attributes``, ``#text``, then its children."""
    obj: dict[str, Any] = {}
    if element.attrs:
        obj["#attributes"] = element.attrs
    kids = element.kids
    if _has_text(kids):
        obj["#text"] = _own_text(kids)
    if not element.has_elem:
        return obj
    children = [kid for kid in kids if type(kid) is _Elem]
    named = container and any(kid.name == "Data" and kid.attrs.get("Name") for kid in children)
    counts: dict[str, int] = {}
    data_done = False
    for kid in children:
        name = kid.name
        if container and name == "Data":
            if named:
                key = kid.attrs.get("Name")
                if key:
                    obj[_text(key)] = _data_value(kid)
            elif not data_done:
                data_done = True
                datas = [other for other in children if other.name == "Data"]
                if len(datas) == 1:
                    obj["Data"] = {"#text": _data_value(kid)}
                else:
                    obj["Data"] = {"#text": [_data_value(other) for other in datas]}
            continue
        seen = counts.get(name)
        if seen is None:
            if len(counts) < _MAX_UNIQUE_NAMES:
                counts[name] = 1
            key = name
        else:
            counts[name] = seen + 1
            key = f"{name}_{seen}"
        obj[key] = _value(kid, name in _CONTAINERS)
    return obj


def event_of(roots: list[_Elem]) -> dict[str, Any]:
    """The ``Event`` object pyevtx-rs would give for this record (``{}`` if it is not one)."""
    if len(roots) != 1 or roots[0].name != "Event":
        return {}
    value = _value(roots[0], False)
    return value if type(value) is dict else {}


# --------------------------------------------------------------------------- iteration


def _header_time(raw: int) -> str:
    """The record header's FILETIME like ``header_time()`` of pyevtx-rs's (µs, truncated)."""
    try:
        stamp = _EPOCH_1601 + dt.timedelta(microseconds=raw // 10)
    except OverflowError:
        return ""
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _skip(ctx: ParseContext, kind: str, message: str) -> None:
    ctx.warn(kind, message)
    if kind == "bad-chunk":
        ctx.stats.skipped_chunks += 1
    else:
        ctx.stats.skipped_records += 1
    if ctx.stats.status == "ok":
        ctx.stats.status = "partial"


def iter_python(path: Path, ctx: ParseContext) -> Iterator[Row]:
    """Yield (EventRecordID from the record header, header time as ISO 8601 '...+00:00',
    flat fields, n_system) for every record python-evtx can read, inactive chunks included.

    Never raises for bad data: a bad chunk or record is a counted warning and reading goes
    on; a file python-evtx cannot open at all is one warning and ``status = "failed"``.
    """
    import Evtx.Evtx as evtx_file  # noqa: N813
    import Evtx.Nodes as evtx_nodes  # noqa: N813

    logging.getLogger("Evtx").addHandler(_QUIET)  # python-evtx logs warnings: not ours to print
    log = evtx_file.Evtx(str(path))
    try:
        log.__enter__()
        header = log.get_file_header()
        if not header.check_magic():
            raise ValueError("no ElfFile signature")
        first = header.header_chunk_size()
    except Exception as exc:
        handle = getattr(log, "_f", None)
        if handle is not None:
            handle.close()
        ctx.warn("unreadable", f"python-evtx cannot read the file: {type(exc).__name__}: {exc}")
        ctx.stats.status = "failed"
        return
    try:
        buf = log._buf
        number = -1
        for number, chunk in enumerate(header.chunks(include_inactive=True)):
            yield from _iter_chunk(buf, number, chunk, ctx, evtx_nodes)
        # A file cut short (a partial copy, a carved log) ends in a partial chunk that
        # chunks() leaves out: its records are read as far as the bytes go, and the one
        # the cut runs through is a skipped record. (EvtxSource's chunk_warnings() names
        # the truncation itself.)
        tail = first + (number + 1) * CHUNK_SIZE
        if len(buf) - tail >= _CHUNK_HEADER_SIZE:
            chunk = evtx_file.ChunkHeader(buf, tail)
            if chunk.check_magic():
                yield from _iter_chunk(buf, number + 1, chunk, ctx, evtx_nodes)
    except Exception as exc:  # not expected past the per-chunk guards: stop, say so
        ctx.warn("read-error", f"python-evtx stopped reading: {type(exc).__name__}: {exc}")
        if ctx.stats.status == "ok":
            ctx.stats.status = "partial"
    finally:
        log.__exit__(None, None, None)


def _iter_chunk(buf: Any, number: int, chunk: Any, ctx: ParseContext, nodes: Any) -> Iterator[Row]:
    start = chunk.offset()
    where = f"chunk {number} at offset {start:#x}"
    try:
        good = chunk.check_magic()
    except Exception:
        good = False
    if not good:
        if buf[start : start + CHUNK_SIZE] != _ZERO_CHUNK[: len(buf) - start]:
            _skip(ctx, "bad-chunk", f"{where}: bad chunk magic, chunk skipped")
        return
    walker = _Walker(buf, chunk, nodes)
    for offset in _record_offsets(buf, where, chunk, ctx):
        try:
            size, rid, raw_time = _unpack_from("<IQQ", buf, offset + 4)
            walker.end = offset + size - 4
            flat, n_system = flatten_event(event_of(walker.fragment(offset + 0x18)))
        except Exception as exc:
            _skip(ctx, "bad-record", f"{where}: record at offset {offset:#x}: {exc!r}")
            continue
        yield rid, _header_time(raw_time), flat, n_system


def _record_offsets(buf: Any, where: str, chunk: Any, ctx: ParseContext) -> Iterator[int]:
    """Where the chunk's records start: python-evtx's walk (``ChunkHeader.records``: from
    0x200, record by record, up to the chunk header's next-record offset), except that a
    damaged record does not end the chunk in silence. python-evtx stops at a record of
    size 0 or over 64 KiB and reads a record without its magic; here each record must
    have its magic, and reading resumes at the next intact record (magic, and the same
    size at both ends), with a counted warning for what lies between. Seen in the corpus:
    114 intact records after a record of size 0, and zeroed tails of chunks."""
    start = chunk.offset()
    end = min(start + chunk.next_record_offset(), start + CHUNK_SIZE)
    pos = start + _CHUNK_HEADER_SIZE
    last_rid = -1
    while pos + 0x18 <= end:
        magic, size, rid = _unpack_from("<4sIQ", buf, pos)
        if magic == _RECORD_MAGIC and 0x1C <= size <= CHUNK_SIZE:
            if pos + size > len(buf):
                _skip(ctx, "bad-record", f"{where}: record {rid} at {pos:#x} is cut off by EOF")
                return
            yield pos
            last_rid = rid
            pos += size
            continue
        resume = _next_record(buf, pos + 1, min(end, len(buf)))
        state = "zeroed" if not any(buf[pos : pos + 24]) else "not a record"
        if resume < 0:
            declared = chunk.log_last_record_number()
            _lost(
                ctx,
                f"{where}: records stop at {pos:#x} ({state}) although the chunk header "
                f"declares records up to {end:#x}, numbered up to {declared} (last read: "
                f"{last_rid}): the rest of the chunk is lost",
                declared - last_rid,
            )
            return
        (next_rid,) = _unpack_from("<Q", buf, resume + 8)
        _lost(
            ctx,
            f"{where}: {resume - pos} bytes at {pos:#x} ({state}) hold no valid record after "
            f"record {last_rid}; reading resumes at record {next_rid} at {resume:#x}",
            next_rid - last_rid - 1,
        )
        pos = resume


def _next_record(buf: Any, pos: int, end: int) -> int:
    """The offset of the next intact record in ``[pos, end)``, or -1."""
    while True:
        pos = buf.find(_RECORD_MAGIC, pos, end)
        if pos < 0 or pos + 0x18 > end:
            return -1
        (size,) = _unpack_from("<I", buf, pos + 4)
        if 0x1C <= size <= end - pos and _unpack_from("<I", buf, pos + size - 4)[0] == size:
            return int(pos)
        pos += 1


def _lost(ctx: ParseContext, message: str, count: int) -> None:
    """A counted warning for records that are gone: ``count`` when plausible, else one."""
    ctx.warn("bad-record", message)
    ctx.stats.skipped_records += count if 0 < count <= CHUNK_SIZE // 0x1C else 1
    if ctx.stats.status == "ok":
        ctx.stats.status = "partial"
