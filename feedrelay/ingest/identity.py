"""An entry's identity, from what its feed says: canonical links and item keys. Pure functions."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

# Tracking parameters that make the same article look like a new link.
_TRACKING_PARAMS = {"fbclid", "gclid", "mc_cid", "mc_eid", "igshid", "ref_src"}
_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_KEY = 512


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
    # The fragment stays: it is where a changelog's release or a one-page site's entry is (dedupe ignores it).
    return urlunsplit((scheme, host, parts.path or "/", query, parts.fragment))


def untracked(link: str) -> str:
    """A normalized ``link`` without Medium's ``source=rss…``: each Medium feed tags its links with its own (a
    publication's, an author's, a tag's), so one story from two feeds had two links. Item keys are made from the
    link as it was (``keys``), so entries remembered before this keep their identity."""
    if "source=rss" not in link:
        return link
    parts = urlsplit(link)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not (k == "source" and v.startswith("rss"))]
    return urlunsplit(parts._replace(query=urlencode(kept))) if len(kept) != len(pairs) else link


def keys(guid: str | None, link: str, title: str, date: str | None, text: str = "") -> tuple[str, str]:
    """(key, legacy key): the identity, and the one feedrelay gave the entry before schema 2 where that differs
    (links kept no fragment then, and untitled, undated entries all had one key)."""
    key = make_key(guid, link, title, date, text)
    if guid and guid.strip():
        return key, ""
    old_link = link.split("#", 1)[0]
    # (schema 1's formula, exactly: make_key has changed since for untitled, undated entries)
    legacy = old_link or "sha256:" + hashlib.sha256(f"{title}\x00{date or ''}".encode()).hexdigest()
    if len(legacy) > MAX_KEY:
        legacy = "sha256:" + hashlib.sha256(legacy.encode()).hexdigest()
    return key, "" if legacy == key else legacy


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
