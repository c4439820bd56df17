"""Lock files that say which process works in a folder (``pid@host``).

A lock is created exclusively (``O_EXCL``) and removed by its owner. One left
by a process that died is stale: on the same host when its pid no longer runs
(a ``kill -9`` frees the folder at once), on any host when nobody touched it
for ``stale_s`` seconds (owners touch it as they work).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

LOCK_STALE_S = 600.0  # a lock not touched for this long was left by a process that died


def lock_owner(path: str | os.PathLike) -> tuple[int | None, str]:
    """The pid and host written in a lock file (None, "" when unreadable)."""
    try:
        text = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None, ""
    pid, _, host = text.partition("@")
    return (int(pid) if pid.isdigit() else None), host


def describe_owner(path: str | os.PathLike) -> str:
    """``pid 123 on host`` for messages."""
    pid, host = lock_owner(path)
    return f"pid {pid} on {host}" if pid is not None else "unknown process"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: it exists
        return True
    return True


def is_stale(path: str | os.PathLike, stale_s: float) -> bool:
    """Whether the lock's process is gone: not running on this host, or silent for ``stale_s``."""
    pid, host = lock_owner(path)
    if pid is not None and host == platform.node() and pid != os.getpid() and not _running(pid):
        return True
    return time.time() - Path(path).stat().st_mtime > stale_s


def take_lock(path: str | os.PathLike, stale_s: float, wait_s: float = 0.0) -> Path | None:
    """Create the lock ``path`` for this process; None while a live process holds it past ``wait_s``."""
    path = Path(path)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                stale = is_stale(path, stale_s)
            except FileNotFoundError:  # released meanwhile
                continue
            if stale:
                path.unlink(missing_ok=True)  # its process died without a word
                continue
            if time.monotonic() >= deadline:
                return None
            time.sleep(1.0)
            continue
        os.write(fd, f"{os.getpid()}@{platform.node()}".encode())
        os.close(fd)
        return path
