"""Ctrl-C and TERM held back while the parent touches its process pool.

Python raises KeyboardInterrupt wherever the main thread is; one raised while it held a
future's lock leaves the pool's thread, and so the run, waiting for ever. This module
owns ``interrupts_held``, the block during which those signals wait, and ``HELD``, the
signals it holds; the pool (``irkit.ingest.pool``, ``irkit.ingest.runner``) is touched
only inside it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any, Final

#: The signals irkit turns into KeyboardInterrupt: Ctrl-C, and TERM (``irkit.cli``).
HELD: Final[tuple[int, ...]] = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Ctrl-C (or TERM) held back for the block, then delivered as it would have been.

    Python raises KeyboardInterrupt wherever the main thread is, even between taking a
    lock and the ``try`` that releases it: inside ``concurrent.futures.wait`` (which
    takes each future's lock), a submit, a future's result. The pool's own thread then
    waits for that lock for ever, and so does the parent as it shuts the pool down: a
    run that never ends after Ctrl-C. The pool is only touched inside this block, which
    lasts at most ``POLL`` seconds (the shutdown of a pool: until its workers are gone).
    Only the main thread receives KeyboardInterrupt; elsewhere the block does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: object) -> None:
        caught.append(signum)

    previous: dict[int, Any] = {}
    for signum in HELD:
        if callable(signal.getsignal(signum)):  # ignored or default: nothing to hold back
            previous[signum] = signal.signal(signum, hold)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for received in dict.fromkeys(caught):
            signal.raise_signal(received)  # its own handler now: KeyboardInterrupt here
