"""The lock that keeps a second `run` or `once` off a database."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from feedrelay.store.errors import StoreError


class DatabaseLock:
    """Held by the one process that polls and delivers with a database (`run`, `once`). SQLite lets two such
    processes share the file without a complaint, and both would send every pending message: one post twice."""

    def __init__(self, path: str) -> None:
        self.path = f"{path}.lock"
        self._fd: int | None = None
        if path == ":memory:":
            return
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"{path}: cannot open the database ({exc.strerror or exc}: {self.path}); check the "
                             "directory exists and is writable") from None
        try:
            # (flock, not SQLite's own fcntl locks: released by the kernel even after kill -9)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise StoreError(f"{path}: another feedrelay (`run` or `once`{f', pid {holder}' if holder else ''}) "
                             "is using this database; run one per database, or give this one another --db") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
