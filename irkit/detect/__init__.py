"""Detectors: each turns a case's events (or its evidence files) into findings.

Every detector returns a ``DetectorResult``: its findings (``irkit.model.Finding``), a
report of what it loaded, skipped and could not run (plain data, for the summary and
``--json``), and counted warnings. ``scan`` runs them and stores the findings. A detector
tells a ``ScanProgress`` how far it is (the command line draws it; the library prints
nothing).

- ``heuristics`` (+ ``heuristics_lint``): irkit's own rules, YAML + SQL;
- ``sigma*``: Sigma rules compiled to SQL over the case, with correlations;
- ``yara*``: YARA over evidence files and event text;
- ``analytics*``: stacking, first-seen and rare-pair findings.

May import: ``irkit.files``, ``irkit.store``, ``irkit.sources`` and the base modules.
Never ``irkit.ingest``, ``irkit.collect`` or the CLI.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

from irkit.model import Finding, ParseWarning


@dataclasses.dataclass(slots=True)
class DetectorResult:
    """What one detector found, and what it says about its own run.

    ``name`` names the part of a scan in summaries and ``--json`` when one detector runs
    over several things (``yara-evidence``, ``yara-events``, ``yara-targets``); empty:
    the detector's name.
    """

    detector: str
    findings: list[Finding] = dataclasses.field(default_factory=list)
    report: dict[str, Any] = dataclasses.field(default_factory=dict)
    warnings: list[ParseWarning] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    name: str = ""


class ScanProgress:
    """Hears how a scan advances, one phase at a time; the command line subclasses it
    with a live display. Called from the scanning thread only. The base does nothing."""

    def phase(self, label: str, total: float | None = None, unit: str = "") -> None:
        """A phase begins: ``total`` units of work (None: not known ahead); ``unit`` is
        what is counted (``rules``, ``files``, ``events``; ``bytes`` for data read)."""

    def advance(self, amount: float = 1) -> None:
        """``amount`` more units of the current phase are done."""

    def done(self) -> None:
        """The current phase is over."""


#: Progress nobody listens to.
NO_PROGRESS: Final = ScanProgress()
