"""Worker processes that never outlive the process that started them.

A worker left behind by a parent killed with ``kill -9`` keeps its memory (hundreds of MB for a
compute worker) indefinitely. Each pool's worker initializer calls ``die_with_parent``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from typing import Final

PR_SET_PDEATHSIG: Final = 1  # linux/prctl.h


def die_with_parent(parent: int | None = None) -> None:
    """Make this (worker) process end when the process that started it ends, even by
    ``kill -9``: the kernel's parent-death signal on Linux, and a watchdog thread everywhere
    (the parent's id changes when the parent is gone).

    ``parent``: the starting process's id as that process gave it (``os.getpid()`` in a spawn
    pool's ``initargs``). Read here instead, it would be the new parent's when the starter died
    before this ran, and the worker would live on. (A forkserver pool's workers are the
    forkserver's children, which itself ends with the starter: they read their parent here.)"""
    parent = os.getppid() if parent is None else parent
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watchdog alone
            pass
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="dyntools-parent-watch", daemon=True).start()
