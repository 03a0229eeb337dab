"""`irkit collect` and `irkit verify`: artifacts copied with a chain of custody.

- ``definitions``: ForensicArtifacts definitions (the ``artifacts`` package's and
  irkit's own in ``artifacts/collect/``) and profiles, resolved for one target OS;
- ``target``: the system collected (live, or a mounted image with ``--root``), its path
  variables, and the globbing of definition paths under its root; ``discover``: its OS
  and users found, the target opened;
- ``copy``: one file copied and hashed in one read, and folder listings;
- ``commands``: COMMAND sources and osquery packs, their output stored and hashed;
- ``host``: facts about the collecting host;
- ``options``: what a collection is asked (``CollectOptions``) and what it reports
  (``CollectSummary``, ``Skipped``, ``CollectProgress``);
- ``collector``: the collection from start to end (``run_collect``); ``run``: the FILE,
  PATH (folder listings) and COMMAND sources collected; ``manifest``: ``manifest.json``,
  its digest and the zip's records; ``archive``: the zip, written and read back safely;
  ``verify``: a collection checked against its manifest;
- ``evidence``: a collection (folder or zip) opened as evidence for ``irkit parse``.

May import: ``irkit.files``, ``irkit.export`` (the listing bodyfile) and the base
modules. Never ``irkit.ingest``, ``irkit.detect`` or the CLI, and never the case store
itself (a contract in pyproject.toml).
"""
