"""irkit.files.vfs: disk images and archives through dfVFS (issue #14).

The corpus samples (../shared/corpus/dfvfs-test-data, plaso-test-data; their SOURCE.md
gives the expected listings) and bad input made in tmp_path: truncated images, an
encrypted volume without a key, decompression bombs, ``../`` member names, a sparse file.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from irkit.errors import EvidenceError, IrkitError
from irkit.files.vfs import (
    HEAD_SIZE,
    Entry,
    EntryTooBigError,
    ImageReadError,
    container_kind,
    copy_out,
    entry_fields,
    entry_rows,
    open_entry,
    release,
    scan_volumes,
    walk,
)
from irkit.model import ParseWarning

pytestmark = pytest.mark.corpus

#: The entries of ext2.raw (SOURCE.md): path, type, size (None: not compared), inode.
EXT2 = {
    "/": ("d", None, 2),
    "/a_directory": ("d", None, 12),
    "/a_directory/a_file": ("r", 53, 13),
    "/a_directory/another_file": ("r", 22, 15),
    "/a_link": ("l", None, 16),
    "/lost+found": ("d", None, 11),
    "/passwords.txt": ("r", 116, 14),
}
EXT2_CONTAINERS = (
    "ext2.raw", "ext2.splitraw.000", "ext2.E01", "ext2.split.E01", "ext2.qcow2", "ext2.vhd",
    "ext2.vmdk",
)  # fmt: skip
PASSWORDS = b"place,user,password\nbank,joesmith,superrich\nalarm system,-,1234\n"
GIB = 1 << 30


@pytest.fixture(scope="module")
def dfvfs_data(corpus: Path) -> Path:
    path = corpus / "dfvfs-test-data" / "test_data"
    if not path.is_dir():
        pytest.skip(f"{path} not in the corpus")
    return path


@pytest.fixture(scope="module")
def plaso_data(corpus: Path) -> Path:
    path = corpus / "plaso-test-data" / "test_data"
    if not path.is_dir():
        pytest.skip(f"{path} not in the corpus")
    return path


def kind_of(path: Path) -> str | None:
    with path.open("rb") as stream:
        return container_kind(stream.read(HEAD_SIZE), path)


def listing(path: Path, **options: object) -> tuple[list[Entry], list[ParseWarning]]:
    warnings: list[ParseWarning] = []
    entries = list(walk(path, warnings=warnings, **options))  # type: ignore[arg-type]
    return entries, warnings


def read(entry: Entry) -> bytes:
    with open_entry(entry.path_spec) as stream:
        return stream.read()


# --- Bad input, made in tmp_path ------------------------------------------------------


def deflate_zeros(prefix: bytes, zeros: int) -> tuple[bytes, int]:
    """Raw deflate of ``prefix`` then ``zeros`` zero bytes, and its CRC-32, made fast:
    after a full flush the compressor's output for 1 MiB of zeros repeats exactly."""
    chunk = 1 << 20
    count, rest = divmod(zeros, chunk)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.compress(bytes(rest)) + compressor.flush(zlib.Z_FINISH)
    crc = zlib.crc32(prefix)
    zero = bytes(chunk)
    for _ in range(count):
        crc = zlib.crc32(zero, crc)
    crc = zlib.crc32(bytes(rest), crc)
    return head + block * count + tail, crc


def make_tgz_bomb(path: Path, size: int) -> Path:
    """A tar.gz whose one member is ``size`` zero bytes: about 1000:1."""
    info = tarfile.TarInfo("zeros.bin")
    info.size = size
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    trailer = (-size) % 512 + 2 * 512
    trailer += (-(len(header) + size + trailer)) % tarfile.RECORDSIZE
    body, crc = deflate_zeros(header, size + trailer)
    gz = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03" + body
    gz += struct.pack("<II", crc, (len(header) + size + trailer) & 0xFFFFFFFF)
    path.write_bytes(gz)
    return path


def make_zip_bomb(path: Path, size: int) -> Path:
    """A zip whose one member, ``zeros.bin``, inflates to ``size`` zero bytes."""
    body, crc = deflate_zeros(b"", size)
    name = b"zeros.bin"
    local = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(body), size, len(name), 0
    )
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(body), size,
        len(name), 0, 0, 0, 0, 0, 0,
    )  # fmt: skip
    offset = len(local) + len(name) + len(body)
    directory = central + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(directory), offset, 0)
    path.write_bytes(local + name + body + directory + end)
    return path


