from collections.abc import Callable, Mapping
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
