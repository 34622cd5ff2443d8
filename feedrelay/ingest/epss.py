"""FIRST's daily EPSS file (bytes → scores), read as a stream and bounded: a gzipped CSV of ~300k rows,
``#model_version:…,score_date:…`` then ``cve,epss,percentile``. Pure: no I/O."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

# The real file is ~2.5 MB gzipped and ~10 MB of text (353k rows in 2026): these leave room for years of growth
# and stop a decompression bomb or a wrong URL long before memory matters.
MAX_TEXT = 100_000_000  # bytes of CSV after decompression
MAX_ROWS = 2_000_000
MAX_LINE = 200  # a real row is ~30 bytes
# A few odd rows are skipped; more than this many means the file is not what we think it is.
MAX_BAD_ROWS = 1000
_CHUNK = 256 * 1024
_CVE = re.compile(r"CVE-\d{4}-\d{4,19}")


class EpssFileError(Exception):
    """The file is not an EPSS scores file (or is cut short); the message says what was wrong with it."""


@dataclass
class EpssFile:
    """What the header line said, and the scores, filled as :func:`parse` is iterated."""

    model_version: str = ""
    score_date: str = ""
    rows: int = 0
    bad_rows: int = 0
    meta: dict[str, str] = field(default_factory=dict)


def _text(body: bytes) -> Iterator[bytes]:
    """The CSV's bytes in chunks: gunzipped when gzip (FIRST serves .csv.gz as a file, not a Content-Encoding),
    as is when it already is CSV (a server or proxy that decoded it)."""
    if body[:2] == b"\x1f\x8b":
        z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        size = 0
        view = memoryview(body)
        for start in range(0, len(body), _CHUNK):
            data = bytes(view[start:start + _CHUNK])
            while data:
                try:
                    out = z.decompress(data, MAX_TEXT - size + 1)
                except zlib.error as exc:
                    raise EpssFileError(f"corrupt gzip data ({exc})") from None
                size += len(out)
                if size > MAX_TEXT:
                    raise EpssFileError(f"it unpacks to more than {MAX_TEXT:,} bytes, far more than an EPSS file")
                yield out
                data = z.unconsumed_tail
            if z.eof:
                break
        if not z.eof:
            raise EpssFileError("the gzip data is cut short (truncated download)")
        return
    head = body[:64].lstrip(b"\xef\xbb\xbf")
    if not (head.startswith(b"#model_version") or head.lower().startswith(b"cve,epss")):
        raise EpssFileError("not gzip and not an EPSS CSV (it should start with #model_version or cve,epss,"
                            "percentile); check the url")
    if len(body) > MAX_TEXT:
        raise EpssFileError(f"more than {MAX_TEXT:,} bytes, far more than an EPSS file")
    yield body


def _lines(body: bytes) -> Iterator[bytes]:
    rest = b""
    for chunk in _text(body):
        rest += chunk
        *lines, rest = rest.split(b"\n")
        if len(rest) > MAX_LINE * 10:
            raise EpssFileError(f"a line longer than {MAX_LINE * 10} bytes: not an EPSS CSV")
        yield from lines
    if rest:
        yield rest


def parse(body: bytes, out: EpssFile) -> Iterator[tuple[str, float, float]]:
    """(cve, epss, percentile) rows; ``out`` gets the model version, score date and counts. Raises
    :class:`EpssFileError` (while iterating) for a file that is not EPSS scores: the caller loads the rows in one
    transaction, so a file that fails half way leaves the scores it had."""
    lines = _lines(body)
    header_seen = False
    for raw in lines:
        line = raw.strip().lstrip(b"\xef\xbb\xbf").decode("ascii", "replace")
        if not line:
            continue
        if not header_seen:
            if line.startswith("#"):
                for part in line[1:].split(","):
                    key, _, value = part.partition(":")
                    out.meta[key.strip()[:40]] = value.strip()[:80]
                out.model_version = out.meta.get("model_version", "")
                out.score_date = out.meta.get("score_date", "")
                continue
            if line.lower().replace(" ", "") != "cve,epss,percentile":
                raise EpssFileError(f"expected the header cve,epss,percentile, got {line[:60]!r}; check the url")
            header_seen = True
            continue
        row = _row(line)
        if row is None:
            out.bad_rows += 1
            if out.bad_rows > MAX_BAD_ROWS:
                raise EpssFileError(f"more than {MAX_BAD_ROWS} rows are not cve,epss,percentile (e.g. {line[:60]!r})")
            continue
        out.rows += 1
        if out.rows > MAX_ROWS:
            raise EpssFileError(f"more than {MAX_ROWS:,} rows, far more than an EPSS file")
        yield row
    if not header_seen:
        raise EpssFileError("no cve,epss,percentile header: not an EPSS CSV; check the url")
    if not out.rows:
        raise EpssFileError("the file has no scores")


def _row(line: str) -> tuple[str, float, float] | None:
    if len(line) > MAX_LINE:
        return None
    parts = line.split(",")
    if len(parts) != 3 or not _CVE.fullmatch(parts[0]):
        return None
    try:
        epss, percentile = float(parts[1]), float(parts[2])
    except ValueError:
        return None
    # (also refuses nan and inf: a comparison with either is False)
    if not (0.0 <= epss <= 1.0 and 0.0 <= percentile <= 1.0):
        return None
    return parts[0], epss, percentile
