"""Lock files that say which process works in a folder (``pid@host token``).

A lock is created exclusively (``O_EXCL``) and removed by its owner; while it
holds it, a background thread touches it. One left by a process that died is
stale: on the same host when its pid no longer runs (a ``kill -9`` frees the
folder at once) or is this process's own pid without its token (a restarted
container, whose new process got the dead one's pid), on any host when nobody
touched it for ``stale_s`` seconds.
"""

from __future__ import annotations

import os
import platform
import secrets
import threading
import time
from pathlib import Path

LOCK_STALE_S = 600.0  # a lock not touched for this long was left by a process that died
TOKEN = secrets.token_hex(8)  # this process's, told apart from an earlier one of the same pid


def lock_owner(path: str | os.PathLike) -> tuple[int | None, str]:
    """The pid and host written in a lock file (None, "" when unreadable)."""
    pid, host, _ = _read(path)
    return pid, host


def _read(path: str | os.PathLike) -> tuple[int | None, str, str]:
    try:
        text = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None, "", ""
    owner, _, token = text.partition(" ")
    pid, _, host = owner.partition("@")
    return (int(pid) if pid.isdigit() else None), host, token


def describe_owner(path: str | os.PathLike) -> str:
    """``pid 123 on host`` for messages."""
    pid, host = lock_owner(path)
    return f"pid {pid} on {host}" if pid is not None else "unknown process"


def _running(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) sends CTRL_C_EVENT there: only the lock's age tells
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: it exists
        return True
    return True


def is_stale(path: str | os.PathLike, stale_s: float) -> bool:
    """Whether the lock's process is gone: not running on this host, or silent for ``stale_s``."""
    pid, host, token = _read(path)
    if pid is not None and host == platform.node():
        if pid == os.getpid() and token != TOKEN:
            return True  # not this process's: an earlier one that had its pid
        if pid != os.getpid() and not _running(pid):
            return True
    return time.time() - Path(path).stat().st_mtime > stale_s


def take_lock(path: str | os.PathLike, stale_s: float, wait_s: float = 0.0) -> Path | None:
    """Create the lock ``path`` for this process; None while a live process holds it past ``wait_s``.

    The lock is touched every ``stale_s / 10`` seconds until it is removed, so a run
    busy without reports (a long dev evaluation) never looks dead.
    """
    path = Path(path)
    deadline = time.monotonic() + wait_s
    content = f"{os.getpid()}@{platform.node()} {TOKEN}"
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
        os.write(fd, content.encode())
        os.close(fd)
        threading.Thread(target=_keep_fresh, args=(path, content, stale_s / 10), daemon=True).start()
        return path


def _keep_fresh(path: Path, content: str, every_s: float) -> None:
    """Touch the lock while it is still this one (its owner removes it when done)."""
    while True:
        time.sleep(every_s)
        try:
            if path.read_text() != content:
                return
            path.touch()
        except OSError:  # removed
            return
