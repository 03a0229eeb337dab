"""Disk images and archives as evidence: ``irkit parse`` walks them through dfVFS, lists
their file systems as file events and parses the files inside with irkit's own sources or
plaso's, each named ``<image>::<path inside>``.

On dfVFS's and plaso's own test images (``dfvfs-test-data``, ``plaso-test-data``; their
SOURCE.md gives what each holds) and on archives made here from the bundled samples.
"""

from __future__ import annotations

import collections
import gzip
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import orjson
import pytest

from irkit.store.case import Case

from .conftest import EVIDENCE, run_irkit

EXT2 = (
    "ext2.raw",
    "ext2.splitraw.000",
    "ext2.E01",
    "ext2.split.E01",
    "ext2.qcow2",
    "ext2.vhd",
    "ext2.vmdk",
)
#: The entries of dfVFS's ext2 test file system (SOURCE.md): path -> (type, size).
EXT2_FILES = {
    "/a_directory/a_file": 53,
    "/a_directory/another_file": 22,
    "/passwords.txt": 116,
}


def _parse(*args: str) -> tuple[int, dict[str, Any], str]:
    result = run_irkit("parse", *args, "--json")
    data = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, data, result.stderr


def _baseline_rss(tmp_path: Path) -> int:
    """irkit's reported peak memory for a run of one small file, from this process: the
    reference for a run's own growth (ru_maxrss counts the process it was forked from)."""
    folder = tmp_path / "baseline"
    folder.mkdir(parents=True)
    (folder / "auth.log").write_text("Jan  1 00:00:00 host sshd[1]: session opened\n")
    _, data, _ = _parse(str(folder), "--case", str(tmp_path / "baseline-case"))
    return int(data["peak_rss_bytes"])


