"""The Sigma detector: SigmaHQ rules read with pySigma, run as SQL over the case's events.

``load_sigma`` reads rule files and folders into a ``SigmaRuleSet``: each rule compiled to
a small JSON plan (``irkit.detect.sigma_sql``), cached by the file's sha256 so a second
load skips pySigma. A rule that cannot be read or converted is counted by reason, never
fatal. ``run_sigma`` (``irkit.detect.sigma_run``) runs the set over a case. The logsource
taxonomy (which channel and EventID a ``category`` or ``service`` means) is data:
``artifacts/sigma/logsources.yaml``. docs/detection.md explains the matching.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

from irkit.detect import NO_PROGRESS, ScanProgress, rulecache, sigma_sql
from irkit.errors import UsageError

if TYPE_CHECKING:
    pass

#: Bump when the compiled form changes: old cache entries are then ignored.
CACHE_VERSION: Final = "4"
RULE_SUFFIXES: Final = (".yml", ".yaml")


@dataclasses.dataclass(slots=True)
class SigmaRule:
    """One compiled Sigma rule (or correlation rule) and what a finding needs from it."""

    path: str
    id: str
    title: str
    name: str = ""
    description: str = ""
    level: str = "informational"
    status: str = ""
    author: str = ""
    date: str = ""
    falsepositives: list[str] = dataclasses.field(default_factory=list)
    references: list[str] = dataclasses.field(default_factory=list)
    tags: list[str] = dataclasses.field(default_factory=list)
    logsource: dict[str, str] = dataclasses.field(default_factory=dict)
    plan: sigma_sql.Plan | None = None
    correlation: dict[str, Any] | None = None
    #: ``False`` for a rule only a correlation uses (Sigma's ``generate``).
    generate: bool = True
    #: Why it cannot run (empty: it runs), and placeholders it waits for. ``invalid``: the
    #: file or rule is not valid Sigma (YAML or pySigma error), else irkit cannot run it.
    unsupported: str = ""
    detail: str = ""
    invalid: bool = False
    placeholders: list[str] = dataclasses.field(default_factory=list)

    @property
    def attack(self) -> tuple[str, ...]:
        """The rule's ATT&CK tags (``attack.t1059.001``, ``attack.execution``)."""
        return tuple(t for t in self.tags if t.startswith("attack."))

    @property
    def fields(self) -> list[str]:
        """The event fields the rule reads, sorted."""
        return sorted(set(sigma_sql.plan_fields(self.plan))) if self.plan else []


@dataclasses.dataclass(slots=True)
class SigmaRuleSet:
    """The rules read from some files, with what could not be read and why."""

    rules: list[SigmaRule] = dataclasses.field(default_factory=list)
    files: int = 0
    cached_files: int = 0
    seconds: float = 0.0
    paths: list[str] = dataclasses.field(default_factory=list)

    @property
    def runnable(self) -> list[SigmaRule]:
        """Rules that compiled and have every placeholder they need."""
        return [r for r in self.rules if not r.unsupported and not r.placeholders]

    @property
    def unsupported(self) -> list[SigmaRule]:
        """Valid Sigma rules irkit cannot run (a modifier, a regex RE2 cannot compile…)."""
        return [r for r in self.rules if r.unsupported and not r.invalid]

    @property
    def invalid(self) -> list[SigmaRule]:
        """Files and rules that are not valid Sigma: bad YAML, pySigma errors."""
        return [r for r in self.rules if r.invalid]

    @property
    def skipped_placeholders(self) -> list[SigmaRule]:
        """Rules waiting for placeholder values (``--sigma-config``)."""
        return [r for r in self.rules if r.placeholders and not r.unsupported]


def cache_dir() -> Path:
    """``$IRKIT_CACHE/sigma``, else ``$XDG_CACHE_HOME/irkit/sigma`` or ``~/.cache/irkit/sigma``."""
    return rulecache.cache_dir("sigma")


