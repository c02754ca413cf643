"""The HTTP API (FastAPI): ask (JSON and server-sent events), search, documents, feedback, health.

No UI imports here: `ui.py` mounts the Gradio app on the application this module builds.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from rag.engine import Engine
from rag.errors import (
    IndexMismatchError,
    IndexMissingError,
    LLMUnavailableError,
    ModelError,
    QueryError,
    RagError,
)
from rag.pipeline import stream_answer
from rag.settings import Settings


class AskRequest(BaseModel):
    question: str = Field(..., description="the question, in Chinese")
    history: list[dict] = Field(default_factory=list, description='earlier turns: [{"role": "user", "content": "…"}]')
    filters: dict | None = Field(None, description='{"doc_id": ["hunan-2022"]} or {"region": "湖南"}')


class FeedbackRequest(BaseModel):
    question: str
    answer: str
    vote: str = Field(..., pattern="^(up|down)$")
    comment: str = ""
    citations: list[dict] = Field(default_factory=list)


def error_status(exc: RagError) -> int:
    if isinstance(exc, QueryError):
        return 400
    if isinstance(exc, IndexMissingError | IndexMismatchError | LLMUnavailableError | ModelError):
        return 503
    return 500


def error_body(exc: RagError) -> dict:
    return {"error": type(exc).__name__, "message": exc.user_message, "detail": str(exc)}


class FeedbackLog:
    """Append-only JSONL; one lock per file (shared by the API and the UI) so votes never interleave or get lost."""

    _locks: dict[Path, threading.Lock] = {}
    _locks_guard = threading.Lock()

    def __init__(self, path: Path):
        self.path = path
        with FeedbackLog._locks_guard:
            self._lock = FeedbackLog._locks.setdefault(Path(path).resolve(), threading.Lock())

    def append(self, record: dict) -> None:
        line = json.dumps(record | {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()


class RateLimiter:
    """Per-client sliding window of one minute."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._hits: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        if self.per_minute <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            hits = self._hits[client]
            while hits and now - hits[0] > 60:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return False
            hits.append(now)
            return True


def _parse_users(spec: str) -> dict[str, str]:
    users = {}
    for item in filter(None, (x.strip() for x in spec.split(","))):
        name, _, password = item.partition(":")
        users[name] = password
    return users


def check_user(request: Request, settings: Settings) -> str | None:
    """The authenticated user, '' when no authentication is configured, None when the request is refused."""
    if settings.trusted_user_header:
        return request.headers.get(settings.trusted_user_header) or None
    users = _parse_users(settings.auth_users)
    if not users:
        return ""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if name in users and secrets.compare_digest(users[name], password):
            return name
    return None


