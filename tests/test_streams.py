"""Streams left mid-answer free everything they held; SIGTERM stops a server with streams in flight."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from rag.engine import Engine
from rag.evaluation.loadcheck import free_port
from rag.models.llms import FakeLLM
from rag.web.api import create_api

SLOW = "全市有效注册商标逐年递增，总数突破4500件[1]。" * 8  # ~50 pieces at 0.2 s: ten seconds of writing


def _serve(app):
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return server, thread, port


def _abort_stream(port: int, question: str) -> None:
    """Open a stream, read until the sources event (the answer is under way), and hang up."""
    body = json.dumps({"question": question}, ensure_ascii=False).encode()
    # generous: with the real model each aborted answer still reads its prompt before it sees the hang-up
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"POST /api/ask/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        received = b""
        while b"event: sources" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk


@pytest.mark.parametrize("backend", ["extractive", "fake", pytest.param("local", marks=pytest.mark.slow)])
def test_twenty_aborted_streams_leave_the_server_answering(real_engine, tmp_path, backend):
    if backend == "local":
        pytest.importorskip("llama_cpp")
    settings = real_engine.settings.replace(llm_backend=backend, max_concurrency=2, rate_limit_per_minute=0,
                                            feedback_path=tmp_path / "f.jsonl")
    llm = FakeLLM(replies=[SLOW] * 40, delay_s=0.2) if backend == "fake" else None
    engine = Engine(settings, embedder=real_engine.embedder, llm=llm, index=real_engine.index)
    if backend == "local":
        engine.llm.load()  # loading is not what this test measures
    server, thread, port = _serve(create_api(settings, engine))
    try:
        for _ in range(20):
            _abort_stream(port, "乌海有效注册商标总数要突破多少件？")  # answered by the (slow) model
        started = time.perf_counter()
        reply = httpx.post(f"http://127.0.0.1:{port}/api/ask", json={"question": "乌海规划的文号是多少"}, timeout=30)
        elapsed = time.perf_counter() - started
        assert reply.status_code == 200 and "乌市监知字〔2022〕169号" in reply.json()["answer"]
        assert elapsed < 5, f"a normal question waited {elapsed:.1f} s behind aborted streams"
        # and every slot is free again once the workers have noticed
        deadline = time.time() + 5
        while time.time() < deadline and engine_slots_in_use(server) > 0:
            time.sleep(0.1)
        assert engine_slots_in_use(server) == 0
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def engine_slots_in_use(server) -> int:
    slots = server.config.app.state.slots
    return slots._initial_value - slots._value  # BoundedSemaphore bookkeeping


def test_sigterm_stops_a_server_with_streams_in_flight(real_engine, tmp_path):
    port = free_port()
    env = os.environ | {"RAG_INDEX_DIR": str(real_engine.settings.index_dir), "RAG_DATA_DIR": str(real_engine.settings.data_dir),
                        "RAG_EMBEDDER": "fake", "RAG_LLM_BACKEND": "fake", "RAG_LLM_FAKE_DELAY_S": "0.5",
                        "RAG_PORT": str(port), "RAG_FEEDBACK_PATH": str(tmp_path / "f.jsonl"), "RAG_RATE_LIMIT_PER_MINUTE": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        clients = []
        for _ in range(3):  # streams that stay open: the slow fake model is still writing
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            body = json.dumps({"question": "乌海有效注册商标总数要突破多少件？"}).encode()
            sock.sendall(b"POST /api/ask/stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            assert b"HTTP/1.1 200" in sock.recv(4096)
            clients.append(sock)
        started = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        assert time.perf_counter() - started < 10
        for sock in clients:
            sock.close()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_stream_route_turns_bad_requests_away_as_sse_error_events(real_engine):
    """Issue 19 F12: a body nested thousands deep and a body over the limit get an `error` event, not a 500 or JSON."""
    from fastapi.testclient import TestClient

    client = TestClient(create_api(real_engine.settings, real_engine))
    nested = '{"question": ' + "[" * 5000 + "]" * 5000 + "}"
    for body, status in ((nested, 400), ("x" * (real_engine.settings.max_body_bytes + 10), 413)):
        response = client.post("/api/ask/stream", content=body, headers={"content-type": "application/json"})
        assert response.status_code == status
        assert response.headers["content-type"].startswith("text/event-stream")
        event, data = response.text.strip().split("\n", 1)
        assert event == "event: error" and "请求" in json.loads(data.removeprefix("data: "))["message"]
    nested_json = client.post("/api/ask", content=nested, headers={"content-type": "application/json"})
    assert nested_json.status_code == 400
