"""A target opened: its OS and its users found from what its root holds.

- ``detect_os``: the running system, or what the root holds (``Windows/System32``,
  ``System/Library/CoreServices``, ``etc``);
- the users: on Linux and macOS from the root's ``/etc/passwd`` and its home folders, on
  Windows from its ``Users`` (or ``Documents and Settings``) folder, names matched
  whatever their case; a home reached through a link is resolved inside the root;
- ``open_target``: the ``Target`` at a root, with its OS and users.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Final

from irkit.collect.target import LinkError, Target, User
from irkit.errors import UsageError

#: Folders under Users that are links or hold no profile of their own.
_NOT_PROFILES: Final = frozenset({"all users", "default user", "desktop.ini"})


def _find(base: str, *names: str) -> str | None:
    """``base/names...`` matched case-insensitively; the real path, or None."""
    current = base
    for name in names:
        try:
            listing = os.listdir(current)
        except OSError:
            return None
        hit = next((n for n in sorted(listing) if n.casefold() == name.casefold()), None)
        if hit is None:
            return None
        current = os.path.join(current, hit)
    return current


def detect_os(root: str, live: bool) -> str:
    """``Linux``, ``Windows`` or ``Darwin``: the running system, or what the root holds."""
    if live:
        return {"Linux": "Linux", "Darwin": "Darwin", "Windows": "Windows"}.get(
            platform.system(), "Linux"
        )
    if _find(root, "Windows", "System32") or _find(root, "WINNT", "System32"):
        return "Windows"
    if os.path.isdir(os.path.join(root, "System", "Library", "CoreServices")):
        return "Darwin"
    if os.path.isdir(os.path.join(root, "etc")):
        return "Linux"
    raise UsageError(
        f"cannot tell the OS of {root}: no Windows/System32, System/Library or etc folder",
        hint="point --root at the top of the file system, or name --profile",
    )


def _posix_users(target: Target) -> list[User]:
    users: dict[str, User] = {}
    passwd = os.path.join(target.root, "etc", "passwd")
    try:
        with open(passwd, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split(":")
        if len(fields) < 7 or line.startswith("#"):
            continue
        home = fields[5].strip("/")
        if not home or home in ("nonexistent", "dev/null", "var/empty", "bin", "usr/sbin"):
            continue
        try:
            real = target.resolve(os.path.join(target.root, home))
        except (LinkError, OSError):
            continue
        if os.path.isdir(real) and home not in users:
            users[home] = User(fields[0], home)
    homes = ("Users",) if target.os_name == "Darwin" else ("home",)
    for top in homes:
        for name in sorted(_safe_listdir(os.path.join(target.root, top))):
            home = f"{top}/{name}"
            if name != "Shared" and os.path.isdir(os.path.join(target.root, home)):
                users.setdefault(home, User(name, home))
    root_home = "var/root" if target.os_name == "Darwin" else "root"
    if os.path.isdir(os.path.join(target.root, root_home)):
        users.setdefault(root_home, User("root", root_home))
    return sorted(users.values(), key=lambda u: u.home)


def _windows_users(target: Target) -> list[User]:
    users: list[User] = []
    for top in ("Users", "Documents and Settings"):
        base = _find(target.root, top)
        if base is None or os.path.islink(base):
            continue
        for name in sorted(_safe_listdir(base)):
            path = os.path.join(base, name)
            if name.casefold() in _NOT_PROFILES or os.path.islink(path):
                continue
            if os.path.isdir(path):
                users.append(User(name, f"{os.path.basename(base)}/{name}"))
    return users


def _safe_listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def open_target(root: Path | None, excluded: frozenset[str] = frozenset()) -> Target:
    """The target at ``root`` (None: this live system), with its OS and users."""
    top = os.path.realpath(str(root) if root is not None else os.sep)
    if not os.path.isdir(top):
        raise UsageError(f"--root {root} is not a folder", hint="give a mounted image's top folder")
    live = top == os.sep
    target = Target(top, detect_os(top, live), live, excluded=excluded)
    target.users = _windows_users(target) if target.os_name == "Windows" else _posix_users(target)
    return target
