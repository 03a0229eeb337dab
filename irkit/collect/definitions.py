"""Collection definitions: the ForensicArtifacts set, irkit's own, and named profiles.

Definitions are read with the ``artifacts`` package (its bundled ``data/*.yaml``) and
from irkit's ``artifacts/collect/*.yaml`` in the same format. A profile is an
``ARTIFACT_GROUP`` definition whose alias is the profile's name (``triage-linux``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

from irkit.artifacts import artifacts_dir
from irkit.errors import IrkitError, UsageError

#: The profile used when none is named, by the OS of the collected root.
DEFAULT_PROFILES: Final = {
    "Linux": "triage-linux",
    "Windows": "triage-windows",
    "Darwin": "triage-macos",
}


@dataclasses.dataclass(frozen=True, slots=True)
class SourceSpec:
    """One source of one artifact: what to collect, for which artifact."""

    artifact: str
    type: str
    paths: tuple[str, ...] = ()
    separator: str = "/"
    cmd: str = ""
    args: tuple[str, ...] = ()


@dataclasses.dataclass(slots=True)
class Definitions:
    """Every definition known, by lower-case name and alias, and where they came from."""

    by_name: dict[str, Any]
    by_alias: dict[str, Any]
    package_version: str
    own_sha256: str

    def get(self, name: str) -> Any:
        """The definition called (or aliased) ``name``, case-insensitively; or None."""
        key = name.lower()
        return self.by_name.get(key) or self.by_alias.get(key)

    def profiles(self) -> list[str]:
        """Names of the profiles (aliases of irkit's triage groups)."""
        return sorted(a for a in self.by_alias if a.startswith("triage-"))


def own_definition_files() -> list[Path]:
    """irkit's definition files, in name order."""
    return sorted((artifacts_dir() / "collect").glob("*.yaml"))


def load_definitions() -> Definitions:
    """Read the bundled ForensicArtifacts definitions and irkit's own."""
    try:
        # Imported by name: the checkout's own artifacts/ folder would shadow the package
        # for the type checker.
        artifacts: Any = importlib.import_module("artifacts")
        art_errors: Any = importlib.import_module("artifacts.errors")
        reader: Any = importlib.import_module("artifacts.reader")
    except ImportError as exc:  # pragma: no cover - a dependency
        raise IrkitError(
            "the ForensicArtifacts package (artifacts) is not installed",
            hint="pip install artifacts",
        ) from exc
    yaml_reader = reader.YamlArtifactsReader()
    by_name: dict[str, Any] = {}
    by_alias: dict[str, Any] = {}
    bundled = Path(artifacts.__file__).parent / "data"
    files = sorted(bundled.glob("*.yaml"))
    own = own_definition_files()
    digest = hashlib.sha256()
    for path in [*files, *own]:
        try:
            definitions = list(yaml_reader.ReadFile(str(path)))
        except (art_errors.FormatError, OSError, ValueError) as exc:
            raise IrkitError(
                f"collection definitions in {path} cannot be read: {exc}",
                hint="fix the YAML (ForensicArtifacts format)",
            ) from exc
        if path in own:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        for definition in definitions:
            # irkit's own come last and may not silently replace a bundled one.
            key = definition.name.lower()
            if key in by_name:
                raise IrkitError(f"collection definition {definition.name} is defined twice")
            by_name[key] = definition
            for alias in definition.aliases:
                by_alias[alias.lower()] = definition
    return Definitions(by_name, by_alias, str(artifacts.__version__), digest.hexdigest())


def _applies(supported: Sequence[str], os_name: str) -> bool:
    return not supported or os_name in supported


def resolve_sources(
    definitions: Definitions, names: Iterable[str], os_name: str
) -> tuple[list[SourceSpec], list[str]]:
    """The sources of the named artifacts (groups expanded) that apply to ``os_name``.

    Returns the sources and the artifacts named that do not apply to that OS.
    Unknown names are a usage error.
    """
    sources: list[SourceSpec] = []
    not_for_os: list[str] = []
    seen: set[str] = set()

    def visit(name: str, top: bool) -> None:
        definition = definitions.get(name)
        if definition is None:
            raise UsageError(
                f"unknown artifact or profile: {name}",
                hint="profiles: "
                + ", ".join(definitions.profiles())
                + "; artifact names as in the ForensicArtifacts definitions",
            )
        key = definition.name.lower()
        if key in seen:
            return
        seen.add(key)
        if not _applies(definition.supported_os, os_name):
            if top:
                not_for_os.append(definition.name)
            return
        for source in definition.sources:
            if not _applies(source.supported_os, os_name):
                continue
            kind = source.type_indicator
            if kind == "ARTIFACT_GROUP":
                for member in source.names:
                    visit(member, False)
            elif kind in ("FILE", "PATH", "DIRECTORY"):
                sources.append(
                    SourceSpec(
                        definition.name,
                        "PATH" if kind == "DIRECTORY" else kind,
                        tuple(source.paths),
                        source.separator or "/",
                    )
                )
            elif kind == "COMMAND":
                sources.append(
                    SourceSpec(definition.name, kind, cmd=source.cmd, args=tuple(source.args or ()))
                )
            # REGISTRY_KEY, REGISTRY_VALUE and WMI need a live Windows API: the hives
            # themselves are collected as files instead.

    for name in names:
        visit(name, True)
    return sources, not_for_os
