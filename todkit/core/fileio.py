"""Crash-safe file writes: the one way todkit replaces a file.

``atomic_write`` writes to a temporary file in the target's folder (a rename is atomic only
within one file system), flushes and fsyncs it, renames it over the target and fsyncs the
folder so the rename itself survives a power cut. Readers therefore see the old file or the
new one, never a mix. On any error, Ctrl-C included, the temporary file is removed.

A process killed with SIGKILL cannot clean up, so temporary names carry the writer's pid
(``.<name>.<pid>.<random>.tmp``) and each write first removes the temporaries of the same
target whose writer is gone: however often writers die, at most the ones in flight remain.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable

from todkit.core.errors import ParamError

FILE_MODE = 0o644  # models are the user's files; mkstemp's 0600 would surprise them


def atomic_write(path, data: bytes | bytearray | memoryview | Callable) -> None:
    """Replace ``path`` with ``data`` (bytes, or a callable that writes to a binary file).

    Raises ``ParamError`` naming ``path`` when the file cannot be written; the previous file,
    if any, is then untouched."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    remove_stale_temps(folder, name)
    import tempfile  # here, not at the top: tempfile pulls in shutil, random, bz2 and lzma,
    # 0.8 MB of the device runtime's resident floor that only writes pay for
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.{os.getpid()}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise ParamError(f"{path}: cannot write the file: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise ParamError(f"{path}: cannot write the file: {e.strerror or e}") from None
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: str) -> None:
    """Make the rename durable; some file systems refuse to open or sync a folder."""
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


def remove_stale_temps(folder: str, name: str) -> list[str]:
    """Remove ``folder``'s temporaries for ``name`` left by writers that no longer run."""
    # exactly what atomic_write makes for this name: mkstemp's 8 random characters, so the
    # temporaries of "a.5" are never taken for those of "a"
    pattern = re.compile(rf"\.{re.escape(name)}\.(\d+)\.[a-z0-9_]{{8}}\.tmp")
    removed = []
    try:
        entries = os.listdir(folder)
    except OSError:
        return removed
    for entry in entries:
        m = pattern.fullmatch(entry)
        if m and not _alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, entry))
                removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of ours may be writing the same target
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but is not ours (EPERM)
        return True
    return True