def rule_files(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(
                f"Sigma rules not found at {path}", hint="give a rule file or a folder of rules"
            )
    return files


def load_sigma(
    paths: Sequence[Path],
    placeholders: Mapping[str, list[str]] | None = None,
    progress: ScanProgress = NO_PROGRESS,
) -> SigmaRuleSet:
    """Read Sigma rules from files and folders (``*.yml``, ``*.yaml``, searched recursively).

    ``placeholders`` gives values for ``%name%`` placeholders (``expand`` modifier); a rule
    naming one not given is kept but skipped. Files and rules that are not valid Sigma
    are in ``SigmaRuleSet.invalid``, rules irkit cannot run in ``unsupported``, each with
    a reason; neither stops the others.
    """
    import sigma

    started = time.perf_counter()
    values = {k: [str(v) for v in vs] for k, vs in (placeholders or {}).items()}
    salt = json.dumps(
        [CACHE_VERSION, getattr(sigma, "__version__", ""), values], sort_keys=True
    ).encode()
    ruleset = SigmaRuleSet(paths=[str(p) for p in paths])
    cache = cache_dir()
    checker = _RegexChecker()
    files = rule_files(paths)
    progress.phase("sigma: reading rules", len(files), "files")
    for file in files:
        progress.advance()
        ruleset.files += 1
        try:
            data = file.read_bytes()
        except OSError as exc:
            ruleset.rules.append(
                SigmaRule(str(file), file.stem, file.stem, unsupported="unreadable",
                          detail=exc.strerror or str(exc), invalid=True)
            )  # fmt: skip
            continue
        key = hashlib.sha256(salt + b"\0" + data).hexdigest()
        cached = rulecache.read_items(cache / f"{key}.json")
        if cached is not None:
            ruleset.cached_files += 1
            rules = [SigmaRule(**{**item, "path": str(file)}) for item in cached]
        else:
            rules = compile_file(file, data, values, checker)
            rulecache.write_items(cache / f"{key}.json", [dataclasses.asdict(r) for r in rules])
        ruleset.rules += rules
    progress.done()
    _mark_correlated(ruleset.rules)
    ruleset.seconds = time.perf_counter() - started
    return ruleset


class _RegexChecker:
    """DuckDB's RE2 rejects some PCRE (look-arounds, back-references): find out at load."""

    def __init__(self) -> None:
        self.db: Any = None

    def error(self, pattern: str) -> str:
        import duckdb

        if self.db is None:
            self.db = duckdb.connect()
        try:
            self.db.execute("SELECT regexp_matches('', ?)", [pattern])
        except duckdb.Error as exc:
            return str(exc).splitlines()[0][:200]
        return ""


def _regex_errors(plan: sigma_sql.Plan, checker: _RegexChecker) -> str:
    for leaf in sigma_sql.leaves(plan):
        if leaf[2].startswith("regexp_matches("):
            error = checker.error(leaf[2][len("regexp_matches(\x01, '") : -2].replace("''", "'"))
            if error:
                return error
    return ""


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.name.lower() if isinstance(value, enum.Enum) else str(value)


def _meta(rule: Any, path: Path) -> SigmaRule:
    logsource = getattr(rule, "logsource", None)
    return SigmaRule(
        path=str(path),
        id=str(rule.id) if rule.id else (rule.name or path.stem),
        title=rule.title or path.stem,
        name=rule.name or "",
        description=(rule.description or "").strip(),
        level=_text(rule.level) or "informational",
        status=_text(rule.status),
        author=rule.author or "",
        date=str(rule.date or ""),
        falsepositives=[str(f) for f in rule.falsepositives or []],
        references=[str(r) for r in rule.references or []],
        tags=[str(t) for t in rule.tags or []],
        logsource={
            k: str(getattr(logsource, k))
            for k in ("product", "category", "service")
            if logsource is not None and getattr(logsource, k, None)
        },
    )


def compile_file(
    path: Path, data: bytes, placeholders: Mapping[str, list[str]], checker: _RegexChecker
) -> list[SigmaRule]:
    """Every rule of one file, compiled or marked unsupported with a reason."""
    from sigma.collection import SigmaCollection
    from sigma.correlations import SigmaCorrelationRule
    from sigma.exceptions import SigmaError
    from sigma.rule import SigmaRule as PySigmaRule

    def failed(reason: str, detail: str) -> list[SigmaRule]:
        return [
            SigmaRule(
                str(path), path.stem, path.stem, unsupported=reason, detail=detail, invalid=True
            )
        ]

    try:
        docs = [d for d in yaml.load_all(data, Loader=yaml.CSafeLoader) if d is not None]
    except yaml.YAMLError as exc:
        return failed("invalid YAML", str(exc).splitlines()[0])
    if not all(isinstance(d, dict) for d in docs):
        return failed("not a Sigma rule", "a YAML document is not a mapping")
    try:
        collection = SigmaCollection.from_dicts(docs, collect_errors=True, resolve_references=False)
    except SigmaError as exc:
        return failed(type(exc).__name__, str(exc))
    out: list[SigmaRule] = []
    if not collection.rules:  # rule errors are listed here too: keep those of no rule
        for err in collection.errors:
            out += failed(type(err).__name__, str(err)[:300])
    for item in collection.rules:
        compiled = _meta(item, path)
        out.append(compiled)
        if item.errors:
            compiled.unsupported = type(item.errors[0]).__name__
            compiled.detail = str(item.errors[0])[:300]
            compiled.invalid = True
        elif isinstance(item, SigmaCorrelationRule):
            _compile_correlation(item, compiled)
        elif isinstance(item, PySigmaRule):
            _compile_detection(item, compiled, placeholders, checker)
    return out


def _compile_detection(
    item: Any, compiled: SigmaRule, placeholders: Mapping[str, list[str]], checker: _RegexChecker
) -> None:
    from sigma.exceptions import SigmaError

    from irkit.detect.sigma_compile import condition_plan

    try:
        plans = [
            condition_plan(cond.parsed, placeholders) for cond in item.detection.parsed_condition
        ]
        compiled.plan = plans[0] if len(plans) == 1 else ["or", plans]
        error = _regex_errors(compiled.plan, checker)
        if error:
            compiled.plan, compiled.unsupported, compiled.detail = None, "regex not RE2", error
    except sigma_sql.MissingPlaceholderError as exc:
        compiled.placeholders = sorted(exc.names)
        compiled.plan = None
    except sigma_sql.UnsupportedError as exc:
        compiled.unsupported, compiled.detail = exc.reason, exc.detail
    except SigmaError as exc:  # the rule itself is wrong (a condition naming nothing…)
        compiled.unsupported, compiled.detail = type(exc).__name__, str(exc)[:300]
        compiled.invalid = True
    except (ValueError, TypeError) as exc:
        compiled.unsupported, compiled.detail = type(exc).__name__, str(exc)[:300]


def _compile_correlation(item: Any, compiled: SigmaRule) -> None:
    condition = item.condition
    fieldref = getattr(condition, "fieldref", None)
    compiled.correlation = {
        "type": _text(item.type),
        "rules": [ref.reference for ref in item.rules or []],
        "group_by": list(item.group_by or []),
        "timespan": int(item.timespan.seconds),
        "op": _text(getattr(condition, "op", None)),
        "count": getattr(condition, "count", None),
        "field": fieldref if isinstance(fieldref, str) or fieldref is None else fieldref[0],
        "aliases": bool(getattr(item.aliases, "aliases", {})),
        "generate": bool(item.generate),
    }


def _mark_correlated(rules: list[SigmaRule]) -> None:
    """Rules used only by a correlation make no findings of their own (``generate``)."""
    used = {
        ref
        for r in rules
        if r.correlation and not r.correlation["generate"]
        for ref in r.correlation["rules"]
    }
    for rule in rules:
        if not rule.correlation and (rule.id in used or (rule.name and rule.name in used)):
            rule.generate = False
