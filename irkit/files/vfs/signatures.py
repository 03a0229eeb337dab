"""Which files are storage-media images or archives: a cheap look at their bytes.

``container_kind(head, path)`` reads nothing but ``head`` (the first 4 KiB, which the
caller has already read) for most files. It reads a little more only when a format puts
its mark elsewhere: the VHD footer (the last 512 bytes, only for a file whose size is a
whole number of sectors), the ISO 9660 volume descriptor at 32 KiB (only for a size that
is a whole number of 2 KiB blocks), a 4 KiB-sector GPT header, and the start of a
compressed stream to see whether a tar is inside (at most 1 MiB of a bzip2 stream, whose
first block must be read whole; the output is capped at 512 bytes, so memory stays small).

No dfVFS here: discovery calls this on every file and must not pay dfVFS's import.
"""

from __future__ import annotations

import bz2
import lzma
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Final

#: How much of a file the caller should pass as ``head``.
HEAD_SIZE: Final = 4096

_SECTOR: Final = 512
_ISO_OFFSET: Final = 32769
#: At most this much of a compressed stream is read to find a tar header in it.
_MAX_COMPRESSED_PROBE: Final = 1 << 20
_TAR_BLOCK: Final = 512

#: Zip files that are documents or packages, not archives of evidence: their first member.
_ZIP_DOCUMENT_MEMBERS: Final = (
    b"[Content_Types].xml",  # Office Open XML (docx, xlsx, pptx)
    b"mimetype",  # OpenDocument, EPUB
    b"META-INF/",  # Java archives, signed packages
    b"AndroidManifest.xml",
)
#: Split raw segments after the first one (``.001`` only when a ``.000`` exists).
_SEGMENT: Final = re.compile(r"\.(?P<number>[0-9]{3})$")
_FLAT_VMDK: Final = re.compile(r"-(?:flat|f[0-9]{3})\.vmdk$", re.IGNORECASE)


def container_kind(head: bytes, path: Path, size: int | None = None) -> str | None:
    """What kind of image or archive ``path`` is, from its first bytes, or None.

    ``head`` is the file's first ``HEAD_SIZE`` bytes (fewer for a small file); ``size``
    its size, if known (else ``path`` is asked). Kinds: ``ewf``, ``qcow``, ``vhd``,
    ``vhdx``, ``vmdk``, ``luks``, ``bde``, ``gpt``, ``apm``, ``lvm``, ``mbr``, ``ntfs``,
    ``fat``, ``exfat``, ``ext``, ``hfs``, ``apfs``, ``xfs``, ``iso9660``, ``zip``,
    ``tar``, ``tar.gz``, ``tar.bz2``, ``tar.xz``. A later segment of a split image
    (``.E02``, ``.002``, ``.001`` beside a ``.000``, a VMDK extent) is None: the first
    segment stands for the set. A compressed file that does not hold a tar (a lone
    ``syslog.gz``) is None: plaso reads compressed streams itself.
    """
    if not head:
        return None
    if _later_segment(path):
        return None
    kind = _image_kind(head, path)
    if kind is None:
        kind = _volume_kind(head)
    if kind is None:
        kind = _archive_kind(head, path)
    if kind is None:
        kind = _extra_read_kind(head, path, size)
    return kind


def _later_segment(path: Path) -> bool:
    """A split raw image's second or later segment, or a VMDK's flat extent."""
    name = path.name
    match = _SEGMENT.search(name)
    if match:
        number = int(match["number"])
        if number >= 2:
            return True
        if number == 1:
            return path.with_name(name[:-3] + "000").exists()
    flat = _FLAT_VMDK.search(name)
    if flat is None:
        return False
    return path.with_name(name[: flat.start()] + ".vmdk").exists()


def _at(head: bytes, offset: int, mark: bytes) -> bool:
    return head[offset : offset + len(mark)] == mark


