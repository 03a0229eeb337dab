"""Ingest: evidence in, events into the case (`irkit parse`, and triage's parse step).

- ``discovery``: walk the evidence, recognise each file by its content, find copies;
- ``parse``: the run (``parse_evidence``): the case filled in transactions;
- ``options``: ``ParseOptions``, how to parse (engine, workers, batch and slice sizes);
- ``summary``: ``ParseSummary`` and ``Progress``, what a run reports;
- ``worker``: one file (or slice) parsed in a worker process, the fork server;
- ``pool``: the process pool that hands files and slices to the workers;
- ``slices``: big EVTX logs cut into chunk ranges, the slices' stats merged back;
- ``crosscheck``: both EVTX engines on one file, compared.

May import: ``irkit.collect`` (a collection opened as evidence), ``irkit.files``,
``irkit.store``, ``irkit.sources`` and the base modules (``model``, ``errors``,
``artifacts``, ``speedups``). Never ``irkit.cli`` or ``irkit.detect``.
"""
