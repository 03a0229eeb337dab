"""Which plaso attributes fill irkit's host, user and event_id, and each parser's family.

The tables are data, in ``artifacts/plaso/mapping.yaml``; this module reads and checks them.
It does not import plaso.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

from irkit.artifacts import artifacts_dir
from irkit.errors import IrkitError

#: The top-level keys the file must have.
_KEYS = frozenset({"host", "user", "event_id", "families"})


@dataclasses.dataclass(frozen=True, slots=True)
class Mapping:
    """The contents of ``artifacts/plaso/mapping.yaml``."""

    host: tuple[str, ...]
    user: tuple[str, ...]
    #: data type -> attribute
    event_id: dict[str, str]
    #: parser or ``parser/plugin`` prefix -> family label
    families: dict[str, str]

    @classmethod
    def from_file(cls, path: Path) -> Mapping:
        """Read and check the YAML; a malformed entry is an IrkitError naming it."""
        import yaml

        try:
            data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise IrkitError(f"cannot read the plaso mapping {path}: {exc}") from exc
        if not isinstance(data, dict) or set(data) != _KEYS:
            raise IrkitError(f"{path}: expected exactly the keys {sorted(_KEYS)}")

        def names(key: str) -> tuple[str, ...]:
            value = data[key]
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise IrkitError(f"{path}: {key!r} must be a list of attribute names")
            return tuple(value)

        event_id = data["event_id"]
        if not isinstance(event_id, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in event_id.items()
        ):
            raise IrkitError(f"{path}: 'event_id' must map data types to attribute names")
        families: dict[str, str] = {}
        raw = data["families"]
        if not isinstance(raw, dict):
            raise IrkitError(f"{path}: 'families' must map labels to parser names")
        for label, members in raw.items():
            if not isinstance(label, str) or not isinstance(members, list) or not members:
                raise IrkitError(f"{path}: family {label!r} must list parser names")
            for member in members:
                if not isinstance(member, str) or not member or member.count("/") > 1:
                    raise IrkitError(f"{path}: family {label!r}: bad member {member!r}")
                if member in families:
                    raise IrkitError(f"{path}: {member!r} is in two families")
                families[member] = label
        return cls(names("host"), names("user"), dict(event_id), families)

    def family(self, chain: str) -> str:
        """The family of a parser chain: its longest listed prefix (``parser/plugin``, then
        ``parser``), else the parser's own name."""
        parts = chain.split("/")
        for size in (2, 1):
            label = self.families.get("/".join(parts[:size]))
            if label is not None:
                return label
        return parts[0]


@functools.cache
def load_mapping() -> Mapping:
    """The bundled mapping, read once per process."""
    return Mapping.from_file(artifacts_dir() / "plaso" / "mapping.yaml")
