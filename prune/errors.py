"""The venv-prune error family.

Every error the library raises on purpose is a :class:`PruneError`. Each message says what was
wrong and what to do about it, in one line, so the command line can print it as it is.
Subclasses also derive from the built-in exception that fits, so callers may catch either.
"""

from __future__ import annotations

__all__ = [
    "PruneError",
    "UsageError",
    "EnvironmentNotFound",
    "ProfileError",
    "PendingJournal",
    "UnsafePath",
    "VerificationFailed",
    "TraceError",
    "Interrupted",
    "ApplyFailed",
    "Busy",
]


class PruneError(Exception):
    """Base class of every error venv-prune raises on purpose.

    ``exit_code`` is what the command line exits with when this error reaches it.
    """

    exit_code = 2


class UsageError(PruneError, ValueError):
    """An option or argument is invalid (bad pattern, unknown name, conflicting options)."""


class EnvironmentNotFound(PruneError, FileNotFoundError):
    """The path given is missing or is not a Python environment venv-prune can prune."""


class ProfileError(PruneError, ValueError):
    """A profile is unknown, malformed, or extends itself."""


class PendingJournal(PruneError, RuntimeError):
    """An interrupted run left a journal; ``venv-prune recover PATH`` must run first."""

    exit_code = 3


class UnsafePath(PruneError, ValueError):
    """A path would leave the target root or follow a symlink; nothing was touched."""


class VerificationFailed(PruneError, RuntimeError):
    """Verification found a break after staging; every change was rolled back."""

    exit_code = 1


class TraceError(PruneError, RuntimeError):
    """A trace file is unreadable or a traced command could not start."""


class Interrupted(PruneError, RuntimeError):
    """Ctrl-C or SIGTERM stopped a run. Before the commit every change was rolled back; after
    it (``--bytecode compile``, the report) the prune is complete. The message says which.

    ``exit_code`` follows the shell convention, 128 plus the signal number (130 for Ctrl-C,
    143 for SIGTERM), so a build script can tell an interruption from a failure.
    """

    def __init__(self, message: str, signum: int = 2) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class ApplyFailed(PruneError, OSError):
    """The operating system refused a step of the transaction (a read-only directory, a full
    disk, a permission); every change was rolled back. The message names the path and the error.

    Exit code 4: distinct from 1 (verification failed) and 2 (bad input, nothing attempted), so a
    build script can tell "the environment is broken" from "the machine would not let us".
    """

    exit_code = 4


class Busy(PruneError, RuntimeError):
    """Another venv-prune run holds the environment's lock; nothing was changed.

    Exit code 75 (EX_TEMPFAIL from sysexits.h): try again when the other run has finished.
    """

    exit_code = 75
