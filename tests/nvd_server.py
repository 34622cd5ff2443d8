"""A loopback stand-in for the NVD CVE API 2.0, serving real fixture records with real paging rules."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.servers import FeedServer

FIXTURES = Path(__file__).parent / "fixtures"
PATH = "/rest/json/cves/2.0"
# What NVD accepts since mid-2025: an explicit offset. A date without one gets 404 + `message`.
DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


def fixture_records(name: str = "nvdlib-search_full_page.json") -> list[dict[str, Any]]:
    return json.loads((FIXTURES / "nvd" / name).read_text())["vulnerabilities"]


def synthetic(cve_id: str, *, metrics: dict[str, Any] | None = None, status: str = "Awaiting Analysis",
              description: str = "A synthetic vulnerability.") -> dict[str, Any]:
    return {"cve": {"id": cve_id, "sourceIdentifier": "cna@example.com", "published": "2026-11-20T10:15:00.000",
                    "lastModified": "2026-11-24T10:15:00.000", "vulnStatus": status,
                    "descriptions": [{"lang": "en", "value": description}], "metrics": metrics or {},
                    "references": []}}


class FakeNVD:
    """Serves `records` in pages of at most `page_size`, validating what real NVD validates."""

    def __init__(self, server: FeedServer, records: list[dict[str, Any]], *, page_size: int = 20,
                 api_key: str | None = None, by_date: bool = False) -> None:
        self.server = server
        self.records = records
        self.by_date = by_date  # answer only the records last modified in the requested range, as NVD does
        self.page_size = page_size
        self.api_key = api_key
        self.queries: list[dict[str, str]] = []
        self.lookups: list[str] = []  # the cveId of each lookup by id, in order
        self.failures: list[int] = []  # statuses to answer to the next requests, in order (0: answer normally)
        self.bad_request: str | None = None  # answer 404 + this `message` header, as NVD does for bad parameters
        # Called with startIndex before a page is cut: NVD's results change while a client pages through them.
        self.before_page: Callable[[int], None] | None = None
        self.lock = threading.Lock()
        server.set_handler(PATH, self._handle)

    @property
    def url(self) -> str:
        return self.server.url(PATH)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        raw_query = urlsplit(h.path).query
        query = {k: v[0] for k, v in parse_qs(raw_query).items()}
        with self.lock:
            self.queries.append(query)
            failure = self.failures.pop(0) if self.failures else None
        if failure:
            self._send(h, failure, {"message": "Service Unavailable"}, {"Retry-After": "0"})
            return
        if self.bad_request:
            self._send(h, 404, {}, {"message": self.bad_request})
            return
        if self.api_key is not None and h.headers.get("apiKey") != self.api_key:
            self._send(h, 403, {"message": "Invalid apiKey"})
            return
        if "cveId" in query:  # a lookup by id: that record, or none (NVD answers 200 with totalResults 0)
            with self.lock:
                self.lookups.append(query["cveId"])
            found = [r for r in self.records if r["cve"]["id"] == query["cveId"]]
            self._send(h, 200, {"resultsPerPage": len(found), "startIndex": 0, "totalResults": len(found),
                                "format": "NVD_CVE", "version": "2.0", "timestamp": "2026-11-25T00:00:00.000",
                                "vulnerabilities": found})
            return
        for key in ("lastModStartDate", "lastModEndDate"):
            if not DATE.match(query.get(key, "")) or "%2B" not in raw_query:
                self._send(h, 404, {}, {"message": f"Invalid {key} format"})
                return
        start = int(query.get("startIndex", "0"))
        if self.before_page:
            self.before_page(start)
        size = min(int(query.get("resultsPerPage", "2000")), self.page_size)
        records = self.records
        if self.by_date:
            lo, hi = (datetime.fromisoformat(query[k]) for k in ("lastModStartDate", "lastModEndDate"))
            records = [r for r in records if lo <= datetime.fromisoformat(r["cve"]["lastModified"] + "+00:00") <= hi]
        page = records[start : start + size]
        self._send(h, 200, {"resultsPerPage": len(page), "startIndex": start, "totalResults": len(records),
                            "format": "NVD_CVE", "version": "2.0", "timestamp": "2026-11-25T00:00:00.000",
                            "vulnerabilities": page})

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
