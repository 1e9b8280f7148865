"""Kernel locks on open files, POSIX (``fcntl.flock``) and Windows (``msvcrt.locking`` of one
byte far past any data): the one place that knows the platform, chosen when a lock is taken.

A lock is held on a descriptor of the file itself (no lock files); the system releases it when
the descriptor is closed or the process dies, so a lock that can be taken has no live holder.
"""

from __future__ import annotations

import os
import time
from types import ModuleType

__all__ = ["folders_lockable", "lock", "try_lock", "unlock"]

# Windows: the locked byte. Past the data of any log segment that fits in 2 GiB, and within
# what a 32-bit offset can address.
_WIN_OFFSET = 0x7FFF_FFF0
_WIN_RETRY_SECONDS = 0.05


def _fcntl() -> ModuleType | None:
    try:
        import fcntl
    except ImportError:
        return None
    return fcntl


def _msvcrt() -> ModuleType:
    try:
        import msvcrt
    except ImportError:
        raise OSError("no file locking on this platform (neither fcntl nor msvcrt)") from None
    return msvcrt


def _win_locking(fd: int, mode_name: str) -> None:
    msvcrt = _msvcrt()
    here = os.lseek(fd, 0, os.SEEK_CUR)
    os.lseek(fd, _WIN_OFFSET, os.SEEK_SET)
    try:
        msvcrt.locking(fd, getattr(msvcrt, mode_name), 1)
    finally:
        os.lseek(fd, here, os.SEEK_SET)


def folders_lockable() -> bool:
    """Whether a folder itself can be locked (POSIX); Windows locks files only."""
    return _fcntl() is not None


def try_lock(fd: int) -> bool:
    """Take an exclusive lock on ``fd`` without waiting; False if another holder has it."""
    fcntl = _fcntl()
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    try:
        _win_locking(fd, "LK_NBLCK")
    except PermissionError:  # EACCES: locked by another handle
        return False
    except OSError as exc:
        if exc.errno in (13, 36):  # EACCES, EDEADLOCK (msvcrt's "already locked")
            return False
        raise
    return True


def lock(fd: int) -> None:
    """Take an exclusive lock on ``fd``, waiting as long as another holder has it."""
    fcntl = _fcntl()
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    while not try_lock(fd):
        time.sleep(_WIN_RETRY_SECONDS)


def unlock(fd: int) -> None:
    """Release a lock taken on ``fd`` (closing ``fd`` releases it too)."""
    fcntl = _fcntl()
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return
    _win_locking(fd, "LK_UNLCK")
