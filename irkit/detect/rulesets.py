"""The rule files a scan used, for its run manifest (``irkit.store.custody``).

Each rule set lists its files as the detector found them (built-in heuristics and
analytics, ``--sigma`` and ``--yara`` paths walked as their loaders walk them, the data
files they read) with the counts the scan's ``DetectorResult`` reports give.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from irkit.artifacts import artifacts_dir
from irkit.store.custody import rule_set

if TYPE_CHECKING:
    from irkit.detect.scan import ScanSummary


def _reports(summary: ScanSummary) -> dict[str, dict[str, Any]]:
    return {(r.name or r.detector): r.report for r in summary.detectors}


def scan_rule_sets(
    summary: ScanSummary,
    *,
    sigma: Sequence[Path] = (),
    yara: Sequence[Path] = (),
    sigma_config: Path | None = None,
) -> list[dict[str, Any]]:
    """Every rule set the scan ran, each file with its sha256 and what loaded or not."""
    reports = _reports(summary)
    data = artifacts_dir()
    sets: list[dict[str, Any]] = []
    if "heuristic" in reports:
        report = reports["heuristic"]
        sets.append(
            rule_set(
                "heuristics",
                (data / "heuristics").glob("*.yaml"),
                builtin=True,
                loaded=int(report.get("heuristics", 0)),
                skipped=int(report.get("below_min_level", 0)),
                counts={"failed": len(report.get("failed", []))},
            )
        )
    if "analytics" in reports:
        rules = int(reports["analytics"].get("rules", 0))
        sets.append(
            rule_set("analytics", (data / "analytics").glob("*.yaml"), builtin=True, loaded=rules)
        )
    if sigma and "sigma" in reports:
        report = reports["sigma"]
        from irkit.detect.sigma import rule_files as sigma_files

        found, loaded = int(report.get("rules_found", 0)), int(report.get("loaded", 0))
        counts = {
            "rules_found": found,
            "run": report.get("run", 0),
            "invalid": len(report.get("invalid", [])),
            "unsupported": report.get("unsupported_count", 0),
            "waiting_for_config": len(report.get("skipped_placeholders", [])),
        }
        sets.append(
            rule_set(
                "sigma",
                sigma_files(sigma),
                given=sigma,
                loaded=loaded,
                skipped=found - loaded,
                counts=counts,
            )
        )
        support = [data / "sigma" / "logsources.yaml"]
        sets.append(rule_set("sigma-logsources", support, builtin=True))
        if sigma_config is not None:
            sets.append(rule_set("sigma-config", [sigma_config], given=[sigma_config]))
    if yara and "yara-evidence" in reports:
        from irkit.detect.yara_rules import rule_files

        report = reports["yara-evidence"].get("rules", {})
        files, _roots = rule_files(list(yara))
        bad = len(report.get("bad_files", []))
        sets.append(
            rule_set(
                "yara",
                files.values(),
                given=yara,
                loaded=int(report.get("rules", 0)),
                skipped=bad,
                counts={"rule_files": report.get("rule_files", 0), "bad_files": bad},
            )
        )
        fields = [data / "yara" / "event_fields.yaml"]
        sets.append(rule_set("yara-event-fields", fields, builtin=True))
    return sets
