"""Whether `feedrelay run` is alive, for `feedrelay health` (Docker's HEALTHCHECK, a systemd timer, a monitor).

The daemon touches its database's lock file every 2 seconds from its event loop (its clock watcher), so a fresh
modification time says the loop runs (a blocked loop, a hung start, a dead process all leave it stale), and the
pid in the file says which process. No network: nothing here asks Slack, whose outages a restart would not fix."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

STALE_AFTER = 60.0  # default for `feedrelay health --max-age`: a loop late by a minute is stuck, not busy


def heartbeat_file(db: str) -> Path:
    """The file `run` and `once` hold locked (DatabaseLock): it holds their pid, its mtime is the heartbeat."""
    return Path(f"{db}.lock")


def beat(db: str) -> None:
    os.utime(heartbeat_file(db))


@dataclass(frozen=True)
class Health:
    ok: bool
    message: str


def check(db: str, max_age: float = STALE_AFTER, now: float | None = None) -> Health:
    path = heartbeat_file(db)
    now = time.time() if now is None else now
    try:
        st = path.stat()
        pid_text = path.read_text(errors="replace").strip()
    except FileNotFoundError:
        return Health(False, f"no `feedrelay run` has used {db} yet (no {path.name})")
    except OSError as exc:
        return Health(False, f"cannot read {path}: {exc.strerror}")
    pid = int(pid_text) if pid_text.isdigit() else None
    if pid is not None and not _running(pid):
        return Health(False, f"`feedrelay run` (pid {pid}) is not running; it last used {db} {_age(now - st.st_mtime)} "
                             "ago")
    age = max(0.0, now - st.st_mtime)
    who = f"`feedrelay run` (pid {pid})" if pid is not None else "`feedrelay run`"
    if age > max_age:
        return Health(False, f"{who} has not answered for {_age(age)} (limit {_age(max_age)}): its event loop is "
                             "blocked or it is stuck starting; its log says what it was doing")
    return Health(True, f"ok: {who} answered {_age(age)} ago; database {db}")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user (health run as root beside a service's dynamic user)
    return True


def _age(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m"
