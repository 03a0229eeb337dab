"""Sleuth Kit bodyfiles: reading (real trees, fls, plaso's and dfVFS's samples), sniffing,
the bodyfile export, and the round trip bodyfile → case → bodyfile → case."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from irkit.export.bodyfile import bodyfile_line, epoch_text, escape_name
from irkit.model import FileStats
from irkit.sources import SOURCES, sniff
from irkit.sources.base import ParseContext, Row
from irkit.sources.bodyfile import (
    BodyfileSource,
    file_fields,
    iso_time,
    looks_like_bodyfile,
    split_line,
)
from irkit.store.case import Case

from .conftest import DATA, EVIDENCE, REPO, corpus_path, run_irkit

SAMPLE = DATA / "bodyfile" / "sample.body"
#: What the round trip compares, per event.
KEYS = ("path", "size", "mode", "uid", "gid", "inode", "md5")


class ListSink:
    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(self, row: Row) -> None:
        self.rows.append(row)


def parse(path: Path) -> tuple[list[Row], FileStats]:
    stats = FileStats(str(path))
    sink = ListSink()
    BodyfileSource().parse(ParseContext(path, str(path), "", stats), sink)
    return sink.rows, stats


def fields_of(row: Row) -> dict[str, str]:
    loaded: dict[str, str] = orjson.loads(row[7])
    return loaded


# --- an independent bodyfile writer, from os.lstat, plaso-style escapes -------------------


def _plaso_escape(name: str) -> str:
    out = []
    for char in name:
        if char == "\\":
            out.append("\\\\")
        elif char == "|":
            out.append("\\|")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def _seconds(ns: int) -> str:
    whole, frac = divmod(ns, 1_000_000_000)
    return f"{whole}.{frac:09d}" if frac else str(whole)


def lstat_bodyfile(root: Path, out: Path, *, md5: bool = False) -> dict[str, os.stat_result]:
    """A TSK 3.x bodyfile of a real tree, from os.lstat (nanosecond times), plus a comment."""
    lines = ["# bodyfile of " + _plaso_escape(str(root))]
    seen: dict[str, os.stat_result] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            path = Path(dirpath) / name
            info = path.lstat()
            text = str(path)
            seen[text] = info
            mode = stat.filemode(info.st_mode)
            kind = {"-": "r", "?": "-"}.get(mode[0], mode[0])
            meta = {"-": "r", "?": "-"}.get(mode[0], mode[0]) + mode[1:]
            digest = "0"
            if md5 and stat.S_ISREG(info.st_mode):
                digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
            shown = _plaso_escape(text)
            if stat.S_ISLNK(info.st_mode):
                shown += " -> " + _plaso_escape(str(path.readlink()))
            lines.append(
                "|".join(
                    (
                        digest,
                        shown,
                        str(info.st_ino),
                        f"{kind}/{meta}",
                        str(info.st_uid),
                        str(info.st_gid),
                        str(info.st_size),
                        _seconds(info.st_atime_ns),
                        _seconds(info.st_mtime_ns),
                        _seconds(info.st_ctime_ns),
                        "0",
                    )
                )
            )
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return seen


def _iso_from_ns(ns: int) -> str:
    """What irkit keeps of a nanosecond time: microseconds, cut (not rounded)."""
    when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ns // 1000)
    return when.isoformat(timespec="microseconds")


@pytest.fixture()
def odd_tree(tmp_path: Path) -> Path:
    """Names an attacker picks: pipes, spaces, unicode, a newline, a backslash, a link."""
    root = tmp_path / "tree"
    (root / "dir with space").mkdir(parents=True)
    for name in ("a|b|c.txt", "ünïcødé ☃.txt", "new\nline", "back\\slash", "tab\there", "%41"):
        (root / "dir with space" / name).write_text(name, encoding="utf-8")
    (root / "x -> y").write_text("arrow in a name")
    (root / "link|pipe").symlink_to("dir with space/a|b|c.txt")
    atime, mtime = 1_600_000_000_123_456_789, 1_500_000_000 * 10**9
    os.utime(root / "dir with space" / "a|b|c.txt", ns=(atime, mtime))
    return root


# --- reading -----------------------------------------------------------------------------


def test_a_real_tree_reads_back_as_lstat_gave_it(odd_tree: Path, tmp_path: Path) -> None:
    body = tmp_path / "tree.body"
    seen = lstat_bodyfile(odd_tree, body, md5=True)
    rows, stats = parse(body)
    assert stats.warnings == [] and stats.status == "ok"
    by_path: dict[str, list[Row]] = {}
    for row in rows:
        by_path.setdefault(fields_of(row)["path"], []).append(row)
    assert set(by_path) == set(seen)
    for path, info in seen.items():
        events = by_path[path]
        fields = fields_of(events[0])
        assert fields["size"] == str(info.st_size)
        assert fields["mode"] == stat.filemode(info.st_mode)
        assert fields["uid"] == str(info.st_uid) and fields["gid"] == str(info.st_gid)
        assert fields["inode"] == str(info.st_ino)
        assert fields["mtime"] == _iso_from_ns(info.st_mtime_ns)
        assert fields["atime"] == _iso_from_ns(info.st_atime_ns)
        assert fields["ctime"] == _iso_from_ns(info.st_ctime_ns)
        assert fields["btime"] == ""
        if stat.S_ISREG(info.st_mode):
            assert fields["md5"] == hashlib.md5(Path(path).read_bytes()).hexdigest()
        assert {r[1] for r in events} == {"File Modified", "File Accessed", "File Changed"}
        assert [r[5] for r in events] == ["m", "a", "c"]
        for row in events:
            assert row[0] == fields[{"m": "mtime", "a": "atime", "c": "ctime"}[row[5]]]
            assert row[2] == "bodyfile" and row[3] == "" and row[4] == str(info.st_uid)
            assert "\n" not in row[6] and row[6].startswith(row[1] + ": ")
    link = fields_of(by_path[str(odd_tree / "link|pipe")][0])
    assert link["type"] == "l" and link["mode"] == "lrwxrwxrwx"
    assert link["symlink_target"] == "dir with space/a|b|c.txt"
    piped = fields_of(by_path[str(odd_tree / "dir with space" / "a|b|c.txt")][0])
    assert piped["mtime"] == "2017-07-14T02:40:00.000000+00:00"
    assert piped["atime"] == "2020-09-13T12:26:40.123456+00:00"  # ns cut to µs
    assert fields_of(by_path[str(odd_tree / "dir with space")][0])["type"] == "d"


def test_the_record_is_the_line_number(tmp_path: Path) -> None:
    rows, _ = parse(SAMPLE)
    lines = SAMPLE.read_text(encoding="utf-8").split("\n")
    for row in rows:
        line = lines[int(row[8]) - 1]
        assert split_line(line.encode())[2].decode() == fields_of(row)["inode"]


def test_the_sample_gives_named_events() -> None:
    rows, stats = parse(SAMPLE)
    assert stats.warnings == [] and stats.skipped_records == 1  # the deleted, timeless one
    paths = {fields_of(r)["path"] for r in rows}
    assert "/home/alice/a|b.txt" in paths
    assert "/home/alice/café\nline2" in paths
    assert "/tmp/dropper (deleted)" not in paths
    notes = next(r for r in rows if fields_of(r)["path"] == "/home/alice/notes v2.txt")
    assert fields_of(notes)["btime"] == "2024-05-01T11:46:40.500000+00:00"
    assert fields_of(notes)["mtime"] == "2024-05-01T11:58:20.125000+00:00"
    link = next(r for r in rows if fields_of(r)["path"] == "/tmp/.x")
    assert fields_of(link)["symlink_target"] == "/dev/shm/.y"
    assert link[6] == "File Modified: /tmp/.x -> /dev/shm/.y (10 bytes, lrwxrwxrwx, uid 1000)"
    dll = [r for r in rows if fields_of(r)["path"] == "C:/Windows/System32/evil.dll"]
    assert [r[5] for r in dll] == ["m", "a", "c", "b"]
    assert fields_of(dll[0])["inode"] == "93552-128-2"
    assert fields_of(dll[0])["mode"] == "-r-xr-xr-x"
    empty = next(r for r in rows if fields_of(r)["path"] == "/etc/empty.conf")
    assert fields_of(empty)["md5"] == "d41d8cd98f00b204e9800998ecf8427e"
    multiline = next(r for r in rows if "café" in fields_of(r)["path"])
    assert multiline[6] == "File Modified: /home/alice/café line2 (3 bytes, -rw-r--r--, uid 1000)"


def test_plaso_bodyfile_sample() -> None:
    path = corpus_path() / "plaso-test-data" / "test_data" / "bodyfile" / "bodyfile"
    if not path.is_file():
        pytest.skip("plaso test data not in the corpus")
    rows, stats = parse(path)
    # 24 data lines (plaso: 24 event_data, 0 warnings); 4 have no time at all.
    assert stats.warnings == []
    assert len({r[8] for r in rows}) == 20 and stats.skipped_records == 4
    paths = {fields_of(r)["path"]: fields_of(r) for r in rows}
    pipes = paths["/file|with|pipes"]
    assert pipes["ctime"] == "2020-07-30T06:41:05.354067+00:00"
    assert pipes["inode"] == "64-128-2"
    assert "/file\\with\\backslashes ($FILE_NAME)" in paths
    assert "/passwordz\r.txt" in paths
    assert "/leyndardómarnir/ekki skoða/þínar skrár" in paths
    unix_less = paths["\\testdir2"]
    assert unix_less["mode"] == "drwxrwxrwx" and unix_less["type"] == "d"
    assert unix_less["uid"] == "" and unix_less["btime"] == "2019-11-16T09:27:56.845899+00:00"


def test_dfvfs_fls_bodyfile_with_crlf() -> None:
    path = corpus_path() / "dfvfs-test-data" / "test_data" / "fls_bodyfile.txt"
    if not path.is_file():
        pytest.skip("dfVFS test data not in the corpus")
    rows, stats = parse(path)
    assert stats.warnings == [] and stats.skipped_records == 0
    assert len({r[8] for r in rows}) == 25  # 25 lines, the last without a newline
    assert all(not fields_of(r)["btime"].endswith("\r") for r in rows)
    assert {fields_of(r)["path"] for r in rows} >= {"D:/$AttrDef", "D:/$BadClus:$Bad"}


@pytest.mark.skipif(shutil.which("fls") is None, reason="sleuthkit (fls) is not installed")
def test_fls_output_of_a_real_ext2_image(tmp_path: Path) -> None:
    image = corpus_path() / "dfvfs-test-data" / "test_data" / "ext2.raw"
    if not image.is_file():
        pytest.skip("dfVFS ext2.raw not in the corpus")
    body = tmp_path / "ext2.body"
    with body.open("wb") as handle:
        subprocess.run(["fls", "-r", "-m", "/", str(image)], stdout=handle, check=True)
    assert sniff(body.read_bytes()[:4096], body) is not None
    rows, stats = parse(body)
    assert stats.warnings == []
    files = {fields_of(r)["path"]: fields_of(r) for r in rows}
    assert files["/passwords.txt"]["size"] == "116"
    assert files["/passwords.txt"]["inode"] == "14"
    assert files["/a_directory/a_file"]["size"] == "53"
    assert files["/a_directory"]["type"] == "d"
    assert files["/a_link"]["symlink_target"] == "a_directory/another_file"
    assert files["/a_link"]["type"] == "l"
    assert "/$OrphanFiles" not in files  # all four times 0
    assert stats.skipped_records == 1


# --- bad lines -------------------------------------------------------------------------


def test_a_garbage_line_is_a_named_warning_and_the_rest_is_read(tmp_path: Path) -> None:
    good = SAMPLE.read_text(encoding="utf-8").splitlines()
    lines = [*good[:4], "this|is|not|a|bodyfile|line|at|all|x|y|z", *good[4:], "garbage", ""]
    body = tmp_path / "dirty.body"
    body.write_text("\n".join(lines), encoding="utf-8")
    rows, stats = parse(body)
    clean, _ = parse(SAMPLE)
    assert len(rows) == len(clean)
    assert [(w.kind, w.message.split(":")[0]) for w in stats.warnings] == [
        ("bad-line", "line 5"),
        ("bad-line", f"line {len(lines) - 1}"),
    ]
    assert stats.status == "partial" and stats.skipped_records == 3  # 2 bad, 1 timeless


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("0|/x|1|r/rrw-r--r--|0|0|5|1|2|3", "fields"),
        ("zz|/x|1|r/rrw-r--r--|0|0|5|1|2|3|4", "MD5"),
        ("0|/x|1|rw-r--r--|0|0|5|1|2|3|4", "mode"),
        ("0|/x|1|r/rrw-r--r--|root|0|5|1|2|3|4", "UID"),
        ("0|/x|1|r/rrw-r--r--|0|0|5k|1|2|3|4", "size"),
        ("0|/x|1|r/rrw-r--r--|0|0|5|1|yesterday|3|4", "time"),
        ("0|/x|1|r/rrw-r--r--|0|0|5|1|99999999999999999|3|4", "out of range"),
    ],
)
def test_each_bad_field_is_named(tmp_path: Path, line: str, why: str) -> None:
    body = tmp_path / "one.body"
    body.write_text(SAMPLE.read_text(encoding="utf-8") + line + "\n", encoding="utf-8")
    _, stats = parse(body)
    assert len(stats.warnings) == 1
    assert stats.warnings[0].message.startswith("line 11: ")
    assert why in stats.warnings[0].message


def test_an_endless_line_is_skipped_without_holding_it(tmp_path: Path) -> None:
    body = tmp_path / "long.body"
    with body.open("wb") as handle:
        handle.write(SAMPLE.read_bytes())
        handle.write(b"0|/" + b"A" * (3 << 20) + b"|1|r/rrw-r--r--|0|0|5|1|2|3|4\n")
        handle.write(b"0|/after|1|r/rrw-r--r--|0|0|5|1|2|3|4\n")
    rows, stats = parse(body)
    assert [w.kind for w in stats.warnings] == ["bad-line"]
    assert "longer than" in stats.warnings[0].message
    assert any(fields_of(r)["path"] == "/after" and r[8] == "12" for r in rows)


def test_many_bad_lines_are_capped(tmp_path: Path) -> None:
    body = tmp_path / "junk.body"
    body.write_text(SAMPLE.read_text(encoding="utf-8") + "junk\n" * 250, encoding="utf-8")
    _, stats = parse(body)
    assert len(stats.warnings) == 101 and stats.skipped_records == 251
    assert "150 more bad lines" in stats.warnings[-1].message


def test_unit_time_and_escape_rules() -> None:
    assert iso_time("0") == "" and iso_time("0.0") == ""
    assert iso_time("1337961350") == "2012-05-25T15:55:50.000000+00:00"
    assert iso_time("1596091265.352146149") == "2020-07-30T06:41:05.352146+00:00"
    assert iso_time("-1.25") == "1969-12-31T23:59:58.750000+00:00"
    assert epoch_text(-1_250_000) == "-1.250000" and epoch_text(None) == "0"
    assert epoch_text(1_337_961_350_000_000) == "1337961350"
    parts = split_line(b"0|a\\\\|b|1|r/rrw-r--r--|0|0|5|1|2|3|4")
    assert file_fields(parts)["path"] == "a\\|b"  # escaped backslash, then a re-joined pipe
    parts = split_line(b"0|\\x41\\q\\|x|1|r/rrw-r--r--|0|0|5|1|2|3|4")
    assert file_fields(parts)["path"] == "A\\q|x"  # unknown escapes stay as written
    assert file_fields(split_line(b"0|\\xff|1|r/rrw-r--r--|0|0|5|1|2|3|4"))["path"] == "\\xff"


@pytest.mark.parametrize(
    "name",
    [
        "/plain",
        "/a|b",
        "/a\\|b",
        "/trailing\\",
        "/\\x41 is not A",
        "/new\nline\r\x00\x1b[31mred",
        "/bidi\u202etxt.exe",
        "/nel\x85 ls\u2028",
        "/ünï ☃",
        "/%41%7c",
        "/a -> b",
        "/\\xff",
    ],
)
def test_escaped_names_read_back_unchanged(name: str) -> None:
    for kind, mode, target in (("r", "-rw-r--r--", ""), ("l", "lrwxrwxrwx", "t -> u|v")):
        fields = {"path": name, "size": "1", "mode": mode, "type": kind, "uid": "0"}
        if target:
            fields["symlink_target"] = target
        line = bodyfile_line(fields, {"mtime": 1_000_000})
        assert line.endswith("\n") and line.count("\n") == 1
        line = line[:-1]
        assert line.count("|") == 10 and line.isprintable()
        back = file_fields(split_line(line.encode("utf-8")))
        assert back["path"] == name
        assert back.get("symlink_target", "") == target
        assert back["mtime"] == "1970-01-01T00:00:01.000000+00:00" and back["atime"] == ""


def test_escape_is_minimal_for_plain_names() -> None:
    assert escape_name("/usr/bin/ls") == "/usr/bin/ls"
    assert escape_name("a|b") == "a\\x7cb"
    assert escape_name("a\\b") == "a\\\\b"


# --- sniffing ----------------------------------------------------------------------------


def test_sniffing_takes_bodyfiles_only(tmp_path: Path) -> None:
    assert SOURCES[0].name == "evtx"
    assert sniff(SAMPLE.read_bytes(), Path("x.bin")) is not None
    for head in (
        b"\xef\xbb\xbf0|/x|1|r/rrw-r--r--|0|0|5|1|2|3|4\r\n",
        b"# only a comment first\n\n0|/x|1|d/d---------|0|0|0|0|0|0|0\n",
        b"0|/x|1|r/rrw-r--r--|0|0|5|1|2|3|4",  # one line, no newline
    ):
        assert looks_like_bodyfile(head), head
    for head in (
        b"",
        b"# just comments\n# more\n",
        b'{"name":"pack_x","hostIdentifier":"h","columns":{"a":"0|1|2|3|4|5|6|7|8|9|10"}}\n',
        b'[{"a": 1}]\n',
        b"| a | b | c | d | e | f | g | h | i | j | k |\n",
        b"a|b|c|d|e|f|g|h|i|j|k\n",
        b"0|/x|1|r/rrw-r--r--|0|0|5|1|2|3\n",  # 10 fields
        b"0|/x|1|r/rrw-r--r--|0|0|5|1|2|3|4\nnot a body line\n",  # second line bad
        b"0|/x|1|r/rrw-r--r--|0|0|5|1|2|3|4\x00\n",
        b"ElfFile\x00" + b"0|/x|1|r/rrw-r--r--|0|0|5|1|2|3|4\n",
    ):
        assert not looks_like_bodyfile(head), head
    for evtx in EVIDENCE.glob("*.evtx"):
        found = sniff(evtx.read_bytes()[:4096], evtx)
        assert found is not None and found.name == "evtx"
    for text in (REPO / "docs").glob("*.md"):
        assert not looks_like_bodyfile(text.read_bytes()[:4096]), text


def test_osquery_samples_are_not_taken() -> None:
    root = corpus_path() / "osquery-samples"
    if not root.is_dir():
        pytest.skip("osquery samples not in the corpus")
    for path in root.rglob("*"):
        if path.is_file():
            assert not looks_like_bodyfile(path.read_bytes()[:4096]), path


# --- export and the round trip through the real command line ------------------------------


def case_events(case: Path) -> list[tuple[Any, ...]]:
    """(ts, ts_desc, event_id, *KEYS) of every event, sorted."""
    with Case(case, read_only=True) as store:
        rows = store.db.execute(
            "SELECT strftime(ts, '%Y-%m-%dT%H:%M:%S.%f+00:00'), ts_desc, event_id, source, "
            "fields FROM events"
        ).fetchall()
    out = []
    for ts, desc, letter, source, fields_json in rows:
        assert source == "bodyfile"
        fields = json.loads(fields_json)
        out.append((ts, desc, letter, *(fields.get(k, "") for k in KEYS)))
    return sorted(out)


def parse_cli(body: Path, case: Path, code: int = 0) -> dict[str, Any]:
    result = run_irkit("parse", str(body), "--case", str(case), "--json")
    assert result.returncode == code, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def timeline_bodyfile(case: Path, out: Path, *extra: str) -> str:
    result = run_irkit("timeline", str(case), "--format", "bodyfile", "-o", str(out), *extra)
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_round_trip_through_the_cli(odd_tree: Path, tmp_path: Path) -> None:
    body = tmp_path / "in" / "tree.body"
    body.parent.mkdir()
    lstat_bodyfile(odd_tree, body, md5=True)
    with body.open("a", encoding="utf-8") as handle:  # the sample's oddities too
        handle.write(SAMPLE.read_text(encoding="utf-8"))
    first = parse_cli(body, tmp_path / "case1")
    assert first["warnings"] == 0 and first["skipped_records"] == 1
    out = tmp_path / "out" / "export.body"
    out.parent.mkdir()
    timeline_bodyfile(tmp_path / "case1", out)
    second = parse_cli(out, tmp_path / "case2")
    assert second["records"] == first["records"]
    # Same ts (to the µs: a bodyfile's nanoseconds are cut once, on the first read),
    # ts_desc, MACB letter, path, size, mode, uid, gid, inode and md5 for every event.
    assert case_events(tmp_path / "case2") == case_events(tmp_path / "case1")
    # And the export is deterministic: exporting the second case gives the same bytes.
    again = tmp_path / "out" / "again.body"
    timeline_bodyfile(tmp_path / "case2", again)
    assert again.read_bytes() == out.read_bytes()
    lines = out.read_text(encoding="utf-8").splitlines()
    files = {(row[3], row[8]) for row in case_events(tmp_path / "case1")}  # path, inode
    assert len(lines) == len(files)  # one line per file
    assert all(line.count("|") == 10 for line in lines)


@pytest.mark.skipif(shutil.which("mactime") is None, reason="sleuthkit (mactime) is not installed")
def test_mactime_reads_the_export(odd_tree: Path, tmp_path: Path) -> None:
    body = tmp_path / "tree.body"
    lstat_bodyfile(odd_tree, body)
    case = tmp_path / "case"
    summary = parse_cli(body, case)
    out = tmp_path / "export.body"
    timeline_bodyfile(case, out)
    result = subprocess.run(
        ["mactime", "-b", str(out), "-y", "-d"], capture_output=True, text=True, check=True
    )
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0][:3] == ["Date", "Size", "Type"]
    letters = 0
    for row in rows[1:]:
        if not row[0].startswith("0000"):  # mactime lists a line's 0 times under year 0
            letters += sum(1 for c in row[2] if c != ".")
            assert row[3][1] == "/" and row[6].replace("-", "").isdigit()  # columns aligned
    assert letters == summary["records"]  # every event, none shifted or lost
    names = {row[7] for row in rows[1:]}
    assert str(odd_tree / "dir with space" / "a\\x7cb\\x7cc.txt") in names


def test_export_skips_and_counts_other_events(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence"
    shutil.copytree(EVIDENCE, evidence)
    shutil.copy(SAMPLE, evidence / "sample.body")
    case = tmp_path / "case"
    summary = parse_cli(evidence, case)
    assert summary["files_parsed"] == len(list(EVIDENCE.iterdir())) + 1
    out = tmp_path / "all.body"
    note = timeline_bodyfile(case, out)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 8  # the sample's 9 files less the timeless one
    assert "8 files from 27 file events" in note and "other events skipped" in note
    # A time filter keeps only the selected times of a file; the rest are 0.
    window = tmp_path / "window.body"
    timeline_bodyfile(case, window, "--from", "2024-05-01T12:36:35", "--source", "bodyfile")
    kept = window.read_text(encoding="utf-8").splitlines()
    assert len(kept) == 1 and "evil.dll" in kept[0]
    assert kept[0].split("|")[-4:] == ["1714567000", "1714567000", "1714567000", "0"]


def test_a_garbage_line_exits_partial_through_the_cli(tmp_path: Path) -> None:
    body = tmp_path / "dirty.body"
    text = SAMPLE.read_text(encoding="utf-8")
    body.write_text(text + "0|/bad|1|r/rrw-r--r--|0|0|five|1|2|3|4\n", encoding="utf-8")
    summary = parse_cli(body, tmp_path / "case", code=3)
    messages = summary["errors_by_file"][str(body)]
    assert messages == ["bad-line: line 11: the size is not a number; line skipped"]
    assert summary["skipped_records"] == 2 and summary["records"] == 27


def test_a_line_from_the_fields_alone_rebuilds_the_file() -> None:
    """``irkit hash --bodyfile`` writes lines from the fields, without the store."""
    rows, _ = parse(SAMPLE)
    for row in rows:
        fields = fields_of(row)
        line = bodyfile_line(fields)
        assert file_fields(split_line(line.rstrip("\n").encode("utf-8"))) == fields