def make_luks1_header(path: Path) -> Path:
    """A LUKS1 header (no key material worth the name): dfVFS sees a LUKS volume."""
    header = b"LUKS\xba\xbe" + struct.pack(">H", 1)
    header += b"aes".ljust(32, b"\0") + b"xts-plain64".ljust(32, b"\0")
    header += b"sha256".ljust(32, b"\0")
    header += struct.pack(">II", 4096, 64) + bytes(20) + bytes(32) + struct.pack(">I", 1000)
    header += b"2a1c1c8e-4a0b-4b7e-9a55-0c1d2e3f4a5b".ljust(40, b"\0")
    header += struct.pack(">II", 0x00AC71F3, 1000) + bytes(32) + struct.pack(">II", 8, 4000)
    for _ in range(7):
        header += struct.pack(">II", 0x0000DEAD, 0) + bytes(32) + struct.pack(">II", 0, 4000)
    path.write_bytes(header.ljust(4 << 20, b"\0"))
    return path


def make_gpt_disk(path: Path, file_system: bytes) -> Path:
    """A GPT disk (protective MBR, both headers) with one Linux partition at LBA 2048."""
    sector, first = 512, 2048
    count = len(file_system) // sector
    last_lba = first + count + 33
    linux = bytes.fromhex("af3dc60f838472478e793d69d8477de4")  # 0FC63DAF-… mixed-endian
    entry = linux + bytes(range(16)) + struct.pack("<QQQ", first, first + count - 1, 0)
    entries = (entry + "ext2".encode("utf-16-le").ljust(72, b"\0")).ljust(128 * 128, b"\0")

    def header(current: int, backup: int, table: int) -> bytes:
        fields = struct.pack(
            "<8sIIIIQQQQ16sQIII", b"EFI PART", 0x10000, 92, 0, 0, current, backup, 34,
            last_lba - 34, bytes(range(16, 32)), table, 128, 128, zlib.crc32(entries),
        )  # fmt: skip
        crc = zlib.crc32(fields)
        return (fields[:16] + struct.pack("<I", crc) + fields[20:]).ljust(sector, b"\0")

    mbr = bytearray(sector)
    mbr[446:462] = struct.pack("<BBBBBBBBII", 0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF, 1, last_lba)
    mbr[510:512] = b"\x55\xaa"
    disk = bytearray((last_lba + 1) * sector)
    disk[:sector] = mbr
    disk[sector : 2 * sector] = header(1, last_lba, 2)
    disk[2 * sector : 34 * sector] = entries
    disk[first * sector : (first + count) * sector] = file_system
    disk[(last_lba - 32) * sector : last_lba * sector] = entries
    disk[last_lba * sector :] = header(last_lba, 1, last_lba - 32)
    path.write_bytes(bytes(disk))
    return path


