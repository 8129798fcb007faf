"""Single-writer lock: an advisory `flock` on `locks/writer.lock`.

flock is released by the kernel when the holder dies (even on SIGKILL), so a crashed writer
never leaves a stale lock behind; the pid written into the file is only for the message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from eventvol.data_lake.errors import LakeIOError, LakeLockedError


class WriterLock:
    """Non-blocking exclusive lock; re-entrant within one `WriterLock` object."""

    def __init__(self, path: Path, lake_path: Path):
        self.path = path
        self.lake_path = lake_path
        self._fd: int | None = None
        self._depth = 0

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            self._depth += 1
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            # a read-only mount or folder: refuse before anything is staged
            raise LakeIOError(
                f"cannot write to lake {self.lake_path}: {exc.strerror or exc} ({self.path})"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LakeLockedError(
                f"lake {self.lake_path} is being written by another process (pid {holder}); "
                "try again when it finishes"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        self._depth = 1

    def release(self) -> None:
        if self._fd is None:
            return
        self._depth -= 1
        if self._depth > 0:
            return
        fd, self._fd = self._fd, None
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> "WriterLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
