"""A real Linux host: ``irkit collect`` of this machine, then ``irkit triage`` of the
collection, reads the logs it collected through plaso's parsers, not only their listings.

What this machine holds differs from one machine to the next, so each log is checked only
when the collection holds it with some content: a log present and not read is a failure.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

import pytest

from irkit.store.case import Case

from .conftest import run_irkit

pytestmark = pytest.mark.slow

#: A collected log (its path under the collection's ``files/``, a glob) and the parser
#: chains (prefixes) that read it, from plaso's own parser names.
LOGS = {
    "var/log/dpkg.log": ("text/dpkg",),
    "var/log/apt/history.log": ("text/apt_history",),
    "var/log/auth.log": ("text/syslog",),
    "var/log/syslog": ("text/syslog",),
    "var/log/wtmp": ("utmp",),
    "var/log/btmp": ("utmp",),
    "var/log/journal/*/*.journal": ("systemd_journal",),
    "home/*/.bash_history": ("bash_history",),
    "root/.bash_history": ("bash_history",),
    "home/*/.zsh_history": ("text/zsh_extended_history",),
}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux host")
def test_collect_then_triage_reads_the_collected_logs(tmp_path: Path) -> None:
    out, case = tmp_path / "collection", tmp_path / "case"
    collected = run_irkit("collect", "--out", str(out), "--json")
    assert collected.returncode in (0, 3), collected.stderr
    present = {
        str(path.relative_to(out / "files")): chains
        for pattern, chains in LOGS.items()
        for path in sorted((out / "files").glob(pattern))
        if path.is_file() and path.stat().st_size > 0
    }
    if not present:
        pytest.skip("this machine has none of the logs checked here")
    triage = run_irkit("triage", str(out), "--case", str(case), "--json", timeout=900)
    assert triage.returncode in (0, 1, 3), triage.stderr
    with Case(case, read_only=True) as store:
        rows = store.db.execute(
            "SELECT evidence, artifact, count(*) FROM events WHERE source = 'plaso' GROUP BY ALL"
        ).fetchall()
        hosts = {
            h
            for (h,) in store.db.execute(
                "SELECT DISTINCT host FROM events WHERE artifact IN "
                "('text/dpkg', 'text/apt_history', 'bash_history')"
            ).fetchall()
        }
    # These logs do not name their host: the collection's manifest does.
    manifest = json.loads((out / "manifest.json").read_text())
    assert hosts <= {manifest["host"]["hostname"]}
    assert hosts or not {"var/log/dpkg.log", "var/log/apt/history.log"} & set(present)
    by_file: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for evidence, artifact, count in rows:
        by_file[evidence][artifact] += count
    for rel, chains in present.items():
        got = by_file.get(str(out / "files" / rel), collections.Counter())
        read = sum(n for artifact, n in got.items() if artifact.startswith(chains))
        assert read > 0, f"{rel}: no {chains} events (got {dict(got)})"
    families = json.loads(triage.stdout)["records_by_family"]
    assert families.get("bodyfile", 0) > 0  # the collection's listings, as before
    assert sum(n for name, n in families.items() if name != "bodyfile") > 0
