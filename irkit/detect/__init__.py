"""Detectors: each turns a case's events (or its evidence files) into findings.

Every detector returns a ``DetectorResult``: its findings (``irkit.model.Finding``), a
report of what it loaded, skipped and could not run (plain data, for the summary and
``--json``), and counted warnings. ``irkit.scan`` runs them and stores the findings.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from irkit.model import Finding, ParseWarning


@dataclasses.dataclass(slots=True)
class DetectorResult:
    """What one detector found, and what it says about its own run."""

    detector: str
    findings: list[Finding] = dataclasses.field(default_factory=list)
    report: dict[str, Any] = dataclasses.field(default_factory=dict)
    warnings: list[ParseWarning] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
