"""Progress of long methods, reported only where a caller asks for it.

Library code wraps its long loops in :func:`steps`; nothing is shown unless a caller (a CLI, a
runner) installs a reporter with :func:`reporting` for the duration of a block.  The reporter is
held in a context variable, so threads and nested calls never see each other's.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
Reporter = Callable[[Iterable[T], str, int], Iterable[T]]
"""``reporter(iterable, description, total) -> iterable`` (e.g. a ``tqdm`` factory)."""

_reporter: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar("spmm_progress", default=None)


def steps(iterable: Iterable[T], description: str, total: int) -> Iterable[T]:
    """``iterable``, reported as ``description`` with ``total`` steps when a reporter is installed."""
    reporter = _reporter.get()
    return iterable if reporter is None else reporter(iterable, description, total)


@contextlib.contextmanager
def reporting(reporter: Reporter) -> Iterator[None]:
    """Report the long loops of every method called inside the block through ``reporter``."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)
