"""`irkit collect`: the artifacts of a profile copied, hashed and listed in a manifest.

The collection folder holds ``files/`` (each source at its path relative to the root),
``listings/`` (bodyfiles of PATH sources), ``commands/`` (command and osquery outputs),
``manifest.json`` and ``manifest.json.sha256``. With ``--zip`` the folder becomes
``<host>-<time>.zip`` in the output folder, beside its ``.sha256`` and ``collect.log``.
Nothing prompts; nothing is written outside the output folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from irkit.collect import commands as command_runner
from irkit.collect.copy import FileRecord, NotCopiedError, copy_file, fit_path, stored_name, utc_now
from irkit.collect.definitions import DEFAULT_PROFILES, SourceSpec, load_definitions
from irkit.collect.host import host_facts, privileges, tool_facts
from irkit.collect.target import Match, Target, _literal, open_target
from irkit.errors import ExitCode, UsageError

MANIFEST: Final = "manifest.json"
MANIFEST_DIGEST: Final = "manifest.json.sha256"
FORMAT: Final = "irkit-collection"
FORMAT_VERSION: Final = 1
DEFAULT_MAX_FILE_SIZE: Final = 2 << 30
#: PATH sources: entries listed per folder; small files whose contents are kept.
LISTING_MAX_ENTRIES: Final = 20_000
LISTING_COPY_MAX: Final = 64 << 10
LISTING_COPY_FILES: Final = 500
#: Skip reasons that mean something that should have been collected was not (exit 3).
WARNING_REASONS: Final = frozenset(
    {"unreadable", "unreadable-directory", "cannot-store", "path-too-long", "command-failed"}
)


@dataclasses.dataclass(slots=True)
class CollectOptions:
    """What to collect, from where, into where."""

    out: Path
    root: Path | None = None
    profile: str = ""
    artifacts: tuple[str, ...] = ()
    case: dict[str, str] = dataclasses.field(default_factory=dict)
    zip: bool = False
    max_file_size: int | None = DEFAULT_MAX_FILE_SIZE
    osquery: bool = True
    argv: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Skipped:
    """A file or command not collected, and why."""

    artifact: str
    source_path: str
    reason: str
    detail: str


@dataclasses.dataclass(slots=True)
class CollectSummary:
    """What one collection did; ``--json`` prints ``as_dict()``."""

    collection_id: str
    out: str
    profile: str = ""
    os_name: str = ""
    root: str = ""
    live: bool = True
    folder: str = ""
    zip_path: str = ""
    zip_sha256: str = ""
    manifest_sha256: str = ""
    files: int = 0
    bytes: int = 0
    truncated: int = 0
    changed: int = 0
    listings: int = 0
    seconds: float = 0.0
    artifacts: int = 0
    not_for_os: list[str] = dataclasses.field(default_factory=list)
    skipped: list[Skipped] = dataclasses.field(default_factory=list)
    commands: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    osquery: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        """PARTIAL when a file that should have been read could not be; else OK."""
        warned = any(s.reason in WARNING_REASONS for s in self.skipped)
        return ExitCode.PARTIAL if warned else ExitCode.OK

    def skipped_by_reason(self) -> dict[str, int]:
        """How many were skipped, by reason."""
        return dict(sorted(Counter(s.reason for s in self.skipped).items()))

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain data, stable key order."""
        return {
            "collection_id": self.collection_id,
            "out": self.out,
            "folder": self.folder,
            "zip": self.zip_path,
            "zip_sha256": self.zip_sha256,
            "manifest_sha256": self.manifest_sha256,
            "profile": self.profile,
            "os": self.os_name,
            "root": self.root,
            "live": self.live,
            "artifacts": self.artifacts,
            "artifacts_not_for_this_os": self.not_for_os,
            "files": self.files,
            "bytes": self.bytes,
            "truncated": self.truncated,
            "changed_while_copied": self.changed,
            "listings": self.listings,
            "commands": len(self.commands),
            "commands_failed": sum(1 for c in self.commands if c["status"] != "ran"),
            "osquery": self.osquery,
            "skipped": self.skipped_by_reason(),
            "skipped_files": [dataclasses.asdict(s) for s in self.skipped],
            "seconds": round(self.seconds, 3),
            "mb_per_second": round(self.bytes / 1e6 / self.seconds, 1) if self.seconds else 0.0,
            "exit_code": int(self.exit_code),
        }


class CollectProgress:
    """Hears of progress; the CLI subclasses it with a live line on a terminal."""

    def artifact(self, name: str) -> None:
        """Collection of an artifact begins."""

    def stored(self, nbytes: int) -> None:
        """``nbytes`` more were stored."""

    def file_done(self) -> None:
        """One more file is stored."""


