from collections.abc import Callable, Iterator, Mapping
from typing import Any

def flatten_event(event: Mapping[str, Any], /) -> tuple[dict[str, str], int]: ...
def render(
    flat: Mapping[str, str],
    n_system: int,
    resolved: dict[tuple[str, str, str], tuple[str, tuple[str, ...] | None]],
    resolve: Callable[[tuple[str, str, str]], tuple[str, tuple[str, ...] | None]],
    one_line: Callable[[str], str],
    /,
) -> str: ...
def uids(sha256: str, records: list[str], ts_descs: list[str], /) -> list[str]: ...
def rows(
    records: Iterator[Any],
    out: list[tuple[Any, ...]] | tuple[list[Any], ...],
    limit: int,
    keys: Any,
    seen: set[int] | None,
    loads: Callable[[Any], Any],
    dumps: Callable[[Any], bytes],
    header_time: Callable[[str], str],
    resolved: dict[tuple[str, str, str], tuple[str, tuple[str, ...] | None]],
    resolve: Callable[[tuple[str, str, str]], tuple[str, tuple[str, ...] | None]],
    one_line: Callable[[str], str],
    ts_desc: str,
    ts_desc_header: str,
    /,
) -> bool | dict[str, Any] | None: ...
def fused(text: str, /) -> tuple[dict[str, str], int] | None: ...
