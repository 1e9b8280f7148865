"""Atomic writes of local files: the one helper every part of traffic_lab writes files with.

A file is written under a hidden temporary name in its own folder
(``.<name>.<8 hex>.tmp``), flushed to disk, then moved to its name, and the folder is flushed:
a reader sees the whole file or nothing, and a crash leaves at worst a stray temporary file.
Without ``overwrite`` the move is a hard link, which fails if the name exists, so nothing is
ever replaced, not even a file created meanwhile. A symlink at the target counts as a file that
exists: it is replaced (``overwrite``) or refused, never written through.

Standard library only (this is the core layer).
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable

__all__ = ["TEMP_SUFFIX", "write_atomic"]

#: The suffix of temporary files; their names also start with ``.``.
TEMP_SUFFIX = ".tmp"

# link() failures that mean "no hard links on this disk" (some network, FAT or exFAT disks).
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


def write_atomic(
    path: str | os.PathLike[str],
    data: bytes | Callable[[str], None],
    *,
    overwrite: bool = False,
    sync: bool = True,
) -> bool:
    """Make the file ``path`` appear whole, or not at all; False if it exists (nothing written).

    ``data`` is the file's bytes, or a function that writes the file at the temporary path it
    is given. ``overwrite`` replaces an existing file (or symlink) atomically. ``sync=False``
    skips the flushes to disk (the file still appears atomically to other processes, but may be
    lost, never torn, by a power cut). The folder must exist. ``OSError`` s propagate.
    """
    final = os.fspath(path)
    if not overwrite and os.path.lexists(final):
        return False
    folder, name = os.path.split(final)
    temp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    try:
        if callable(data):
            data(temp)
            if sync:
                _fsync(temp, os.O_RDONLY)
        else:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
        if overwrite:
            os.replace(temp, final)
        else:
            try:
                os.link(temp, final)
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in _NO_LINKS:
                    raise
                # No hard links here: rename, after checking.
                if os.path.lexists(final):
                    return False
                os.replace(temp, final)
        if sync:
            try:
                _fsync(folder or ".", os.O_RDONLY)
            except OSError:  # folders cannot be opened on Windows (nor flushed on some disks)
                pass
        return True
    finally:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass


def _fsync(path: str, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