class _Run:
    """One collection in progress: the records, and where they go."""

    def __init__(
        self, options: CollectOptions, target: Target, base: Path, progress: CollectProgress
    ) -> None:
        self.options = options
        self.target = target
        self.base = base
        self.progress = progress
        self.files: dict[tuple[str, ...], FileRecord] = {}
        self.skipped: list[Skipped] = []
        self.commands: list[dict[str, Any]] = []
        self.listings = 0

    def skip(self, artifact: str, path: str, reason: str, detail: str) -> None:
        self.skipped.append(Skipped(artifact, path, reason, detail))

    def on_skip(self, artifact: str) -> Callable[[str, str, str], None]:
        root = self.target.root

        def hear(path: str, reason: str, detail: str) -> None:
            if path.startswith(root) and root != os.sep:
                rel = os.path.relpath(path, root)
                path = self.target.display(tuple(rel.split(os.sep)))
            self.skip(artifact, path, reason, detail)

        return hear

    # -- FILE ------------------------------------------------------------------------

    def collect_file(self, artifact: str, match: Match, limit: int | None) -> FileRecord | None:
        source = self.target.display(match.relative)
        known = self.files.get(match.relative)
        if known is not None:
            if artifact not in known.artifacts:
                known.artifacts.append(artifact)
            return None
        parts = fit_path(str(self.base / "files"), stored_name(match.relative))
        stored = ("files", *parts)
        record = FileRecord(artifact, source, "/".join(stored), artifacts=[artifact])
        record.symlink_target = match.link
        try:
            copy_file(
                match.real,
                str(self.base.joinpath(*stored)),
                record,
                limit,
                self.target.live,
                self.progress.stored,
            )
        except NotCopiedError as exc:
            self.skip(artifact, source, exc.reason, exc.detail)
            return None
        if parts[0] == "_long":
            record.error = (record.error + "; " if record.error else "") + (
                "path too long to keep: stored under files/_long/"
            )
        self.files[match.relative] = record
        self.progress.file_done()
        return record

    def file_source(self, spec: SourceSpec) -> None:
        hear = self.on_skip(spec.artifact)
        for path in spec.paths:
            for segments in self.target.expand(path, spec.separator):
                for match in self.target.glob(segments, hear):
                    if self._inside_output(match.real):
                        continue
                    if os.path.isdir(match.real):
                        continue  # a FILE path naming a folder: its files are not asked for
                    self.collect_file(spec.artifact, match, self.options.max_file_size)

    def _inside_output(self, real: str) -> bool:
        out = str(self.options.out.resolve())
        return real == out or real.startswith(out.rstrip(os.sep) + os.sep)

    # -- PATH ------------------------------------------------------------------------

    def path_source(self, spec: SourceSpec) -> None:
        hear = self.on_skip(spec.artifact)
        for path in spec.paths:
            for segments in self.target.expand(path, spec.separator):
                for match in self.target.glob(segments, hear):
                    if os.path.isdir(match.real) and not self._inside_output(match.real):
                        self.listing(spec.artifact, match)

    def listing(self, artifact: str, match: Match) -> None:
        """A bodyfile of everything under the folder; small files' contents kept."""
        from irkit.export.bodyfile import bodyfile_line
        from irkit.hashing import HashOptions, HashSummary, Walker, entry_fields

        out_glob = _literal(str(self.options.out.resolve()))
        summary = HashSummary()
        walker = Walker(HashOptions(excludes=(out_glob,)), summary)
        name = "_".join(match.relative) or "root"
        stored = ("listings", artifact, f"{stored_name((name,))[0]}.body")
        target_path = self.base.joinpath(*stored)
        target_path.parent.mkdir(parents=True, exist_ok=True)
        entries = copied = 0
        try:
            top = os.lstat(match.real)
        except OSError as exc:
            self.skip(artifact, self.target.display(match.relative), "unreadable", str(exc))
            return
        root = self.target.root
        with target_path.open("w", encoding="utf-8", errors="surrogateescape") as out:
            for entry in walker.walk_entry(match.real, match.real, top, top.st_dev):
                entries += 1
                if entries > LISTING_MAX_ENTRIES:
                    self.skip(
                        artifact,
                        self.target.display(match.relative),
                        "listing-truncated",
                        f"more than {LISTING_MAX_ENTRIES} entries: the rest are not listed",
                    )
                    break
                rel = tuple(os.path.relpath(entry.path, root).split(os.sep))
                fields = entry_fields(entry)
                fields["path"] = self.target.display(rel)
                out.write(bodyfile_line(fields))
                small = entry.type == "r" and entry.size <= LISTING_COPY_MAX
                if small and copied < LISTING_COPY_FILES:
                    copied += self.collect_file(artifact, Match(rel, entry.path), None) is not None
        for note in [*summary.warnings, *summary.notes]:
            if note.kind == "excluded":
                continue
            self.on_skip(artifact)(note.path, note.kind, note.message)
        record = FileRecord(
            artifact,
            self.target.display(match.relative),
            "/".join(stored),
            method="listing",
            artifacts=[artifact],
        )
        _hash_stored(target_path, record)
        record.error = (
            f"{min(entries, LISTING_MAX_ENTRIES)} entries listed, {copied} small files kept"
        )
        self.files[("\0listing", *stored)] = record
        self.listings += 1

    # -- COMMAND -----------------------------------------------------------------------

    def command_source(self, spec: SourceSpec) -> None:
        argv = [spec.cmd, *spec.args]
        if not self.target.live:
            self.skip(
                spec.artifact, " ".join(argv), "not-live", "commands run only on the live host"
            )
            return
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.basename(spec.cmd)) or "command"
        taken = {c["stdout_path"] for c in self.commands}
        folder = self.base / "commands" / spec.artifact
        name = f"{stem}.txt"
        counter = 1
        while (folder / name).relative_to(self.base).as_posix() in taken:
            counter += 1
            name = f"{stem}-{counter}.txt"
        record = command_runner.run_command(spec.artifact, argv, folder, name, self.base)
        if record.status == "not-found":
            self.skip(spec.artifact, " ".join(argv), "command-not-found", record.error)
            return
        self.commands.append(record.as_dict())


