"""Files as evidence: opened safely, hashed in one read, dated, matched against IOCs.

- ``fileio``: how an evidence file is opened (read-only, no atime, no link followed,
  never blocking on a FIFO), dated (``statx`` birth times) and kept out of ``/proc``;
- ``options``: what a hash run is asked (``HashOptions``) and what it reports
  (``HashSummary``);
- ``walk``: trees walked in a fixed order, never escaped, every skip a named reason;
- ``hashing``: the walked files hashed (md5, sha1, sha256 in one read, a thread per core),
  hash IOC matches made findings;
- ``events``: a walked entry as flat fields, file-time events and a digest-list line;
- ``eventcolumns``: many entries' file events as Arrow columns, for the case;
- ``hashrun``: the results sent to a digest list, a bodyfile and the case;
- ``ioc``: hash IOC lists (signature-base, ``sha256sum`` files, CSV);
- ``vfs``: disk images and archives as trees of files, through dfVFS (recognised, walked,
  read, copied out), their entries as file events.

May import: ``irkit.export`` (the bodyfile writer), ``irkit.store``, ``irkit.sources``
and the base modules. Never ``irkit.ingest``, ``irkit.detect``, ``irkit.collect`` or the CLI.
"""