def _events(case: Path, where: str = "TRUE") -> list[dict[str, Any]]:
    with Case(case, read_only=True) as store:
        cursor = store.db.execute(
            "SELECT ts, ts_desc, source, artifact, event_id, message, fields, evidence, record "
            f"FROM events WHERE {where} ORDER BY evidence, record, ts_desc"
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@pytest.fixture(scope="module")
def dfvfs_case(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    case = tmp_path_factory.mktemp("dfvfs") / "case"
    code, data, stderr = _parse(str(corpus / "dfvfs-test-data" / "test_data"), "--case", str(case))
    assert code in (0, 3), stderr
    return case, data


@pytest.mark.corpus
def test_ext2_gives_the_same_file_events_from_each_of_its_containers(
    corpus: Path, dfvfs_case: tuple[Path, dict]
) -> None:
    case, _ = dfvfs_case
    folder = corpus / "dfvfs-test-data" / "test_data"
    listings = {}
    for name in (*EXT2, "lvm.qcow2"):
        image = str(folder / name)
        rows = _events(case, f"source = 'file' AND evidence = '{image}'")
        assert rows, name
        inner = set()
        for row in rows:
            fields = orjson.loads(row["fields"])
            assert row["record"].startswith(image + "::")
            path = row["record"].split("::", 1)[1]
            if name == "lvm.qcow2":
                assert path.startswith("/lvm1/")
                path = path[len("/lvm1") :]
            inner.add((path, row["ts"], row["ts_desc"], row["event_id"], fields["size"]))
            assert fields["inode"] or fields["type"] == "d"
        listings[name] = inner
        sizes = {path: int(size) for path, _, _, _, size in inner if path in EXT2_FILES}
        assert sizes == EXT2_FILES, name
    lvm = listings.pop("lvm.qcow2")  # another ext2 with the same entries, made another day
    first = listings["ext2.raw"]
    for name, inner in listings.items():
        assert inner == first, f"{name} lists other file events than ext2.raw"
    assert {(p, size) for p, _, _, _, size in lvm} == {(p, size) for p, _, _, _, size in first}
    # The ext2 times are whole seconds; each file has m, a, c (no birth time on ext2).
    letters = {letter for path, _, _, letter, _ in first if path == "/passwords.txt"}
    assert letters == {"m", "a", "c"}


@pytest.mark.corpus
def test_images_give_their_files_as_events_and_their_artifacts_parsed(
    corpus: Path, dfvfs_case: tuple[Path, dict]
) -> None:
    case, data = dfvfs_case
    folder = corpus / "dfvfs-test-data" / "test_data"
    # mbr.raw: both partitions, each with the ext2 test files.
    mbr = _events(case, f"source = 'file' AND evidence = '{folder / 'mbr.raw'}'")
    records = {row["record"].split("::", 1)[1] for row in mbr}
    assert {"/p1/passwords.txt", "/p2/passwords.txt"} <= records or {
        "/p1/passwords.txt",
        "/p5/passwords.txt",
    } <= records, sorted(records)[:20]
    # windows_volume.qcow2: NTFS, and the syslog inside it read by plaso's syslog parser.
    ntfs = str(folder / "windows_volume.qcow2")
    syslog = _events(case, f"evidence = '{ntfs}::/Windows/System32/config/syslog'")
    assert syslog and all(r["source"] == "plaso" for r in syslog)
    assert {r["artifact"] for r in syslog} <= {"text/syslog_traditional", "text/syslog"}
    listed = {r["record"] for r in _events(case, f"source = 'file' AND evidence = '{ntfs}'")}
    assert f"{ntfs}::/Windows/System32/config/syslog" in listed
    iso = {r["record"] for r in _events(case, f"evidence = '{folder / 'iso9660.raw'}'")}
    assert any(r.upper().endswith(("::/PASSWORDS.TXT", "PASSWORDS.TXT;1")) for r in iso), iso
    # Negative samples are files, not images: not recognised, not warnings.
    named = set(data["not_recognised"])
    assert str(folder / "bogus.001") in named and str(folder / "mactime.body") not in named
    assert data["files_failed"] == 0


@pytest.mark.corpus
def test_archives_are_walked_and_their_members_parsed(corpus: Path, tmp_path: Path) -> None:
    folder = corpus / "plaso-test-data" / "test_data"
    case = tmp_path / "case"
    names = ("syslog.tar", "syslog.zip", "syslog.tgz")
    code, data, stderr = _parse(*(str(folder / n) for n in names), "--case", str(case))
    assert code in (0, 3), stderr
    tar = f"{folder / 'syslog.tar'}::/syslog"
    rows = _events(case, f"evidence = '{tar}'")
    assert len(rows) == 12 and {r["artifact"] for r in rows} == {"text/syslog_traditional"}
    # The same member in the three archives is one file: parsed once (the first by path).
    assert data["copies"] == {
        f"{folder / 'syslog.tgz'}::/syslog": tar,
        f"{folder / 'syslog.zip'}::/syslog": tar,
    }
    wtmp = _events(case, f"evidence = '{folder / 'syslog.zip'}::/wtmp.1'")
    assert wtmp and {r["artifact"] for r in wtmp} == {"utmp"}


def test_own_sources_read_files_inside_an_archive(tmp_path: Path) -> None:
    archive = tmp_path / "host.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(EVIDENCE.glob("*.evtx")):
            zipped.write(path, f"C/Windows/System32/winevt/Logs/{path.name}")
    case = tmp_path / "case"
    code, _, stderr = _parse(str(archive), "--case", str(case))
    assert code in (0, 3), stderr
    direct = tmp_path / "direct"
    _parse(str(EVIDENCE), "--case", str(direct))
    inside = _events(case, "source = 'evtx'")
    plain = _events(direct, "source = 'evtx'")
    assert len(inside) == len(plain) > 0
    assert all(r["evidence"].startswith(f"{archive}::/C/Windows/") for r in inside)
    strip = [(r["ts"], r["event_id"], r["message"], r["record"]) for r in inside]
    assert sorted(strip) == sorted(
        (r["ts"], r["event_id"], r["message"], r["record"]) for r in plain
    )
    # Parsing it again adds nothing; nothing was left in the case's spool.
    code, again, _ = _parse(str(archive), "--case", str(case))
    assert again["events_added"] == 0
    assert not (case / "spool").exists() or not any((case / "spool").iterdir())


def _tar_with(tmp_path: Path, name: str, members: dict[str, bytes]) -> Path:
    path = tmp_path / name
    with tarfile.open(path, "w") as tar:
        for member, content in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(content)
            info.mtime = 1_600_000_000
            tar.addfile(info, io.BytesIO(content))
    return path


def test_bad_archives_are_warnings_and_nothing_is_written_outside_the_case(
    tmp_path: Path,
) -> None:
    line = "Jan  1 00:00:00 {} sshd[1]: Accepted password for root from 10.0.0.1\n"
    (tmp_path / "in").mkdir()
    evil = _tar_with(
        tmp_path / "in",
        "evil.tar",
        {
            "../../escaped.log": line.format("one").encode(),
            "/etc/absolute.log": line.format("two").encode(),
            "ok/auth.log": line.format("three").encode(),
        },
    )
    # A decompression bomb: 2 GiB of zeros in a few MB of gzip, inside a tar.
    bomb = tmp_path / "in" / "bomb.tar.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as raw, tarfile.open(fileobj=raw, mode="w|") as tar:
        info = tarfile.TarInfo("zeros.bin")
        info.size = 2 << 30
        tar.addfile(info, _Zeros(info.size))
    cut = tmp_path / "in" / "cut.tar"
    cut.write_bytes(evil.read_bytes()[:1500])
    work = tmp_path / "work"
    work.mkdir()
    case = work / "case"
    before = {p for p in tmp_path.rglob("*")}
    result = run_irkit("parse", str(tmp_path / "in"), "--case", str(case), "--json", cwd=work)
    assert result.returncode in (0, 3), result.stderr
    data = json.loads(result.stdout)
    after = {p for p in tmp_path.rglob("*")}
    assert {p for p in after - before if case not in p.parents and p != case} == set()
    rows = _events(case, "source = 'plaso'")
    evidence = {r["evidence"] for r in rows} | set(data["copies"])
    assert {f"{evil}::/escaped.log", f"{evil}::/etc/absolute.log", f"{evil}::/ok/auth.log"} <= (
        evidence
    ), evidence
    kinds = collections.Counter(
        kind.split(":")[0] for msgs in data["errors_by_file"].values() for kind in msgs
    )
    assert any("bomb.tar.gz" in path for path in data["errors_by_file"]), data["errors_by_file"]
    assert data["peak_rss_bytes"] < _baseline_rss(tmp_path / "rss") + (256 << 20)
    assert kinds  # each bad input is named


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, made as they are read (the bomb is never in memory)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


@pytest.mark.corpus
def test_vss_stores_are_read_with_vss(corpus: Path, tmp_path: Path) -> None:
    image = corpus / "plaso-test-data" / "test_data" / "vsstest.qcow2"
    plain, shadows = tmp_path / "plain", tmp_path / "vss"
    code, _, stderr = _parse(str(image), "--case", str(plain))
    assert code in (0, 3), stderr
    code, _, stderr = _parse(str(image), "--case", str(shadows), "--vss")
    assert code in (0, 3), stderr
    live = {r["record"] for r in _events(plain, "source = 'file'")}
    both = {r["record"] for r in _events(shadows, "source = 'file'")}
    assert live and not any("::/vss" in r for r in live)
    stores = {r.split("::", 1)[1].split("/")[1] for r in both if "::/vss" in r}
    assert stores == {"vss1", "vss2"}
    assert live <= both
    shutil.rmtree(plain)


def test_a_2_gb_sparse_file_is_read_in_bounded_memory(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    sparse = evidence / "sparse.bin"
    with sparse.open("wb") as handle:
        handle.truncate(2 << 30)  # holes: no disk used, 2 GiB of zeros to read
    case = tmp_path / "case"
    code, data, stderr = _parse(str(evidence), "--case", str(case))
    assert code == 0, stderr
    # Not an image (no signature), and no plaso parser takes zeros: listed, not parsed.
    assert data["not_recognised"] == {str(sparse): data["not_recognised"][str(sparse)]}
    assert data["not_recognised"][str(sparse)].startswith("no format signature matched")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case", "evidence"]
    assert data["peak_rss_bytes"] < _baseline_rss(tmp_path / "rss") + (256 << 20)


@pytest.mark.corpus
def test_a_truncated_image_is_a_named_warning(corpus: Path, tmp_path: Path) -> None:
    folder = corpus / "dfvfs-test-data" / "test_data"
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    for name, keep in (("ext2.raw", 128 << 10), ("ext2.E01", 6_000), ("ext2.qcow2", 200_000)):
        (evidence / f"cut-{name}").write_bytes((folder / name).read_bytes()[:keep])
    case = tmp_path / "case"
    code, data, stderr = _parse(str(evidence), "--case", str(case))
    assert code == 3, stderr  # partial: named warnings, no crash
    assert "Traceback" not in stderr
    warned = {Path(path.split("::")[0]).name for path in data["errors_by_file"]}
    assert warned == {"cut-ext2.raw", "cut-ext2.E01", "cut-ext2.qcow2"}, data["errors_by_file"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case", "evidence"]
