"""One-line EVTX messages: a lint of artifacts/evtx/messages.yaml and checks on real records.

The lint needs nothing but the YAML. The corpus tests parse every EVTX file of the shared
corpus (``$IRKIT_CORPUS``, default ``../shared/corpus``) and are skipped when it is absent:
each template whose event occurs there must render a real record of it, and name fields
that those records really carry.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from irkit.model import MAX_MESSAGE, FileStats, one_line
from irkit.sources.base import ParseContext
from irkit.sources.evtx import flatten_event, iter_fast
from irkit.sources.messages import MessageCatalog, Template

ROOT = Path(__file__).resolve().parents[1]
CATALOG_FILE = ROOT / "artifacts" / "evtx" / "messages.yaml"
DOC_FILE = ROOT / "docs" / "messages.md"
CORPUS = Path(
    os.environ.get("IRKIT_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus")
)

SECURITY = "Security"
SYSTEM = "System"
SYSMON = "Microsoft-Windows-Sysmon/Operational"
POWERSHELL = "Microsoft-Windows-PowerShell/Operational"
CORE_CHANNELS = frozenset({SECURITY, SYSTEM, SYSMON, POWERSHELL, "Windows PowerShell"})
#: Defender names its EventData with spaces ("Threat Name"); irkit keeps them verbatim.
SPACED_NAME_CHANNELS = frozenset({"Microsoft-Windows-Windows Defender/Operational"})
ENTRY_KEYS = frozenset({"channel", "event_id", "text", "fields", "provider"})
MAX_FIELDS = 7

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_SPACED_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?: [A-Za-z0-9]+)*\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

#: Fields of newer schema versions than the corpus records carry: Sysmon 13.30+ adds
#: ``User`` to events 5 and 12 (the corpus has it on 1, 3, 11, 13 but not on these two).
NEWER_SCHEMA_FIELDS: dict[tuple[str, str], frozenset[str]] = {
    (SYSMON, "5"): frozenset({"User"}),
    (SYSMON, "12"): frozenset({"User"}),
}


def key_of(template: Template) -> tuple[str, str, str]:
    return (template.channel, template.event_id, template.provider)


@pytest.fixture(scope="module")
def raw() -> dict[str, object]:
    data = yaml.safe_load(CATALOG_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def catalog() -> MessageCatalog:
    return MessageCatalog.from_file(CATALOG_FILE)


# --------------------------------------------------------------------------- lint


def test_file_has_only_known_keys(raw: dict[str, object]) -> None:
    assert set(raw) == {"short_channels", "templates"}
    entries = raw["templates"]
    assert isinstance(entries, list)
    for index, entry in enumerate(entries, 1):
        assert isinstance(entry, dict), f"template #{index} is not a mapping"
        assert {"channel", "event_id", "text", "fields"} <= set(entry) <= ENTRY_KEYS, (
            f"template #{index} has keys {sorted(entry)}"
        )
        assert isinstance(entry["fields"], list), f"template #{index}: fields is not a list"
        assert re.fullmatch(r"[1-9][0-9]*|0", str(entry["event_id"])), (
            f"template #{index}: event_id {entry['event_id']!r} is not a decimal number"
        )


def test_keys_are_unique(catalog: MessageCatalog) -> None:
    counts = Counter(key_of(t) for t in catalog.templates)
    assert [key for key, n in counts.items() if n > 1] == []


def test_enough_templates(catalog: MessageCatalog) -> None:
    assert len(catalog.templates) >= 60
    core = [t for t in catalog.templates if t.channel in CORE_CHANNELS]
    assert len(core) >= 50


def test_field_names_are_identifiers_or_dotted_paths(catalog: MessageCatalog) -> None:
    bad = []
    for template in catalog.templates:
        for name in template.fields:
            ok = _NAME.match(name) or (
                template.channel in SPACED_NAME_CHANNELS and _SPACED_NAME.match(name)
            )
            if not ok:
                bad.append((key_of(template), name))
    assert bad == []


def test_fields_are_few_and_distinct(catalog: MessageCatalog) -> None:
    for template in catalog.templates:
        assert len(template.fields) <= MAX_FIELDS, key_of(template)
        assert len(set(template.fields)) == len(template.fields), key_of(template)


def test_texts_are_one_clean_line(catalog: MessageCatalog) -> None:
    for template in catalog.templates:
        text = template.text
        assert text and text == text.strip(), key_of(template)
        assert not _CONTROL.search(text), key_of(template)
        assert not text.endswith((".", ":")), key_of(template)
        assert text not in ("None", "null"), key_of(template)


def test_short_channels(catalog: MessageCatalog) -> None:
    short = catalog.short_channels
    assert short["Microsoft-Windows-Sysmon/Operational"] == "Sysmon"
    assert short["Microsoft-Windows-PowerShell/Operational"] == "PowerShell"
    for channel, name in short.items():
        assert name and " " not in name and len(name) < len(channel), channel
    # A short name must not be mistaken for another channel or another short name.
    assert len(set(short.values())) == len(short)
    channels = {t.channel for t in catalog.templates}
    assert not set(short.values()) & channels


def test_doc_table_lists_every_template(catalog: MessageCatalog) -> None:
    """docs/messages.md carries the table of templates; it must match the YAML."""
    rows = set()
    for line in DOC_FILE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 4 and cells[1].isdigit():
            rows.add((cells[0].strip("`"), cells[1], cells[2].strip("`")))
    assert rows == {key_of(t) for t in catalog.templates}


# ------------------------------------------------------------- rendering rules


def _flat(**fields: str) -> tuple[dict[str, str], int]:
    system = {"EventID": "4624", "Channel": SECURITY, "Provider_Name": "x", "Computer": "pc"}
    return {**system, **fields}, len(system)


def test_fallback_shows_eventdata_as_key_value(catalog: MessageCatalog) -> None:
    flat, n_system = _flat(Alpha="1", Beta="two words", Empty="", Dash="-", Gamma="g")
    flat["EventID"] = "65000"
    flat["Channel"] = SYSMON
    assert catalog.lookup(SYSMON, "65000", "x") is None
    assert catalog.render(flat, n_system) == "65000 Sysmon: Alpha=1 Beta=two words Gamma=g"


def test_fallback_without_eventdata_is_the_head(catalog: MessageCatalog) -> None:
    flat, n_system = _flat(Empty="", Dash="-")
    flat["EventID"] = "65000"
    flat["Channel"] = "Some/Channel"
    assert catalog.render(flat, n_system) == "65000 Some/Channel"


def test_template_keeps_its_order_and_leaves_out_dash_and_empty(
    catalog: MessageCatalog,
) -> None:
    flat, n_system = _flat(
        IpAddress="-",
        WorkstationName="",
        LogonType="3",
        TargetDomainName="CORP",
        TargetUserName="bob",
        ProcessName="-",
        Unlisted="never shown",
    )
    assert catalog.render(flat, n_system) == (
        "4624 Security: An account was successfully logged on: "
        "TargetUserName=bob TargetDomainName=CORP LogonType=3"
    )


def test_template_without_values_is_head_and_text(catalog: MessageCatalog) -> None:
    flat, n_system = _flat(TargetUserName="-", IpAddress="")
    assert catalog.render(flat, n_system) == "4624 Security: An account was successfully logged on"


def test_provider_specific_template_wins(catalog: MessageCatalog) -> None:
    old = {"EventID": "1074", "Channel": SYSTEM, "Provider_Name": "USER32", "Data_1": "a.exe"}
    new = {"EventID": "1074", "Channel": SYSTEM, "Provider_Name": "User32", "param1": "b.exe"}
    assert catalog.render(old, 3).endswith("restart: Data_1=a.exe")
    assert catalog.render(new, 3).endswith("restart: param1=b.exe")


@pytest.mark.parametrize(
    "nasty",
    [
        "line1\r\nline2",
        "tab\there",
        "nul\x00byte",
        "esc\x1b[31mred",
        "nel\x85next",
        "ls\u2028ps\u2029end",
        "\n\n",
        "vt\x0bff\x0cfs\x1c",
    ],
)
def test_values_never_break_the_line(catalog: MessageCatalog, nasty: str) -> None:
    templated, n_system = _flat(TargetUserName=nasty, IpAddress=nasty)
    fallback = dict(templated, EventID="65000")
    for message in (catalog.render(templated, n_system), catalog.render(fallback, n_system)):
        assert not _CONTROL.search(message), repr(message)
        assert len(message.splitlines()) == 1, repr(message)


def test_long_values_are_cut(catalog: MessageCatalog) -> None:
    flat, n_system = _flat(TargetUserName="x" * 5000)
    message = catalog.render(flat, n_system)
    assert len(message) == MAX_MESSAGE
    assert message.endswith("…")
    assert one_line("short") == "short"


# ------------------------------------------------------------ the real corpus


@dataclasses.dataclass
class Seen:
    """The records of the corpus that one template renders."""

    path: Path
    flat: dict[str, str]
    n_system: int
    count: int = 0
    keys: set[str] = dataclasses.field(default_factory=set)


@dataclasses.dataclass
class CorpusIndex:
    by_template: dict[Template, Seen]
    records: int
    bad_messages: list[tuple[str, str]]


def iter_corpus(root: Path) -> Iterator[tuple[Path, dict[str, str], int]]:
    for path in sorted(root.rglob("*.evtx")):
        ctx = ParseContext(path, str(path), "", FileStats(str(path)))
        for _rid, _header_ts, event in iter_fast(path, ctx):
            flat, n_system = flatten_event(event)
            yield path, flat, n_system


def corpus_record(relative: str, event_record_id: str) -> tuple[dict[str, str], int]:
    path = CORPUS / relative
    if not path.is_file():
        pytest.skip(f"{path} is not in the corpus")
    ctx = ParseContext(path, str(path), "", FileStats(str(path)))
    for _rid, _header_ts, event in iter_fast(path, ctx):
        flat, n_system = flatten_event(event)
        if flat.get("EventRecordID") == event_record_id:
            return flat, n_system
    raise AssertionError(f"EventRecordID {event_record_id} not found in {path}")


@pytest.fixture(scope="module")
def corpus(catalog: MessageCatalog) -> CorpusIndex:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS} (set IRKIT_CORPUS)")
    by_template: dict[Template, Seen] = {}
    bad: list[tuple[str, str]] = []
    records = 0
    for path, flat, n_system in iter_corpus(CORPUS):
        records += 1
        message = catalog.render(flat, n_system)
        if _CONTROL.search(message) or len(message.splitlines()) != 1:
            bad.append((str(path), message))
        template = catalog.lookup(
            flat.get("Channel", ""), flat.get("EventID", ""), flat.get("Provider_Name", "")
        )
        if template is None:
            continue
        seen = by_template.get(template)
        if seen is None:
            seen = by_template[template] = Seen(path, flat, n_system)
        seen.count += 1
        seen.keys.update(flat)
    if records == 0:
        pytest.skip(f"no EVTX records under {CORPUS}")
    return CorpusIndex(by_template, records, bad)


@pytest.mark.corpus
def test_corpus_covers_many_templates(catalog: MessageCatalog, corpus: CorpusIndex) -> None:
    # Guards the tests below against silently checking nothing.
    assert corpus.records > 30_000
    assert len(corpus.by_template) >= 100


@pytest.mark.corpus
def test_every_template_renders_a_real_record(catalog: MessageCatalog, corpus: CorpusIndex) -> None:
    problems = []
    for template, seen in corpus.by_template.items():
        short = catalog.short_channels.get(template.channel, template.channel)
        head = f"{template.event_id} {short}: {template.text}"
        message = catalog.render(seen.flat, seen.n_system)
        where = f"{key_of(template)} in {seen.path}"
        if not message.startswith(head):
            problems.append(f"{where}: {message!r} does not start with {head!r}")
        if template.fields:
            if not any(name in seen.flat for name in template.fields):
                problems.append(f"{where}: none of {template.fields} in {sorted(seen.flat)}")
            elif message != head and not message.startswith(head + ": "):
                problems.append(f"{where}: {message!r}")
        elif message != head:
            problems.append(f"{where}: a template without fields gave {message!r}")
    assert problems == []


@pytest.mark.corpus
def test_every_field_occurs_in_the_corpus(catalog: MessageCatalog, corpus: CorpusIndex) -> None:
    """A field name that no record of the event carries is a typo or a wrong guess."""
    missing = []
    for template, seen in corpus.by_template.items():
        allowed = NEWER_SCHEMA_FIELDS.get((template.channel, template.event_id), frozenset())
        for name in template.fields:
            if name not in seen.keys and name not in allowed:
                missing.append((key_of(template), name, seen.count))
    assert missing == []


@pytest.mark.corpus
def test_every_corpus_message_is_one_line(corpus: CorpusIndex) -> None:
    assert corpus.bad_messages == []


@pytest.mark.corpus
def test_exact_message_4624_rdp_tunnel(catalog: MessageCatalog) -> None:
    # An RDP logon (type 10) from 127.0.0.1: the mark of RDP over an SSH/plink tunnel.
    flat, n_system = corpus_record(
        "EVTX-ATTACK-SAMPLES/Command and Control/DE_RDP_Tunneling_4624.evtx", "5315"
    )
    assert catalog.render(flat, n_system) == (
        "4624 Security: An account was successfully logged on: "
        "TargetUserName=IEUser TargetDomainName=PC02 LogonType=10 IpAddress=127.0.0.1 "
        "WorkstationName=PC02 ProcessName=C:\\Windows\\System32\\winlogon.exe"
    )


@pytest.mark.corpus
def test_exact_message_sysmon_1_uac_bypass(catalog: MessageCatalog) -> None:
    # UACME method 59: a high-integrity cmd.exe started by Task Manager.
    flat, n_system = corpus_record(
        "EVTX-ATTACK-SAMPLES/Privilege Escalation/UACME_59_Sysmon.evtx", "2164892"
    )
    assert catalog.render(flat, n_system) == (
        "1 Sysmon: Process Create: "
        "Image=C:\\Windows\\System32\\cmd.exe CommandLine=cmd.exe "
        "User=LAPTOP-JU4M3I0E\\bouss IntegrityLevel=High "
        "ParentImage=C:\\Windows\\System32\\Taskmgr.exe "
        "ParentCommandLine=C:\\windows\\system32\\taskmgr.exe"
    )


@pytest.mark.corpus
def test_security_1102_reads_userdata(catalog: MessageCatalog, corpus: CorpusIndex) -> None:
    template = catalog.lookup(SECURITY, "1102", "Microsoft-Windows-Eventlog")
    assert template is not None
    seen = corpus.by_template[template]
    message = catalog.render(seen.flat, seen.n_system)
    assert "LogFileCleared.SubjectUserName=" in message


@pytest.mark.corpus
def test_fallback_on_a_real_record(catalog: MessageCatalog) -> None:
    """Sysmon 4 without a template falls back to its EventData as key=value."""
    flat, n_system = corpus_record("python-evtx/tests/data/issue_43.evtx", "2")
    assert flat["EventID"] == "4"
    bare = MessageCatalog([], catalog.short_channels)
    message = bare.render(flat, n_system)
    assert message.startswith("4 Sysmon: UtcTime=")
    assert "State=Started" in message