def make_fat12(path: Path, name: bytes, data: bytes, when: tuple[int, ...]) -> Path:
    """A 32 KiB FAT12 volume holding one file in its root, dated ``when`` (local time)."""
    year, month, day, hour, minute, second = when
    boot = bytearray(512)
    boot[:36] = b"\xeb\x3c\x90MSWIN4.1" + struct.pack(
        "<HBHBHHBHHHII", 512, 1, 1, 2, 16, 64, 0xF8, 1, 32, 2, 0, 0
    )
    boot[36:62] = struct.pack("<BBBI11s8s", 0x80, 0, 0x29, 0x1234, b"NO NAME    ", b"FAT12   ")
    boot[510:512] = b"\x55\xaa"
    fat = b"\xf8\xff\xff\xff\x0f".ljust(512, b"\0")  # cluster 2: end of chain
    stamp = struct.pack(
        "<HH",
        (hour << 11) | (minute << 5) | (second // 2),
        ((year - 1980) << 9) | (month << 5) | day,
    )
    entry = (
        name + b"\x20\0\0" + stamp + stamp[2:] + b"\0\0" + stamp + struct.pack("<HI", 2, len(data))
    )
    volume = bytes(boot) + fat + fat + entry.ljust(512, b"\0") + data.ljust(512, b"\0")
    path.write_bytes(volume.ljust(64 * 512, b"\0"))
    return path


def make_luks_with_cryptsetup(path: Path, version: int) -> Path:
    cryptsetup = shutil.which("cryptsetup")
    if cryptsetup is None:
        pytest.skip("cryptsetup is not installed (apt-get install cryptsetup-bin)")
    with path.open("wb") as stream:
        stream.truncate((8 if version == 1 else 20) << 20)
    options = ["--pbkdf", "pbkdf2"] if version == 2 else []
    result = subprocess.run(
        [
            cryptsetup, "luksFormat", "--type", f"luks{version}", "--batch-mode",
            "--key-file", "-", "--pbkdf-force-iterations", "1000", *options, str(path),
        ],
        input=b"not-the-key", capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    if result.returncode != 0:
        pytest.skip(f"cryptsetup luksFormat failed: {result.stderr.decode(errors='replace')}")
    return path


def cut_copy(source: Path, target: Path, size: int) -> Path:
    with source.open("rb") as stream:
        target.write_bytes(stream.read(size))
    return target


def kinds(warnings: list[ParseWarning]) -> set[str]:
    return {w.kind for w in warnings}


# --- container_kind -------------------------------------------------------------------


def test_container_kind_of_the_corpus(dfvfs_data: Path, plaso_data: Path) -> None:
    expected = {
        "ext2.raw": "ext", "ext2.splitraw.000": "ext", "ext2.E01": "ewf",
        "ext2.split.E01": "ewf", "ext2.qcow2": "qcow", "ext2.vhd": "vhd",
        "ext2.vmdk": "vmdk", "mbr.raw": "mbr", "windows_volume.qcow2": "qcow",
        "lvm.qcow2": "qcow", "iso9660.raw": "iso9660",
        # Negatives: later segments, not images, a lone compressed stream.
        "ext2.splitraw.001": None, "ext2.split.E02": None, "bogus.001": None,
        "mactime.body": None, "corrupt1.gz": None, "fls_bodyfile.txt": None,
    }  # fmt: skip
    for name, kind in expected.items():
        assert kind_of(dfvfs_data / name) == kind, name
    plaso = {
        "vsstest.qcow2": "qcow", "syslog.tar": "tar", "syslog.zip": "zip",
        "syslog.tgz": "tar.gz", "syslog.gz": None, "syslog.bz2": None, "syslog.xz": None,
        "recycler/$II3DF3L.zip": None,
    }  # fmt: skip
    for name, kind in plaso.items():
        assert kind_of(plaso_data / name) == kind, name


def test_container_kind_agrees_with_dfvfs(dfvfs_data: Path, plaso_data: Path) -> None:
    """Every image container_kind accepts has a file system dfVFS reads; the negatives none."""
    from dfvfs.analyzer import analyzer
    from dfvfs.path import factory

    for path in sorted(dfvfs_data.iterdir()):
        warnings: list[ParseWarning] = []
        readable = any(v.status == "ok" for v in scan_volumes(path, warnings=warnings))
        if path.name in ("ext2.splitraw.001", "ext2.split.E02"):
            continue  # later segments: dfVFS opens the set from any of them
        assert readable == (kind_of(path) is not None), path.name
    for name, indicator in (("syslog.tar", "TAR"), ("syslog.zip", "ZIP")):
        spec = factory.Factory.NewPathSpec("OS", location=str(plaso_data / name))
        assert analyzer.Analyzer.GetArchiveTypeIndicators(spec) == [indicator]
    spec = factory.Factory.NewPathSpec("OS", location=str(plaso_data / "syslog.tgz"))
    assert analyzer.Analyzer.GetCompressedStreamTypeIndicators(spec) == ["GZIP"]


def test_container_kind_of_made_samples(tmp_path: Path) -> None:
    plain = tmp_path / "notes.txt"
    plain.write_text("hello\n" * 1000)
    assert kind_of(plain) is None
    assert container_kind(b"", plain) is None
    # Zip documents are not archives of evidence; archives are, whatever their name.
    docx = tmp_path / "report.docx"
    with zipfile.ZipFile(docx, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
    assert kind_of(docx) is None
    for mode, kind in (("w:gz", "tar.gz"), ("w:bz2", "tar.bz2"), ("w:xz", "tar.xz"), ("w", "tar")):
        archive_path = tmp_path / f"logs.{kind}.bin"
        with tarfile.open(archive_path, mode) as tar:  # type: ignore[call-overload]
            data = os.urandom(200_000)  # a bzip2 block that is not tiny
            info = tarfile.TarInfo("var/log/messages")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        assert kind_of(archive_path) == kind, mode
    v7 = tmp_path / "old.tar"
    with tarfile.open(v7, "w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("a")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    block = bytearray(v7.read_bytes())
    block[257:265] = bytes(8)  # no ustar magic: a v7 header, recognised by its checksum
    block[148:156] = b"%06o\0 " % (sum(block[:148]) + 256 + sum(block[156:512]))
    v7.write_bytes(bytes(block))
    assert kind_of(v7) == "tar"


# --- One file system, seven containers ------------------------------------------------


def ext2_view(entries: list[Entry]) -> dict[str, tuple[str, int, int | None, str, str, str]]:
    return {
        e.path: (e.type, e.size, e.inode, e.mtime, e.atime, e.ctime)
        for e in entries
    }  # fmt: skip


def check_ext2(entries: list[Entry], volume: str = "") -> None:
    paths = {e.path: e for e in entries}
    assert set(paths) == set(EXT2)
    for path, (kind, size, inode) in EXT2.items():
        entry = paths[path]
        assert (entry.type, entry.inode, entry.volume) == (kind, inode, volume), path
        if size is not None:
            assert entry.size == size, path
        assert entry.inner == volume + path
        assert entry.display.endswith("::" + volume + path)
    assert paths["/a_link"].target == "a_directory/another_file"
    assert paths["/passwords.txt"].mode == "-rw-rw-r--"
    assert (paths["/passwords.txt"].uid, paths["/passwords.txt"].gid) == (1000, 1000)
    assert paths["/passwords.txt"].mtime.endswith("+00:00")
    assert paths["/passwords.txt"].btime == ""  # ext2 keeps no birth time


def test_ext2_is_the_same_in_every_container(dfvfs_data: Path) -> None:
    reference, warnings = listing(dfvfs_data / "ext2.raw")
    assert warnings == []
    check_ext2(reference)
    assert ext2_view(reference)["/passwords.txt"][3] == "2021-07-22T14:07:32+00:00"
    for name in EXT2_CONTAINERS:
        entries, warnings = listing(dfvfs_data / name, display=name)
        assert warnings == [], name
        check_ext2(entries)
        assert ext2_view(entries) == ext2_view(reference), name
        assert {e.display for e in entries} == {f"{name}::{p}" for p in EXT2}
        by_path = {e.path: e for e in entries}
        assert read(by_path["/passwords.txt"]).startswith(PASSWORDS), name
        with open_entry(by_path["/a_directory/another_file"].path_spec) as stream:
            stream.seek(10)
            assert stream.read(5) == b"other", name


def test_lvm_volume_holds_the_ext2_file_system(dfvfs_data: Path) -> None:
    entries, warnings = listing(dfvfs_data / "lvm.qcow2", display="lvm.qcow2")
    assert warnings == []
    check_ext2(entries, volume="/lvm1")
    passwords = next(e for e in entries if e.path == "/passwords.txt")
    assert passwords.display == "lvm.qcow2::/lvm1/passwords.txt"
    assert read(passwords).startswith(PASSWORDS)


def test_mbr_gives_both_partitions(dfvfs_data: Path) -> None:
    entries, warnings = listing(dfvfs_data / "mbr.raw", display="mbr.raw")
    assert warnings == []
    assert {e.volume for e in entries} == {"/p1", "/p5"}
    for volume in ("/p1", "/p5"):
        check_ext2([e for e in entries if e.volume == volume], volume=volume)
    roots = [e.display for e in entries if e.path == "/"]
    assert roots == ["mbr.raw::/p1/", "mbr.raw::/p5/"]
    for entry in entries:
        if entry.path == "/passwords.txt":
            assert read(entry).startswith(PASSWORDS)
    volumes = scan_volumes(dfvfs_data / "mbr.raw", warnings=warnings)
    assert [(v.label, v.status, v.kind) for v in volumes] == [
        ("/p1", "ok", "EXT"), ("/p5", "ok", "EXT"),
    ]  # fmt: skip


def test_gpt_partition(dfvfs_data: Path, tmp_path: Path) -> None:
    disk = make_gpt_disk(tmp_path / "gpt.raw", (dfvfs_data / "ext2.raw").read_bytes())
    assert kind_of(disk) == "gpt"
    entries, warnings = listing(disk, display="gpt.raw")
    assert warnings == []
    check_ext2(entries, volume="/p1")
    passwords = next(e for e in entries if e.path == "/passwords.txt")
    assert passwords.display == "gpt.raw::/p1/passwords.txt"
    assert read(passwords).startswith(PASSWORDS)
    volumes = scan_volumes(disk, warnings=warnings)
    assert [(v.label, v.status, v.kind) for v in volumes] == [("/p1", "ok", "EXT")]


def test_fat_dates_and_local_time(tmp_path: Path) -> None:
    image = make_fat12(
        tmp_path / "fat.raw", b"OLD     TXT", b"fat content\n", (2020, 3, 15, 10, 20, 30)
    )
    assert kind_of(image) == "fat"
    entries, warnings = listing(image, display="fat.raw")
    assert [(e.path, e.type) for e in entries] == [("/", "d"), ("/OLD.TXT", "r")]
    old = entries[1]
    assert old.size == 12
    # TSK, not libfsfat (a month late in 20260826): the date as written.
    assert (old.mtime, old.btime) == ("2020-03-15T10:20:30+00:00", "2020-03-15T10:20:30+00:00")
    assert read(old) == b"fat content\n"
    assert kinds(warnings) == {"local-time"}


def test_windows_volume_ntfs(dfvfs_data: Path) -> None:
    entries, warnings = listing(dfvfs_data / "windows_volume.qcow2", display="win.qcow2")
    assert warnings == []
    paths = {e.path: e for e in entries}
    syslog = paths["/Windows/System32/config/syslog"]
    assert (syslog.type, syslog.size, syslog.display) == (
        "r", 1247, "win.qcow2::/Windows/System32/config/syslog",
    )  # fmt: skip
    assert syslog.inode == 67  # the MFT entry, not the file reference
    assert syslog.uid is None and syslog.mode == "----------"
    assert syslog.mtime == "2016-08-06T12:32:12.6630603+00:00"  # 100 ns, as NTFS keeps it
    assert syslog.btime == "2016-08-06T12:32:12.6627548+00:00"
    content = read(syslog)
    assert len(content) == 1247 and content.startswith(b"Jan 22 07:52:33")
    assert {"/Windows", "/Windows/System32", "/$MFT", "/$Extend/$Quota"} <= set(paths)
    assert paths["/$MFT"].mtime == ""  # FILETIME 0: never set
    quota = paths["/$Extend/$Quota"]  # indexes, no $DATA: listed, not to be read
    assert (quota.type, quota.status) == ("r", "not-regular") and "metadata" in quota.note
    with pytest.raises(ImageReadError, match=r"::/\$Extend/\$Quota: "):
        open_entry(quota.path_spec)
    # An alternate data stream is one more entry, readable on its own.
    info = paths["/$UpCase:$Info"]
    assert (info.type, info.size, info.stream) == ("r", 32, "$Info")
    assert len(read(info)) == 32
    assert len(read(paths["/$UpCase"])) == 131072


def test_iso9660_lists_its_files(dfvfs_data: Path) -> None:
    entries, warnings = listing(dfvfs_data / "iso9660.raw")
    assert warnings == []
    paths = {e.path: e for e in entries}
    # TSK drops the ";1" version suffix; its virtual $OrphanFiles is not walked.
    assert set(paths) == {
        "/", "/A_DIRECTORY", "/A_DIRECTORY/A_FILE", "/A_DIRECTORY/ANOTHER_FILE",
        "/LOST_FOUND", "/PASSWORDS.TXT",
    }  # fmt: skip
    assert paths["/PASSWORDS.TXT"].size == 116
    assert read(paths["/PASSWORDS.TXT"]).startswith(PASSWORDS)


def test_vss_stores_only_when_asked(plaso_data: Path) -> None:
    image = plaso_data / "vsstest.qcow2"
    live, warnings = listing(image, display="vsstest.qcow2")
    assert warnings == []
    assert {e.volume for e in live} == {""}
    assert "vsstest.qcow2::/password.txt" in {e.display for e in live}
    everything, warnings = listing(image, vss=True, display="vsstest.qcow2")
    assert warnings == []
    assert {e.volume for e in everything} == {"", "/vss1", "/vss2"}
    by_inner = {e.inner: e for e in everything}
    assert {e.inner for e in live} <= set(by_inner)
    assert "/vss1/syslog" in by_inner and "/vss2/another_file" in by_inner
    assert read(by_inner["/vss2/another_file"]) == b"This is another file.\n"
    assert by_inner["/vss2/another_file"].display == "vsstest.qcow2::/vss2/another_file"
    volumes = scan_volumes(image, warnings=warnings)
    assert [(v.label, v.status) for v in volumes] == [
        ("", "ok"), ("/vss1", "vss-skipped"), ("/vss2", "vss-skipped"),
    ]  # fmt: skip


def test_archives_list_their_members(plaso_data: Path) -> None:
    import gzip

    syslog = gzip.decompress((plaso_data / "syslog.gz").read_bytes())
    for name in ("syslog.tar", "syslog.zip", "syslog.tgz"):
        entries, warnings = listing(plaso_data / name, display=name)
        assert warnings == [], name
        member = next(e for e in entries if e.path == "/syslog")
        assert (member.display, member.type, member.size) == (f"{name}::/syslog", "r", 1247)
        # The zip's "extended timestamp" is UTC: the same time as the tar's.
        assert member.mtime == "2012-07-24T21:45:24+00:00", name
        assert read(member) == syslog, name
    entries, _ = listing(plaso_data / "syslog.zip")
    assert [e.path for e in entries] == ["/syslog", "/wtmp.1"]
    spec = json.loads(entries[0].path_spec)
    assert (spec["type_indicator"], spec["location"]) == ("ZIP", "/syslog")


def test_path_specs_are_dfvfs_path_specs(dfvfs_data: Path, plaso_data: Path) -> None:
    """Archive specs are written without dfVFS, in its JSON form: dfVFS reads them back."""
    from dfvfs.resolver import context, resolver
    from dfvfs.serializer import json_serializer

    for image in (plaso_data / "syslog.tgz", plaso_data / "syslog.zip", dfvfs_data / "mbr.raw"):
        entry = next(e for e in listing(image)[0] if e.type == "r")
        spec = json_serializer.JsonPathSpecSerializer.ReadSerialized(entry.path_spec)
        stream = resolver.Resolver.OpenFileObject(spec, resolver_context=context.Context())
        assert stream.read(entry.size) == read(entry)


def test_entry_reopens_in_another_process(dfvfs_data: Path) -> None:
    entry = next(e for e in listing(dfvfs_data / "ext2.E01")[0] if e.path == "/passwords.txt")
    read(entry)  # this process keeps the image open: the child must not share it
    code = "import sys; from irkit.files.vfs import open_entry; "
    code += "sys.stdout.buffer.write(open_entry(sys.argv[1]).read())"
    result = subprocess.run(
        [sys.executable, "-c", code, entry.path_spec], capture_output=True, check=True, timeout=60
    )
    assert result.stdout.startswith(PASSWORDS)
    release()


def test_fields_and_rows_match_file_events(dfvfs_data: Path, tmp_path: Path) -> None:
    from irkit.files.events import entry_fields as disk_fields
    from irkit.files.walk import FileEntry

    sample = tmp_path / "f.txt"
    sample.write_text("x")
    disk = disk_fields(FileEntry(str(sample), str(tmp_path), sample.lstat(), "r"))
    entries, _ = listing(dfvfs_data / "ext2.raw", display="ext2.raw")
    passwords = next(e for e in entries if e.path == "/passwords.txt")
    fields = entry_fields(passwords)
    assert list(fields) == list(disk)
    assert fields["path"] == "ext2.raw::/passwords.txt"
    assert [fields[k] for k in ("size", "inode", "uid", "type")] == ["116", "14", "1000", "r"]
    assert fields["mtime"] == "2021-07-22T14:07:32.000000+00:00"
    assert fields["btime"] == "" and fields["md5"] == "" and fields["hash_status"] == "pending"
    rows = entry_rows(passwords)
    assert [(r[1], r[5]) for r in rows] == [
        ("File Modified", "m"), ("File Accessed", "a"), ("File Changed", "c"),
    ]  # fmt: skip
    ts, _, artifact, host, user, _, message, blob, record = rows[0]
    assert (ts, artifact, host, user, record) == (
        "2021-07-22T14:07:32.000000+00:00", "ext2.raw", "", "1000", "ext2.raw::/passwords.txt",
    )  # fmt: skip
    assert message.startswith("File Modified: ext2.raw::/passwords.txt (116 bytes")
    assert json.loads(blob) == fields
    link = entry_fields(next(e for e in entries if e.path == "/a_link"))
    assert link["symlink_target"] == "a_directory/another_file"


# --- Bad input ------------------------------------------------------------------------


def test_truncated_images_are_named_warnings(dfvfs_data: Path, tmp_path: Path) -> None:
    raw = cut_copy(dfvfs_data / "ext2.raw", tmp_path / "cut.raw", 100_000)
    entries, warnings = listing(raw)
    assert [e.path for e in entries] == ["/"]
    assert kinds(warnings) == {"unreadable-directory"}
    for name, size in (("ext2.E01", 6000), ("ext2.split.E01", 1_500_000), ("ext2.qcow2", 200_000)):
        cut = cut_copy(dfvfs_data / name, tmp_path / f"cut-{name}", size)
        entries, warnings = listing(cut)
        assert entries == [], name
        assert kinds(warnings) == {"unreadable-image"}, name
        assert "truncated or damaged" in warnings[0].message
        assert len(warnings[0].message) < 400
    # Cut after the metadata: listed, but the data is gone: reading is an OSError.
    raw = cut_copy(dfvfs_data / "ext2.raw", tmp_path / "cut-late.raw", 300_000)
    entries, warnings = listing(raw)
    assert warnings == [] and len(entries) == len(EXT2)
    passwords = next(e for e in entries if e.path == "/passwords.txt")
    with pytest.raises(OSError, match=r"passwords\.txt"), open_entry(passwords.path_spec) as f:
        f.read()
    with pytest.raises(ImageReadError):
        copy_out(passwords.path_spec, tmp_path / "out", 1 << 20)
    assert list((tmp_path / "out").iterdir()) == []


def test_encrypted_volume_without_key(tmp_path: Path) -> None:
    image = make_luks1_header(tmp_path / "luks1-header.raw")
    assert kind_of(image) == "luks"
    entries, warnings = listing(image)
    assert entries == []
    assert [(w.kind, w.message) for w in warnings] == [
        ("encrypted-volume", "LUKS encrypted volume: no key given, not read"),
    ]  # fmt: skip
    volumes = scan_volumes(image, warnings=[])
    assert [(v.status, v.kind) for v in volumes] == [("encrypted", "LUKSDE")]


@pytest.mark.parametrize("version", [1, 2])
def test_cryptsetup_luks_volume_without_key(tmp_path: Path, version: int) -> None:
    image = make_luks_with_cryptsetup(tmp_path / f"luks{version}.raw", version)
    assert kind_of(image) == "luks"
    entries, warnings = listing(image)
    assert entries == []
    assert kinds(warnings) == {"encrypted-volume"}  # LUKS2: dfVFS cannot open it at all


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    return {
        "zip": make_zip_bomb(folder / "bomb.zip", 2 * GIB),
        "tgz": make_tgz_bomb(folder / "bomb.tar.gz", 2 * GIB),
    }


@pytest.mark.parametrize("name", ["zip", "tgz"])
def test_decompression_bomb(bombs: dict[str, Path], tmp_path: Path, name: str) -> None:
    bomb = bombs[name]
    assert bomb.stat().st_size < 3 << 20
    started = time.monotonic()
    entries, warnings = listing(bomb, display="bomb")
    assert time.monotonic() - started < 2  # nothing decompressed
    assert [(e.display, e.size) for e in entries] == [("bomb::/zeros.bin", 2 * GIB)]
    assert [w.kind for w in warnings if w.kind != "local-time"] == ["decompression-bomb"]
    assert "over 100:1" in warnings[0].message
    out = tmp_path / "out"
    with pytest.raises(EntryTooBigError, match="over the 67,108,864-byte limit") as refused:
        copy_out(entries[0].path_spec, out, 64 << 20)
    assert isinstance(refused.value, IrkitError)
    assert not out.exists() or list(out.iterdir()) == []
    with open_entry(entries[0].path_spec) as stream:  # a stream, read as far as wanted
        assert stream.read(1 << 20) == bytes(1 << 20)


def test_bomb_memory_stays_bounded(bombs: dict[str, Path], tmp_path: Path) -> None:
    """Peak RSS of walking both bombs, refusing their copy and reading 256 MiB of each."""
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from irkit.files.vfs import EntryTooBigError, copy_out, open_entry, walk
        for name in sys.argv[2:]:
            entries = list(walk(Path(name), warnings=[]))
            try:
                copy_out(entries[0].path_spec, Path(sys.argv[1]), 64 << 20)
            except EntryTooBigError:
                pass
            with open_entry(entries[0].path_spec) as stream:
                for _ in range(256):
                    stream.read(1 << 20)
        # VmHWM, not ru_maxrss: ru_maxrss survives exec, so it would count the memory of
        # the pytest process this one was forked from.
        status = Path("/proc/self/status").read_text()
        print(int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1]) // 1024)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), str(bombs["zip"]), str(bombs["tgz"])],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    assert int(result.stdout) < 150, f"peak RSS {result.stdout.strip()} MiB"


def test_small_archives_of_zeros_are_not_bombs(tmp_path: Path) -> None:
    small = make_tgz_bomb(tmp_path / "zeros.tar.gz", 8 << 20)
    entries, warnings = listing(small)
    assert [e.size for e in entries] == [8 << 20] and warnings == []
    entries, warnings = listing(small, ratio_floor=1 << 20)  # a lower floor: a bomb
    assert kinds(warnings) == {"decompression-bomb"}


def test_unsafe_member_names_stay_inside(tmp_path: Path) -> None:
    members = {"../../etc/evil": b"dotdot\n", "/etc/abs": b"absolute\n", "./ok/fine.txt": b"ok\n"}
    tar_path = tmp_path / "evil.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    zip_path = tmp_path / "evil.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    out = tmp_path / "out"
    for archive_path in (tar_path, zip_path):
        entries, warnings = listing(archive_path, display="evil")
        assert [e.path for e in entries] == ["/etc/evil", "/etc/abs", "/ok/fine.txt"]
        assert entries[0].display == "evil::/etc/evil"
        assert [w.kind for w in warnings if w.kind != "local-time"] == ["unsafe-member-name"] * 2
        assert "'../../etc/evil' points outside the archive" in warnings[0].message
        for entry in entries:
            copied = copy_out(entry.path_spec, out, 1 << 20)
            assert copied.parent == out and copied.read_bytes() in members.values()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.tar", "evil.zip", "out"]
    assert len(list(out.iterdir())) == 6


def test_damaged_archives(tmp_path: Path) -> None:
    data = os.urandom(300_000)
    whole = tmp_path / "logs.tar.gz"
    with tarfile.open(whole, "w:gz") as tar:
        for name in ("a", "b"):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    cut = cut_copy(whole, tmp_path / "cut.tar.gz", whole.stat().st_size // 2)
    entries, warnings = listing(cut)
    assert [e.path for e in entries] == ["/a"]
    assert kinds(warnings) == {"truncated-archive"}
    plain = tmp_path / "logs.tar"
    with tarfile.open(plain, "w") as tar:
        for name in ("a", "b"):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    cut = cut_copy(plain, tmp_path / "cut.tar", 100_000)
    entries, warnings = listing(cut)
    assert [e.path for e in entries] == ["/a"] and kinds(warnings) == {"truncated-archive"}
    damaged = bytearray(plain.read_bytes())
    second = 512 + len(data) + (-len(data)) % 512
    damaged[second : second + 100] = b"\xff" * 100  # the second header
    (tmp_path / "damaged.tar").write_bytes(bytes(damaged))
    entries, warnings = listing(tmp_path / "damaged.tar")
    assert [e.path for e in entries] == ["/a"] and kinds(warnings) == {"damaged-archive"}
    not_zip = tmp_path / "bad.zip"
    not_zip.write_bytes(b"PK\x03\x04" + os.urandom(1000))
    entries, warnings = listing(not_zip, kind="zip")
    assert entries == [] and kinds(warnings) == {"unreadable-archive"}


def rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def test_sparse_file_is_not_an_image(tmp_path: Path) -> None:
    sparse = tmp_path / "sparse.bin"
    with sparse.open("wb") as stream:
        stream.truncate(2 * GIB)
    before, started = rchar(), time.monotonic()
    assert kind_of(sparse) is None
    assert rchar() - before < 64 << 10 and time.monotonic() - started < 0.5
    before = rchar()
    entries, warnings = listing(sparse)  # asked anyway: dfVFS finds nothing, reads little
    assert entries == [] and kinds(warnings) == {"no-filesystem"}
    assert rchar() - before < 16 << 20


def test_not_images_and_bad_calls(dfvfs_data: Path, tmp_path: Path) -> None:
    for name in ("mactime.body", "bogus.001", "corrupt1.gz"):
        entries, warnings = listing(dfvfs_data / name)
        assert entries == [] and kinds(warnings) == {"no-filesystem"}, name
    with pytest.raises(EvidenceError, match="no such file"):
        listing(tmp_path / "missing.E01")
    entries, _ = listing(dfvfs_data / "ext2.raw")
    directory = next(e for e in entries if e.type == "d")
    with pytest.raises(ImageReadError, match="not a regular file"):
        open_entry(directory.path_spec)
    with pytest.raises(ImageReadError, match="not a path spec"):
        open_entry("{nope")
    passwords = next(e for e in entries if e.path == "/passwords.txt")
    with open_entry(passwords.path_spec) as stream:
        assert stream.seek(10_000) == 116 and stream.read() == b""
        assert stream.seek(-6, os.SEEK_END) == 110 and len(stream.read()) == 6
        assert stream.seek(-500, os.SEEK_CUR) == 0 and stream.read(19) == b"place,user,password"
    with pytest.raises(EntryTooBigError):
        copy_out(passwords.path_spec, tmp_path / "out", 100)
    copied = copy_out(passwords.path_spec, tmp_path / "out", 116)
    assert copied.name.startswith("irkit-vfs-") and copied.name.endswith("-passwords.txt")
    assert copied.read_bytes().startswith(PASSWORDS)


def test_members_of_a_compressed_tar(tmp_path: Path) -> None:
    """Read in archive order (a head, then the whole), one pass; out of order, still right."""
    path = tmp_path / "many.tar.xz"
    contents = {}
    with tarfile.open(path, "w:xz") as tar:
        for number in range(400):
            data = f"line {number}\n".encode() * 300
            info = tarfile.TarInfo(f"logs/{number:04d}.log")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            contents[f"/logs/{number:04d}.log"] = data
    entries, warnings = listing(path)
    assert warnings == [] and [e.path for e in entries] == list(contents)
    started = time.monotonic()
    for entry in entries:
        with open_entry(entry.path_spec) as stream:
            assert stream.read(100) == contents[entry.path][:100]
        assert read(entry) == contents[entry.path]
    assert time.monotonic() - started < 10
    first, middle, last = (open_entry(entries[i].path_spec) for i in (0, 200, 399))
    assert last.read(9) == b"line 399\n" and first.read(7) == b"line 0\n"
    assert middle.read(9) == b"line 200\n" and first.read(7) == b"line 0\n"
    release()  # the archive stays open for the readers still open
    assert last.read(9) == b"line 399\n"
    for stream in (first, middle, last):
        stream.close()