def _image_kind(head: bytes, path: Path) -> str | None:
    """Storage-media image formats, marked at offset 0."""
    if head[:8] in (b"EVF\x09\x0d\x0a\xff\x00", b"LVF\x09\x0d\x0a\xff\x00"):
        # EWF1: the segment number (little-endian u16) follows the signature and a byte.
        return "ewf" if len(head) >= 11 and struct.unpack_from("<H", head, 9)[0] == 1 else None
    if head[:8] in (b"EVF2\x0d\x0a\x81\x00", b"LEF2\x0d\x0a\x81\x00"):
        # EWF2 (Ex01, Lx01): u32 segment number at 12.
        return "ewf" if len(head) >= 16 and struct.unpack_from("<I", head, 12)[0] == 1 else None
    if head[:4] == b"QFI\xfb":
        return "qcow"
    if head[:8] == b"vhdxfile":
        return "vhdx"
    if head[:8] == b"conectix":  # a dynamic VHD keeps a copy of its footer first
        return "vhd"
    if head[:4] == b"KDMV":
        # Monolithic or stream-optimised sparse: the descriptor is inside (u64 offset
        # at 28). Without one it is an extent of a split set, opened through its
        # descriptor file.
        return "vmdk" if len(head) >= 36 and struct.unpack_from("<Q", head, 28)[0] else None
    if head[:4] == b"COWD":
        return "vmdk"
    if head.lstrip()[:21] == b"# Disk DescriptorFile":
        return "vmdk"
    if head[:6] == b"LUKS\xba\xbe":
        return "luks"
    if _at(head, 3, b"-FVE-FS-"):
        return "bde"
    return None


def _volume_kind(head: bytes) -> str | None:
    """Partition tables, volume managers and file systems marked in the first 4 KiB."""
    if _at(head, 512, b"EFI PART"):
        return "gpt"
    if head[:2] == b"ER" and _at(head, 512, b"PM"):
        return "apm"
    if any(_at(head, offset, b"LABELONE") for offset in (0, 512, 1024, 1536)):
        return "lvm"
    if head[:4] == b"XFSB":
        return "xfs"
    if _at(head, 3, b"NTFS    "):
        return "ntfs"
    if _at(head, 3, b"EXFAT   "):
        return "exfat"
    if _at(head, 32, b"NXSB"):
        return "apfs"
    boot = _at(head, 510, b"\x55\xaa")
    if boot and _is_fat(head):
        return "fat"
    if boot and _is_mbr(head):
        return "mbr"
    if _is_ext(head):
        return "ext"
    if _is_hfs(head):
        return "hfs"
    return None


def _is_fat(head: bytes) -> bool:
    label = _at(head, 54, b"FAT12   ") or _at(head, 54, b"FAT16   ") or _at(head, 54, b"FAT     ")
    if not (label or _at(head, 82, b"FAT32   ")):
        return False
    sector_size = struct.unpack_from("<H", head, 11)[0]
    return sector_size in (512, 1024, 2048, 4096) and head[13] != 0


def _is_mbr(head: bytes) -> bool:
    """A boot signature and a partition table a disk could have."""
    used = 0
    for index in range(4):
        entry = head[446 + 16 * index : 462 + 16 * index]
        status, kind = entry[0], entry[4]
        if status not in (0x00, 0x80):
            return False
        if kind == 0:
            continue
        start, count = struct.unpack_from("<II", entry, 8)
        if start == 0 or count == 0:
            return False
        used += 1
    return used > 0


def _is_ext(head: bytes) -> bool:
    """The ext2/3/4 superblock (at 1024): its magic and sane geometry."""
    if len(head) < 1024 + 80 or not _at(head, 1024 + 56, b"\x53\xef"):
        return False
    inodes, blocks = struct.unpack_from("<II", head, 1024)
    first_block, log_block = struct.unpack_from("<II", head, 1024 + 20)
    per_group = struct.unpack_from("<I", head, 1024 + 40)[0]
    revision = struct.unpack_from("<I", head, 1024 + 76)[0]
    return (
        inodes > 0 and blocks > 0 and first_block in (0, 1) and log_block <= 6
        and per_group > 0 and revision <= 1
    )  # fmt: skip


