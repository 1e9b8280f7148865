"""Where a capture lives: a local folder or an object-store prefix, behind one small interface.

Every file is published atomically: locally through :func:`traffic_lab.files.write_atomic`
(never overwriting), on an object store as one PUT. Locally no symlink inside the capture is
followed: listings report symlinks, FIFOs and devices as ``FileType.Unknown``, and reads and
writes refuse a path a symlink leads out of.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from pyarrow import fs as pafs

from ...errors import CorruptCaptureError, StoreError, StoreNotFoundError
from ...files import TEMP_SUFFIX, write_atomic

__all__ = ["OPEN_FLAGS", "TEMP_SUFFIX", "CaptureFS"]

_NOT_FOLLOWED = "a symlink leads out of the capture here; not followed"
#: Opening an input never follows a symlink nor waits on a FIFO's writer (Windows has neither
#: flag, nor FIFOs; symlinks there are refused by ``inside``).
OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def _is_fsspec(obj: object) -> bool:
    return hasattr(obj, "protocol") and hasattr(obj, "ls")


class CaptureFS:
    """A capture's root on a filesystem; paths handed to it are relative, ``/``-separated."""

    def __init__(self, path: str | os.PathLike[str], filesystem: Any = None) -> None:
        text = os.fspath(path)
        self.url = text.rstrip("/") or text
        scheme, sep, rest = text.partition("://")
        if filesystem is not None:
            if _is_fsspec(filesystem):
                protocol = filesystem.protocol
                protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
                self.local = "file" in protocols or "local" in protocols
                handler: Any = pafs.FSSpecHandler(filesystem)  # type: ignore[abstract]
                filesystem = pafs.PyFileSystem(handler)
            elif isinstance(filesystem, pafs.FileSystem):
                self.local = isinstance(filesystem, pafs.LocalFileSystem)
            else:
                raise TypeError(
                    "filesystem must be a pyarrow.fs.FileSystem or an fsspec filesystem, "
                    f"not {type(filesystem).__name__}"
                )
            self.fs: pafs.FileSystem = filesystem
            root = rest if sep else text
            if self.local:
                root = os.path.abspath(root)
        elif sep and scheme != "file":
            try:
                self.fs, root = pafs.FileSystem.from_uri(text)
            except (OSError, pa.ArrowInvalid) as exc:
                raise StoreError(f"cannot open this location: {exc}", path=self.url) from exc
            self.local = isinstance(self.fs, pafs.LocalFileSystem)
        else:
            self.fs = pafs.LocalFileSystem()
            root = os.path.abspath(rest if sep else text)
            self.local = True
        self.root = root.rstrip("/") or root

    # -- paths -------------------------------------------------------------------------------------
    def full(self, rel: str) -> str:
        """The filesystem path of a relative path."""
        return f"{self.root}/{rel}" if rel else self.root

    def display(self, rel: str) -> str:
        """The path as a user would write it, for messages."""
        return f"{self.url}/{rel}" if rel else self.url

    def inside(self, rel: str) -> bool:
        """Whether ``rel`` stays inside the capture: no ``..``, no symlink on the way (local)."""
        if not self.local or not rel:
            return True
        real_root = os.path.realpath(self.root)
        return os.path.realpath(self.full(rel)) == os.path.join(real_root, rel)

    # -- queries -----------------------------------------------------------------------------------
    def root_exists(self) -> bool:
        """Whether the capture folder (or prefix) exists."""
        try:
            info = self.fs.get_file_info(self.root)
        except OSError as exc:
            raise StoreError(f"cannot reach the capture: {exc}", path=self.url) from exc
        if info.type == pafs.FileType.Directory:
            return True
        if info.type == pafs.FileType.File:
            raise StoreError("is a file, not a capture folder", path=self.url)
        if not self.local:
            # An object-store "folder" exists once it holds an object; the bucket must exist.
            bucket = self.root.split("/", 1)[0]
            if self.fs.get_file_info(bucket).type == pafs.FileType.NotFound:
                raise StoreNotFoundError("the bucket does not exist", path=self.url)
        return False

    def list_dir(self, rel: str) -> list[pafs.FileInfo]:
        """Entries directly under ``rel`` (none if it does not exist); locally a symlink, FIFO or
        device is ``FileType.Unknown``, and a folder a symlink leads to raises."""
        if self.local:
            return self._list_local(rel)
        try:
            return self.fs.get_file_info(
                pafs.FileSelector(self.full(rel), allow_not_found=True, recursive=False)
            )
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot list: {exc}", path=self.display(rel)) from exc

    def _list_local(self, rel: str) -> list[pafs.FileInfo]:
        if not self.inside(rel):
            raise CorruptCaptureError(_NOT_FOLLOWED, path=self.display(rel))
        folder = self.full(rel)
        entries = []
        try:
            with os.scandir(folder) as scan:
                for entry in scan:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # deleted meanwhile
                    kind = pafs.FileType.Unknown
                    if stat.S_ISREG(st.st_mode):
                        kind = pafs.FileType.File
                    elif stat.S_ISDIR(st.st_mode):
                        kind = pafs.FileType.Directory
                    entries.append(
                        pafs.FileInfo(
                            f"{folder}/{entry.name}",
                            type=kind,
                            mtime_ns=st.st_mtime_ns,
                            size=st.st_size,
                        )
                    )
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise StoreError(f"cannot list: {exc}", path=self.display(rel)) from exc
        return entries

    def exists(self, rel: str) -> bool:
        """Whether a file exists."""
        if self.local:
            return os.path.exists(self.full(rel))
        return bool(self.fs.get_file_info(self.full(rel)).type == pafs.FileType.File)

    def open_input(self, rel: str) -> pa.NativeFile:
        """Open a file for random-access reading."""
        try:
            if self.local:
                return pa.OSFile(self.full(rel), "rb")
            return self.fs.open_input_file(self.full(rel))
        except FileNotFoundError as exc:
            raise StoreNotFoundError("file not found", path=self.display(rel)) from exc

    def read_regular(self, rel: str) -> bytes:
        """A whole file's bytes, if it is a regular file inside the capture.

        ``StoreNotFoundError`` if it does not exist; ``CorruptCaptureError`` for a symlink, FIFO,
        device or folder, never opened (a FIFO would block) nor followed.
        """
        if not self.local:
            try:
                with self.open_input(rel) as f:
                    return f.read()
            except StoreNotFoundError:
                raise
            except OSError as exc:
                raise CorruptCaptureError(f"cannot read ({exc})", path=self.display(rel)) from exc
        if not self.inside(rel):
            raise CorruptCaptureError(_NOT_FOLLOWED, path=self.display(rel))
        try:
            fd = os.open(self.full(rel), OPEN_FLAGS)
        except FileNotFoundError as exc:
            raise StoreNotFoundError("file not found", path=self.display(rel)) from exc
        except OSError as exc:  # ELOOP: a symlink
            raise CorruptCaptureError(
                f"not a regular file (a symlink?: {exc.strerror}); not opened",
                path=self.display(rel),
            ) from exc
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise CorruptCaptureError(
                    "not a regular file (a FIFO, device or folder); not read",
                    path=self.display(rel),
                )
            with os.fdopen(os.dup(fd), "rb") as f:
                return f.read()
        finally:
            os.close(fd)

    # -- writes ------------------------------------------------------------------------------------
    def makedirs(self, rel: str) -> None:
        """Create a local folder; ``StoreError`` rather than use one a symlink leads to."""
        if not self.local:
            return
        self._check_inside(rel)
        os.makedirs(self.full(rel), exist_ok=True)
        self._check_inside(rel)

    def _check_inside(self, rel: str) -> None:
        if not self.inside(rel):
            raise StoreError(f"{_NOT_FOLLOWED}; nothing written", path=self.display(rel))

    def publish(self, rel: str, data: bytes | Callable[[str], None], *, sync: bool = True) -> bool:
        """Make a file appear atomically at ``rel``; False (nothing written) if it exists.

        ``data``: the bytes, or (local disks) a function writing the file at the path it is given.
        """
        if not self.local:
            full = self.full(rel)
            if self.fs.get_file_info(full).type != pafs.FileType.NotFound:
                return False
            if callable(data):
                raise TypeError("object stores take the file's bytes")
            try:
                with self.fs.open_output_stream(full) as out:
                    out.write(data)
            except OSError as exc:
                raise StoreError(f"cannot write: {exc}", path=self.display(rel)) from exc
            return True
        self.makedirs(os.path.dirname(rel))
        try:
            return write_atomic(self.full(rel), data, sync=sync)
        except OSError as exc:
            raise StoreError(f"cannot write: {exc}", path=self.display(rel)) from exc

    def delete(self, rel: str) -> None:
        """Delete a file (missing files are fine); never through a symlink."""
        try:
            if self.local:
                if not self.inside(os.path.dirname(rel)):
                    raise StoreError(f"{_NOT_FOLLOWED}; not deleted", path=self.display(rel))
                os.unlink(self.full(rel))
            else:
                self.fs.delete_file(self.full(rel))
        except FileNotFoundError:
            pass
