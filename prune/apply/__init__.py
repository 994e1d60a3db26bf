"""Execute a plan as a transaction: stage, verify, then commit or roll back.

- :mod:`.transaction`: :func:`apply_plan` and :func:`recover`, the steps in order;
- :mod:`.journal`: the state directory and the journal ``recover`` reads;
- :mod:`.replace`: files swapped in (rewritten RECORDs, stripped libraries);
- :mod:`._staging`: moving paths into the stash and back, where ``rename`` is refused;
- :mod:`._delete`: deleting the committed stash with parallel ``rm`` processes.
"""

from __future__ import annotations

from ..model import Failure
from ._staging import check_under_root
from .journal import MARKER, ensure_no_pending, pending_journal, state_dir
from .replace import Replacement
from .transaction import ApplyResult, RecoverResult, Verifier, apply_plan, recover

__all__ = [
    "MARKER",
    "ApplyResult",
    "Failure",
    "RecoverResult",
    "Replacement",
    "Verifier",
    "apply_plan",
    "check_under_root",
    "ensure_no_pending",
    "pending_journal",
    "recover",
    "state_dir",
]
