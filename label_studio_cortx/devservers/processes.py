"""Child processes that cannot outlive the test run (or demo) that started them.

Owns :func:`die_with_parent`, the ``preexec_fn`` every dev server's subprocess is started with (moto, SeaweedFS,
Ceph's daemons, Label Studio): the kernel SIGKILLs the child when its parent dies, so even a SIGKILLed pytest
leaves no server behind. Orderly stops (fixture teardown, ``atexit``, signal handlers) remain the owners' job.

Imports: the standard library only.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> Callable[[], None]:
    """A ``preexec_fn``: the child, between fork and exec, asks to be SIGKILLed when ``parent`` dies.

    The death signal is tied to the thread that forks the child: start long-lived servers from a thread that
    lives as long as the run (pytest's main thread does).
    """
    parent = os.getpid() if parent is None else parent

    def setup() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # not Linux: the owners' orderly stops still apply
            return
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return setup
