"""irkit: forensic triage for incident responders.

Host artifacts (EVTX, osquery results, files) become one UTC timeline in a case store,
exported as CSV, JSONL or a terminal table. The library never prints or exits; the
command line in ``irkit.cli`` does.
"""

from __future__ import annotations

__version__ = "0.1.0"