def _hash_stored(path: Path, record: FileRecord) -> None:
    digests = [hashlib.md5(), hashlib.sha1(), hashlib.sha256()]
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            size += len(block)
            for digest in digests:
                digest.update(block)
    record.size = record.stored_size = size
    record.md5, record.sha1, record.sha256 = (d.hexdigest() for d in digests)
    record.collected_utc = utc_now()


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(
            f"--out {out} exists and is not an empty folder",
            hint="collect into a new folder: a collection never mixes with other files",
        )


def write_manifest(base: Path, manifest: dict[str, Any]) -> str:
    """Write ``manifest.json`` and its ``.sha256`` (sha256sum format); returns the digest."""
    data = (json.dumps(manifest, indent=1, ensure_ascii=True) + "\n").encode("ascii")
    (base / MANIFEST).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    (base / MANIFEST_DIGEST).write_text(f"{digest}  {MANIFEST}\n", encoding="ascii")
    return digest


def run_collect(options: CollectOptions, progress: CollectProgress | None = None) -> CollectSummary:
    """Collect what the profile (or the artifacts named) ask for; write the manifest."""
    progress = progress or CollectProgress()
    if options.profile and options.artifacts:
        raise UsageError("--profile and --artifact cannot be used together", hint="choose one")
    _check_out(options.out)
    started_ns = time.time_ns()
    started = time.perf_counter()
    collection_id = str(uuid.uuid4())
    from irkit.fileio import pseudo_mounts

    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    excluded = frozenset({str(out.resolve())})
    target = open_target(options.root, excluded)
    if target.live:
        target.excluded = excluded | pseudo_mounts()
    definitions = load_definitions()
    profile = options.profile or ("" if options.artifacts else DEFAULT_PROFILES[target.os_name])
    names = list(options.artifacts) if options.artifacts else [profile]
    sources, not_for_os = resolve_sources_checked(definitions, names, target.os_name)
    host = socket.gethostname()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started_ns / 1e9))
    base = out / f".irkit-staging-{collection_id[:8]}" if options.zip else out
    base.mkdir(parents=True, exist_ok=True)
    summary = CollectSummary(
        collection_id,
        str(out),
        profile=profile,
        os_name=target.os_name,
        root=target.root,
        live=target.live,
        not_for_os=not_for_os,
        artifacts=len({s.artifact for s in sources}),
    )
    run = _Run(options, target, base, progress)
    for spec in sources:
        progress.artifact(spec.artifact)
        if spec.type == "FILE":
            run.file_source(spec)
        elif spec.type == "PATH":
            run.path_source(spec)
        elif spec.type == "COMMAND":
            run.command_source(spec)
    osquery: dict[str, Any]
    if not target.live:
        osquery = {"available": False, "reason": "not run: --root is not the live system"}
    elif not options.osquery:
        osquery = {"available": False, "reason": "not run: --no-osquery"}
    else:
        progress.artifact("osquery")
        osquery, records = command_runner.run_osquery(base / "commands" / "osquery", base)
        run.commands += [r.as_dict() for r in records]
    for command in run.commands:
        if command["status"] != "ran":
            run.skip(
                command["artifact"], " ".join(command["argv"]), "command-failed", command["error"]
            )
    finished_ns = time.time_ns()
    summary.seconds = time.perf_counter() - started
    files = sorted(run.files.values(), key=lambda r: r.stored_path)
    copies = [f for f in files if f.method == "copy"]
    summary.files = len(copies)
    summary.bytes = sum(f.stored_size for f in copies)
    summary.truncated = sum(1 for f in copies if f.status == "truncated")
    summary.changed = sum(1 for f in copies if f.status == "changed")
    summary.listings = run.listings
    summary.skipped = sorted(run.skipped, key=lambda s: (s.reason, s.source_path))
    summary.commands = run.commands
    summary.osquery = osquery
    from irkit.fileio import iso_ns

    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tool": tool_facts(),
        "collection_id": collection_id,
        "case": {
            key: options.case.get(key, "")
            for key in ("case_number", "evidence_number", "examiner", "notes")
        },
        "host": host_facts(),
        "target": {
            "root": target.root,
            "live": target.live,
            "os": target.os_name,
            "users": [u.name for u in target.users],
        },
        "started_utc": iso_ns(started_ns),
        "finished_utc": iso_ns(finished_ns),
        "seconds": round(summary.seconds, 3),
        "invocation": {
            "argv": list(options.argv),
            "profile": profile,
            "artifacts": list(options.artifacts),
            "max_file_size": options.max_file_size,
            "osquery": options.osquery,
            "zip": options.zip,
        },
        "definitions": {
            "artifacts_package": definitions.package_version,
            "irkit_definitions_sha256": definitions.own_sha256,
            "artifacts_resolved": sorted({s.artifact for s in sources}),
            "artifacts_not_for_this_os": not_for_os,
        },
        "privileges": privileges(),
        "totals": {
            "files": summary.files,
            "bytes": summary.bytes,
            "listings": summary.listings,
            "commands": len(run.commands),
            "skipped": summary.skipped_by_reason(),
        },
        "files": [f.as_dict() for f in files],
        "skipped": [dataclasses.asdict(s) for s in summary.skipped],
        "commands": run.commands,
        "osquery": osquery,
    }
    summary.manifest_sha256 = write_manifest(base, manifest)
    summary.folder = str(base)
    if options.zip:
        _zip(summary, base, out, f"{_safe_host(host)}-{stamp}", options)
    return summary


