"""SIGINT and SIGTERM as one interruption, installed one way for every step that needs them.

A build tool gets SIGTERM from ``docker build`` being cancelled and SIGINT from Ctrl-C; both must
end a run the same way: rolled back before the commit, finished and said so after it (issue 16:
SIGTERM outside staging killed the run without a word).

Every handler venv-prune installs goes through :func:`handling`, which installs it for both
signals (in the main thread only: Python delivers signals there) and restores the previous
handlers when the ``with`` body ends, so handlers nest: the innermost one answers. The handlers
themselves are plain functions of the signal number:

- :func:`raise_interrupt`: SIGTERM as Ctrl-C, ``KeyboardInterrupt(signum)`` (the command's
  outermost handler; the prune's phases before and after the transaction);
- :func:`first_only` around another handler: a second signal cannot cut short the clean-up the
  first one started (``--output``'s partial copy, ``--bytecode compile``'s scratch tree, the
  report after the commit);
- :class:`SignalGate`: the transaction's, which defers signals during a commit or rollback.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

__all__ = ["SignalGate", "first_only", "handling", "raise_interrupt", "signal_name", "signal_number"]

#: Called with the signal number; it may raise (the exception surfaces in the main thread).
Handler = Callable[[int], None]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def handling(handler: Handler) -> Iterator[None]:
    """Call ``handler(signum)`` on SIGINT and SIGTERM for the body, then restore the handlers
    that were there before. Outside the main thread (where Python cannot install a handler)
    nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: object) -> None:
        handler(signum)

    old: dict[int, Any] = {s: signal.signal(s, on_signal) for s in _SIGNALS}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def raise_interrupt(signum: int) -> NoReturn:
    """Raise ``KeyboardInterrupt(signum)``: SIGTERM ends a step as Ctrl-C does, and the
    number says which it was (:func:`signal_number`)."""
    raise KeyboardInterrupt(signum)


def first_only(handler: Handler) -> Handler:
    """``handler`` for the first signal; every later one is ignored, so that a second Ctrl-C
    cannot cut short the clean-up the first one started."""
    fired: list[int] = []

    def once(signum: int) -> None:
        if fired:
            return
        fired.append(signum)
        handler(signum)

    return once


class SignalGate:
    """SIGINT and SIGTERM for one transaction. While staging or verifying a signal raises
    KeyboardInterrupt(signum), which rolls back; once ``defer`` is set (the commit, a rollback)
    signals are only recorded in ``caught``, for the caller to act on when the step is done:
    a commit or a rollback must not stop half way (issue 16, item 3).

    Without ``defer`` it is :func:`handling` with :func:`raise_interrupt`.
    """

    def __init__(self) -> None:
        self.defer = False
        self.caught: list[int] = []
        self._handling = handling(self._on_signal)

    def _on_signal(self, signum: int) -> None:
        if self.defer:
            self.caught.append(signum)
        else:
            raise_interrupt(signum)

    def __enter__(self) -> SignalGate:
        self._handling.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._handling.__exit__(*exc)


def signal_number(exc: BaseException) -> int:
    """The signal a KeyboardInterrupt stands for: the number :func:`raise_interrupt` gave it,
    else SIGINT (Python's own Ctrl-C)."""
    arg = exc.args[0] if exc.args else None
    return arg if isinstance(arg, int) else int(signal.SIGINT)


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15; ``signal 99`` for a number no signal has."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