def create_api(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """The FastAPI application with every /api route; the Gradio UI is mounted on it by ui.py."""
    engine = engine or Engine(settings)
    app = FastAPI(title="政策问答 API", version="0.1.0", root_path=settings.root_path,
                  description="Questions over Chinese IP policy documents; answers carry checked citations.")
    app.state.engine = engine
    app.state.settings = settings
    app.state.feedback = FeedbackLog(settings.feedback_path)
    limiter = RateLimiter(settings.rate_limit_per_minute)
    # One answer at a time per core: more requests queue here instead of thrashing the CPU.
    slots = threading.BoundedSemaphore(settings.max_concurrency)
    app.state.slots = slots

    @app.middleware("http")
    async def guard(request: Request, call_next):
        path = request.url.path
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_body_bytes:
            return JSONResponse({"error": "TooLarge", "message": f"请求体过大（上限 {settings.max_body_bytes} 字节）。"}, 413)
        if path != "/healthz" and check_user(request, settings) is None:
            headers = {} if settings.trusted_user_header else {"WWW-Authenticate": 'Basic realm="policy-qa"'}
            return JSONResponse({"error": "Unauthorized", "message": "需要登录。"}, 401, headers=headers)
        if path.startswith("/api/") and request.method == "POST":
            client = request.headers.get(settings.trusted_user_header or "x-forwarded-for") or (
                request.client.host if request.client else "?")
            if not limiter.allow(client):
                return JSONResponse({"error": "RateLimited", "message": "请求过于频繁，请稍后再试。"}, 429,
                                    headers={"Retry-After": "60"})
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = f"frame-ancestors {settings.frame_ancestors}"
        if settings.frame_ancestors.strip() == "'self'":
            response.headers["X-Frame-Options"] = "SAMEORIGIN"
        elif settings.frame_ancestors.strip() == "'none'":
            response.headers["X-Frame-Options"] = "DENY"
        return response

    # Added last, so it runs first: CORS preflights are answered before authentication.
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"], allow_headers=["*"])

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError):
        return JSONResponse(error_body(exc), error_status(exc))

    def run_answer(body: AskRequest) -> dict:
        with slots:
            final = None
            for event in stream_answer(body.question, body.history, engine=engine, filters=body.filters):
                if event.kind == "final":
                    final = event.data
            return final.to_dict()

    @app.post("/api/ask", summary="One answer with checked citations (or a refusal)")
    def ask(body: AskRequest) -> JSONResponse:
        return JSONResponse(run_answer(body))

    @app.post("/api/ask/stream", summary="The same answer as server-sent events: sources, token…, final")
    def ask_stream(body: AskRequest) -> StreamingResponse:
        def events() -> Iterator[str]:
            with slots:
                try:
                    for event in stream_answer(body.question, body.history, engine=engine, filters=body.filters):
                        if event.kind == "sources":
                            data = [c.to_context() for c in event.data]
                        elif event.kind == "final":
                            data = event.data.to_dict()
                        else:
                            data = {"text": event.data}
                        yield f"event: {event.kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
                except RagError as exc:
                    yield f"event: error\ndata: {json.dumps(error_body(exc), ensure_ascii=False)}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/api/search", summary="Ranked passages")
    def search(q: str = Query(..., description="question"), k: int = Query(5, ge=1, le=50),
               doc_id: list[str] | None = Query(None), region: str | None = None) -> list[dict]:
        filters = {key: value for key, value in (("doc_id", doc_id), ("region", region)) if value}
        return [r.to_context() for r in engine.retriever.search(q, k=k, filters=filters or None)]

    @app.get("/api/documents", summary="The documents of the index with their metadata")
    def documents() -> list[dict]:
        return engine.index.documents

    @app.post("/api/feedback", summary="Record a 👍/👎 vote with an optional comment")
    def feedback(body: FeedbackRequest, request: Request) -> dict:
        app.state.feedback.append(body.model_dump() | {"user": check_user(request, settings) or ""})
        return {"ok": True}

    @app.get("/healthz", summary="Index loaded, model ready")
    def healthz() -> JSONResponse:
        status: dict = {"status": "ok", "backend": settings.llm_backend}
        try:
            status["index"] = {"chunks": len(engine.index), "documents": len(engine.index.documents),
                               "embedder": engine.index.config.get("embedder")}
        except RagError as exc:
            status |= {"status": "error", "index": error_body(exc)}
        llm = engine._llm
        loaded = llm is not None and getattr(llm, "_llama", "n/a") is not None
        status["model_ready"] = settings.llm_backend == "extractive" or loaded
        return JSONResponse(status, 200 if status["status"] == "ok" else 503)

    @app.get("/embed-demo", response_class=HTMLResponse, summary="An intranet page with the chat embedded")
    def embed_demo(request: Request) -> str:
        base = str(request.base_url).rstrip("/") + settings.root_path
        ui = base + settings.ui_path.rstrip("/") + "/"
        return EMBED_DEMO.replace("{UI}", ui).replace("{BASE}", base)

    return app


EMBED_DEMO = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>内网门户 · 政策问答嵌入示例</title>
<style>body{font-family:"WenQuanYi Zen Hei",sans-serif;margin:24px;background:#f4f6f9}
header{background:#1f4e8c;color:#fff;padding:12px 20px;border-radius:6px}
iframe{width:100%;height:780px;border:1px solid #ccd;border-radius:6px;background:#fff}</style></head>
<body><header><h1>某单位内网门户</h1><p>下方是嵌入的“政策问答”助手（iframe）。</p></header>
<main><h2>政策问答</h2>
<iframe id="policy-qa" src="{UI}" title="政策问答" allow="clipboard-write"></iframe>
<h3>另一种嵌入方式：Web Component（脚本由本服务提供，不依赖公网 CDN）</h3>
<pre>&lt;script type="module" src="{BASE}/gradio-static/gradio.js"&gt;&lt;/script&gt;
&lt;gradio-app src="{UI}"&gt;&lt;/gradio-app&gt;</pre>
</main></body></html>"""
