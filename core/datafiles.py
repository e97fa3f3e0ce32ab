"""Data files are born private: 0600 whatever the umask, and never readable by others.

The outbox, the counter and pricing ledgers, the label queues, the API token hashes and the
cloud simulator's signing keys are SQLite databases; SQLite itself creates a new database with
``SQLITE_DEFAULT_FILE_PERMISSIONS`` (0644) minus the umask. Its ``-wal``, ``-journal`` and
``-shm`` files take *exactly* the database file's permission bits, umask ignored: SQLite
``src/os_unix.c`` (mirror ``mackyle/sqlite`` at 2fc5cc2a92c0c9d76bbe7a24e28579a23b2995b2)
``findCreateFileMode`` copies ``st_mode & 0777`` of the database for WAL and journal files and
``robust_open`` fchmods a new, empty file to exactly that mode (measured with SQLite 3.40.1,
Debian 12: ``-shm`` follows the database too, tests/core/test_file_modes.py). So creating the
database 0600 before SQLite opens it is enough for new files; sidecars left by an older version
keep their mode and are tightened here.

The mode is set with ``fchmod`` on the file we created, never by changing the umask (that is
process-wide and would race every other thread that creates a file).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path
from typing import TextIO

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o750
ALLOWED_FILE_BITS = 0o640
"""Owner read/write, and group read for a site that gives the files to a group; never others."""
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` (and missing parents) 0750 exactly; an existing one is left alone."""
    missing: list[Path] = []
    for d in (directory, *directory.parents):
        if d.exists():
            break
        missing.append(d)
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(d, DIR_MODE)
            if stat.S_IMODE(os.stat(d).st_mode) != DIR_MODE:
                os.chmod(d, DIR_MODE)  # the umask took bits the daemon's group may need


def create_private(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 if it does not exist; True if it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    except FileExistsError:
        return False
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)  # the umask took the owner's own bits
    finally:
        os.close(fd)
    return True


def open_private_text(path: Path) -> TextIO:
    """``path`` truncated for writing; created 0600 if new (an existing file keeps its mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    return os.fdopen(fd, "w", encoding="utf-8")


def tighten(path: Path) -> None:
    """Take away what others (and group write) may do with an existing file, e.g. one created
    0644 by an older version; a site's deliberate 0640 is kept."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISREG(st.st_mode) or not mode & ~ALLOWED_FILE_BITS:
        return  # a symlink's own bits mean nothing; its target is not ours to judge
    fields = {"path": str(path), "was": f"{mode:04o}", "now": f"{mode & ALLOWED_FILE_BITS:04o}"}
    try:
        os.chmod(path, mode & ALLOWED_FILE_BITS)
    except OSError as exc:  # not ours (another user's file): say so, the doctor flags it too
        log.warning("data file readable by others", extra={**fields, "error": exc.strerror})
        return
    log.warning("data file was readable by others: permissions tightened", extra=fields)


def prepare_database(path: Path) -> Path:
    """Before SQLite opens ``path``: its directory exists (0750 if created here), the file
    exists 0600, and no sidecar left by an older version is readable by others."""
    make_private_dir(path.parent)
    if not create_private(path):
        tighten(path)
    for suffix in SQLITE_SIDECARS:
        tighten(path.with_name(path.name + suffix))
    return path


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new name in ``directory`` durable (the entry, not just the data)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` in one step: readers see the old file or the new one, never a mix.

    The temporary file is created with ``mode`` (O_EXCL, no symlink followed), so a private
    key is never readable by others, not even for a moment.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # left over from a crash of this very pid
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)
