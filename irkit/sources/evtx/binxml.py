"""BinXML of one chunk's records read into element trees, templates compiled once.

Part of the python-evtx engine (:mod:`irkit.sources.evtx.python_engine`): python-evtx
parses each template definition, compiled here once per chunk; each record's
substitution values are decoded by their declared type (``values``) and filled into the
template (``binxml_fill``). BinXML written out without a template (forwarded events,
some UserData) is read token by token.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from irkit.sources.evtx.binxml_fill import _instantiate
from irkit.sources.evtx.binxml_json import _has_text, _node_value
from irkit.sources.evtx.binxml_nodes import _Array, _Elem, _Sub, _Template, _Value
from irkit.sources.evtx.values import (
    _ITEMS,
    _RENDER,
    _SIZES,
    Scalar,
    _array_text,
    _char,
    _utf16,
)

CHUNK_SIZE: Final = 0x10000

#: XML entity references pyevtx-rs resolves to their character.
_ENTITIES: Final = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}

_unpack_from = struct.unpack_from


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
