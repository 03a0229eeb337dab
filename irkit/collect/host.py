"""Facts about the collecting host, for the manifest: who, what, where, since when."""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import sys
import time
from pathlib import Path
from typing import Any

from irkit.files.fileio import iso_ns


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _os_release() -> dict[str, str]:
    values = {}
    for line in _read("/etc/os-release").splitlines():
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip().strip('"')
    return values


def _addresses() -> tuple[list[str], list[str]]:
    try:
        import psutil

        ips, macs = set(), set()
        for addresses in psutil.net_if_addrs().values():
            for address in addresses:
                if address.family in (socket.AF_INET, socket.AF_INET6):
                    ips.add(address.address.split("%")[0])
                elif address.address and address.address != "00:00:00:00:00:00":
                    macs.add(address.address.lower())
        return sorted(ips), sorted(macs)
    except Exception:  # facts are best effort: never fail a collection for them
        return [], []


def _boot_time() -> str:
    try:
        import psutil

        return iso_ns(int(psutil.boot_time() * 1_000_000_000))
    except Exception:
        return ""


def host_facts() -> dict[str, Any]:
    """Hostname, OS, kernel, machine id, boot time, time zone, addresses."""
    release = _os_release()
    ips, macs = _addresses()
    offset = dt.datetime.now(dt.UTC).astimezone().utcoffset() or dt.timedelta()  # local zone
    minutes = int(offset.total_seconds() // 60)
    return {
        "hostname": socket.gethostname(),
        "os": {
            "system": platform.system(),
            "name": release.get("PRETTY_NAME", platform.platform()),
            "version": release.get("VERSION_ID", platform.version()),
            "arch": platform.machine(),
        },
        "kernel": {"release": platform.release(), "version": platform.version()},
        "machine_id": _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id"),
        "boot_time_utc": _boot_time(),
        "timezone": {
            "name": time.tzname[time.daylight and time.localtime().tm_isdst > 0],
            "zone": _zone(),
            "utc_offset": f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:"
            f"{abs(minutes) % 60:02d}",
        },
        "ip_addresses": ips,
        "mac_addresses": macs,
    }


def _zone() -> str:
    zone = _read("/etc/timezone")
    if zone:
        return zone
    try:
        link = os.readlink("/etc/localtime")
    except OSError:
        return os.environ.get("TZ", "")
    return link.split("zoneinfo/", 1)[-1]


def privileges() -> dict[str, Any]:
    """Who the collector ran as, and whether that can read everything."""
    euid = os.geteuid() if hasattr(os, "geteuid") else -1
    try:
        import pwd

        user = pwd.getpwuid(euid).pw_name
    except (ImportError, KeyError):
        user = os.environ.get("USER", "")
    return {"euid": euid, "user": user, "is_admin": euid == 0}


def tool_facts() -> dict[str, Any]:
    """irkit's name, version and Python."""
    from irkit import __version__

    return {
        "name": "irkit",
        "version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
