"""GitHub Advisory Database: reviewed advisories from GitHub's REST API (``GET /advisories``), read incrementally
by `updated`, oldest first, through the cursor links of the ``Link`` header.

The watermark (the newest `updated_at` read) is saved with the items in one transaction: a failed page repeats
the poll from the same watermark, and a catch-up longer than one poll's pages resumes at its saved cursor.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from feedrelay.config import Feed
from feedrelay.ingest.fetch import Fetcher, FetchError
from feedrelay.ingest.identity import normalize_link
from feedrelay.ingest.text import clean
from feedrelay.model import Item
from feedrelay.sources import PollResult, SourceError
from feedrelay.sources.nvd import severity_for

API_VERSION = "2022-11-28"  # the REST API version these fields are read as (X-GitHub-Api-Version)
PAGE_SIZE = 100  # GitHub's largest per_page
MAX_PAGES = 10  # per poll (1,000 advisories, ~10 MB at worst); `more` reads the rest at once
OVERLAP = timedelta(hours=1)  # an advisory can reach the API's index a little after its updated_at
DESCRIPTION_MAX = 3000
MAX_RECENT = 2000  # advisories remembered from the overlap window (a bulk update touches many at once)
MAX_PACKAGES = 500  # package names kept per advisory for the filters (a few advisories list hundreds)
SHOWN_PACKAGES = 20  # vulnerable ranges kept for the message
_SEVERITIES = {"low": "low", "medium": "medium", "moderate": "medium", "high": "high", "critical": "critical"}
_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?([^";,]*)"?')
_GHSA_ID = re.compile(r"GHSA(?:-[23456789cfghjmpqrvwx]{4}){3}")
_CVE_ID = re.compile(r"CVE-\d{4}-\d{4,}")


def _utc(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _score(advisory: dict[str, Any]) -> tuple[float | None, str, str]:
    """(score, CVSS version, vector): v4 where GitHub gives one, else v3. An absent v4 reads as score 0.0 with a
    null vector, which is "no score", not "severity none"."""
    severities = advisory.get("cvss_severities")
    candidates: list[tuple[Any, str]] = []
    if isinstance(severities, dict):
        candidates += [(severities.get("cvss_v4"), "4.0"), (severities.get("cvss_v3"), "3")]
    candidates.append((advisory.get("cvss"), "3"))  # the older single field, still sent
    for entry, version in candidates:
        if not isinstance(entry, dict):
            continue
        score, vector = entry.get("score"), entry.get("vector_string")
        if isinstance(score, int | float) and not isinstance(score, bool) and 0 <= score <= 10 and \
                isinstance(vector, str) and vector:
            if version == "3":
                version = "3.1" if vector.startswith("CVSS:3.1") else "3.0"
            return float(score), version, vector[:200]
    return None, "", ""


def _text(value: object, limit: int) -> str:
    return clean(value if isinstance(value, str) else "")[:limit]


def advisory_item(advisory: dict[str, Any]) -> Item | None:
    """An Item for one advisory (a withdrawn one has ``extra["withdrawn"]``); None for one without a GHSA id."""
    ghsa = advisory.get("ghsa_id")
    if not isinstance(ghsa, str) or not _GHSA_ID.fullmatch(ghsa):
        return None
    cve = advisory.get("cve_id")
    cve = cve if isinstance(cve, str) and _CVE_ID.fullmatch(cve) and len(cve) <= 40 else None
    summary = _text(advisory.get("summary"), 300)
    score, version, vector = _score(advisory)
    severity = _SEVERITIES.get(str(advisory.get("severity") or "").lower())
    if severity is None and score is not None:
        severity = severity_for(score)
    ecosystems: dict[str, None] = {}
    names: dict[str, None] = {}
    affected: list[list[str]] = []  # [ecosystem, name, vulnerable range, first patched ("" for none yet)]
    vulns = advisory.get("vulnerabilities")
    for v in vulns if isinstance(vulns, list) else []:
        package = v.get("package") if isinstance(v, dict) else None
        if not isinstance(package, dict) or not isinstance(package.get("name"), str):
            continue
        eco = _text(package.get("ecosystem"), 30).lower()
        name = _text(package.get("name"), 200)
        if not name:
            continue
        if eco:
            ecosystems[eco] = None
        if len(names) < MAX_PACKAGES:
            names[name.lower()] = None
        if len(affected) < SHOWN_PACKAGES:
            affected.append([eco, name, _text(v.get("vulnerable_version_range"), 100),
                             _text(v.get("first_patched_version"), 60)])
    cwes = [c["cwe_id"] for c in advisory.get("cwes") or [] if isinstance(c, dict)
            and isinstance(c.get("cwe_id"), str) and re.fullmatch(r"CWE-\d+", c["cwe_id"])][:10]
    references = advisory.get("references")
    refs = [link for r in (references if isinstance(references, list) else []) if isinstance(r, str)
            and (link := normalize_link(r[:500]))][:5]
    link = normalize_link(str(advisory.get("html_url") or "")[:500]) or f"https://github.com/advisories/{ghsa}"
    withdrawn = advisory.get("withdrawn_at") is not None
    extra: dict[str, Any] = {
        "ghsa": ghsa,
        "cve": cve,
        "severity": severity,
        "score": score,
        "cvss_version": version or None,
        "vector": vector,
        "score_source": "GitHub" if severity else "",
        "ecosystems": list(ecosystems),
        "packages": list(names),
        "total_packages": sum(1 for v in vulns if isinstance(v, dict)) if isinstance(vulns, list) else 0,
        # Vendors and products are the package names: `products = ["django"]` works as on NVD routes.
        "vendors": list(names),
        "products": list(names),
        "affected": affected,
        "cwes": cwes,
        "references": refs,
        "withdrawn": withdrawn,
        "rejected": withdrawn,
    }
    return Item(
        key=ghsa,
        title=f"{ghsa}: {summary}" if summary else ghsa,
        link=link,
        summary=_text(advisory.get("description"), DESCRIPTION_MAX),
        categories=tuple(cwes),
        published=_utc(advisory.get("published_at")),
        kind="ghsa",
        extra=extra,
    )


def next_link(header: str) -> str | None:
    """The rel="next" URL of a Link header, if any."""
    for url, rel in _LINK.findall(header or ""):
        if "next" in rel.split():
            return url
    return None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


class GHSASource:
    def __init__(self, feed: Feed, fetcher: Fetcher, *, environ: Mapping[str, str],
                 clock: Any = time.time) -> None:
        self.feed = feed
        self.fetcher = fetcher
        self.url = feed.url  # config fills in the public endpoint
        # The Relay's environment, not os.environ (as for NVD's key).
        self.token = environ.get(feed.token_env, "").strip() if feed.token_env else ""
        self.clock = clock

    async def poll(self, state: dict[str, Any]) -> PollResult:
        mark = _utc(state.get("watermark"))
        if mark is None:
            # First poll: the newest page is remembered (and `backlog` of it posted); later polls read on from it.
            data, _ = await self._page(self._query(None, "desc"))
            read = self._items(data)
            start = max((u for _, u in read), default=None) or datetime.fromtimestamp(self.clock(), UTC)
            return PollResult([i for i, _ in read], self._state(start, read, {}), listing=False)
        resume = state.get("next")
        url = resume if isinstance(resume, str) and self._ours(resume) else self._query(mark - OVERLAP, "asc")
        recent: dict[str, Any] = state["recent"] if isinstance(state.get("recent"), dict) else {}
        found: dict[str, tuple[Item, datetime]] = {}
        newest = mark
        for _ in range(MAX_PAGES):
            try:
                data, following = await self._page(url)
            except SourceError as exc:
                if url is resume and exc.config_problem:
                    # A saved cursor GitHub no longer takes: read on from the watermark instead.
                    url = self._query(mark - OVERLAP, "asc")
                    resume = None
                    continue
                raise
            for item, updated in self._items(data):
                found[item.key] = (item, updated)
                newest = max(newest, updated)
            if following is None:
                return self._result(found, newest, recent, None)
            url = following
        # More pages than one poll reads: keep these, and resume at the cursor at once (`more`).
        return self._result(found, newest, recent, url)

    def _result(self, found: dict[str, tuple[Item, datetime]], newest: datetime, recent: dict[str, Any],
                resume: str | None) -> PollResult:
        # The overlap returns what the last poll read: unchanged (same updated_at), it is not news again. (Without
        # this, the page the first poll remembered silently would be judged afresh, and posted, at the second.)
        items = [i for i, u in found.values() if recent.get(i.key) != u.isoformat()]
        state = self._state(newest, list(found.values()), recent)
        if resume is not None:
            state["next"] = resume
        return PollResult(items, state, listing=False, more=resume is not None)

    @staticmethod
    def _state(newest: datetime, read: list[tuple[Item, datetime]], recent: dict[str, Any]) -> dict[str, Any]:
        floor = (newest - OVERLAP).isoformat()
        kept = {k: v for k, v in recent.items() if isinstance(v, str) and v >= floor}
        kept.update({i.key: u.isoformat() for i, u in read if u >= newest - OVERLAP})
        newest_first = sorted(kept.items(), key=lambda kv: kv[1], reverse=True)[:MAX_RECENT]
        return {"watermark": newest.isoformat(), "recent": dict(newest_first)}

    def _query(self, since: datetime | None, direction: str) -> str:
        params = [("type", "reviewed"), ("sort", "updated"), ("direction", direction), ("per_page", str(PAGE_SIZE))]
        if since is not None:
            params.append(("updated", f">={since.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"))
        sep = "&" if "?" in self.url else "?"
        return self.url + sep + "&".join(f"{k}={quote(v, safe='')}" for k, v in params)

    def _ours(self, url: str) -> bool:
        return _origin(url) == _origin(self.url)

    def _items(self, data: list[Any]) -> list[tuple[Item, datetime]]:
        """Each advisory with its updated_at (one without a readable updated_at is not a REST advisory: left out)."""
        out: list[tuple[Item, datetime]] = []
        for advisory in data:
            if not isinstance(advisory, dict):
                continue
            item = advisory_item(advisory)
            updated = _utc(advisory.get("updated_at"))
            if item is not None and updated is not None:
                out.append((item, updated))
        return out

    async def _page(self, url: str) -> tuple[list[Any], str | None]:
        headers = {"X-GitHub-Api-Version": API_VERSION}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            resp = await self.fetcher.get(url, headers=headers, accept="application/vnd.github+json",
                                          options=self.feed.http)
        except FetchError as exc:
            raise self._error(exc) from None
        data = _json(resp.body)
        following = next_link(resp.headers.get("link", ""))
        if following is not None and not self._ours(following):
            # A cursor link elsewhere would take the token (and the poll) to another host: never followed.
            raise SourceError(f"GitHub advisories: the next page's link points to {_origin(following)[1] or '?'}, "
                              f"not {_origin(self.url)[1]}; not followed (check the feed's url)")
        return data, following

    def _error(self, exc: FetchError) -> SourceError:
        h = exc.headers
        if exc.status in (403, 429) and (h.get("x-ratelimit-remaining") == "0" or exc.retry_after is not None):
            now = self.clock()
            reset = h.get("x-ratelimit-reset", "")
            wait = float(reset) - now if reset.isdigit() else exc.retry_after
            wait = max(wait or 60.0, 1.0)
            when = datetime.fromtimestamp(now + wait, UTC).strftime("%Y-%m-%d %H:%M UTC")
            return SourceError(f"GitHub advisories: rate limit reached (HTTP {exc.status}); it resets at {when}, "
                               f"in {int(wait // 60)} min {int(wait % 60)} s{self._limit_hint()}", retry_after=wait)
        if exc.status == 401:
            if self.token:
                return SourceError(f"GitHub rejected the token in ${self.feed.token_env} (HTTP 401); check or "
                                   "replace it (no scope is needed for public advisories)", config_problem=True)
            return SourceError("GitHub advisories: HTTP 401; check the feed's url", config_problem=True)
        if exc.status in (400, 404, 422):
            return SourceError(f"GitHub advisories: {exc}; check the feed's url (it should end in /advisories)",
                               config_problem=True)
        return SourceError(f"GitHub advisories: {exc}; the same advisories are asked for at the next poll",
                           retry_after=exc.retry_after, config_problem=exc.config_problem)

    def _limit_hint(self) -> str:
        if self.token:
            return " (even with the token: another client may be using it)"
        if self.feed.token_env:
            return f" (${self.feed.token_env} is not set, so GitHub allows 60 requests an hour)"
        return ' (set token_env = "GITHUB_TOKEN" for 5,000 requests an hour)'


def _json(body: bytes) -> list[Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SourceError(f"GitHub advisories: the answer is not JSON ({exc})") from None
    except RecursionError:  # nested deeper than Python's stack: no advisories page is
        raise SourceError("GitHub advisories: the answer is JSON nested too deeply to be a page of advisories") \
            from None
    if not isinstance(data, list):
        message = data.get("message") if isinstance(data, dict) else None
        detail = f": {clean(str(message))[:200]}" if message else ""
        raise SourceError(f"GitHub advisories: the answer is not a list of advisories{detail}; check the feed's url")
    return data
