"""plaso's extraction machinery, set up once per process and driven in-process on one file.

What runs is what ``log2timeline`` runs for a file of a folder, without its storage file,
processes or preprocessing: plaso's ``EventExtractionWorker`` (compressed streams such as
``.gz`` opened, archives not walked: ``--archives none``) with plaso's
``EventDataExtractor`` (its signature scanner picks the parsers whose format signature
matches, else every parser without a signature is tried, as log2timeline's default does),
a ``ParserMediator`` writing into an in-memory ``Collector`` instead of a storage file,
plaso's ``EventDataTimeliner`` for the times (date-less logs included) and plaso's message
formatters (psort's, read from plaso's YAML). The ``filestat`` parser is left out: file
times are ``irkit hash``'s.

Set-up costs ~0.6 s (import, parser objects, formatters; ~3 s with PyYAML's pure-Python
loader: ``fastyaml``) and is cached per process (``engine()``); a file then costs what its
parsers cost.

Three departures from log2timeline, all for "nothing lost, nothing crashes":

- parsers without a signature are tried in sorted order (plaso keeps them in a set, whose
  order changes with PYTHONHASHSEED), so the same file gives rows in the same order;
- an exception inside one parser is a warning and the next parser is tried (plaso's worker
  gives up on the file); an I/O error of a parser is a warning too (plaso only logs it);
- an exception inside one plugin of a parser (a registry plugin meeting a key it did not
  expect) is a warning and the parser goes on with the next key or plugin (plaso stops
  the parser, e.g. the rest of a registry hive).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from irkit.errors import UsageError
from irkit.sources.plaso.fastyaml import libyaml

# plaso's parsers use pyparsing names that pyparsing 3.3 deprecates: UserWarnings on stderr
# at import, which library code must not print. Its parsers read their definitions as they
# are imported: with libyaml.
with warnings.catch_warnings(), libyaml():
    warnings.simplefilter("ignore")
    import plaso
    from dfvfs.lib import errors as dfvfs_errors
    from dfvfs.path import factory as dfvfs_path_factory
    from dfvfs.resolver import context as dfvfs_context
    from plaso import formatters as _formatters  # noqa: F401  # registers the formatter helpers
    from plaso import parsers as _parsers  # noqa: F401  # registers the parsers
    from plaso.engine import configurations as plaso_configurations
    from plaso.engine import extractors as plaso_extractors
    from plaso.engine import timeliner as plaso_timeliner
    from plaso.engine import worker as plaso_worker
    from plaso.engine import yaml_timeliner_file
    from plaso.formatters import default as plaso_default_formatter
    from plaso.formatters import manager as plaso_formatters_manager
    from plaso.formatters import yaml_formatters_file
    from plaso.lib import errors as plaso_errors
    from plaso.parsers import interface as plaso_parsers_interface
    from plaso.parsers import manager as plaso_manager
    from plaso.parsers import mediator as plaso_mediator

VERSION: Final[str] = str(plaso.__version__)
#: Every parser and plugin but ``filestat`` (file times are irkit hash's).
DEFAULT_PARSERS: Final = "!filestat"
#: plaso's loggers are top-level names. Library code never prints: their warnings are kept
#: as the file's warnings (``plaso-log``) or, for the others (formatting notes), dropped.
TRAPPED_LOGGERS: Final = ("engine", "parsers")
SILENCED_LOGGERS: Final = (
    "analysis",
    "analyzers",
    "cli",
    "filters",
    "formatters",
    "multi_process",
    "output",
    "preprocessors",
    "serializer",
    "storage",
)
#: The language of Windows EventLog message strings (en-US), as psort's default.
_LCID: Final = 0x0409
#: What a parser did with the file (``Attempt.result``).
PARSED, REJECTED, FAILED, CRASHED = "parsed", "rejected", "failed", "crashed"

#: plaso's data files: timeliner.yaml, formatters/*.yaml, winevt-rc.db.
_DATA: Final = Path(plaso.__file__).parent / "data"


@dataclasses.dataclass(frozen=True, slots=True)
class Attempt:
    """One parser tried on one data stream: ``parsed`` (took it; it may still have found
    nothing), ``rejected`` (plaso's WrongParser: not its format), ``failed`` (an I/O error,
    plaso's own failure result) or ``crashed`` (an exception plaso does not expect)."""

    parser: str
    result: str
    reason: str = ""


class _Reporter:
    """Where the parser and plugin guards report, for the file being parsed."""

    def __init__(self) -> None:
        self.attempts: list[Attempt] = []
        #: Parsers whose format signature matched a data stream of the file.
        self.matched: list[str] = []
        self.crash: Callable[[str, str], None] | None = None

    def crashed(self, where: str, exc: BaseException, what: str = "stopped") -> None:
        """Report a contained exception as the file's ``parser-error`` warning."""
        if self.crash is not None:
            self.crash(where, f"{what}: {type(exc).__name__}: {exc}")


class _Extractor(plaso_extractors.EventDataExtractor):  # type: ignore[misc]
    """plaso's EventDataExtractor, recording what each parser did, in a fixed order."""

    _non_sigscan_parser_names: Any

    def __init__(self, parser_filter_expression: str, reporter: _Reporter) -> None:
        super().__init__(parser_filter_expression=parser_filter_expression)
        self._reporter = reporter
        # A set in plaso: its order (the order of the rows) would change per process.
        self._non_sigscan_parser_names = sorted(self._non_sigscan_parser_names)
        for parser in self._parsers.values():
            _guard_plugins(parser, reporter)

    def _GetSignatureMatchParserNames(self, file_object: Any) -> list[str]:  # noqa: N802
        """plaso's own method, with the matches recorded."""
        names = list(super()._GetSignatureMatchParserNames(file_object))
        self._reporter.matched.extend(names)
        return names

    def _ParseFileEntryWithParser(  # noqa: N802  # plaso's name, overridden
        self, parser_mediator: Any, parser: Any, file_entry: Any, file_object: Any = None
    ) -> int:
        """plaso's own method, with every outcome recorded and any exception contained."""
        if not isinstance(
            parser,
            plaso_parsers_interface.FileEntryParser | plaso_parsers_interface.FileObjectParser,
        ):
            raise TypeError("Unsupported parser object type.")
        parser_mediator.ClearParserChain()
        attempts = self._reporter.attempts
        try:
            if isinstance(parser, plaso_parsers_interface.FileEntryParser):
                parser.Parse(parser_mediator)
            else:
                parser.Parse(parser_mediator, file_object)
        except plaso_errors.WrongParser as exc:
            attempts.append(Attempt(parser.NAME, REJECTED, str(exc)))
            return int(self._PARSE_RESULT_UNSUPPORTED)
        except (OSError, dfvfs_errors.BackEndError) as exc:
            attempts.append(Attempt(parser.NAME, FAILED, f"{type(exc).__name__}: {exc}"))
            self._reporter.crashed(parser.NAME, exc, "could not read the file")
            return int(self._PARSE_RESULT_FAILURE)
        except Exception as exc:  # a parser's bug: warn, let the next parser try
            attempts.append(Attempt(parser.NAME, CRASHED, f"{type(exc).__name__}: {exc}"))
            self._reporter.crashed(parser.NAME, exc)
            return int(self._PARSE_RESULT_UNSUPPORTED)
        attempts.append(Attempt(parser.NAME, PARSED))
        return int(self._PARSE_RESULT_SUCCESS)


def _guard_plugins(parser: Any, reporter: _Reporter) -> None:
    """Wrap each plugin's ``UpdateChainAndProcess`` so that its exception (WrongParser
    aside) is a warning and its parser goes on (with the event data it gave so far)."""
    plugins = list((getattr(parser, "_plugins_per_name", None) or {}).values())
    default = getattr(parser, "_default_plugin", None)
    if default is not None:
        plugins.append(default)
    for plugin in plugins:
        process = getattr(plugin, "UpdateChainAndProcess", None)
        if process is None or getattr(process, "_irkit_guarded", False):
            continue
        plugin.UpdateChainAndProcess = _guarded(process, parser, plugin, reporter)


def _guarded(process: Any, parser: Any, plugin: Any, reporter: _Reporter) -> Any:
    where = f"{getattr(parser, 'NAME', '?')}/{getattr(plugin, 'NAME', '?')}"

    def guarded(parser_mediator: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return process(parser_mediator, *args, **kwargs)
        except plaso_errors.WrongParser:
            raise
        except Exception as exc:
            reporter.crashed(where, exc)
            return None

    guarded._irkit_guarded = True  # type: ignore[attr-defined]
    return guarded


class _LogTrap(logging.Handler):
    """plaso logs warnings (``unable to open file entry``…): kept for the file being
    parsed, never printed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.records is not None and len(self.records) < 1000:
            try:
                self.records.append(f"{record.name}: {record.getMessage()}")
            except Exception:  # a bad log call must not stop the parse
                self.records.append(f"{record.name}: {record.msg!r}")


@functools.cache
def _trap_logs() -> _LogTrap:
    """Route plaso's loggers (once per process) to the trap or to nothing."""
    trap = _LogTrap()
    for name in TRAPPED_LOGGERS + SILENCED_LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(trap if name in TRAPPED_LOGGERS else logging.NullHandler())
        logger.setLevel(logging.WARNING)
        logger.propagate = False
    return trap


class _FormatterMediator:
    """What plaso's message formatters ask of psort's OutputMediator: only the Windows
    EventLog resources helper (legacy ``.evt`` message strings, from plaso's bundled
    winevt-rc.db: there is no preprocessing, hence no message files of the host). Built on
    first use: it imports ``plaso.output`` (0.3 s, and OpenSearch's client)."""

    def __init__(self) -> None:
        self._winevt: _MemoWinevt | None = None

    def GetWinevtResourcesHelper(self) -> Any:  # noqa: N802  # plaso's name
        if self._winevt is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from plaso.output import winevt_rc

            self._winevt = _MemoWinevt(winevt_rc.WinevtResourcesHelper(None, str(_DATA), _LCID))
        return self._winevt


class _MemoWinevt:
    """plaso's WinevtResourcesHelper, remembering every answer: it caches the strings it
    finds but not the ones it does not, and each miss is a slow query of winevt-rc.db
    (11 s of 16 s for the 6,501 records of a Windows XP System.evt)."""

    def __init__(self, helper: Any) -> None:
        self._helper = helper
        self._messages: dict[tuple[Any, ...], Any] = {}
        self._parameters: dict[tuple[Any, ...], Any] = {}

    def GetMessageString(self, *key: Any) -> Any:  # noqa: N802  # plaso's name
        if key not in self._messages:
            if len(self._messages) > 65_536:
                self._messages.clear()
            self._messages[key] = self._helper.GetMessageString(*key)
        return self._messages[key]

    def GetParameterString(self, *key: Any) -> Any:  # noqa: N802  # plaso's name
        if key not in self._parameters:
            if len(self._parameters) > 65_536:
                self._parameters.clear()
            self._parameters[key] = self._helper.GetParameterString(*key)
        return self._parameters[key]


def _read_formatters() -> dict[str, Any]:
    """plaso's message formatters per data type, from its YAML (what psort reads)."""
    found: dict[str, Any] = {}
    reader = yaml_formatters_file.YAMLFormattersFile()
    for path in sorted((_DATA / "formatters").glob("*.yaml")):
        for formatter in reader.ReadFromFile(str(path)):
            for identifier in formatter.custom_helpers:
                helper = plaso_formatters_manager.FormattersManager.GetEventFormatterHelper(
                    identifier
                )
                if helper is not None:
                    formatter.AddHelper(helper)
            found.setdefault(str(formatter.data_type).lower(), formatter)
    return found


@dataclasses.dataclass(frozen=True, slots=True)
class TimeMapping:
    """plaso's timeliner.yaml entry for one data type: attribute -> timestamp_desc."""

    attributes: tuple[tuple[str, str], ...]
    place_holder: bool


class Engine:
    """plaso set up for one parser filter expression: parsers, worker, formatters."""

    def __init__(self, parser_filter: str) -> None:
        _known, unknown = plaso_manager.ParsersManager.CheckFilterExpression(parser_filter)
        if unknown:
            raise UsageError(
                f"unknown plaso parser or plugin: {', '.join(sorted(unknown))}",
                hint="log2timeline --parsers list names them",
            )
        self.parser_filter = parser_filter
        self.reporter = _Reporter()
        # Built with one parser (cheap); its extractor is replaced by ours.
        self.worker = plaso_worker.EventExtractionWorker(parser_filter_expression="bodyfile")
        self.extractor = _Extractor(parser_filter, self.reporter)
        self.worker._event_data_extractor = self.extractor
        configuration = plaso_configurations.ExtractionConfiguration()
        configuration.archive_types_string = "none"
        configuration.process_compressed_streams = True
        self.worker.SetExtractionConfiguration(configuration)
        self.log = _trap_logs()
        self.output_mediator = _FormatterMediator()
        self._formatters = _read_formatters()
        self.default_formatter = plaso_default_formatter.DefaultEventFormatter()
        self.time_mappings: dict[str, TimeMapping] = {}
        reader = yaml_timeliner_file.YAMLTimelinerConfigurationFile()
        for definition in reader.ReadFromFile(str(_DATA / "timeliner.yaml")):
            self.time_mappings[definition.data_type] = TimeMapping(
                tuple(definition.attribute_mappings.items()),
                bool(definition.place_holder_event),
            )
        self._timeliners: dict[tuple[int | None, str], Any] = {}

    def formatter(self, data_type: str) -> Any:
        """plaso's message formatter of a data type, or None."""
        return self._formatters.get(data_type.lower())

    def timeliner(self, preferred_year: int | None, time_zone: str) -> Any:
        """plaso's timeliner for these settings (kept per process: it reads its YAML)."""
        key = (preferred_year, time_zone)
        found = self._timeliners.get(key)
        if found is None:
            with libyaml():
                found = plaso_timeliner.EventDataTimeliner(
                    data_location=str(_DATA), preferred_year=preferred_year
                )
            found.SetPreferredTimeZone(time_zone or None)
            self._timeliners[key] = found
        return found

    def mediator(self, collector: Any) -> Any:
        """A parser mediator for one file, writing into ``collector``."""
        mediator = plaso_mediator.ParserMediator(resolver_context=dfvfs_context.Context())
        mediator.SetStorageWriter(collector)
        mediator.SetExtractWinEvtResources(False)  # PE message tables: not events
        return mediator

    def process(self, mediator: Any, path_spec: Any) -> None:
        """Run plaso's worker on one path specification (the file, or a stream in it);
        plaso's parsers read definition files the first time they run: with libyaml."""
        with libyaml():
            self.worker.ProcessPathSpec(mediator, path_spec)


def os_path_spec(path: str) -> Any:
    """dfVFS's path specification of a file of the operating system."""
    return dfvfs_path_factory.Factory.NewPathSpec("OS", location=path)


@functools.cache
def engine(parser_filter: str = DEFAULT_PARSERS) -> Engine:
    """The engine of this process for a parser filter expression (built on first use);
    an unknown parser or plugin name is a UsageError."""
    with libyaml():
        return Engine(parser_filter)
