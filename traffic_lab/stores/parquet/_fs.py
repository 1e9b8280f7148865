"""Where a capture lives: a local folder or an object-store prefix, behind one small interface.

Every published file appears atomically. On a local disk a file is written under a hidden
temporary name beside its final name, flushed to disk, then hard-linked to its final name (which
fails if that name exists, so nothing is ever overwritten) and the temporary name removed. On an
object store a file is one PUT of the whole object, which a reader sees whole or not at all.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from pyarrow import fs as pafs

from ...errors import StoreError, StoreNotFoundError

__all__ = ["TEMP_SUFFIX", "CaptureFS"]

TEMP_SUFFIX = ".tmp"


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
        """Entries directly under ``rel`` (empty when it does not exist)."""
        try:
            return self.fs.get_file_info(
                pafs.FileSelector(self.full(rel), allow_not_found=True, recursive=False)
            )
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot list: {exc}", path=self.display(rel)) from exc

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

    def read_bytes(self, rel: str) -> bytes:
        """A whole file's bytes."""
        with self.open_input(rel) as f:
            return f.read()

    # -- writes ------------------------------------------------------------------------------------
    def makedirs(self, rel: str) -> None:
        """Create a folder (local disks only; object stores have no folders)."""
        if self.local:
            os.makedirs(self.full(rel), exist_ok=True)

    def publish(self, rel: str, data: bytes | Callable[[str], None], *, sync: bool = True) -> bool:
        """Make a file appear atomically at ``rel``; False (nothing written) if it exists.

        ``data`` is the file's bytes, or (local disks) a function that writes the file at the
        temporary path it is given.
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
        final = self.full(rel)
        folder, name = os.path.split(final)
        os.makedirs(folder, exist_ok=True)
        temp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            if callable(data):
                data(temp)
                if sync:
                    fd = os.open(temp, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
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
            try:
                os.link(temp, final)
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                    raise
                # No hard links here (some network or FAT disks): rename, after checking.
                if os.path.exists(final):
                    return False
                os.rename(temp, final)
            if sync:
                _fsync_dir(folder)
            return True
        except OSError as exc:
            raise StoreError(f"cannot write: {exc}", path=self.display(rel)) from exc
        finally:
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass

    def delete(self, rel: str) -> None:
        """Delete a file (missing files are fine)."""
        try:
            if self.local:
                os.unlink(self.full(rel))
            else:
                self.fs.delete_file(self.full(rel))
        except FileNotFoundError:
            pass


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