def resolve_sources_checked(
    definitions: Any, names: list[str], os_name: str
) -> tuple[list[SourceSpec], list[str]]:
    """The sources of ``names`` for the OS; a profile for another OS is refused."""
    from irkit.collect.definitions import resolve_sources

    sources, not_for_os = resolve_sources(definitions, names, os_name)
    if not sources:
        raise UsageError(
            f"nothing to collect: {', '.join(names)} does not apply to {os_name}",
            hint=f"the default profile for {os_name} is {DEFAULT_PROFILES.get(os_name, '?')}",
        )
    return sources, not_for_os


def _safe_host(host: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", host) or "host"


def _zip(
    summary: CollectSummary, base: Path, out: Path, name: str, options: CollectOptions
) -> None:
    from irkit.collect.archive import write_zip

    archive = out / f"{name}.zip"
    summary.zip_sha256 = write_zip(base, archive)
    summary.zip_path = str(archive)
    (out / f"{name}.zip.sha256").write_text(f"{summary.zip_sha256}  {archive.name}\n")
    case = options.case
    lines = [
        f"irkit collect {tool_facts()['version']}",
        f"collection id: {summary.collection_id}",
        f"case number: {case.get('case_number', '')}",
        f"evidence number: {case.get('evidence_number', '')}",
        f"examiner: {case.get('examiner', '')}",
        f"notes: {case.get('notes', '')}",
        f"host: {socket.gethostname()}",
        f"root: {summary.root} ({summary.os_name}, {'live' if summary.live else 'image'})",
        f"profile: {summary.profile or ', '.join(options.artifacts)}",
        f"files: {summary.files} ({summary.bytes} bytes), skipped: {len(summary.skipped)}",
        f"manifest.json sha256: {summary.manifest_sha256}",
        f"zip: {archive.name}",
        f"zip size: {archive.stat().st_size}",
        f"zip sha256: {summary.zip_sha256}",
        f"finished: {utc_now()}",
    ]
    (out / "collect.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.rmtree(base)
    summary.folder = ""
