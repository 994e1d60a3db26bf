"""SIGINT and SIGTERM as one interruption, for the steps that change an environment.

A build tool gets SIGTERM from ``docker build`` being cancelled and SIGINT from Ctrl-C; both must
end a run the same way: rolled back before the commit, finished and said so after it.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

__all__ = ["SignalGate", "signal_number", "signal_name"]


class SignalGate:
    """SIGINT and SIGTERM for one transaction. While staging or verifying a signal raises
    KeyboardInterrupt(signum), which rolls back; once ``defer`` is set (the commit, a rollback)
    signals are only recorded in ``caught``, for the caller to act on when the step is done:
    a commit or a rollback must not stop half way (issue 16, item 3)."""

    def __init__(self) -> None:
        self.defer = False
        self.caught: list[int] = []
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: object) -> None:
        if self.defer:
            self.caught.append(signum)
        else:
            raise KeyboardInterrupt(signum)

    def __enter__(self) -> SignalGate:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def signal_number(exc: BaseException) -> int:
    """The signal a KeyboardInterrupt stands for: the number a :class:`SignalGate` raised it
    with, else SIGINT (Python's own Ctrl-C)."""
    arg = exc.args[0] if exc.args else None
    return arg if isinstance(arg, int) else int(signal.SIGINT)


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
