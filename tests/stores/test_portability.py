"""traffic_lab without ``fcntl`` (Windows): every module imports, and the Parquet stores work.

Windows itself cannot run here. These tests run traffic_lab in a subprocess where ``import fcntl``
fails, as it does on Windows, and (for the stores) where ``msvcrt`` is a stand-in whose
``locking()`` has the semantics of the real one for what ``_locks`` asks (an exclusive lock per
open file, refused with ``EACCES`` while another holder has it, released when the file is closed
or the process dies), built on the real ``flock`` taken before ``fcntl`` was hidden, and where
``os`` lacks the open flags Windows lacks (``O_NOFOLLOW``, ``O_NONBLOCK``...). What they do
not test: the real ``msvcrt``, and Windows file semantics (no rename or delete of an open file,
mandatory byte-range locks).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

_HIDE_FCNTL = """
import sys
sys.modules["fcntl"] = None
"""

# What else Windows lacks that traffic_lab reads: open() flags.
_WINDOWS_OS = """
import os
for _flag in ("O_NOFOLLOW", "O_DIRECTORY", "O_NONBLOCK", "O_CLOEXEC"):
    delattr(os, _flag)
"""

_FAKE_MSVCRT = (
    _WINDOWS_OS
    + """
import errno, sys, types
import fcntl as _real
sys.modules["fcntl"] = None
msvcrt = types.ModuleType("msvcrt")
msvcrt.LK_UNLCK, msvcrt.LK_LOCK, msvcrt.LK_NBLCK, msvcrt.LK_RLCK, msvcrt.LK_NBRLCK = range(5)
CALLS = []

def locking(fd, mode, nbytes):
    CALLS.append(mode)
    if mode == msvcrt.LK_UNLCK:
        _real.flock(fd, _real.LOCK_UN)
        return
    try:
        _real.flock(fd, _real.LOCK_EX | _real.LOCK_NB)
    except BlockingIOError:
        raise OSError(errno.EACCES, "Permission denied") from None

msvcrt.locking = locking
sys.modules["msvcrt"] = msvcrt
"""
)


def _run(*parts: str) -> str:
    code = "\n".join(textwrap.dedent(p) for p in parts)
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def test_every_module_imports_without_fcntl():
    out = _run(
        _HIDE_FCNTL,
        """
        import importlib, pkgutil
        import traffic_lab
        # Every module but the ``__main__`` scripts (importing one runs the command line).
        names = [
            m.name
            for m in pkgutil.walk_packages(traffic_lab.__path__, "traffic_lab.")
            if not m.name.endswith(".__main__")
        ]
        for name in names:
            importlib.import_module(name)
        assert sys.modules["fcntl"] is None
        print(len(names))
        """,
    )
    assert int(out) > 40


def test_every_module_imports_without_the_open_flags_windows_lacks(tmp_path):
    _run(
        _HIDE_FCNTL,
        _WINDOWS_OS,
        f"""
        import importlib, pkgutil
        import traffic_lab
        for m in pkgutil.walk_packages(traffic_lab.__path__, "traffic_lab."):
            if not m.name.endswith(".__main__"):
                importlib.import_module(m.name)
        # Reading an http4k tree safely needs O_NOFOLLOW walks: refused, clearly, without them.
        from traffic_lab.errors import InteropError
        from traffic_lab.interop import read_http4k
        try:
            read_http4k({str(tmp_path)!r})
        except InteropError as exc:
            assert "read_http4k needs a POSIX system" in str(exc), exc
        else:
            raise AssertionError("read_http4k must refuse to walk a tree without O_NOFOLLOW")
        """,
    )


def test_a_store_without_fcntl_and_msvcrt_says_why_durable_fails(tmp_path):
    _run(
        _HIDE_FCNTL,
        f"""
        import httpx, traffic_lab as tl
        path = {str(tmp_path / "cap")!r}
        with tl.ParquetCache(path) as cache:  # not durable: no lock is needed
            cache.put(tl.Exchange.from_httpx(httpx.Request("GET", "https://a.test/"), httpx.Response(200)))
        assert len(list(tl.ParquetStream(path).exchanges())) == 1
        cache = tl.ParquetCache(path, durable=True)
        try:
            cache.put(tl.Exchange.from_httpx(httpx.Request("GET", "https://a.test/2"), httpx.Response(200)))
        except OSError as exc:
            assert "neither fcntl nor msvcrt" in str(exc), exc
        else:
            raise AssertionError("a durable put without any lock must fail")
        """,
    )


_WRITE = """
import httpx, traffic_lab as tl

def ex(i, body=b"x"):
    return tl.Exchange.from_httpx(
        httpx.Request("GET", f"https://a.test/{i}"), httpx.Response(200, content=body)
    )
