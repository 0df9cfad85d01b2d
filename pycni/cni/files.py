"""Writing a file so that a reader sees the old content or the new, never half of either.

The one home for write-then-rename: restore records, the result cache, device-info files,
CDI specs and installed executables all go through `write_atomic`.

The data is written to an unnamed file (`O_TMPFILE`) in the target's directory (a rename cannot
cross filesystems), which gets a name only once it is complete: a temp name, just before the
rename, or, for a file nobody watches for (`watched=False`) that is not there yet, its own name
at once (one `linkat`, atomic as a rename). A writer killed while writing or syncing (SIGKILL
cannot be caught) therefore leaves nothing behind; the only leftover possible is a name from a
kill between that link and the rename, which a later write into the directory removes once it
is older than `STALE_TEMP_AGE` (a process looks at a directory at its first write there, then at
most once per that age). Filesystems without
`O_TMPFILE` get a named temp file from the start.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import ctypes

#: A temp name from a writer that died between link and rename is this old (seconds) at least
#: before it is removed: a live writer renames within microseconds of linking.
STALE_TEMP_AGE = 60.0

#: `.<target name>.<8 random characters>`, the names `write_atomic` gives its temp files.
_TEMP_NAME = re.compile(r"\..+\.[A-Za-z0-9_]{8}")


def write_atomic(
    path: Path, data: bytes, mode: int = 0o600, *, durable: bool = True, watched: bool = True
) -> None:
    """Replace `path` with `data` (file mode `mode`), creating missing directories 0700.

    `watched`: other software may watch the directory for the file's arrival, so it always
    arrives by a rename. containerd's CNI config syncer, for one, ignores a Create event (it
    waits for the Write that usually follows), so a config linked in under its name would never
    be loaded. False, for state only pycni reads (plans, result caches, status files): a file not
    there yet is linked in under its own name at once, one step and no temp name.

    `durable` fsyncs the file before the rename, for state that must survive a crash of the
    node. Without it, after such a crash the file may hold the old content, the new, or nothing
    readable: only for files on tmpfs (device-info, CDI) or whose loss is harmless. A directory that a
    concurrent cleaner removes while the file is written (an emptied per-namespace status
    directory, say) is made again and the write starts over.
    """
    for attempt in range(_ATTEMPTS):
        try:
            _write_once(path, data, mode, durable, watched)
            break
        except _DirectoryRemoved:
            if attempt == _ATTEMPTS - 1:
                raise FileNotFoundError(
                    errno.ENOENT, "directory removed by another process while writing", str(path.parent)
                ) from None
    if _sweep_due(path.parent):
        with contextlib.suppress(FileNotFoundError):
            remove_stale_temp_files(path.parent)


#: When this process last swept each directory for stale temp names (monotonic seconds).
_SWEPT: dict[Path, float] = {}
#: Directories remembered at most; past that the memory starts over (a sweep more, no more).
_SWEPT_MAX = 4096


def _sweep_due(directory: Path) -> bool:
    """True at a process's first write into `directory` and then once per `STALE_TEMP_AGE`.

    A sweep lists the whole directory, and some hold one file per pod (plans, cached results):
    a long-lived process (a daemon worker) sweeping on every write paid for every pod on the
    node on every request. A name only becomes stale after `STALE_TEMP_AGE` anyway, so a
    leftover now goes within two of those instead of one; an exec'd plugin sweeps as before.
    """
    now = time.monotonic()
    last = _SWEPT.get(directory)
    if last is not None and now - last < STALE_TEMP_AGE:
        return False
    if len(_SWEPT) >= _SWEPT_MAX:
        _SWEPT.clear()
    _SWEPT[directory] = now
    return True


#: Writes that start over when their directory vanishes under them.
_ATTEMPTS = 3


class _DirectoryRemoved(Exception):
    """The target's directory was removed while the file was being written."""