def _is_hfs(head: bytes) -> bool:
    """The HFS+ (``H+``, version 4) or HFSX (``HX``, version 5) volume header."""
    if len(head) < 1028:
        return False
    version = struct.unpack_from(">H", head, 1026)[0]
    return (_at(head, 1024, b"H+") and version == 4) or (_at(head, 1024, b"HX") and version == 5)


def _archive_kind(head: bytes, path: Path) -> str | None:
    if head[:4] == b"PK\x03\x04":
        return None if _zip_document(head) else "zip"
    if head[:4] in (b"PK\x05\x06", b"PK\x07\x08"):  # an empty or a spanned zip
        return "zip"
    if _is_tar(head):
        return "tar"
    if head[:2] == b"\x1f\x8b":
        return "tar.gz" if _compressed_tar(path, head, "gz") else None
    if head[:3] == b"BZh" and _at(head, 4, b"1AY&SY"):
        return "tar.bz2" if _compressed_tar(path, head, "bz2") else None
    if head[:6] == b"\xfd7zXZ\x00":
        return "tar.xz" if _compressed_tar(path, head, "xz") else None
    return None


def _zip_document(head: bytes) -> bool:
    if len(head) < 30:
        return False
    length = struct.unpack_from("<H", head, 26)[0]
    first = head[30 : 30 + length]
    return any(first.startswith(member) for member in _ZIP_DOCUMENT_MEMBERS)


def _is_tar(block: bytes) -> bool:
    """A tar header: POSIX/GNU ``ustar`` magic, or an old (v7) header whose checksum holds."""
    if len(block) < _TAR_BLOCK:
        return False
    if block[257:262] == b"ustar":
        return True
    if block[0] == 0:
        return False
    stored = block[148:156].split(b"\x00", 1)[0].strip()
    if not stored or any(c not in b"01234567" for c in stored):
        return False
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:_TAR_BLOCK])
    return int(stored, 8) == unsigned


def _compressed_tar(path: Path, head: bytes, method: str) -> bool:
    """Whether the compressed stream begins with a tar header (decompressing <= 512 bytes)."""
    try:
        first = _decompressed_start(path, head, method)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return False
    return _is_tar(first)


def _decompressed_start(path: Path, head: bytes, method: str) -> bytes:
    decompressor: zlib._Decompress | bz2.BZ2Decompressor | lzma.LZMADecompressor
    if method == "gz":
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return decompressor.decompress(head, _TAR_BLOCK)
    decompressor = bz2.BZ2Decompressor() if method == "bz2" else lzma.LZMADecompressor()
    output = decompressor.decompress(head, _TAR_BLOCK)
    if len(output) >= _TAR_BLOCK or len(head) < HEAD_SIZE:
        return output
    # A bzip2 block gives nothing until it has been read whole (up to ~900 kB).
    with path.open("rb") as stream:
        stream.seek(len(head))
        read = len(head)
        while len(output) < _TAR_BLOCK and read < _MAX_COMPRESSED_PROBE:
            if decompressor.eof:
                break
            chunk = stream.read(65536)
            if not chunk:
                break
            read += len(chunk)
            output += decompressor.decompress(chunk, _TAR_BLOCK - len(output))
    return output


def _extra_read_kind(head: bytes, path: Path, size: int | None) -> str | None:
    """Marks beyond the first 4 KiB: the VHD footer, ISO 9660, a 4 KiB-sector GPT."""
    if size is None:
        try:
            size = path.stat().st_size
        except OSError:
            return None
    if size < HEAD_SIZE or len(head) < HEAD_SIZE:
        return None
    want_vhd = size % _SECTOR == 0
    want_iso = size % 2048 == 0 and size >= _ISO_OFFSET + 5
    want_gpt = size % 4096 == 0 and size >= 4096 + 8
    if not (want_vhd or want_iso or want_gpt):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        if want_vhd and os.pread(fd, 8, size - _SECTOR) == b"conectix":
            return "vhd"
        if want_iso and os.pread(fd, 5, _ISO_OFFSET) == b"CD001":
            return "iso9660"
        if want_gpt and os.pread(fd, 8, 4096) == b"EFI PART":
            return "gpt"
    except OSError:
        return None
    finally:
        os.close(fd)
    return None
