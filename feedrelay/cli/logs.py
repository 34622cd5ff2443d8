"""Where the command's logs go and how they look: text (journald-aware) or JSON lines, secrets redacted."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any


class Redactor(logging.Filter):
    """Belt and braces: secret values never reach a log line, whatever library logged them."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                for s in self.secrets:
                    message = message.replace(s, "[redacted]")
                record.msg, record.args = message, None
            if record.exc_info:
                text = logging.Formatter().formatException(record.exc_info)
                for s in self.secrets:
                    text = text.replace(s, "[redacted]")
                record.exc_info, record.exc_text = None, text
        return True


LOG_FORMATS = ("text", "json")
# syslog priorities, which journald reads from a "<N>" line prefix (so `journalctl -p warning` works).
_PRIORITY = {"CRITICAL": 2, "ERROR": 3, "WARNING": 4, "INFO": 6, "DEBUG": 7}


class JSONFormatter(logging.Formatter):
    """One JSON object per line, for log shippers (Loki, Vector, Fluent Bit, CloudWatch)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        # (the Redactor, run before this, may have replaced exc_info with its redacted text)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry)


class JournalFormatter(logging.Formatter):
    """Under journald, which stamps every line itself: no timestamp of ours, and the level as a priority."""

    def __init__(self) -> None:
        super().__init__("%(levelname)-7s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelname, 6)}>" + super().format(record)


def under_journald(stream: Any = None) -> bool:
    """Whether `stream` (stderr) is connected to the journal: systemd sets JOURNAL_STREAM to its device and inode,
    which a program started from such a service with its output redirected inherits without being connected."""
    dev, _, ino = os.environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return dev.isdigit() and ino.isdigit() and (st.st_dev, st.st_ino) == (int(dev), int(ino))


_log_format = "text"  # as set up last: with json, what `run` and `once` say on stderr is a JSON object too


def setup_logging(verbose: int, secrets: list[str], log_format: str = "text") -> None:
    global _log_format
    _log_format = log_format
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JSONFormatter())
    elif under_journald(sys.stderr):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S"))
    handler.addFilter(Redactor(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)
    logging.getLogger("feedrelay").setLevel(logging.DEBUG if verbose else logging.INFO)
    # Library chatter is noise below -vv (and apscheduler logs every job run at INFO).
    for name in ("apscheduler", "httpx", "httpcore", "slack_sdk", "asyncio"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose >= 2 else logging.WARNING)
    # APScheduler warns on every poll skipped because the previous one still runs (a slow feed, a short
    # interval): that is by design here (one poll per feed at a time), not something to act on.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.DEBUG if verbose >= 2 else logging.ERROR)


def json_logs() -> bool:
    """Whether logging was last set up as JSON lines (the command's own errors and report follow it)."""
    return _log_format == "json"
