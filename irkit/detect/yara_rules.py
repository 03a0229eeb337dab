"""YARA rule loading: a rule file or folders of them, one namespace per file, cached.

A file that does not compile is reported (file, line, message) and left out; the others
load. All good files compile together in one ``yara.Rules`` (about a second for the
5,918 signature-base rules); the compiled set is saved under ``~/.cache/irkit/yara/``
(``$XDG_CACHE_HOME``), keyed by the sha256 of every source and the YARA version, so the
next run loads it in a tenth of that.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import yara

from irkit.errors import UsageError

#: The external variables every rule may use; LOKI and THOR set them per scanned file.
EXTERNALS: Final[tuple[str, ...]] = ("filename", "filepath", "extension", "filetype", "owner")
RULE_SUFFIXES: Final = (".yar", ".yara")
#: ``/path/rule.yar(12): message`` or ``line 12: message``, as yara-python words errors.
_ERROR: Final = re.compile(r"^(?:(?P<file>.*)\((?P<line>\d+)\)|line (?P<line2>\d+)): (?P<msg>.*)$")
_CACHE_FORMAT: Final = 1


@dataclasses.dataclass(frozen=True, slots=True)
class RuleFileError:
    """A rule file that did not compile, and why; the other files still load."""

    path: str
    line: int
    message: str


@dataclasses.dataclass(slots=True)
class CompiledRules:
    """One compiled rule set and what loading it said."""

    rules: Any
    files: dict[str, str]
    rule_count: int
    errors: list[RuleFileError] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    cache: str = "off"
    key: str = ""
    seconds: float = 0.0
    #: File-type magic (``filetype`` external): ``(prefix bytes, name)``, longest first.
    magic: tuple[tuple[bytes, str], ...] = ()
    magic_source: str = "built-in"

    def report(self) -> dict[str, Any]:
        """What was loaded and skipped, as plain data."""
        return {
            "rule_files": len(self.files),
            "rules": self.rule_count,
            "bad_files": [dataclasses.asdict(e) for e in self.errors],
            "compile_warnings": len(self.warnings),
            "cache": self.cache,
            "compile_seconds": round(self.seconds, 3),
            "filetype_magic": self.magic_source,
        }


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/irkit/yara``, else ``~/.cache/irkit/yara``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "irkit" / "yara"


def rule_files(paths: Sequence[Path]) -> tuple[dict[str, Path], list[Path]]:
    """Namespace → rule file for every path (a file, or a folder walked without following
    links); also the folders includes may read from."""
    files: dict[str, Path] = {}
    roots: list[Path] = []
    for path in paths:
        try:
            info = path.lstat()
        except OSError as exc:
            raise UsageError(
                f"no YARA rules at {path}: {exc.strerror or exc}", hint="check the --yara path"
            ) from exc
        if stat.S_ISREG(info.st_mode):
            found = [(path.name, path)]
            roots.append(path.parent)
        elif stat.S_ISDIR(info.st_mode):
            found = [(p.relative_to(path).as_posix(), p) for p in _walk_rules(path)]
            roots.append(path)
        else:
            raise UsageError(f"{path} is not a rule file or folder (a link or a special file)")
        for name, file in found:
            namespace = name if name not in files else f"{path.name}/{name}"
            while namespace in files:
                namespace = f"_/{namespace}"
            files[namespace] = file
    if not files:
        raise UsageError(
            f"no .yar or .yara files in {', '.join(map(str, paths))}",
            hint="give a rule file or a folder of them",
        )
    return files, roots


def _walk_rules(root: Path) -> list[Path]:
    found: list[Path] = []
    for top, dirs, names in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            path = Path(top) / name
            if name.lower().endswith(RULE_SUFFIXES) and path.is_file() and not path.is_symlink():
                found.append(path)
    return found


def compile_rules(
    paths: Sequence[Path],
    *,
    includes: bool = False,
    use_cache: bool = True,
    cache: Path | None = None,
) -> CompiledRules:
    """Compile rule files and folders; bad files are reported in ``errors``, not raised.

    ``includes=False`` refuses ``include`` statements (the file is reported); with
    ``includes=True`` a rule may include files inside its own rule folder only.
    Raises ``UsageError`` when no rule file compiles.
    """
    started = time.perf_counter()
    files, roots = rule_files(paths)
    digests = {ns: hashlib.sha256(path.read_bytes()).hexdigest() for ns, path in files.items()}
    key = _cache_key(digests, includes)
    magic, magic_source = _magic_for(paths)
    folder = cache if cache is not None else cache_dir()
    loaded = _load_cached(folder, key, files) if use_cache else None
    if loaded is not None:
        loaded.magic, loaded.magic_source = magic, magic_source
        loaded.seconds = time.perf_counter() - started
        return loaded
    included: dict[str, str] = {}
    rules, errors = _compile_good(files, roots if includes else None, included)
    compiled = CompiledRules(
        rules=rules,
        files={ns: str(p) for ns, p in files.items() if str(p) not in {e.path for e in errors}},
        rule_count=sum(1 for _ in rules),
        errors=errors,
        warnings=list(getattr(rules, "warnings", [])),
        cache="miss" if use_cache else "off",
        key=key,
        magic=magic,
        magic_source=magic_source,
    )
    if use_cache:
        compiled.cache = _save_cached(folder, compiled, included)
    compiled.seconds = time.perf_counter() - started
    return compiled


def _cache_key(digests: dict[str, str], includes: bool) -> str:
    key = hashlib.sha256()
    key.update(f"irkit-yara/{_CACHE_FORMAT}|{yara.__version__}|{yara.YARA_VERSION}|".encode())
    key.update(f"includes={includes}|externals={','.join(EXTERNALS)}\n".encode())
    for namespace in sorted(digests):
        key.update(f"{namespace}\0{digests[namespace]}\n".encode())
    return key.hexdigest()


def _compile(files: dict[str, Path], roots: list[Path] | None, included: dict[str, str]) -> Any:
    options: dict[str, Any] = {"includes": roots is not None}
    if roots is not None:
        options["include_callback"] = _include_callback(roots, included)
    return yara.compile(
        filepaths={ns: str(p) for ns, p in files.items()},
        externals=dict.fromkeys(EXTERNALS, ""),
        **options,
    )


def _compile_good(
    files: dict[str, Path], roots: list[Path] | None, included: dict[str, str]
) -> tuple[Any, list[RuleFileError]]:
    """All files together; a file the error names is dropped and the rest retried. An
    error that names no listed file (it is in an include) is found by compiling each
    remaining file alone."""
    good = dict(files)
    errors: list[RuleFileError] = []
    by_path = {str(p): ns for ns, p in files.items()}
    while good:
        try:
            return _compile(good, roots, included), errors
        except yara.SyntaxError as exc:
            error = _parse_error(str(exc))
            namespace = by_path.get(error.path)
            if namespace is not None and namespace in good:
                errors.append(dataclasses.replace(error, path=str(good.pop(namespace))))
                continue
        except yara.Error as exc:
            error = RuleFileError("", 0, str(exc))
        before = len(errors)
        for namespace, path in list(good.items()):
            try:
                _compile({namespace: path}, roots, {})
            except yara.Error as exc:
                alone = _parse_error(str(exc))
                errors.append(RuleFileError(str(path), alone.line, alone.message))
                del good[namespace]
        if len(errors) == before:
            raise UsageError(f"the YARA rules do not compile together: {error.message}")
    raise UsageError(
        "no YARA rule file compiles: "
        + "; ".join(f"{e.path}:{e.line}: {e.message}" for e in errors[:3]),
        hint="check the rule files with: yarac FILE /dev/null",
    )


def _parse_error(text: str) -> RuleFileError:
    found = _ERROR.match(text)
    if found is None:
        return RuleFileError("", 0, text)
    line = found.group("line") or found.group("line2") or "0"
    return RuleFileError(found.group("file") or "", int(line), found.group("msg"))


def _include_callback(roots: list[Path], included: dict[str, str]) -> Any:
    """Resolve ``include`` relative to the including file, inside the rule folders only."""
    allowed = [Path(os.path.realpath(r)) for r in roots]

    def resolve(requested: str, calling: str | None, namespace: str) -> str | None:
        base = Path(calling).parent if calling else allowed[0]
        target = Path(os.path.realpath(base / requested))
        if not any(target == r or r in target.parents for r in allowed) or not target.is_file():
            return None  # yara reports "can't open include file"
        data = target.read_bytes()
        included[str(target)] = hashlib.sha256(data).hexdigest()
        return data.decode("utf-8", errors="replace")

    return resolve


def _load_cached(folder: Path, key: str, files: dict[str, Path]) -> CompiledRules | None:
    try:
        meta = json.loads((folder / f"{key}.json").read_text())
        for path, digest in meta["included"].items():
            if hashlib.sha256(Path(path).read_bytes()).hexdigest() != digest:
                return None
        rules = yara.load(str(folder / f"{key}.yarc"))
    except (OSError, ValueError, KeyError, TypeError, yara.Error):
        return None
    return CompiledRules(
        rules=rules,
        files={ns: str(p) for ns, p in files.items() if ns in set(meta["namespaces"])},
        rule_count=int(meta["rule_count"]),
        errors=[RuleFileError(**e) for e in meta["errors"]],
        warnings=list(meta["warnings"]),
        cache="hit",
        key=key,
    )


def _save_cached(folder: Path, compiled: CompiledRules, included: dict[str, str]) -> str:
    """Save atomically (rename into place); an unwritable cache only costs speed."""
    meta = {
        "namespaces": sorted(compiled.files),
        "rule_count": compiled.rule_count,
        "errors": [dataclasses.asdict(e) for e in compiled.errors],
        "warnings": compiled.warnings,
        "included": included,
    }
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_atomic(folder / f"{compiled.key}.yarc", compiled.rules.save)
        _write_atomic(folder / f"{compiled.key}.json", None, json.dumps(meta).encode())
    except (OSError, yara.Error):
        return "unwritable"
    return "miss"


def _write_atomic(target: Path, save: Any, data: bytes = b"") -> None:
    """Write a temporary file beside ``target`` and rename it into place."""
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
    try:
        with os.fdopen(fd, "wb") as handle:
            if save is not None:
                save(file=handle)
            else:
                handle.write(data)
        Path(temp).replace(target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# -- the ``filetype`` external -------------------------------------------------------

#: Well-known leading bytes, named as LOKI/THOR rules compare them (``filetype == "EXE"``).
BUILTIN_MAGIC: Final[tuple[tuple[bytes, str], ...]] = (
    (b"MZ", "EXE"),
    (b"\x7fELF", "ELF"),
    (b"\xfe\xed\xfa\xce", "MACH-O"),
    (b"\xfe\xed\xfa\xcf", "MACH-O"),
    (b"\xce\xfa\xed\xfe", "MACH-O"),
    (b"\xcf\xfa\xed\xfe", "MACH-O"),
    (b"\xca\xfe\xba\xbe", "MACH-O"),
    (b"MDMP", "MDMP"),
    (b"%PDF", "PDF"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"\x89PNG", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"{\\rt", "RTF"),
    (b"PK\x03\x04", "ZIP"),
    (b"\x1f\x8b\x08", "GZIP"),
    (b"7z\xbc\xaf\x27\x1c", "7Zip"),
    (b"Rar!\x1a\x07", "RAR"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "OLE"),
    (b"ElfFile", "EVTX"),
    (b"regf", "Registry Hive"),
    (b"L\x00\x00\x00\x01\x14\x02\x00", "LNK"),
    (b"MSCF", "CAB"),
    (b"<?php", "PHP"),
    (b"<?xml", "XML"),
    (b"<%@", "ASP"),
    (b"<%", "JSP"),
    (b"@echo", "BATCH"),
    (b"@ECHO", "BATCH"),
    (b"#!/", "UNIX SCRIPT"),
    (b"#!/usr/bin/python", "Python"),
    (b"#!/usr/bin/env python", "Python"),
    (b"Function", "VBS"),
    (b"On Error Resume", "VBS"),
    (b"<html", "HTML"),
    (b"<HTML", "HTML"),
)


def load_magic(path: Path) -> list[tuple[bytes, str]]:
    """LOKI's ``file-type-signatures.txt``: ``HEX BYTES;Name`` lines, ``#`` comments."""
    table: list[tuple[bytes, str]] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        hexes, sep, name = line.strip().partition(";")
        if not sep or hexes.startswith("#"):
            continue
        try:
            table.append((bytes.fromhex(hexes), name.strip()))
        except ValueError:
            continue
    return table


