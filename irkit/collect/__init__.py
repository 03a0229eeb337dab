"""`irkit collect` and `irkit verify`: artifacts copied with a chain of custody.

- ``definitions``: ForensicArtifacts definitions (the ``artifacts`` package's and
  irkit's own in ``artifacts/collect/``) and profiles, resolved for one target OS;
- ``target``: the system collected (live, or a mounted image with ``--root``), its users
  and path variables, and the globbing of definition paths under its root;
- ``copy``: one file copied and hashed in one read, and folder listings;
- ``commands``: COMMAND sources and osquery packs, their output stored and hashed;
- ``host``: facts about the collecting host;
- ``collector``: the run, writing ``manifest.json``; ``archive``: the zip, written and
  read back safely; ``verify``: a collection checked against its manifest;
- ``evidence``: a collection (folder or zip) opened as evidence for ``irkit parse``.
"""
