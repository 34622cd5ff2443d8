"""NIST NVD CVE API 2.0: new and changed CVEs by last-modified windows, under NVD's rate limits.

The watermark (the end of the last fully processed window) is saved with the window's items in one
transaction, so a crash or a 503 mid-window repeats the window and never skips one.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from feedrelay.config import Feed
from feedrelay.ingest.fetch import Fetcher, FetchError
from feedrelay.ingest.text import clean
from feedrelay.model import Item
from feedrelay.sources import PollResult, SourceError

MAX_WINDOW = timedelta(days=120)  # NVD refuses longer lastMod ranges
OVERLAP = timedelta(hours=3)  # NVD publishes in ~2-hourly batches; records can appear late in a window
# NVD allows 2,000 per page, but records average ~4 KB (up to ~7 KB with many CPEs): a full page of 2,000 could pass
# defaults.max_body (10 MB), failing every poll of a busy window. 1,000 stays well under it.
PAGE_SIZE = 1000
# A catch-up after days down is read in parts of about this many CVEs (~40 MB in memory), each kept before the next
# is read: memory stays bounded, and a crash repeats one part, not the whole catch-up.
MAX_POLL_ITEMS = 10_000
MIN_SPLIT = timedelta(minutes=15)  # a window busier than MAX_POLL_ITEMS is halved until it is this short
FIRST_RUN_LOOKBACK = timedelta(days=1)  # with `backlog`, the newest N CVEs come from this far back
RETRIES = 2  # in-poll retries of 403/503 before the poll fails (and the window is repeated next time)
METRIC_KEYS = (("cvssMetricV40", "4.0"), ("cvssMetricV31", "3.1"), ("cvssMetricV30", "3.0"), ("cvssMetricV2", "2.0"))
DESCRIPTION_MAX = 3000
# The `source` of CISA's Authorized Data Publisher scores ("Vulnrichment"): Secondary like a CNA's, but CISA's.
CISA_ADP = "134c704f-9b21-4f2e-91b3-4a467353bcc0"


class RateLimiter:
    """At most ``count`` requests in any ``period`` seconds (NVD: 5 per 30 s, 50 with an API key)."""

    def __init__(self, count: int, period: float) -> None:
        self.count = count
        self.period = period
        self.sent: deque[float] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()

    @property
    def lock(self) -> asyncio.Lock:
        # A limiter shared by an NVD feed and the CVE lookups outlives an event loop (a library user's second
        # asyncio.run): a lock is bound to the loop that first used it.
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._lock = loop, asyncio.Lock()
        return self._lock

    async def wait(self) -> None:
        await self.try_wait(None)

    async def try_wait(self, max_wait: float | None) -> bool:
        """Wait for a slot; False at once (nothing counted) if that would take longer than ``max_wait``."""
        async with self.lock:
            now = time.monotonic()
            while self.sent and now - self.sent[0] >= self.period:
                self.sent.popleft()
            if len(self.sent) >= self.count:
                delay = self.period - (now - self.sent[0])
                if max_wait is not None and delay > max_wait:
                    return False
                await asyncio.sleep(delay)
                self.sent.popleft()
            self.sent.append(time.monotonic())
            return True


_LIMITERS: dict[tuple[str, bool], RateLimiter] = {}


def shared_limiter(url: str, keyed: bool) -> RateLimiter:
    """One limiter per NVD endpoint (and key or none) in this process: an NVD feed and the CVE lookups of RSS
    entries share NVD's limit (5 requests per rolling 30 s without a key, 50 with one)."""
    key = (url.split("?", 1)[0], keyed)
    if key not in _LIMITERS:
        _LIMITERS[key] = RateLimiter(50 if keyed else 5, 30.0)
    return _LIMITERS[key]