def _magic_for(paths: Sequence[Path]) -> tuple[tuple[tuple[bytes, str], ...], str]:
    """The built-in table, extended by LOKI's when the rules sit in a signature-base tree
    (``misc/file-type-signatures.txt`` in the rule folder or its parent), as LOKI does."""
    table = {magic: name for magic, name in BUILTIN_MAGIC}
    source = "built-in"
    for path in paths:
        folder = path if path.is_dir() else path.parent
        for candidate in (folder, folder.parent):
            signatures = candidate / "misc" / "file-type-signatures.txt"
            if signatures.is_file():
                try:
                    loki = load_magic(signatures)
                except OSError:
                    continue
                for magic, name in loki:
                    table.setdefault(magic, name)
                source = f"built-in + {signatures}"
                break
    ordered = sorted(table.items(), key=lambda item: (-len(item[0]), item[0]))
    return tuple(ordered), source


def file_type(head: bytes, magic: Sequence[tuple[bytes, str]]) -> str:
    """The name of the longest magic ``head`` starts with, else ``UNKNOWN`` (LOKI's word)."""
    for prefix, name in magic:
        if head.startswith(prefix):
            return name
    return "UNKNOWN"


__all__ = [
    "EXTERNALS",
    "CompiledRules",
    "RuleFileError",
    "cache_dir",
    "compile_rules",
    "file_type",
    "load_magic",
]
