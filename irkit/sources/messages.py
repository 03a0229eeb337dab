"""One readable line per event, from templates kept as data in artifacts/evtx/messages.yaml.

A template names an event (channel + EventID, optionally provider), a short text and the
fields worth showing. ``4624 Security: An account was successfully logged on:
TargetUserName=bob LogonType=10 IpAddress=10.1.2.3``. Events without a template show
their EventData as ``key=value``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from itertools import islice
from pathlib import Path
from typing import Any, Final

import yaml

from irkit.artifacts import artifacts_dir, load_yaml
from irkit.errors import IrkitError
from irkit.model import one_line
from irkit.speedups import speedups as _speedups

#: Fields left out of the fallback message: bulky and unreadable.
_NOT_IN_FALLBACK: Final = frozenset({"Binary"})
_EMPTY: Final = frozenset({"", "-"})


@dataclasses.dataclass(frozen=True, slots=True)
class Template:
    """How to say one kind of event in one line."""

    channel: str
    event_id: str
    text: str
    fields: tuple[str, ...]
    provider: str = ""


class MessageCatalog:
    """Templates by (channel, EventID[, provider]), plus short channel names."""

    def __init__(self, templates: list[Template], short_channels: Mapping[str, str]) -> None:
        self._by_key: dict[tuple[str, str], Template] = {}
        self._by_provider: dict[tuple[str, str, str], Template] = {}
        for template in templates:
            if template.provider:
                self._by_provider[(template.channel, template.event_id, template.provider)] = (
                    template
                )
            else:
                self._by_key[(template.channel, template.event_id)] = template
        self.short_channels = dict(short_channels)
        self.templates = tuple(templates)
        self._resolved: dict[tuple[str, str, str], tuple[str, tuple[str, ...] | None]] = {}

    @classmethod
    def from_file(cls, path: Path) -> MessageCatalog:
        """Read a catalog; a malformed file is an IrkitError naming the entry."""
        try:
            data: Any = load_yaml(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise IrkitError(f"cannot read message templates {path}: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("templates"), list):
            raise IrkitError(f"{path}: expected a mapping with a 'templates' list")
        templates = []
        seen: set[tuple[str, str, str]] = set()
        for index, entry in enumerate(data["templates"]):
            try:
                fields = entry.get("fields") or []
                if not isinstance(fields, list):
                    raise TypeError("'fields' as a list")
                template = Template(
                    channel=str(entry["channel"]),
                    event_id=str(entry["event_id"]),
                    text=str(entry["text"]),
                    fields=tuple(str(f) for f in fields),
                    provider=str(entry.get("provider") or ""),
                )
            except (KeyError, TypeError, AttributeError) as exc:
                raise IrkitError(f"{path}: template #{index + 1} lacks {exc}") from exc
            key = (template.channel, template.event_id, template.provider)
            if key in seen:
                raise IrkitError(f"{path}: template #{index + 1} repeats {key}")
            seen.add(key)
            templates.append(template)
        short = data.get("short_channels") or {}
        if not isinstance(short, dict):
            raise IrkitError(f"{path}: 'short_channels' must be a mapping")
        return cls(templates, {str(k): str(v) for k, v in short.items()})

    def lookup(self, channel: str, event_id: str, provider: str) -> Template | None:
        """The template for an event, provider-specific first."""
        if self._by_provider:
            found = self._by_provider.get((channel, event_id, provider))
            if found is not None:
                return found
        return self._by_key.get((channel, event_id))

    def _resolve(self, key: tuple[str, str, str]) -> tuple[str, tuple[str, ...] | None]:
        """The message head and template fields for (EventID, channel, provider)."""
        event_id, channel, provider = key
        head = f"{event_id} {self.short_channels.get(channel, channel)}"
        template = self.lookup(channel, event_id, provider)
        if template is None:
            return head, None
        return f"{head}: {template.text}", template.fields

    def render_state(
        self,
    ) -> tuple[
        dict[tuple[str, str, str], tuple[str, tuple[str, ...] | None]],
        Callable[[tuple[str, str, str]], tuple[str, tuple[str, ...] | None]],
    ]:
        """What the C renderer needs: the resolved-template cache and how to fill it."""
        return self._resolved, self._resolve

    def render(self, flat: Mapping[str, str], n_system: int) -> str:
        """The event's one-line message; ``n_system`` leading fields are System's.

        Runs the C twin of :meth:`render_py` when the accelerator is built.
        """
        if _speedups is not None:
            text: str = _speedups.render(flat, n_system, self._resolved, self._resolve, one_line)
            return text
        return self.render_py(flat, n_system)

    def render_py(self, flat: Mapping[str, str], n_system: int) -> str:
        """The reference implementation of :meth:`render`, in Python."""
        key = (flat.get("EventID", ""), flat.get("Channel", ""), flat.get("Provider_Name", ""))
        resolved = self._resolved.get(key)
        if resolved is None:
            resolved = self._resolved[key] = self._resolve(key)
        head, fields = resolved
        if fields is not None:
            pairs = [
                f"{name}={value}"
                for name in fields
                if (value := flat.get(name, "").strip()) not in _EMPTY
            ]
        else:
            pairs = [
                f"{name}={value}"
                for name, raw in islice(flat.items(), n_system, None)
                if (value := raw.strip()) not in _EMPTY and name not in _NOT_IN_FALLBACK
            ]
        if not pairs:
            return one_line(head)
        return one_line(head + ": " + " ".join(pairs))


@functools.cache
def load_catalog() -> MessageCatalog:
    """The bundled catalog, read once per process."""
    return MessageCatalog.from_file(artifacts_dir() / "evtx" / "messages.yaml")
