"""NVD lookups by id (``GET <nvd url>?cveId=CVE-…``) of CVEs that RSS entries mention and no feed told of: bounded
per poll, under NVD's rate limit shared with the NVD feed of the same endpoint, never waiting long for a slot."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from feedrelay.config import CveLookup as Settings
from feedrelay.decide.mentions import record_facts
from feedrelay.ingest.fetch import Fetcher, FetchError
from feedrelay.model import CveFacts
from feedrelay.sources.nvd import _json, cve_item, shared_limiter

log = logging.getLogger(__name__)

# A lookup waits at most this long for a slot of NVD's limit (NVD asks for ~6 s between requests without a key);
# past it the id waits for the feed's next poll, so a poll never stalls for NVD's whole 30 s window.
MAX_WAIT = 6.0


@dataclass
class Lookups:
    """One poll's lookups: facts found (None: NVD does not know the id), ids left for a later poll, and why."""

    found: dict[str, CveFacts | None] = field(default_factory=dict)
    deferred: set[str] = field(default_factory=set)
    error: str = ""  # the first failure (NVD down, throttled): the rest wait for the next poll


class CveLookup:
    def __init__(self, settings: Settings, fetcher: Fetcher, environ: Mapping[str, str]) -> None:
        self.settings = settings
        self.fetcher = fetcher
        self.url = settings.url
        # The Relay's environment, as the NVD source reads it; the key is sent in a header, never logged.
        self.api_key = environ.get(settings.api_key_env, "").strip() if settings.api_key_env else ""
        self.limiter = shared_limiter(self.url, bool(self.api_key))

    async def lookup(self, ids: Sequence[str]) -> Lookups:
        out = Lookups()
        headers = {"apiKey": self.api_key} if self.api_key else {}
        for n, cve in enumerate(ids):
            if n >= self.settings.max_per_poll or out.error or not await self.limiter.try_wait(MAX_WAIT):
                out.deferred.update(ids[n:])
                break
            try:
                resp = await self.fetcher.get(f"{self.url}?cveId={quote(cve, safe='')}", headers=headers,
                                              accept="application/json")
                page = _json(resp.body)
            except FetchError as exc:
                if exc.status == 404 and not exc.headers.get("message"):
                    out.found[cve] = None  # (an endpoint that answers an unknown id with 404)
                    continue
                out.error = f"NVD lookup of {cve} failed: {exc}"
                out.deferred.add(cve)
                continue
            vulns = page.get("vulnerabilities") or []
            record = vulns[0].get("cve") if vulns and isinstance(vulns[0], dict) else None
            item = cve_item(record) if isinstance(record, dict) and record.get("id") == cve else None
            out.found[cve] = record_facts(item) if item else None
        if out.error:
            log.warning("%s; %d CVE id(s) are looked up at a later poll", out.error, len(out.deferred))
        return out
