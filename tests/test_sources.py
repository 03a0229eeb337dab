"""The source registry: every module registered, documented and with a sample."""

from __future__ import annotations

from pathlib import Path

from irkit.sources import SOURCES, sniff

from .conftest import DATA, REPO

HELPERS = {"__init__", "base", "messages"}
HELPERS |= {"osquery_format", "osquery_glog", "osquery_stream", "osquery_tables", "osquery_values"}


def test_every_source_module_is_registered_documented_and_sampled() -> None:
    folder = REPO / "irkit" / "sources"
    packages = {p.parent.name for p in folder.glob("*/__init__.py")}  # evtx/: one source
    modules = ({p.stem for p in folder.glob("*.py")} | packages) - HELPERS
    names = {source.name for source in SOURCES}
    # The plaso package holds plaso's own results too (plaso-storage, plaso-json, plaso-csv).
    assert modules == {name.split("-")[0] for name in names}
    doc = (REPO / "docs" / "sources.md").read_text()
    for name in names:
        assert f"| `{name}` |" in doc
    sampled = set()
    for path in DATA.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                found = sniff(handle.read(4096), path)
            if found is not None:
                sampled.add(found.name)
    assert names <= sampled, f"no sample in tests/data for {names - sampled}"


def test_sniffing_is_by_content() -> None:
    evtx = next(DATA.rglob("*.evtx"))
    head = evtx.read_bytes()[:4096]
    source = sniff(head, Path("renamed.bin"))
    assert source is not None and source.name == "evtx"
    assert sniff(b"ElfFile", Path("x.evtx")) is None  # 7 bytes: no NUL
    assert sniff(b"", Path("x.evtx")) is None
