"""The case store: a folder holding a DuckDB file and the events as Parquet parts.

- ``case``: the ``Case``, the one class users open, made of the three parts below;
  writers open it for each transaction, readers read a snapshot of it;
- ``lock``: one writer per case (``WriteLock``), held for a whole run;
- ``registry``: evidence and event parts, ingest, the ``events`` and ``timeline`` views;
- ``findings``: the detectors' findings;
- ``runs``: the run log, the runs' warnings, the collections parsed and the damaged
  logs recovered;
- ``schema``: the DuckDB tables and the SQL of the views;
- ``spool``: rows spooled as Arrow tables and Parquet parts on their way into the case;
- ``filewrite``: file events' tables written as Parquet parts on a thread of their own;
- ``timeline``: the case's events filtered and in a stable order, for every export.

May import: ``irkit.sources`` (the row shape a source writes) and the base modules.
Never a stage above it: ingest, files, detect, export, collect or the CLI.
"""
