"""`irkit hash`: digests equal coreutils', hostile trees end, IOCs become findings."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from irkit.errors import UsageError
from irkit.files.events import digest_line
from irkit.files.hashing import hash_paths
from irkit.files.ioc import load_iocs
from irkit.files.options import HashOptions, HashSummary, parse_size

from .conftest import run_irkit

RFC1321 = Path("hash-test-vectors/pyca-cryptography/vectors/cryptography_vectors/hashes/MD5")


def _vectors(corpus: Path) -> list[tuple[bytes, str]]:
    text = (corpus / RFC1321 / "rfc-1321.txt").read_text()
    found, length, message = [], 0, b""
    for line in text.splitlines():
        key, _, value = line.partition(" = ")
        if key == "Len":
            length = int(value)
        elif key == "Msg":
            message = bytes.fromhex(value)[: length // 8]
        elif key == "MD":
            found.append((message, value.strip()))
    return found


def test_rfc1321_vectors(corpus: Path, tmp_path: Path) -> None:
    vectors = _vectors(corpus)
    assert len(vectors) == 7
    tree = tmp_path / "v"
    tree.mkdir()
    for index, (message, _) in enumerate(vectors):
        (tree / f"v{index}").write_bytes(message)
    result = run_irkit("hash", str(tree), "-a", "md5", "-q")
    assert result.returncode == 0, result.stderr
    listed = dict(reversed(line.split("  ", 1)) for line in result.stdout.splitlines())
    for index, (_, digest) in enumerate(vectors):
        assert listed[str(tree / f"v{index}")] == digest


def _coreutils(tool: str, files: list[str]) -> dict[str, str]:
    out = subprocess.run(
        [tool, "--", *files], capture_output=True, check=True, text=True
    ).stdout.splitlines()
    return {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in out}


def test_digests_equal_coreutils_and_sha256sum_accepts_the_list(tmp_path: Path) -> None:
    if shutil.which("sha256sum") is None:
        pytest.skip("coreutils not installed")
    tree = Path(hashlib.__file__).parent / "json"  # the stdlib's own files: real, not ours
    entries: list[object] = []
    summary = HashSummary()
    hash_paths([tree], HashOptions(), entries.append, summary)
    files = [str(e.path) for e in entries if e.type == "r"]  # type: ignore[attr-defined]
    assert files and summary.hashed == len(files)
    ours = {e.path: e.digests for e in entries if e.type == "r"}  # type: ignore[attr-defined]
    for algorithm, tool in (("md5", "md5sum"), ("sha1", "sha1sum"), ("sha256", "sha256sum")):
        reference = _coreutils(tool, files)
        assert {p: d[algorithm] for p, d in ours.items()} == reference
    listing = tmp_path / "list.sha256"
    result = run_irkit("hash", str(tree), "-q", "-o", str(listing))
    assert result.returncode == 0, result.stderr
    check = subprocess.run(
        ["sha256sum", "-c", "--strict", str(listing)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == len(files)


def test_digest_list_escapes_odd_names_like_coreutils(tmp_path: Path) -> None:
    tree = tmp_path / "odd"
    tree.mkdir()
    for name in ("new\nline", "back\\slash", "späce é", "-dash"):
        (tree / name).write_bytes(name.encode())
    entries: list[object] = []
    hash_paths([tree], HashOptions(algorithms=("sha256",)), entries.append, HashSummary())
    listing = tmp_path / "list"
    listing.write_text(
        "".join(digest_line(e, "sha256") for e in entries if e.type == "r"),  # type: ignore[attr-defined]
        encoding="utf-8",
    )
    check = subprocess.run(["sha256sum", "-c", str(listing)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == 4


@pytest.fixture()
def hostile_tree() -> Iterator[Path]:
    """A FIFO, symlink loops, a socket, an unreadable file and ordinary files."""
    base = Path(tempfile.mkdtemp(prefix="irkit-hostile-"))
    tree = base / "tree"
    tree.mkdir(mode=0o755)
    (tree / "plain.txt").write_text("ordinary\n")
    (tree / "sub").mkdir(mode=0o755)
    (tree / "sub" / "deep.bin").write_bytes(os.urandom(70_000))
    os.mkfifo(tree / "fifo")
    (tree / "loop-a").symlink_to("loop-b")
    (tree / "loop-b").symlink_to("loop-a")
    (tree / "sub" / "up").symlink_to("..")  # a directory loop when links are followed
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tree / "sock"))
    secret = tree / "secret"
    secret.write_text("no one may read this\n")
    secret.chmod(0)
    for path in tree.rglob("*"):
        if path.is_file() and not path.is_symlink() and path != secret:
            path.chmod(0o644)
    try:
        yield tree
    finally:
        server.close()
        shutil.rmtree(base, ignore_errors=True)


def _without_dac_override() -> list[str]:
    """Root reads everything: drop the capabilities that let it (util-linux setpriv)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def _run_limited(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [*_without_dac_override(), sys.executable, "-m", "irkit", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("follow", [False, True])
def test_hostile_tree_ends_reports_each_case_and_hashes_the_rest(
    hostile_tree: Path, follow: bool
) -> None:
    grower = hostile_tree / "growing.log"
    grower.write_bytes(b"\0" * (48 << 20))
    grower.chmod(0o666)
    stop = threading.Event()

    def grow() -> None:
        with grower.open("ab") as handle:
            while not stop.is_set():
                handle.write(b"more log lines\n" * 64)
                handle.flush()
                time.sleep(0.002)

    writer = threading.Thread(target=grow)
    writer.start()
    try:
        args = ["hash", str(hostile_tree), "--json", "-o", "/dev/null"]
        result = _run_limited(args + (["--follow-symlinks"] if follow else []))
    finally:
        stop.set()
        writer.join()
    assert result.returncode == 3, result.stderr  # partial: unreadable and changed files
    assert "Traceback" not in result.stderr
    data = json.loads(result.stdout)
    warned = {(Path(w["path"]).name, w["kind"]) for w in data["warnings"]}
    noted = {(Path(n["path"]).name, n["kind"]) for n in data["notes"]}
    assert ("secret", "unreadable") in warned
    assert ("growing.log", "changed-while-read") in warned
    assert ("fifo", "fifo") in noted
    assert ("sock", "socket") in noted
    assert {("loop-a", "symlink-loop"), ("loop-b", "symlink-loop")} <= noted
    if follow:
        assert ("up", "symlink-loop") in noted  # the link back up is not walked again
    # The rest is hashed: the two ordinary files and the growing one (flagged).
    assert data["files_hashed"] == 3


def test_pseudo_filesystems_are_not_read() -> None:
    if not Path("/proc/self/mountinfo").exists():
        pytest.skip("no /proc here")
    result = run_irkit("hash", "/proc/self", "--json", "-o", "/dev/null", timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["files_hashed"] == 0
    assert [n["kind"] for n in data["notes"]] == ["pseudo-filesystem"]


def test_max_size_and_exclude(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "big.bin").write_bytes(b"x" * 5000)
    (tree / "small.txt").write_bytes(b"x")
    (tree / "skip.tmp").write_bytes(b"y")
    result = run_irkit(
        "hash", str(tree), "--max-size", "4K", "--exclude", "*.tmp", "--json", "-o", "/dev/null"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["files_hashed"] == 1
    assert data["skipped"] == {"excluded": 1, "too-big": 1}
    assert parse_size("512M") == 512 << 20
    with pytest.raises(UsageError):
        parse_size("lots")


def test_signature_base_iocs_load(corpus: Path) -> None:
    iocs = load_iocs([corpus / "signature-base" / "iocs" / "hash-iocs.txt"])
    assert iocs.loaded == 3224
    assert not iocs.warnings
    # 153 hashes are listed twice; each kind is counted once per distinct hash.
    assert iocs.loaded - iocs.duplicates == len(iocs.by_digest)
    assert iocs.kinds() == {"md5", "sha1", "sha256"}


def test_ioc_formats(tmp_path: Path) -> None:
    md5 = hashlib.md5(b"a").hexdigest()
    sha1 = hashlib.sha1(b"b").hexdigest()
    sha256 = hashlib.sha256(b"c").hexdigest()
    (tmp_path / "loki.txt").write_text(f"# comment\n\n{md5};Evil A\nnot-a-hash;oops\n")
    (tmp_path / "sums.sha256").write_text(f"{sha256}  evil-c.exe\n{sha1} *evil-b.dll\n")
    (tmp_path / "iocs.csv").write_text(f'id,SHA256,description\n1,{sha256},"Evil, C"\n')
    iocs = load_iocs([tmp_path / "loki.txt", tmp_path / "sums.sha256", tmp_path / "iocs.csv"])
    assert set(iocs.by_digest) == {md5, sha1, sha256}
    assert iocs.by_digest[md5].description == "Evil A"
    assert iocs.by_digest[sha256].description == "evil-c.exe"  # first listing wins
    assert iocs.duplicates == 1
    assert [(w.kind, w.message) for w in iocs.warnings] == [
        ("bad-ioc", "line 4: not an MD5, SHA-1 or SHA-256")
    ]


def test_planted_ioc_becomes_a_finding_next_to_its_file_event(corpus: Path, tmp_path: Path) -> None:
    tree = tmp_path / "host"
    (tree / "tmp").mkdir(parents=True)
    planted = tree / "tmp" / ".x"
    planted.write_bytes(b"pretend malware\n")
    (tree / "benign.txt").write_text("hello\n")
    iocs = tmp_path / "mine.txt"
    iocs.write_text(f"{hashlib.sha1(planted.read_bytes()).hexdigest()};Planted test sample\n")
    case = tmp_path / "case"
    base = str(corpus / "signature-base" / "iocs" / "hash-iocs.txt")
    args = ["hash", str(tree), "--case", str(case), "--ioc", base, "--ioc", str(iocs)]
    result = run_irkit(*args, "--json")
    assert result.returncode == 4, result.stderr  # findings
    data = json.loads(result.stdout)
    listed = Path(base).read_text().splitlines()
    distinct = {ln.split(";")[0].lower() for ln in listed if ln.strip() and ln[0] != "#"}
    assert data["iocs_loaded"] == len(distinct) + 1
    assert [f["path"] for f in data["findings"]] == [str(planted)]
    again = run_irkit(*args, "--json")
    assert json.loads(again.stdout)["events_added"] == 0  # the same tree adds nothing
    timeline = run_irkit("timeline", str(case), "--format", "jsonl")
    assert timeline.returncode == 0, timeline.stderr
    rows = [json.loads(line) for line in timeline.stdout.splitlines()]
    findings = [i for i, r in enumerate(rows) if r["source"] == "finding"]
    assert len(findings) == 1
    at = findings[0]
    finding = rows[at]
    assert "Planted test sample" in finding["message"]
    assert finding["evidence"] == str(planted)
    neighbours = [rows[i] for i in (at - 1, at + 1) if 0 <= i < len(rows)]
    assert any(
        n["source"] == "file" and n["evidence"] == str(planted) and n["datetime"] ==
        finding["datetime"] for n in neighbours
    )  # fmt: skip
    uid_of_event = next(
        r["uid"] for r in rows if r["evidence"] == str(planted) and r["timestamp_desc"] ==
        "File Modified"
    )  # fmt: skip
    assert finding["event_uid"] == uid_of_event


def test_findings_export_lists_the_ioc_match(tmp_path: Path) -> None:
    tree = tmp_path / "t"
    tree.mkdir()
    planted = tree / "=cmd|' -C calc'!A0"  # an odd name, kept as data
    planted.write_bytes(b"planted\n")
    iocs = tmp_path / "iocs.csv"
    iocs.write_text(f"md5,description\n{hashlib.md5(b'planted' + bytes([10])).hexdigest()},x\n")
    case = tmp_path / "case"
    assert (
        run_irkit("hash", str(tree), "--case", str(case), "--ioc", str(iocs), "-q").returncode == 4
    )
    out = run_irkit("findings", str(case), "--format", "csv")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert [(r["severity"], r["detector"], r["evidence"]) for r in rows] == [
        ("high", "ioc", str(planted))
    ]
    jsonl = run_irkit("findings", str(case), "--format", "jsonl", "--min-level", "critical")
    assert jsonl.returncode == 0 and jsonl.stdout == ""
    bad = run_irkit("findings", str(case), "--min-level", "severe")
    assert bad.returncode == 2 and "is not one of 'informational'" in bad.stderr


def test_birth_time_where_the_file_system_keeps_it(tmp_path: Path) -> None:
    from irkit.files.fileio import birth_time

    target = tmp_path / "born"
    target.write_text("x")
    stat_out = subprocess.run(
        ["stat", "-c", "%W", str(target)], capture_output=True, text=True, check=False
    )
    if stat_out.returncode != 0 or stat_out.stdout.strip() in ("0", "-", ""):
        pytest.skip("this file system or stat does not report a birth time")
    born = birth_time(target.lstat(), str(target))
    assert born.endswith("+00:00")
    import datetime as dt

    assert int(dt.datetime.fromisoformat(born).timestamp()) == int(stat_out.stdout)
