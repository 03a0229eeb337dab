"""The volumes of an image and the file system on each, found with dfVFS's source scanner.

dfVFS's ``SourceScanner`` finds the image format (``ScanForStorageMediaImage``), the
volume system in it (``ScanForVolumeSystem``: MBR, GPT, APM, LVM, APFS container, Core
Storage, VSS) and the file system on each volume (``ScanForFileSystem``). Its own
``Scan`` stops at the first error; here each volume is scanned on its own, so a damaged
or encrypted partition is one named warning and the others are still walked:

- an encrypted volume (BitLocker, LUKS1, Core Storage, an APFS volume) that does not
  open without a key: ``encrypted-volume``, skipped (dfVFS is given no key);
- a volume without a file system dfVFS reads: ``no-filesystem``;
- an image dfVFS cannot open (truncated, damaged): ``unreadable-image``; a volume in
  it: ``unreadable-volume``; a LUKS2 volume (libluksde reads LUKS1 only):
  ``encrypted-volume``.

VSS stores are scanned only when asked (``vss=True``); otherwise they are listed with
status ``vss-skipped``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

from dfvfs.helpers import source_scanner
from dfvfs.lib import definitions
from dfvfs.lib import errors as dfvfs_errors
from dfvfs.path import factory
from dfvfs.resolver import resolver

from irkit.files.vfs.warn import Warner, short_error

#: Volumes inside volumes deeper than this are not followed (a damaged table can nest).
MAX_DEPTH: Final = 6

#: What dfVFS raises for a format it cannot read; ``RuntimeError`` comes from pytsk3.
DFVFS_ERRORS: Final = (
    dfvfs_errors.Error,
    OSError,
    ValueError,
    RuntimeError,
    KeyError,
    TypeError,
    IndexError,
)

_ENCRYPTED: Final = frozenset(
    {
        definitions.TYPE_INDICATOR_APFS_CONTAINER,
        definitions.TYPE_INDICATOR_BDE,
        definitions.TYPE_INDICATOR_CS,
        definitions.TYPE_INDICATOR_LUKSDE,
    }
)
_NAMES: Final = {
    definitions.TYPE_INDICATOR_BDE: "BitLocker",
    definitions.TYPE_INDICATOR_LUKSDE: "LUKS",
    definitions.TYPE_INDICATOR_CS: "Core Storage",
    definitions.TYPE_INDICATOR_APFS_CONTAINER: "APFS",
}


@dataclasses.dataclass(slots=True)
class Volume:
    """One volume of an image: where it is and what is on it.

    ``label``: ``""`` for an image that is one file system, else the volume's place
    (``/p1``, ``/lvm1``, ``/vss2``, ``/p2/vss1``); ``status``: ``ok`` (``file_system``
    is the dfVFS path spec of its file system), ``encrypted``, ``vss-skipped`` or
    ``no-filesystem``; ``kind``: the dfVFS type indicator of the file system or volume.
    """

    label: str
    status: str
    kind: str
    file_system: Any = None


def os_path_spec(path: str) -> Any:
    return factory.Factory.NewPathSpec(definitions.TYPE_INDICATOR_OS, location=path)


class VolumeScan:
    """Scans one image; ``volumes`` lists what it found, in order."""

    def __init__(self, image: str, context: Any, warner: Warner, vss: bool) -> None:
        self.image = image
        self.context = context
        self.warner = warner
        self.vss = vss
        self.scanner = source_scanner.SourceScanner(resolver_context=context)
        self.volumes: list[Volume] = []

    def scan(self, path: str) -> list[Volume]:
        """The volumes of the image at ``path`` (warnings for what cannot be read)."""
        top = os_path_spec(path)
        try:
            image_spec = self.scanner.ScanForStorageMediaImage(top)
        except DFVFS_ERRORS as exc:
            self._failed(self.image, "", exc)
            return self.volumes
        self._volume(image_spec or top, "", 0)
        if not any(v.status == "ok" for v in self.volumes) and not self.warner.count:
            self.warner.warn(self.image, "no-filesystem", "no volume or file system dfVFS can read")
        return self.volumes

    def _add(self, label: str, status: str, kind: str, spec: Any = None) -> None:
        self.volumes.append(Volume(label, status, kind, spec))

    def _volume(self, spec: Any, label: str, depth: int) -> None:
        where = f"{self.image}::{label}" if label else self.image
        if depth > MAX_DEPTH:
            self.warner.warn(where, "volume-too-deep", "volumes nested too deep: not followed")
            return
        kind = spec.type_indicator
        try:
            encrypted = kind in _ENCRYPTED and not spec.IsVolumeSystemRoot()
            if encrypted and not self._unlocked(spec, label, where):
                return
            found = self.scanner.ScanForVolumeSystem(spec)
            if found is not None and found.IsVolumeSystemRoot():
                self._volume_system(found, label, depth)
                return
            if found is not None and found != spec:
                self._volume(found, label, depth + 1)
                return
            file_system = self.scanner.ScanForFileSystem(spec)
        except DFVFS_ERRORS as exc:
            self._failed(where, label, exc)
            return
        if file_system is None:
            self._add(label, "no-filesystem", kind)
            if label:
                self.warner.warn(
                    where, "no-filesystem", "no file system dfVFS can read on this volume"
                )
            return
        file_system = self._preferred(file_system)
        self._add(label, "ok", file_system.type_indicator, file_system)

    def _preferred(self, file_system: Any) -> Any:
        """TSK rather than libfsfat for FAT: libfsfat-python 20260826 dates FAT entries a
        month late (2020-03-15 as 2020-04-16); TSK reads the same directory entries right."""
        if file_system.type_indicator != definitions.TYPE_INDICATOR_FAT:
            return file_system
        tsk = factory.Factory.NewPathSpec(
            definitions.TYPE_INDICATOR_TSK, location="/", parent=file_system.parent
        )
        try:
            resolver.Resolver.OpenFileSystem(tsk, resolver_context=self.context)
        except DFVFS_ERRORS:
            return file_system
        return tsk

    def _failed(self, where: str, label: str, exc: BaseException) -> None:
        reason = short_error(exc)
        if "luksde" in str(exc):
            self.warner.warn(
                where, "encrypted-volume",
                f"LUKS encrypted volume dfVFS cannot open (LUKS2 is not supported): {reason}",
            )  # fmt: skip
        elif label:
            self.warner.warn(where, "unreadable-volume", f"cannot read the volume: {reason}")
        else:
            self.warner.warn(
                where,
                "unreadable-image",
                f"cannot read the image (truncated or damaged?): {reason}",
            )

    def _unlocked(self, spec: Any, label: str, where: str) -> bool:
        """Whether an encrypted volume opens without a key (a clear key, a suspended
        BitLocker); else warn. BitLocker To Go's readable part is still scanned."""
        entry = resolver.Resolver.OpenFileEntry(spec, resolver_context=self.context)
        if entry is not None and entry.Unlock():
            return True
        kind = spec.type_indicator
        self._add(label, "encrypted", kind)
        self.warner.warn(
            where, "encrypted-volume",
            f"{_NAMES.get(kind, kind)} encrypted volume: no key given, not read",
        )  # fmt: skip
        if kind == definitions.TYPE_INDICATOR_BDE and spec.parent is not None:
            plain = self.scanner.ScanForFileSystem(spec.parent)
            if plain is not None:
                plain = self._preferred(plain)
                self._add(label, "ok", plain.type_indicator, plain)
        return False

    def _volume_system(self, root: Any, label: str, depth: int) -> None:
        kind = root.type_indicator
        if kind == definitions.TYPE_INDICATOR_VSHADOW:
            self._shadow_copies(root, label)
            return
        entry = resolver.Resolver.OpenFileEntry(root, resolver_context=self.context)
        subs = [] if entry is None else list(entry.sub_file_entries)
        if kind == definitions.TYPE_INDICATOR_GPT and not subs:
            # An empty GPT in front of MBR partitions (dfVFS's scanner does the same).
            mbr = factory.Factory.NewPathSpec(
                definitions.PREFERRED_MBR_BACK_END, location="/", parent=root.parent
            )
            entry = resolver.Resolver.OpenFileEntry(mbr, resolver_context=self.context)
            subs = [] if entry is None else list(entry.sub_file_entries)
        for sub in subs:
            location = getattr(sub.path_spec, "location", None)
            if not location:  # unallocated space between partitions
                continue
            self._volume(sub.path_spec, label + location, depth + 1)

    def _shadow_copies(self, root: Any, label: str) -> None:
        """The live volume first, then each VSS store (when asked) as ``/vssN``."""
        live = self.scanner.ScanForFileSystem(root.parent)
        if live is not None:
            self._add(label, "ok", live.type_indicator, live)
        else:
            self._add(label, "no-filesystem", root.parent.type_indicator)
        entry = resolver.Resolver.OpenFileEntry(root, resolver_context=self.context)
        for sub in [] if entry is None else entry.sub_file_entries:
            location = getattr(sub.path_spec, "location", None)
            if not location:
                continue
            store_label = label + location
            if not self.vss:
                self._add(store_label, "vss-skipped", definitions.TYPE_INDICATOR_VSHADOW)
                continue
            try:
                file_system = self.scanner.ScanForFileSystem(sub.path_spec)
            except DFVFS_ERRORS as exc:
                self.warner.warn(
                    f"{self.image}::{store_label}", "unreadable-volume",
                    f"cannot read the shadow copy: {short_error(exc)}",
                )  # fmt: skip
                continue
            if file_system is None:
                self._add(store_label, "no-filesystem", definitions.TYPE_INDICATOR_VSHADOW)
                continue
            self._add(store_label, "ok", file_system.type_indicator, file_system)