def nvd_time(dt: datetime) -> str:
    """NVD wants an explicit UTC offset; without one it answers 404 since mid-2025."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+00:00")


def windows(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    out = []
    while start < end:
        stop = min(start + MAX_WINDOW, end)
        out.append((start, stop))
        start = stop
    return out


def _utc(text: str | None) -> datetime | None:
    """NVD timestamps carry no offset but are UTC."""
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def pick_metric(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """CVSS v4.0 → v3.1 → v3.0 → v2; within a version NVD's Primary score, else a Secondary one (the CNA's, or
    CISA-ADP's). Returns {severity, score, version, vector, source_type} or None when unscored."""
    for key, version in METRIC_KEYS:
        entries = [m for m in metrics.get(key) or [] if isinstance(m, dict)]
        entries.sort(key=lambda m: 0 if m.get("type") == "Primary" else 1)
        for m in entries:
            data = m.get("cvssData") or {}
            score = data.get("baseScore")
            # v2 keeps baseSeverity outside cvssData.
            severity = data.get("baseSeverity") or m.get("baseSeverity")
            if not isinstance(score, int | float):
                continue
            severity = str(severity or "").lower()
            if severity not in ("none", "low", "medium", "high", "critical"):
                severity = severity_for(float(score))
            return {"severity": severity, "score": float(score), "version": version,
                    "vector": str(data.get("vectorString", ""))[:200],
                    "source_type": "CISA-ADP" if m.get("source") == CISA_ADP else m.get("type", "")}
    return None


def score_fields(metric: dict[str, Any] | None) -> dict[str, Any]:
    """The ``extra`` keys of a CVE item's score, from :func:`pick_metric` (None: unscored)."""
    return {"severity": metric["severity"] if metric else None, "score": metric["score"] if metric else None,
            "cvss_version": metric["version"] if metric else None, "vector": metric["vector"] if metric else "",
            "score_source": metric["source_type"] if metric else ""}


def severity_for(score: float) -> str:
    if score == 0:
        return "none"
    if score < 4:
        return "low"
    if score < 7:
        return "medium"
    if score < 9:
        return "high"
    return "critical"


# A CPE 2.3 formatted string's fields: `:` separates them unless escaped, as in `notepad\+\+` or `node\.js`.
_CPE_FIELD = re.compile(r"((?:\\.|[^:\\])*)(?::|$)")
_CPE_ESCAPE = re.compile(r"\\(.)")


def _cpe_name(field: str) -> str:
    """A CPE vendor or product as the filters and messages name it: `notepad\\+\\+` is "notepad++", `_` a space."""
    return _CPE_ESCAPE.sub(r"\1", field).replace("_", " ")


def _cpes(cve: dict[str, Any]) -> tuple[list[str], list[str], list[list[str]], int]:
    """Vulnerable vendors and products (every one, for the filters: a team's product can be the 30th of a Log4j-sized
    record), the (vendor, product) pairs CPE match criteria name (the first 20, for the message), each once, in
    order, and how many pairs there are in all."""
    vendors: dict[str, None] = {}  # ordered sets: records can list thousands of CPEs
    products: dict[str, None] = {}
    pairs: list[list[str]] = []  # lists, not tuples: extra stays plain JSON
    seen: set[tuple[str, str]] = set()
    for config in cve.get("configurations") or []:
        for node in config.get("nodes") or []:
            for match in node.get("cpeMatch") or []:
                parts = _CPE_FIELD.findall(str(match.get("criteria", "")))
                if len(parts) > 4 and parts[3] and parts[4] and match.get("vulnerable", True):
                    vendor, product = _cpe_name(parts[3]), _cpe_name(parts[4])
                    vendors[vendor] = None
                    products[product] = None
                    # Pairs are kept as found: deduplicated lists cannot be zipped back together.
                    if (vendor, product) not in seen:
                        seen.add((vendor, product))
                        pairs.append([vendor, product])
    return list(vendors), list(products), pairs[:20], len(pairs)


