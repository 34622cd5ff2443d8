"""A loopback copy of the CVE List v5 repository as raw.githubusercontent.com serves it: `cves/deltaLog.json` (batches
of changes, newest first, as the real one) and each record at its path, with ETags."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from feedrelay.sources.cvelist import record_path
from tests.servers import FeedServer

FIXTURES = Path(__file__).parent / "fixtures" / "cvelist"


def real_record(name: str) -> dict[str, Any]:
    """A real record from tests/fixtures/cvelist (see its README for where each comes from)."""
    return json.loads((FIXTURES / name).read_text())


class FakeCVEList:
    """Serves records under `prefix` on the feed server. `publish` adds a batch to the delta log, as the CVE
    Program's job does every few minutes."""

    def __init__(self, server: FeedServer, prefix: str = "/cvelistV5/main/") -> None:
        self.server = server
        self.prefix = prefix
        self.batches: list[dict[str, Any]] = []
        self.clock = datetime.now(UTC) - timedelta(days=1)  # batch times, 7 minutes apart from here
        self._serve_log()

    @property
    def url(self) -> str:
        return self.server.url(self.prefix)

    @property
    def log_path(self) -> str:
        return self.prefix + "cves/deltaLog.json"

    def record_url_path(self, cve_id: str) -> str:
        return self.prefix + record_path(cve_id)

    def publish(self, *records: dict[str, Any], links: dict[str, str] | None = None, serve: bool = True) -> None:
        """Serve these records and log them as one batch of changes (new if never published before)."""
        self.clock += timedelta(minutes=7)
        stamp = self.clock.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        new, updated = [], []
        known = {e["cveId"] for b in self.batches for e in b["new"] + b["updated"]}
        for record in records:
            cve_id = record["cveMetadata"]["cveId"]
            if serve:
                self.server.set(self.record_url_path(cve_id), json.dumps(record).encode(),
                                content_type="text/plain; charset=utf-8")
            entry = {"cveId": cve_id, "cveOrgLink": f"https://www.cve.org/CVERecord?id={cve_id}",
                     "githubLink": (links or {}).get(cve_id) or
                     f"https://raw.githubusercontent.com/CVEProject/cvelistV5/main/{record_path(cve_id)}",
                     "dateUpdated": stamp}
            (updated if cve_id in known else new).append(entry)
        self.batches.insert(0, {"fetchTime": stamp, "numberOfChanges": len(records), "new": new, "updated": updated,
                                "error": []})
        self._serve_log()

    def _serve_log(self) -> None:
        self.server.set(self.log_path, json.dumps(self.batches, indent=2).encode(),
                        content_type="text/plain; charset=utf-8")
