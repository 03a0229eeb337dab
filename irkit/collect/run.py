"""The sources of the resolved definitions collected, one by one, into the collection folder.

- FILE: each path globbed under the target's root, each file copied and hashed once
  (``files/``), whatever the number of artifacts that name it;
- PATH: a bodyfile of everything under each folder (``listings/``), small files kept;
- COMMAND: run on the live host only, its output stored and hashed (``commands/``).

``CollectRun`` keeps the file records, the skipped files and the commands that
``irkit.collect.manifest`` lists.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from irkit.collect import commands as command_runner
from irkit.collect.copy import FileRecord, NotCopiedError, copy_file, fit_path, stored_name, utc_now
from irkit.collect.definitions import SourceSpec
from irkit.collect.options import CollectOptions, CollectProgress, Skipped
from irkit.collect.target import Match, Target, _literal

#: PATH sources: entries listed per folder; small files whose contents are kept.
LISTING_MAX_ENTRIES: Final = 20_000
LISTING_COPY_MAX: Final = 64 << 10
LISTING_COPY_FILES: Final = 500


class CollectRun:
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
        from irkit.files.events import entry_fields
        from irkit.files.options import HashOptions, HashSummary
        from irkit.files.walk import Walker

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
