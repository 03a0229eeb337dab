"""The system collected: its root, OS, users and path variables; definition paths globbed.

A target is the live system (root ``/``) or a mounted image or copied tree (``--root``).
Definition paths are expanded against it: ``%%environ_systemroot%%`` and friends,
``%%users.homedir%%`` and friends (one expansion per user), ``*`` and ``**N`` globs. On a
Windows target every name is matched case-insensitively. A symbolic link is resolved inside
the root (an absolute target is read as relative to the root, ``..`` stops at the root),
so a link never leads out of it.

``irkit.collect.discover`` opens a target: it finds its OS and its users.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import stat
from collections.abc import Callable, Iterator
from typing import Final

#: ``**`` without a number: ten levels, as plaso reads the format.
GLOBSTAR_DEPTH: Final = 10
MAX_LINKS: Final = 40
_VARIABLE: Final = re.compile(r"%%([A-Za-z0-9_.]+)%%")
_GLOB_CHARS: Final = re.compile(r"[*?\[]")
_WINDOWS_ENVIRON: Final = {
    "environ_systemdrive": "",
    "environ_systemroot": "Windows",
    "environ_windir": "Windows",
    "environ_programdata": "ProgramData",
    "environ_allusersappdata": "ProgramData",
    "environ_allusersprofile": "ProgramData",
    "environ_programfiles": "Program Files",
    "environ_programfilesx86": "Program Files (x86)",
    "environ_temp": "Windows/Temp",
    "environ_driverdata": "Windows/System32/Drivers/DriverData",
}


class LinkError(Exception):
    """A symbolic link loops or points nowhere inside the root."""


@dataclasses.dataclass(frozen=True, slots=True)
class User:
    """A user of the target: name and home folder, relative to the root ('/'-joined)."""

    name: str
    home: str


@dataclasses.dataclass(slots=True)
class Match:
    """A path a definition named: where it is under the root, and what it really is."""

    relative: tuple[str, ...]
    real: str
    link: str = ""


@dataclasses.dataclass(slots=True)
class Target:
    """The root collected and what its paths expand to."""

    root: str
    os_name: str
    live: bool
    users: list[User] = dataclasses.field(default_factory=list)
    #: Folders never entered: the collection's own output, pseudo-file systems.
    excluded: frozenset[str] = frozenset()
    _listings: dict[str, list[os.DirEntry[str]] | None] = dataclasses.field(default_factory=dict)

    @property
    def case_insensitive(self) -> bool:
        """Windows names match whatever their case."""
        return self.os_name == "Windows"

    def display(self, relative: tuple[str, ...]) -> str:
        """A path as the target's OS writes it (``C:\\Windows\\...`` or ``/var/log/...``)."""
        if self.os_name == "Windows":
            return "C:\\" + "\\".join(relative)
        return "/" + "/".join(relative)

    # -- expansion -----------------------------------------------------------------

    def expand(self, path: str, separator: str) -> list[tuple[str, ...]]:
        """A definition path as root-relative glob segments, one per user it names."""
        if separator == "\\" and self.os_name != "Windows":
            return []
        names = set(_VARIABLE.findall(path))
        bindings: list[dict[str, str]] = [{}]
        if any(n.startswith("users.") for n in names):
            bindings = [self._user_vars(user) for user in self.users]
        out: list[tuple[str, ...]] = []
        for binding in bindings:
            segments = self._substitute(path, separator, binding)
            if segments is not None and segments not in out:
                out.append(segments)
        return out

    def _user_vars(self, user: User) -> dict[str, str]:
        values = {"users.homedir": user.home, "users.username": user.name}
        if self.os_name == "Windows":
            home = user.home
            values |= {
                "users.userprofile": home,
                "users.appdata": f"{home}/AppData/Roaming",
                "users.localappdata": f"{home}/AppData/Local",
                "users.localappdata_low": f"{home}/AppData/LocalLow",
                "users.temp": f"{home}/AppData/Local/Temp",
                "users.sid": "\0*",  # unknown without the SAM: any
            }
        return values

    def _substitute(
        self, path: str, separator: str, binding: dict[str, str]
    ) -> tuple[str, ...] | None:
        values = dict(binding)
        if self.os_name == "Windows":
            values |= _WINDOWS_ENVIRON
        text = path.replace(separator, "/") if separator != "/" else path
        segments: list[str] = []
        for raw in text.split("/"):
            whole = _VARIABLE.fullmatch(raw)
            if whole:
                value = values.get(whole.group(1).lower())
                if value is None:
                    return None
                if value.startswith("\0"):
                    segments.append(value[1:])
                else:
                    segments += [_literal(part) for part in value.split("/") if part]
                continue
            missing = False

            def one(match: re.Match[str]) -> str:
                nonlocal missing
                value = values.get(match.group(1).lower())
                if value is None:
                    missing = True
                    return ""
                return value[1:] if value.startswith("\0") else _literal(value)

            segment = _VARIABLE.sub(one, raw)
            if missing:
                return None
            segments.append(segment)
        if segments and re.fullmatch(r"[A-Za-z]:", segments[0]):
            segments = segments[1:]
        cleaned = [s for s in segments if s not in ("", ".")]
        return tuple(cleaned) if cleaned else None

    # -- globbing --------------------------------------------------------------------

    def glob(
        self, segments: tuple[str, ...], on_skip: Callable[[str, str, str], None]
    ) -> Iterator[Match]:
        """Every path under the root the segments match (files, folders, links resolved).

        ``on_skip(path, reason, detail)`` hears of links that loop or lead nowhere and
        folders that cannot be listed.
        """
        yield from self._walk(segments, 0, (), self.root, on_skip)

    def _walk(
        self,
        segments: tuple[str, ...],
        index: int,
        logical: tuple[str, ...],
        real: str,
        on_skip: Callable[[str, str, str], None],
    ) -> Iterator[Match]:
        if index == len(segments):
            yield Match(logical, real)
            return
        segment = segments[index]
        last = index == len(segments) - 1
        if segment.startswith("**") and (segment == "**" or segment[2:].isdigit()):
            depth = int(segment[2:]) if segment != "**" else GLOBSTAR_DEPTH
            for rel, path, is_dir in self._descend(logical, real, depth, on_skip):
                if last:
                    if rel != logical:
                        yield from self._final(rel, path, on_skip)
                elif is_dir:
                    yield from self._walk(segments, index + 1, rel, path, on_skip)
            return
        wildcard = bool(_GLOB_CHARS.search(segment))
        for name, entry_path in self._children(real, segment, on_skip):
            child = (*logical, name)
            if last:
                yield from self._final(child, entry_path, on_skip)
                continue
            for match in self._final(child, entry_path, on_skip):
                # A folder named outright is entered even when excluded from listings
                # (/dev/shm under the devtmpfs /dev); a wildcard never enters one.
                if os.path.isdir(match.real) and not (wildcard and self._is_excluded(match.real)):
                    yield from self._walk(segments, index + 1, child, match.real, on_skip)

    def _final(
        self, child: tuple[str, ...], path: str, on_skip: Callable[[str, str, str], None]
    ) -> Iterator[Match]:
        """The path matched, its links resolved inside the root; nothing if it is absent."""
        try:
            info = os.lstat(path)
        except OSError:
            return
        if not stat.S_ISLNK(info.st_mode):
            yield Match(child, path)
            return
        link = ""
        try:
            link = os.readlink(path)
            real = self.resolve(path)
        except (LinkError, OSError) as exc:
            reason = "symlink-loop" if "loop" in str(exc) else "broken-link"
            on_skip(self.display(child), reason, f"link to {link or '?'}: {exc}")
            return
        yield Match(child, real, link)

    def _children(
        self, real: str, segment: str, on_skip: Callable[[str, str, str], None]
    ) -> Iterator[tuple[str, str]]:
        if not _GLOB_CHARS.search(segment) and not self.case_insensitive:
            yield segment, os.path.join(real, segment)
            return
        if self._is_excluded(real):
            return
        listing = self._list(real, on_skip)
        if not listing:
            return
        flags = re.IGNORECASE if self.case_insensitive else 0
        pattern = re.compile(fnmatch.translate(segment), flags | re.DOTALL)
        for entry in listing:
            if pattern.match(entry.name):
                yield entry.name, entry.path

    def _list(
        self, real: str, on_skip: Callable[[str, str, str], None]
    ) -> list[os.DirEntry[str]] | None:
        if real not in self._listings:
            try:
                with os.scandir(real) as it:
                    self._listings[real] = sorted(it, key=lambda e: e.name)
            except NotADirectoryError:
                self._listings[real] = None
            except FileNotFoundError:
                self._listings[real] = None
            except OSError as exc:
                on_skip(real, "unreadable-directory", exc.strerror or str(exc))
                self._listings[real] = None
        return self._listings[real]

    def _descend(
        self,
        logical: tuple[str, ...],
        real: str,
        depth: int,
        on_skip: Callable[[str, str, str], None],
    ) -> Iterator[tuple[tuple[str, ...], str, bool]]:
        """The folder itself and everything below it to ``depth`` levels; links to
        folders are not entered (a globstar must end)."""
        yield logical, real, True
        if depth <= 0 or self._is_excluded(real):
            return
        for entry in self._list(real, on_skip) or []:
            child = (*logical, entry.name)
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                yield from self._descend(child, entry.path, depth - 1, on_skip)
            else:
                yield child, entry.path, False

    def _is_excluded(self, real: str) -> bool:
        return real in self.excluded

    def resolve(self, path: str) -> str:
        """``path`` (under the root) with every link resolved inside the root."""
        rel = os.path.relpath(path, self.root)
        parts = [] if rel == "." else rel.split(os.sep)
        done: list[str] = []
        links = 0
        while parts:
            part = parts.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = os.path.join(self.root, *done, part)
            try:
                info = os.lstat(candidate)
            except FileNotFoundError as exc:
                raise LinkError("points nowhere inside the root") from exc
            if stat.S_ISLNK(info.st_mode):
                links += 1
                if links > MAX_LINKS:
                    raise LinkError("symbolic link loop")
                target = os.readlink(candidate)
                if target.startswith("/"):
                    done = []
                parts = [p for p in target.split("/") if p] + parts
                continue
            done.append(part)
        return os.path.join(self.root, *done)


def _literal(text: str) -> str:
    """Text as a glob that matches only itself."""
    return re.sub(r"([*?\[])", r"[\1]", text)
