"""Durations ("90s", "1h30m") and sizes ("10MB") as feeds.toml writes them. Pure functions."""

from __future__ import annotations

import math
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MAX_DURATION = 10 * 365 * 86400.0
MAX_SIZE = 1024**3
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
# Compound forms, as `check` shows them and Go and systemd write them: "1h30m", "1d12h", "2m30s".
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_COMPOUND_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w)){2,8}$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    None: 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3,
}


def parse_duration(value: object) -> float:
    """``"90s"``, ``"15m"``, ``"2h"``, ``"1d"``, ``"1h30m"`` or a number of seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    elif isinstance(value, str) and _COMPOUND_DURATION.match(compact := value.replace(" ", "")):
        seconds = sum(float(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(compact))
    else:
        raise ValueError('expected a duration such as "90s", "15m", "1h30m", "2h" or "1d"')
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_DURATION:
        raise ValueError("a duration must be between 0 and 10 years")
    return seconds


def format_duration(seconds: float) -> str:
    """Seconds → the exact duration, compactly: 5400 → "1h30m", 90 → "1m30s", 0.5 → "0.5s", 172800 → "2d".
    For showing configured values, which must not be rounded ("90m" is not "every 2h")."""
    micro = round(seconds * 1_000_000)  # parse_duration's units multiply floats: drop the float noise
    whole, fraction = divmod(micro, 1_000_000)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    if whole or fraction or not parts:
        parts.append(f"{whole}.{fraction:06d}".rstrip("0").rstrip(".") + "s")
    return "".join(parts)


def parse_size(value: object) -> int:
    """``"10MB"``, ``"512KiB"`` or a number of bytes → bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size")
    if isinstance(value, int):
        size = float(value)
    elif isinstance(value, str) and (m := _SIZE.match(value)):
        unit = m.group(2).lower() if m.group(2) else None
        size = float(m.group(1)) * _SIZE_UNITS[unit]
    else:
        raise ValueError('expected a size such as "10MB" or "512KiB"')
    if not 0 <= size <= MAX_SIZE:
        raise ValueError("a size must be between 0 and 1GiB")
    return int(size)




def parse_zone(value: object) -> str:
    """An IANA time zone name (``"Europe/Berlin"``, ``"UTC"``), checked against the zone database; returned as
    written, for :func:`zone` to turn into a ``ZoneInfo``."""
    expected = 'expected an IANA time zone name (Area/City) such as "Europe/Berlin", or "UTC"'
    if not isinstance(value, str) or not value.strip():
        raise ValueError(expected)
    name = value.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(expected) from None
    return name


def zone(name: str) -> ZoneInfo:
    """The ``ZoneInfo`` of a name :func:`parse_zone` accepted."""
    return ZoneInfo(name)