def _write_once(path: Path, data: bytes, mode: int, durable: bool, watched: bool) -> None:
    make_private_dirs(path.parent)
    try:
        dir_fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise _DirectoryRemoved from None
    try:
        try:
            fd = os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, mode, dir_fd=dir_fd)
        except OSError as err:
            if err.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
            _write_named(path, data, mode, durable)
            return
        try:
            _fill(fd, data, mode, durable)
            # linkat(AT_SYMLINK_FOLLOW), which os.link uses only when given a dir fd: names the file
            if not watched:
                try:  # a new file gets its name at once, complete: nothing to rename, no temp name
                    os.link(f"/proc/self/fd/{fd}", path.name, dst_dir_fd=dir_fd)
                    return
                except FileExistsError:
                    pass
            tmp = f".{path.name}.{os.urandom(4).hex()}"
            os.link(f"/proc/self/fd/{fd}", tmp, dst_dir_fd=dir_fd)
        finally:
            os.close(fd)
        _rename(path.parent / tmp, path)  # the directory holds `tmp` now: it cannot be removed
    except FileNotFoundError:
        if os.fstat(dir_fd).st_nlink == 0:
            raise _DirectoryRemoved from None
        raise
    finally:
        os.close(dir_fd)


def make_private_dirs(directory: Path) -> None:
    """Create `directory` and every missing parent 0700 (`Path.mkdir` gives its mode to the last
    one only): what pycni keeps on disk is root's alone. One syscall when it exists already."""
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        return
    except FileNotFoundError:
        make_private_dirs(directory.parent)
        with contextlib.suppress(FileExistsError):  # made by a concurrent writer meanwhile
            directory.mkdir(mode=0o700)


def sync_directory(directory: Path) -> None:
    """Flush `directory`'s entries to disk: after `write_atomic(..., durable=True)`, the rename
    itself survives a crash of the node only once its directory is synced."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temp_files(directory: Path, max_age: float = STALE_TEMP_AGE) -> list[Path]:
    """Remove temp files of dead writers (older than `max_age` seconds) from `directory`."""
    removed: list[Path] = []
    cutoff = time.time() - max_age
    with os.scandir(directory) as entries:
        for entry in entries:
            if not _TEMP_NAME.fullmatch(entry.name):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
            except FileNotFoundError:
                continue  # renamed or removed by its writer or another sweeper meanwhile
    return removed


def _write_named(path: Path, data: bytes, mode: int, durable: bool) -> None:
    import tempfile  # only filesystems without O_TMPFILE get here: keep it off every call's imports

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        _fill(fd, data, mode, durable)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    _rename(Path(tmp), path)


def _fill(fd: int, data: bytes, mode: int, durable: bool) -> None:
    os.fchmod(fd, mode)  # the umask may have narrowed the mode given at creation
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    if durable:
        os.fsync(fd)


def _rename(tmp: Path, path: Path) -> None:
    """Put `tmp` in `path`'s place. A file already there is swapped out (`renameat2` with
    `RENAME_EXCHANGE`, atomic for readers as a rename is) and then unlinked under the temp name:
    on Linux 6.x a rename that replaces a file took 0.2 ms at the median and 3.7 ms at p90 on
    this busy 2-CPU machine (tmpfs and ext4 alike), the exchange and the unlink 0.04 ms and
    0.05 ms. A kill between the two leaves the old content under a temp name, which
    `remove_stale_temp_files` removes. Filesystems without the exchange get a plain rename."""
    try:
        if exchange_names(tmp, path):
            tmp.unlink(missing_ok=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: renameat2(2): swap the two names; `AT_FDCWD`: paths relative to the working directory.
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
#: No target to swap with, or no exchange on this filesystem or kernel: a plain rename does.
_NO_EXCHANGE = frozenset({errno.ENOENT, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})


def exchange_names(tmp: Path, path: Path) -> bool:
    """True when `tmp` and `path` swapped names; False when a plain rename must do instead: no
    file at `path` yet, or something that is not a regular file (a rename refuses a directory,
    where an exchange would move it away)."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
    except FileNotFoundError:
        return False
    import ctypes  # lazily: most callers of this module never replace a file

    libc = _libc()
    if libc.renameat2(_AT_FDCWD, os.fsencode(tmp), _AT_FDCWD, os.fsencode(path), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in _NO_EXCHANGE:
        return False
    raise OSError(err, os.strerror(err), str(path))


@functools.cache
def _libc() -> ctypes.CDLL:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    libc.renameat2.restype = ctypes.c_int
    return libc
