"""Stopping an explanation between steps: a server cancels one whose client left or timed out.

Explanations run in a worker thread that cannot be interrupted from outside. The thread
checks a flag before each forward pass (each batch of perturbed texts, each integrated-
gradients chunk), so a cancelled explanation stops within one step and frees its memory.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from modelyard.explainability.methods import ExplainError

_local = threading.local()


class ExplainCancelled(ExplainError):
    """The explanation was cancelled (its request timed out or its client left)."""


@contextlib.contextmanager
def cancellable(flag: threading.Event | None) -> Iterator[None]:
    """Within this block, `check_cancelled()` in this thread raises once `flag` is set."""
    previous = getattr(_local, "flag", None)
    _local.flag = flag
    try:
        yield
    finally:
        _local.flag = previous


def check_cancelled() -> None:
    """Raise ExplainCancelled when this thread's explanation was cancelled; else return None."""
    flag = getattr(_local, "flag", None)
    if flag is not None and flag.is_set():
        raise ExplainCancelled("the explanation was cancelled before it finished")
