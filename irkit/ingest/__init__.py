"""Ingest: evidence in, events into the case (`irkit parse`, and triage's parse step).

- ``discovery``: walk the evidence, recognise each file by its content, find copies;
- ``parse``: the run (``parse_evidence``);
- ``batch``: ``IngestBatch``, the case filled in transactions, the recovery pass;
- ``collected``: the checks of evidence read through a collection's manifest;
- ``options``: ``ParseOptions``, how to parse (engine, workers, batch and slice sizes);
- ``summary``: ``ParseSummary`` and ``Progress``, what a run reports;
- ``worker``: one file (or slice) parsed in a worker process, the fork server;
- ``pool``: the process pool that hands files and slices to the workers;
- ``runner``: ``Runner``, the tasks run in the pool, a pool a dying worker broke replaced;
- ``tasks``: ``Task`` and ``Done``, the units of work of the pool;
- ``interrupts``: ``interrupts_held``, Ctrl-C and TERM held back while the pool is touched;
- ``slices``: big EVTX logs cut into chunk ranges, the slices' stats merged back;
- ``images``: a disk image's or archive's listing as file events, a file inside copied out
  to be parsed (the worker side of ``irkit.files.vfs``);
- ``crosscheck``: both EVTX engines on one file, compared.

May import: ``irkit.collect`` (a collection opened as evidence), ``irkit.files``,
``irkit.store``, ``irkit.sources`` and the base modules (``model``, ``errors``,
``artifacts``, ``speedups``). Never ``irkit.cli`` or ``irkit.detect``.
"""
