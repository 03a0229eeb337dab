"""`irkit collect`: the artifacts of a profile copied, hashed and listed in a manifest.

The collection folder holds ``files/`` (each source at its path relative to the root),
``listings/`` (bodyfiles of PATH sources), ``commands/`` (command and osquery outputs),
``manifest.json`` and ``manifest.json.sha256``. With ``--zip`` the folder becomes
``<host>-<time>.zip`` in the output folder, beside its ``.sha256`` and ``collect.log``.
Nothing prompts; nothing is written outside the output folder.

``run_collect`` is the collection from start to end: the target opened, the definitions
resolved, their sources collected (``irkit.collect.run``), osquery run, the manifest and
the zip written (``irkit.collect.manifest``).
"""

from __future__ import annotations

import re
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from irkit.collect import commands as command_runner
from irkit.collect.definitions import DEFAULT_PROFILES, SourceSpec, load_definitions
from irkit.collect.discover import open_target
from irkit.collect.manifest import build_manifest, write_manifest, zip_collection
from irkit.collect.options import CollectOptions, CollectProgress, CollectSummary
from irkit.collect.run import CollectRun
from irkit.errors import UsageError


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(
            f"--out {out} exists and is not an empty folder",
            hint="collect into a new folder: a collection never mixes with other files",
        )


def run_collect(options: CollectOptions, progress: CollectProgress | None = None) -> CollectSummary:
    """Collect what the profile (or the artifacts named) ask for; write the manifest."""
    progress = progress or CollectProgress()
    if options.profile and options.artifacts:
        raise UsageError("--profile and --artifact cannot be used together", hint="choose one")
    _check_out(options.out)
    started_ns = time.time_ns()
    started = time.perf_counter()
    collection_id = str(uuid.uuid4())
    from irkit.files.fileio import pseudo_mounts

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
    run = CollectRun(options, target, base, progress)
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
    manifest = build_manifest(
        options, summary, target, definitions, sources, files, started_ns, finished_ns
    )
    summary.manifest_sha256 = write_manifest(base, manifest)
    summary.folder = str(base)
    if options.zip:
        zip_collection(summary, base, out, f"{_safe_host(host)}-{stamp}", options)
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
