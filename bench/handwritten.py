"""The two hand-written parts feedrelay keeps for speed, against what they replaced:
``uv run python -m bench.handwritten``

- HTML → text: ``feedrelay.ingest.text.html_to_text`` (a one-pass tokenizer) against the ``html.parser`` version
  it replaced (commit 14ef343^, read with ``git show``), on the bench farm's item descriptions (bench/farm.py).
- The network backend: httpx with ``feedrelay.ingest.netio.AsyncioBackend`` against httpx's default (anyio),
  1,000 keep-alive GETs of a small body from a loopback asyncio server, 50 at a time; CPU per request.

CPU time (process_time) is reported, best of --repeat runs, so the machine's other load matters less.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time
import types
from pathlib import Path

import httpcore
import httpx

from bench.farm import _item_xml
from feedrelay.ingest import text
from feedrelay.ingest.netio import AsyncioBackend

ROOT = Path(__file__).resolve().parent.parent


def _old_text() -> types.ModuleType | None:
    try:
        source = subprocess.run(["git", "show", "14ef343^:feedrelay/text.py"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("old_text")
    exec(compile(source, "old_text.py", "exec"), module.__dict__)
    return module


def _descriptions(n: int) -> list[str]:
    out = []
    for i in range(n):
        xml = _item_xml(i % 500, i)[1]
        out.append(xml.split("<![CDATA[", 1)[1].split("]]>", 1)[0])
    return out


def bench_text(repeat: int) -> None:
    docs = _descriptions(5_000)
    old = _old_text()
    for label, fn in (("tokenizer (feedrelay.ingest.text)", text.html_to_text),
                      ("html.parser (before 14ef343)", old.html_to_text if old else None)):
        if fn is None:
            print(f"{label}: not measured (no git history here)")
            continue
        best = min(_cpu(lambda f=fn: [f(d) for d in docs]) for _ in range(repeat))
        print(f"HTML → text, {label}: {best / len(docs) * 1e6:.1f} µs per description")


def _cpu(fn: object) -> float:
    start = time.process_time()
    fn()  # type: ignore[operator]
    return time.process_time() - start


async def _serve() -> tuple[asyncio.Server, int]:
    body = b"<rss><channel><title>x</title></channel></rss>"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: %d\r\n\r\n" % len(body)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(head + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _gets(port: int, backend: type[httpcore.AsyncNetworkBackend] | None, n: int = 1_000) -> float:
    # 25 clients of 2 connections, 50 requests in flight: small pools, as feedrelay.ingest.fetch keeps them (one
    # big httpcore pool rescans its connections on every request, which would swamp what is measured here).
    clients = []
    for _ in range(25):
        transport = httpx.AsyncHTTPTransport()
        if backend is not None:
            transport._pool = httpcore.AsyncConnectionPool(max_connections=2, network_backend=backend())
        else:
            transport._pool = httpcore.AsyncConnectionPool(max_connections=2)
        clients.append(httpx.AsyncClient(transport=transport, trust_env=False))
    url = f"http://127.0.0.1:{port}/feed.xml"
    try:
        await asyncio.gather(*(c.get(url) for c in clients for _ in range(2)))  # connections opened, untimed
        start = time.process_time()
        for _ in range(n // 50):
            await asyncio.gather(*(c.get(url) for c in clients for _ in range(2)))
        return (time.process_time() - start) / n
    finally:
        for c in clients:
            await c.aclose()


async def bench_netio(repeat: int) -> None:
    server, port = await _serve()
    try:
        for label, backend in (("feedrelay.ingest.netio.AsyncioBackend", AsyncioBackend),
                               ("httpx's default (anyio)", None)):
            best = min([await _gets(port, backend) for _ in range(repeat)])
            print(f"httpx GET on loopback, {label}: {best * 1e6:.0f} µs of CPU per request (server included)")
    finally:
        server.close()
        await server.wait_closed()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    bench_text(args.repeat)
    asyncio.run(bench_netio(args.repeat))


if __name__ == "__main__":
    main()