"""


def test_stores_work_with_windows_locks(tmp_path):
    path = str(tmp_path / "cap")
    # A durable writer dies with its log unfolded (os._exit: no flush, no atexit).
    _run(
        _FAKE_MSVCRT,
        _WRITE,
        f"""
        cache = tl.ParquetCache({path!r}, durable=True)
        for i in range(3):
            cache.put(ex(i))
        assert msvcrt.LK_NBLCK in CALLS, CALLS
        import os
        os._exit(0)
        """,
    )
    out = _run(
        _FAKE_MSVCRT,
        _WRITE,
        f"""
        import os
        from traffic_lab.stores.parquet._locks import try_lock
        path = {path!r}
        # The next opener folds the dead writer's log; a live writer's log is left alone.
        with tl.ParquetCache(path) as cache:
            assert cache.get(httpx.Request("GET", "https://a.test/1")).status_code == 200
        live = tl.ParquetCache(path, durable=True)
        live.put(ex(10, b"live"))
        logs = os.path.join(path, "_traffic_lab", "logs")
        (name,) = os.listdir(logs)
        fd = os.open(os.path.join(logs, name), os.O_RDONLY)
        assert not try_lock(fd)  # held by the live writer
        os.close(fd)
        with tl.ParquetStream(path) as stream:
            assert len(list(stream.exchanges())) == 3  # the live log is not folded
        stream2 = tl.ParquetStream(path)
        stream2.put(ex(11))
        stream2.close()
        live.close()
        assert os.listdir(logs) == []
        with tl.ParquetCache(path) as cache:  # locks _traffic_lab/compact.lock, not the folder
            report = cache.compact()
        assert os.path.isfile(os.path.join(path, "_traffic_lab", "compact.lock"))
        with tl.ParquetStream(path) as stream:
            got = sorted(str(e.request.url) for e in stream.exchanges())
        assert got == [f"https://a.test/{{i}}" for i in (0, 1, 10, 11, 2)], got
        with tl.ParquetCache(path) as cache:
            assert cache.get(httpx.Request("GET", "https://a.test/10")).content == b"live"
        assert msvcrt.LK_UNLCK in CALLS
        print(report.rows)
        """,
    )
    assert int(out) == 5


def test_a_durable_segment_where_open_files_cannot_be_renamed_or_deleted(tmp_path, monkeypatch):
    # Windows refuses to rename or delete an open file: the segment then gets its name as a
    # second hard link of the locked file, and is released before it is deleted.
    import os

    import httpx

    import traffic_lab as tl
    from traffic_lab.stores.parquet._locks import try_lock

    real_rename, real_unlink = os.rename, os.unlink
    refused: list[str] = []

    def rename(src, dst):
        if str(src).endswith(".new"):
            refused.append("rename")
            raise PermissionError(13, "in use", src)
        return real_rename(src, dst)

    def unlink(path, *args, **kw):
        if str(path).endswith(".log") and "unlink" not in refused:
            refused.append("unlink")
            raise PermissionError(13, "in use", path)
        return real_unlink(path, *args, **kw)

    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "unlink", unlink)
    cap = tmp_path / "cap"
    store = tl.ParquetStream(cap, durable=True, flush_seconds=None)
    store.put(tl.Exchange.from_httpx(httpx.Request("GET", "https://a.test/"), httpx.Response(200)))
    logs = cap / "_traffic_lab" / "logs"
    names = sorted(os.listdir(logs))
    assert len(names) == 2 and names[0].startswith(".") and names[1].endswith(".log"), names
    fd = os.open(logs / names[1], os.O_RDONLY)
    try:
        assert not try_lock(fd)  # the named segment is the locked file
    finally:
        os.close(fd)
    store.close()
    assert refused == ["rename", "unlink"]
    assert os.listdir(logs) == []
    assert len(tl.ParquetStream(cap)) == 1


def test_a_dead_writers_segment_is_folded_where_open_files_cannot_be_deleted(tmp_path, monkeypatch):
    import os

    import traffic_lab as tl

    cap = str(tmp_path / "cap")
    _run(
        _WRITE,
        f"""
        import os
        cache = tl.ParquetCache({cap!r}, durable=True)
        cache.put(ex(0))
        os._exit(0)
        """,
    )
    real_unlink = os.unlink
    refused: list[str] = []

    def unlink(path, *args, **kw):
        if str(path).endswith(".log") and not refused:
            refused.append(str(path))
            raise PermissionError(13, "in use", path)
        return real_unlink(path, *args, **kw)

    monkeypatch.setattr(os, "unlink", unlink)
    assert len(tl.ParquetStream(cap)) == 1
    assert len(refused) == 1
    assert os.listdir(os.path.join(cap, "_traffic_lab", "logs")) == []
