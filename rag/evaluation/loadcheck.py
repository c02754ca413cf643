"""A bounded load check on loopback: N concurrent /api/ask questions against a server started in-process."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from rag.engine import Engine
from rag.evaluation.runner import percentile
from rag.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_load_check(settings: Settings, questions: list[str], concurrency: int = 50, engine: Engine | None = None) -> dict:
    """Start the API on 127.0.0.1, fire `concurrency` questions at once, stop; return latency and error figures."""
    import httpx
    import uvicorn

    from rag.web.api import create_api

    port = free_port()
    settings = settings.replace(host="127.0.0.1", port=port, rate_limit_per_minute=max(settings.rate_limit_per_minute,
                                                                                         concurrency * 2))
    engine = engine or Engine(settings)
    server = uvicorn.Server(uvicorn.Config(create_api(settings, engine), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}/api/ask"

    def one(i: int) -> tuple[int, float, bool]:
        started = time.perf_counter()
        try:
            r = httpx.post(url, json={"question": questions[i % len(questions)]}, timeout=120)
            ok = r.status_code == 200 and "answer" in r.json()
            return r.status_code, (time.perf_counter() - started) * 1000, ok
        except httpx.HTTPError:
            return 0, (time.perf_counter() - started) * 1000, False

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, range(concurrency)))
    wall = time.perf_counter() - started
    server.should_exit = True
    thread.join(timeout=10)
    latencies = [ms for _, ms, _ in results]
    return {
        "requests": concurrency,
        "ok": sum(1 for _, _, ok in results if ok),
        "errors": sum(1 for _, _, ok in results if not ok),
        "status_codes": sorted({code for code, _, _ in results}),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "wall_s": round(wall, 2),
    }
