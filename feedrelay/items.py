"""The item every source produces, and the pure rules for its identity."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

# Tracking parameters that make the same article look like a new link.
_TRACKING_PARAMS = {"fbclid", "gclid", "mc_cid", "mc_eid", "igshid", "ref_src"}
_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_KEY = 512


@dataclass(frozen=True, slots=True)
class Item:
    """One entry from a source, already reduced to plain text and bounded in size."""

    key: str  # unique within its feed
    title: str
    link: str  # normalized http(s) URL, or "" when the entry had none we trust
    summary: str = ""
    content: str = ""
    categories: tuple[str, ...] = ()
    author: str = ""
    published: datetime | None = None  # aware, UTC
    kind: str = "post"  # post | cve | kev
    extra: dict[str, Any] = field(default_factory=dict)  # source-specific facts (CVE severity, KEV dates…)

    @property
    def dedupe_key(self) -> str:
        """What makes two items "the same article" despite GUID churn or a second feed: link and title together.
        A link alone would merge entries that share a page: a podcast's episodes, a changelog's #anchored releases."""
        title = " ".join(self.title.casefold().split())[:200]
        if self.kind != "post":
            # A KEV addition and the NVD record of the same CVE share a link but are different news; a CVE's
            # title changes as NVD analyses it, so its link alone names it.
            return f"{self.kind}:{self.link or ('title:' + title if title else 'key:' + self.key)}"
        if self.link:
            return f"{self.link}\t{title}" if title else self.link
        # Nothing to compare an untitled, unlinked entry by: it is only ever itself.
        return f"title:{title}" if title else f"key:{self.key}"


def normalize_link(url: str | None, base: str | None = None) -> str:
    """Canonical form of an http(s) link; "" for anything else (javascript:, data:, mailto:, junk)."""
    if not url:
        return ""
    url = url.strip()
    # urljoin() leaves an absolute URL without dot segments as it is; most links are that, and skipping it is cheap.
    if base and not (url.startswith(("https://", "http://")) and "/." not in url):
        url = urljoin(base, url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ""
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return ""
    # Rebuilt from hostname: userinfo ("https://bank.com@evil.example/") is dropped, as it only disguises hosts.
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if not k.lower().startswith("utm_") and k.lower() not in _TRACKING_PARAMS]
        if len(kept) != len(pairs):
            query = urlencode(kept)
    return urlunsplit((scheme, host, parts.path or "/", query, ""))


def make_key(guid: str | None, link: str, title: str, date: str | None, text: str = "") -> str:
    """Item identity: the guid/id; else the normalized link; else a hash of title and date (and, when both are
    empty, of the entry's ``text``: untitled, undated notes would otherwise all be one item)."""
    if guid and guid.strip():
        key = guid.strip()
    elif link:
        key = link
    else:
        # (text joins the hash only when title and date are empty, so existing keys stay what they were)
        seed = f"{title}\x00{date or ''}" if title or date else f"\x00\x00{text}"
        key = "sha256:" + hashlib.sha256(seed.encode()).hexdigest()
    if len(key) > MAX_KEY:  # hostile feeds send megabyte-long ids
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key