def cve_item(cve: dict[str, Any]) -> Item | None:
    """An Item for one NVD record (a Rejected one has ``extra["rejected"]``); None for a malformed record."""
    cve_id = str(cve.get("id", ""))
    if not cve_id.startswith("CVE-") or len(cve_id) > 40:
        return None
    descriptions = cve.get("descriptions") or []
    description = next((d.get("value", "") for d in descriptions if d.get("lang") == "en"),
                       descriptions[0].get("value", "") if descriptions else "")
    status = str(cve.get("vulnStatus", ""))
    # Kept, not dropped: a CVE rejected after it was posted gets a reply saying so (the filters never post one).
    rejected = status == "Rejected" or description.startswith(("** REJECT **", "Rejected reason:"))
    vendors, products, affected, affected_total = _cpes(cve)
    cwes = sorted({d.get("value", "") for w in cve.get("weaknesses") or [] for d in w.get("description") or []
                   if str(d.get("value", "")).startswith("CWE-")})
    metric = pick_metric(cve.get("metrics") or {})
    extra: dict[str, Any] = {
        "cve": cve_id,
        "status": status,
        **score_fields(metric),
        "vendors": vendors,
        "products": products,
        "affected": affected,
        "affected_total": affected_total,  # for "and N more": the list keeps only the first 20
        "cwes": cwes,
        "references": [str(r.get("url", ""))[:500] for r in (cve.get("references") or [])[:5]],
        "kev": bool(cve.get("cisaExploitAdd")),
        "rejected": rejected,
    }
    if extra["kev"]:
        extra.update(kev_added=cve.get("cisaExploitAdd"), kev_due=cve.get("cisaActionDue"),
                     kev_action=clean(str(cve.get("cisaRequiredAction", "")))[:500],
                     kev_name=clean(str(cve.get("cisaVulnerabilityName", "")))[:300])
    return Item(
        key=cve_id,
        title=cve_id,
        link=f"https://nvd.nist.gov/vuln/detail/{cve_id}",
        summary=clean(description)[:DESCRIPTION_MAX],
        categories=tuple(cwes),
        published=_utc(cve.get("published")),
        kind="cve",
        extra=extra,
    )


