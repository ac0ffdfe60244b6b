"""Child processes that die with the process that started them.

A supervisor stops its children in order when it is asked to stop; when it is killed
outright (kill -9, an OOM kill) it gets no say, and a child in a session of its own would
keep running with nobody to stop it. Linux's PR_SET_PDEATHSIG asks the kernel to signal
the child when its parent goes. The request is made in the child between fork and exec
and survives the exec.

The kernel ties it to the *thread* that forked the child, so only children started from
the main thread ask for it: a worker thread that ends would otherwise take its children
with it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable

PR_SET_PDEATHSIG = 1

# Resolved once, before any fork: the child only calls it.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent(sig: signal.Signals = signal.SIGKILL) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child get `sig` when this process dies; None where it cannot.

    SIGKILL by default: a parent that was killed cannot stop its children in order, and a
    child must not outlive it waiting on a broker that went down with it.
    """
    if _prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()
    prctl = _prctl

    def request() -> None:
        prctl(PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:  # the parent died before the request was made
            os.kill(os.getpid(), sig)

    return request
