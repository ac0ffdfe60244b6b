"""Child processes that die with the process that started them.

A supervisor stops its children in order when it is asked to stop; when it is killed
outright (kill -9, an OOM kill) it gets no say, and a child in a session of its own would
keep running with nobody to stop it. Linux's PR_SET_PDEATHSIG asks the kernel to signal
the child when its parent goes, and the request survives an exec.

The child makes the request itself: `command()` starts it through this module
(`python -m common.lifeline <parent pid> -- <command>`), which asks, checks that the parent
is still there, and execs the command. Nothing runs between fork and exec in the parent's
image: a `preexec_fn` there would run Python in a forked copy of a process with gRPC's
threads, which gRPC cannot survive (it aborts on its poller's closed descriptors).

The kernel ties the request to the *thread* that forked the child, so only children
started from the main thread ask for it: a worker thread that ends would otherwise take its
children with it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1


def command(argv: Sequence[str], sig: signal.Signals = signal.SIGKILL) -> list[str]:
    """`argv`, started so that it gets `sig` when this process dies (as it is where that cannot be).

    SIGKILL by default: a parent that was killed cannot stop its children in order, and a
    child must not outlive it waiting on a broker that went down with it.
    """
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return list(argv)
    return [sys.executable, "-m", "common.lifeline", str(os.getpid()), str(int(sig)), "--", *argv]


def main(args: Sequence[str]) -> None:
    parent, sig, separator, *argv = args
    if separator != "--" or not argv:
        raise SystemExit("usage: python -m common.lifeline <parent pid> <signal> -- <command> [args...]")
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig)) != 0:
        raise SystemExit(f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(ctypes.get_errno())}")
    if os.getppid() != int(parent):  # the parent died before the request was made
        raise SystemExit(1)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
