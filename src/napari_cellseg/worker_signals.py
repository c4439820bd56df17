"""Worker processes that leave Ctrl-C and SIGTERM to the command that started them.

A terminal's Ctrl-C goes to its whole process group, and so does Slurm's SIGTERM at
a job's time limit (``scancel`` too). A local Dask worker killed by either dies
mid-task: a sweep then waits for runs no worker is left to finish, and a segment
worker leaves its scratch folder behind. Workers started under :func:`stop_signals_ignored`
ignore both; the command alone takes them (``cli.main``: exit status 130 or 143)
and closes its cluster, whose Nanny asks each worker to stop (SIGKILL only after
its timeout).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored in this process meanwhile (in the main thread; elsewhere nothing changes).

    Processes started meanwhile inherit the ignored signals (through spawn and exec;
    Python and asyncio keep them ignored); this process's handlers come back on exit.
    """
    previous = {}
    try:
        for signum in STOP_SIGNALS:
            previous[signum] = signal.signal(signum, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals cannot be set here
        yield
        return
    try:
        yield
    finally:
        for signum, handler in previous.items():  # None: set outside Python, handed back as the default
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