class NVDSource:
    def __init__(self, feed: Feed, fetcher: Fetcher, *, environ: Mapping[str, str]) -> None:
        self.feed = feed
        self.fetcher = fetcher
        self.url = feed.url  # config fills in the public endpoint
        # The Relay's environment, not os.environ: a library user's Relay(environ=...) decides what a source sees.
        self.api_key = environ.get(feed.api_key_env, "").strip() if feed.api_key_env else ""
        # Public limits: 5 requests per rolling 30 s without a key, 50 with one (shared with the CVE lookups).
        self.limiter = shared_limiter(self.url, bool(self.api_key))
        self.retry_delays = (2.0, 6.0)

    async def poll(self, state: dict[str, Any]) -> PollResult:
        now = datetime.now(UTC)
        mark = _utc(state.get("watermark"))
        if mark is None:
            if not self.feed.backlog:
                # First run starts from now: nothing old is posted.
                return PollResult([], {"watermark": now.isoformat()}, listing=False)
            start = now - FIRST_RUN_LOOKBACK
        elif resume := _utc(state.get("resume")):
            # A catch-up read in parts goes on where its last part stopped. (From the watermark less the overlap,
            # capped at now, a burst of changes in the last 3 hours bigger than a part was read again and again.)
            start = min(resume, now)
        else:
            start = min(mark, now) - OVERLAP
        items: dict[str, Item] = {}
        pending = windows(start, now)
        while pending:
            lo, hi = pending.pop(0)
            first = await self._page(lo, hi, 0)
            total = int(first.get("totalResults") or 0)
            if total > MAX_POLL_ITEMS and hi - lo > MIN_SPLIT:
                pending[:0] = [(lo, lo + (hi - lo) / 2), (lo + (hi - lo) / 2, hi)]
                continue
            if items and len(items) + total > MAX_POLL_ITEMS:
                # Keep what was read; the next poll (at once: `more`) resumes at this window.
                state = {"watermark": (lo + OVERLAP).isoformat(), "resume": lo.isoformat()}
                return PollResult(list(items.values()), state, listing=False, more=True)
            for item in await self._window(lo, hi, first):
                items[item.key] = item
        return PollResult(list(items.values()), {"watermark": now.isoformat()}, listing=False)

    async def _window(self, start: datetime, end: datetime, page: dict[str, Any]) -> list[Item]:
        """Every CVE in the window, from its first page on."""
        out: list[Item] = []
        index = 0
        previous_total: int | None = None
        while True:
            vulns = page.get("vulnerabilities") or []
            for v in vulns:
                item = cve_item(v.get("cve") or {}) if isinstance(v, dict) else None
                if item:
                    out.append(item)
            total = int(page.get("totalResults") or 0)
            dropped = previous_total - total if previous_total is not None else 0
            previous_total = total
            if dropped > 0 and index > 0:
                # CVEs NVD modified again since the last page left the window, and the later ones moved up as many
                # places: step back to read the ones that moved in front of this page (repeats are harmless).
                index = max(index - dropped, 0)
            else:
                index += int(page.get("resultsPerPage") or len(vulns))
                if not vulns or index >= total:
                    return out
            page = await self._page(start, end, index)

    async def _page(self, start: datetime, end: datetime, index: int) -> dict[str, Any]:
        query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in (
            ("lastModStartDate", nvd_time(start)), ("lastModEndDate", nvd_time(end)),
            ("resultsPerPage", PAGE_SIZE), ("startIndex", index)))
        headers = {"apiKey": self.api_key} if self.api_key else {}
        for attempt in range(RETRIES + 1):
            await self.limiter.wait()
            try:
                resp = await self.fetcher.get(f"{self.url}?{query}", headers=headers, accept="application/json",
                                              options=self.feed.http)
                return _json(resp.body)
            except FetchError as exc:
                if exc.status == 404 and exc.headers.get("message"):
                    message = exc.headers["message"][:300]
                    if self.api_key and "apikey" in message.lower():
                        # NVD's answer to a wrong, revoked or not yet activated key (named by its variable only).
                        raise SourceError(f"NVD rejected the API key in ${self.feed.api_key_env}: {message}; check "
                                          "the key, or request a new one at "
                                          "https://nvd.nist.gov/developers/request-an-api-key", config_problem=True
                                          ) from None
                    raise SourceError(f"NVD rejected the request: {message}; check the feed's "
                                      "url (it should end in /rest/json/cves/2.0)", config_problem=True) from None
                retryable = not exc.config_problem and (exc.status in (403, 429, 500, 502, 503, 504) or
                                                        exc.status is None)
                if not retryable or attempt == RETRIES:
                    hint = "" if exc.status != 403 else self._throttled_hint()
                    raise SourceError(f"NVD: {exc}{hint}; the window will be repeated") from None
                delay = exc.retry_after if exc.retry_after is not None else self.retry_delays[attempt]
                await asyncio.sleep(min(delay, 60))
        raise AssertionError("unreachable")


    def _throttled_hint(self) -> str:
        if self.api_key:  # the key is in use: advice to set one would send the user looking for a problem there
            return " (throttled even with the API key; another client may be using it)"
        if self.feed.api_key_env:
            return f" (throttled: ${self.feed.api_key_env} is not set, so NVD allows 5 requests in 30 s)"
        return " (throttled: set api_key_env for a higher limit)"


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FetchError(f"NVD answered something that is not JSON ({exc})") from None
    except RecursionError:  # nested deeper than Python's stack: no NVD answer is
        raise FetchError("NVD answered JSON nested too deeply to be an NVD response") from None
    if not isinstance(data, dict):
        raise FetchError("NVD answered JSON that is not an object")
    return data
