"""Writing a file so that a reader sees the old content or the new, never half of either.

The one home for write-then-rename: restore records, the result cache, device-info files,
CDI specs and installed executables all go through `write_atomic`. The temp file lives in
the target's directory (a rename cannot cross filesystems) and is removed on any failure.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int = 0o600, *, durable: bool = True) -> None:
    """Replace `path` with `data` (file mode `mode`), creating its directory 0700 if missing.

    `durable` fsyncs the file before the rename, for state that must survive a crash; files
    on tmpfs that mean nothing after a reboot (device-info, CDI) skip it.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            if durable:
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
