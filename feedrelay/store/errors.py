"""Database failures, phrased for the person who has to act on them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator


class StoreError(Exception):
    """The database cannot be used; the message says which file and what to do."""


def describe(exc: Exception, path: str) -> str:
    """The message for any database failure: ours already explain themselves, SQLite's get explained."""
    return explain(path, exc) if isinstance(exc, sqlite3.DatabaseError) else str(exc)


# What a caller catches to survive any database failure: SQLite can report damage on any read.
DB_ERRORS = (StoreError, sqlite3.DatabaseError)


def in_chunks(values: Iterable[str], size: int = 500) -> Iterator[tuple[list[str], str]]:
    """``(chunk, "?,?,…")`` for a ``… IN (…)`` query: at most ``size`` values, under SQLite's parameter limit."""
    values = list(values)
    for n in range(0, len(values), size):
        chunk = values[n : n + size]
        yield chunk, ",".join("?" * len(chunk))


def damaged(exc: Exception) -> bool:
    """A damaged file is not a passing fault (unlike a full disk or a lock): carrying on cannot help."""
    text = str(exc)
    return "malformed" in text or "not a database" in text or "damaged" in text


def explain(path: str, exc: sqlite3.DatabaseError) -> str:
    text = str(exc)
    if "locked" in text:
        return f"{path}: database is locked by another process for too long; is another feedrelay writing it?"
    if "not a database" in text or "malformed" in text:
        return (f"{path}: the database file is damaged ({text}). Stop feedrelay, keep a copy of the file, "
                "and restore a backup or move it aside to start afresh")
    if "disk" in text or "full" in text:
        return f"{path}: cannot write: {text}. Free disk space; nothing was lost, the poll will be repeated"
    if "unable to open" in text:
        return f"{path}: cannot open the database ({text}); check the directory exists and is writable"
    if "readonly" in text or "read-only" in text:
        return f"{path}: the database is read-only ({text}); check file permissions"
    return f"{path}: database error: {text}"
