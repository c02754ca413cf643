"""The HTTP API (FastAPI): ask (JSON and server-sent events), search, documents, feedback, health.

No UI imports here: `ui.py` mounts the Gradio app on the application this module builds.
"""

from __future__ import annotations

import asyncio
import functools
import html
import json
import queue
import re
import threading
import unicodedata
from typing import Literal
from urllib.parse import quote as url_quote
from urllib.parse import urlsplit

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from rag.answer.pipeline import retrieve, stream_answer, understand_question
from rag.engine import Engine
from rag.errors import (
    CorpusError,
    IndexMismatchError,
    IndexMissingError,
    LLMUnavailableError,
    ModelError,
    QueryError,
    RagError,
    UnknownDocumentError,
)
from rag.ingest.documents import page_of
from rag.settings import Settings
from rag.store.bases import Access
from rag.web import mcp_tools, openai_compat
from rag.web.access import Definitions, access_for, current_access, readable_bases, reader_engine
from rag.web.auth import (
    KeepPeer,
    check_user,
    client_address,
    is_admin,
    limited_route,
    public_path,
    rate_limiter,
)
from rag.web.feedback import log_question, questions_log, votes_log

MAX_HISTORY_TURNS = 20
MAX_TURN_CHARS = 2000


def _clean(text: str, what: str) -> str:
    """Reject lone surrogates and control characters (other than line breaks and tabs) with a clear message."""
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise ValueError(f"{what}包含无法识别的字符（不成对的代理字符），请检查后重新输入")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\r\t" for ch in text):
        raise ValueError(f"{what}包含控制字符，请删除后重新输入")
    return text


class Turn(BaseModel):
    """One earlier turn of the conversation."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["user", "assistant"] = "user"
    content: str = Field(..., max_length=MAX_TURN_CHARS)

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        return _clean(value, "对话历史")


class Filters(BaseModel):
    """Restrict retrieval to documents or a region."""

    model_config = ConfigDict(extra="forbid")
    doc_id: list[str] | str | None = Field(None, description='"hunan-2022" or ["hunan-2022", "wuhai-2022"]')
    doc_ids: list[str] | None = None
    region: str | None = Field(None, description="湖南")
    in_force: bool | None = Field(None, description="true: leave out documents whose period has ended (已到期)")
    kb: str | None = Field(None, max_length=40, description="one knowledge base (GET /api/knowledge-bases)")

    def as_dict(self) -> dict | None:
        """The retrieval filters (the knowledge base is not one: it chooses the reader's view, `AskRequest.base`)."""
        out = {k: v for k, v in self.model_dump().items() if v and k != "kb"}
        return out or None


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    question: str = Field(..., description="the question, in Chinese", max_length=20000)
    history: list[Turn] = Field(default_factory=list, max_length=MAX_HISTORY_TURNS,
                                description='earlier turns: [{"role": "user", "content": "…"}]')
    filters: Filters | None = Field(None, description='{"doc_id": ["hunan-2022"]} or {"region": "湖南"}')
    knowledge_base: str | None = Field(None, max_length=40,
                                       description="answer from this knowledge base only (GET /api/knowledge-bases); "
                                                   "default: every base the user may read")

    @field_validator("question")
    @classmethod
    def _question(cls, value: str) -> str:
        return _clean(value, "问题")

    def turns(self) -> list[dict]:
        return [t.model_dump() for t in self.history]

    def base(self) -> str | None:
        """The knowledge base asked for: `filters.kb`, or `knowledge_base`."""
        return (self.filters.kb if self.filters else None) or self.knowledge_base


class FeedbackRequest(BaseModel):
    question: str = Field(..., max_length=20000)
    answer: str = Field(..., max_length=20000)
    vote: str = Field(..., pattern="^(up|down)$")
    comment: str = Field("", max_length=2000)
    answer_id: str = Field("", max_length=64, description="the Answer's answer_id: the latest vote on an answer counts")
    citations: list[dict] = Field(default_factory=list, max_length=50)

    @field_validator("question", "answer", "comment")
    @classmethod
    def _text(cls, value: str) -> str:
        return _clean(value, "反馈")


_STATUS_MESSAGES = {
    400: "请求格式有误。", 401: "需要登录。", 403: "没有权限执行此操作。", 404: "没有这个地址。", 405: "不支持这种请求方法。",
    413: "请求体过大，请缩短后再试。", 415: "不支持的内容类型。", 422: "请求内容不符合要求。", 429: "请求过于频繁，请稍后再试。",
    500: "服务内部错误，请稍后再试。", 503: "服务暂时不可用，请稍后再试。",
}


def validation_message(errors: list) -> str:
    """A Chinese sentence for pydantic's errors: our own messages where we raised them, else the field and the rule."""
    parts = []
    for error in errors[:3]:
        where = ".".join(str(x) for x in error.get("loc", ()) if x != "body")
        message = str(error.get("msg", ""))
        if message.startswith("Value error, "):
            parts.append(message.removeprefix("Value error, "))
        elif error.get("type") == "missing":
            parts.append(f"缺少字段 {where}")
        elif error.get("type") in ("too_long", "string_too_long"):
            parts.append(f"{where} 过长")
        elif "unicode" in str(error.get("type")):
            parts.append(f"{where} 包含无法识别的字符（不成对的代理字符）")
        elif error.get("type") == "extra_forbidden":
            parts.append(f"不认识的字段 {where}")
        else:
            parts.append(f"{where} 的类型或取值不对")
    return "请求内容不符合要求：" + "；".join(parts) + "。"


def error_status(exc: RagError) -> int:
    if getattr(exc, "status", None):
        return int(exc.status)  # type: ignore[attr-defined]
    if isinstance(exc, QueryError):
        return 400
    if isinstance(exc, UnknownDocumentError):
        return 404
    if isinstance(exc, AdminOnly):
        return 403
    if isinstance(exc, CorpusError):
        return 422
    if isinstance(exc, IndexMissingError | IndexMismatchError | LLMUnavailableError | ModelError):
        return 503
    return 500


def error_body(exc: RagError) -> dict:
    return {"error": type(exc).__name__, "message": exc.user_message, "detail": str(exc)}


def create_api(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """The FastAPI application with every /api route; the Gradio UI is mounted on it by ui.py."""
    engine = engine or Engine(settings)
    # max_body_size: Starlette counts the bytes a body really brings (chunked bodies have no Content-Length)
    # and answers 413 at the limit, on every route, Gradio's uploads included.
    # Uploads (document files, admins only) may be large; every other route keeps the small limit of its own.
    upload_limit = settings.max_upload_mb * 1024 * 1024 * 4 + 65536
    small = settings.max_body_bytes
    from fastapi_offline import FastAPIOffline  # /docs with Swagger UI's own files, not a CDN (offline intranets)

    app = FastAPIOffline(title="政策问答 API", version="0.1.0", root_path=settings.root_path, max_body_size=upload_limit,
                         description="Questions over Chinese IP policy documents; answers carry checked citations.")
    app.state.engine = engine
    app.state.settings = settings
    app.state.feedback = votes_log(settings)
    questions = questions_log(settings)
    limiter = rate_limiter(settings)
    # One answer at a time per core: more requests queue here instead of thrashing the CPU.
    slots = threading.BoundedSemaphore(settings.max_concurrency)
    app.state.slots = slots

    @app.middleware("http")
    async def guard(request: Request, call_next):
        path = request.url.path
        length = request.headers.get("content-length")
        uploading = path.endswith("/api/documents") or "/gradio_api/upload" in path
        limit = upload_limit if uploading else small
        if length and length.isdigit() and int(length) > limit:
            return _refusal(path, 413, {"error": "TooLarge", "message": f"请求体过大（上限 {limit} 字节）。"})
        user = "" if public_path(path, settings) else check_user(request, settings)
        if user is None:
            headers = {"WWW-Authenticate": 'Basic realm="policy-qa"'} if settings.auth_users else {}
            return _refusal(path, 401, {"error": "Unauthorized", "message": "需要登录。"}, headers)
        if "/gradio_api/upload" in path and not is_admin(user, settings, request):
            return JSONResponse({"error": "Forbidden", "message": "只有管理员可以上传文件。"}, 403)
        if limited_route(request, settings):
            if not limiter.allow(user or client_address(request, settings)):
                return _refusal(path, 429, {"error": "RateLimited", "message": "请求过于频繁，请稍后再试。"},
                                {"Retry-After": "60"})
        # the MCP tools are called without the request: they read its access from here
        token = current_access.set(access_for(request, settings, definitions, user)) if "/mcp" in path else None
        try:
            response = await call_next(request)
        finally:
            if token is not None:
                current_access.reset(token)
        response.headers["Content-Security-Policy"] = f"frame-ancestors {settings.frame_ancestors}"
        if settings.frame_ancestors.strip() == "'self'":
            response.headers["X-Frame-Options"] = "SAMEORIGIN"
        elif settings.frame_ancestors.strip() == "'none'":
            response.headers["X-Frame-Options"] = "DENY"
        return response

    # Added last, so it runs first: CORS preflights are answered before authentication.
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "DELETE"], allow_headers=["*"])
    # Behind the configured proxies only: the client address and scheme they forward (X-Forwarded-For/-Proto) become
    # the request's, by uvicorn's own middleware; the socket's peer is kept for deciding whom to trust.
    if settings.trusted_proxies.strip():
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    app.add_middleware(KeepPeer)

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError):
        return JSONResponse(error_body(exc), error_status(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        return JSONResponse({"error": "ValidationError", "message": validation_message(list(exc.errors())),
                             "detail": _safe_errors(list(exc.errors()))}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = _STATUS_MESSAGES.get(exc.status_code, "请求失败。")
        return JSONResponse({"error": "HTTPError", "message": message}, exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        return JSONResponse({"error": "InternalError", "message": _STATUS_MESSAGES[500]}, 500)

    definitions = Definitions(settings)

    def access(request: Request) -> Access:
        return access_for(request, settings, definitions)

    def reader(request: Request | None, base: str | None = None) -> Engine:
        """The engine this request answers from: the documents of the knowledge bases its user may read."""
        who = access(request) if request is not None else current_access.get()
        return reader_engine(engine, definitions, who, base)

    def answer_events(body: AskRequest, cancel: threading.Event, source: Engine) -> queue.Queue:
        """Run one answer in a worker thread that feeds a queue.

        The worker holds the concurrency slot (and, inside the pipeline, the model) only while it runs; a reader that
        goes away sets `cancel`, and the worker closes the pipeline's generator at the next event and frees both.
        Nothing is held across a `yield` of the HTTP response."""
        out: queue.Queue = queue.Queue()

        def work() -> None:
            acquired = False
            try:
                while not cancel.is_set() and not acquired:
                    acquired = slots.acquire(timeout=0.2)
                if not acquired:
                    return
                events = stream_answer(body.question, body.turns(), engine=source,
                                       filters=body.filters.as_dict() if body.filters else None)
                try:
                    for event in events:
                        if cancel.is_set():
                            break
                        out.put(("event", event))
                finally:
                    events.close()  # type: ignore[attr-defined]  # a generator
            except RagError as exc:
                out.put(("error", exc))
            except Exception as exc:  # noqa: BLE001 - reported to the client as a Chinese message, never a traceback
                out.put(("error", RagError(f"{type(exc).__name__}: {exc}", _STATUS_MESSAGES[500])))
            finally:
                if acquired:
                    slots.release()
                out.put(("done", None))

        threading.Thread(target=work, daemon=True, name="answer").start()
        return out

    def public(answer: dict) -> dict:
        if not settings.debug:
            answer.pop("prompt", None)
            answer.pop("raw_answer", None)
        return answer

    async def final_answer(body: AskRequest, source: Engine) -> dict:
        """One answer through the worker (its concurrency slot), logged for the administrator's 反馈与未答 view, as
        clients see it: /api/ask, /v1/chat/completions and the MCP tool all take this one way. `source`: the
        reader's engine (`reader`)."""
        cancel = threading.Event()
        events = answer_events(body, cancel, source)
        try:
            while True:
                kind, data = await asyncio.to_thread(events.get)
                if kind == "error":
                    raise data
                if kind == "done":
                    raise RagError("the answer ended without a result")
                if data.kind == "final":
                    answer = data.data.to_dict()
                    log_question(questions, answer)
                    return public(answer)
        finally:
            cancel.set()

    async def ask_chat(question: str, history: list[dict], request: Request | None = None,
                       base: str | None = None) -> dict:
        source = reader(request, base)
        return await final_answer(AskRequest.model_validate({"question": question, "history": history}), source)

    def search_contexts(q: str, k: int, filters: dict | None) -> list[dict]:
        source = reader(None)
        return [r.to_context() for r in retrieve(understand_question(q, None, source), source, filters, k=k)]

    def model_names(request: Request) -> list[str]:
        """The OpenAI models this user may ask: the whole readable library, and each readable knowledge base."""
        return [b["id"] for b in readable_bases(definitions, access(request))] if definitions.current().defined else []

    openai_compat.add_routes(app, ask_chat, small, model_names)
    mcp_tools.mount(app, mcp_tools.build_server(search_contexts, ask_chat,
                                                lambda: {d["doc_id"]: d for d in reader(None).index.documents},
                                                lambda doc_id: reader(None).index.text_of(doc_id)))

    @app.get("/api/knowledge-bases", summary="The knowledge bases this user may read (and whether they administer each)")
    def knowledge_bases(request: Request) -> list[dict]:
        who = access(request)
        return [b | {"administer": b["id"] in who.administers} for b in readable_bases(definitions, who)]

    @app.post("/api/ask", summary="One answer with checked citations (or a refusal)", max_body_size=small)
    async def ask(body: AskRequest, request: Request) -> JSONResponse:
        return JSONResponse(await final_answer(body, reader(request, body.base())))

    @app.post("/api/ask/stream", summary="The same answer as server-sent events: sources, sentence…, final (or error)",
              max_body_size=small,
              openapi_extra={"requestBody": {"content": {"application/json": {"schema": AskRequest.model_json_schema()}},
                                             "required": True}})
    async def ask_stream(request: Request) -> StreamingResponse:
        try:
            body = AskRequest.model_validate(json.loads(await request.body()))
        except ValidationError as exc:
            return _sse_error(422, {"error": "ValidationError", "message": validation_message(exc.errors())})
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: JSON nested thousands deep
            return _sse_error(400, {"error": "BadRequest", "message": "请求体不是有效的 JSON。"})
        try:
            source = reader(request, body.base())
        except RagError as exc:
            return _sse_error(error_status(exc), error_body(exc))
        cancel = threading.Event()
        events = answer_events(body, cancel, source)

        async def stream():
            try:
                while True:
                    kind, data = await asyncio.to_thread(events.get)
                    if kind == "done":
                        return
                    if kind == "error":
                        yield _sse("error", error_body(data))
                        continue
                    if data.kind == "sources":
                        yield _sse("sources", [c.to_context() for c in data.data])
                    elif data.kind == "final":
                        final = data.data.to_dict()
                        log_question(questions, final)
                        yield _sse("final", public(final))
                    elif data.kind == "sentence":
                        yield _sse("sentence", {"text": data.data})
            finally:
                cancel.set()  # the client left (or we are done): the worker stops at its next event

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.get("/api/search", summary="Ranked passages")
    def search(request: Request, q: str = Query(..., description="question"), k: int = Query(5, ge=1, le=50),
               doc_id: list[str] | None = Query(None), region: str | None = None,
               kb: str | None = Query(None, max_length=40, description="one knowledge base")) -> list[dict]:
        filters = {key: value for key, value in (("doc_id", doc_id), ("region", region)) if value}
        source = reader(request, kb)
        # the answer path's own first steps: the passages an answer to `q` would be drawn from
        query = understand_question(q, None, source)
        return [r.to_context() for r in retrieve(query, source, filters or None, k=k)]

    def require_admin(request: Request) -> str:
        user = check_user(request, settings)
        if not is_admin(user, settings, request):
            raise AdminOnly("not an administrator")
        return user or "local"

    def writable_base(request: Request, kb: str) -> str:
        """The knowledge base a change goes into ('' when bases are not defined): `kb`, else the first the user
        administers; AdminOnly (Chinese) when they administer none or not that one."""
        bases = definitions.current()
        if not bases.defined:
            require_admin(request)
            return ""
        who = access(request)
        base = kb or (who.administers[0] if who.administers else "")
        if not base or base not in who.administers:
            named = bases.get(base)
            raise AdminOnly(f"does not administer {base[:40]!r}",
                            f"您不是知识库“{(named.name if named else base)[:40]}”的管理员，不能在其中添加或删除文档。"
                            if base else "您不是任何知识库的管理员，不能添加或删除文档。")
        return base

    def rows(source: Engine, in_force: bool = False) -> list[dict]:
        from rag.store.library import list_documents, today_of

        bases = definitions.current()
        out = list_documents(source.index, today_of(settings))
        kb_of = {d["doc_id"]: bases.of(d) for d in source.index.documents}
        out = [r | {"kb": kb_of.get(r["doc_id"], bases.default.id)} for r in out]  # documents carry their base
        return [r for r in out if r["status"] != "已到期"] if in_force else out

    @app.get("/api/documents", summary="The documents the user may read: facts, validity (在效 / 已到期 / 期限未说明)")
    def documents(request: Request,
                  in_force: bool = Query(False, description="leave out documents whose period has ended"),
                  kb: str | None = Query(None, max_length=40, description="one knowledge base")) -> list[dict]:
        return rows(reader(request, kb), in_force)

    @app.get("/api/documents/reading", summary="Files OCR is reading now: pages read of pages to read (administrators)")
    def reading(request: Request) -> list[dict]:
        from rag.store.library import reading_now

        require_admin(request)
        return reading_now()

    @app.get("/api/documents/{doc_id}", summary="One document: facts, full text, passages with offsets (and PDF pages)")
    def document(doc_id: str, request: Request) -> dict:
        view = reader(request)
        row, text, chunks, pages = _document_parts(view, doc_id, settings)
        return row | {"facts": view.documents_by_id[doc_id].get("facts", {}),
                      "text": text, "passages": [{"chunk_id": c.chunk_id, "section": c.section, "start": c.start,
                                                  "end": c.end, "page": page_of(pages, c.start)} for c in chunks]}

    @app.post("/api/documents", summary="Add or replace documents (multipart; administrators only)")
    async def upload_documents(request: Request, files: list[UploadFile] = File(..., description=".txt .md .docx .pdf .html"),
                               title: str = Form(""), issuer: str = Form(""), region: str = Form(""),
                               date: str = Form(""), doc_number: str = Form(""),
                               kb: str = Form("", max_length=40, description="the knowledge base they go into")) -> JSONResponse:
        from starlette.concurrency import run_in_threadpool

        from rag.store.library import add_documents

        base = writable_base(request, kb)
        overrides = {"title": title, "issuer": issuer, "region": region, "date": date, "doc_number": doc_number}
        if any(overrides.values()) and len(files) > 1:
            raise QueryError("overrides with several files", "标题、发文机关等只能在上传单个文件时填写。")
        uploads = [(f.filename or "document", await f.read()) for f in files]
        report = await run_in_threadpool(add_documents, settings, engine.embedder, uploads, overrides, None, None, base,
                                         definitions.current().default.id if base else "")
        engine.refresh()
        return JSONResponse(report.to_dict(), 200 if report.added or report.replaced else 422)

    @app.delete("/api/documents/{doc_id}", summary="Remove a document and its passages (administrators only)")
    async def delete_document(doc_id: str, request: Request) -> dict:
        from starlette.concurrency import run_in_threadpool

        from rag.store.library import remove_document

        bases = definitions.current()
        if bases.defined:
            meta = engine.pinned().documents_by_id.get(doc_id)
            if meta is None or bases.of(meta) not in access(request).reads:
                raise UnknownDocumentError(f"unknown document {doc_id[:80]!r}", f"没有编号为“{doc_id[:80]}”的文档。")
            writable_base(request, bases.of(meta))
        else:
            require_admin(request)
        report = await run_in_threadpool(remove_document, settings, engine.embedder, doc_id)
        engine.refresh()
        return report.to_dict()

    @app.get("/doc/{doc_id}", response_class=HTMLResponse, summary="The original with the cited span highlighted")
    def document_page(doc_id: str, request: Request, start: int | None = Query(None, ge=0),
                      end: int | None = Query(None, ge=0)) -> str:
        from rag.web.docview import render_document

        view = reader(request)
        row, text, chunks, pages = _document_parts(view, doc_id, settings)
        rows = view.documents_by_id[doc_id].get("ocr_rows") or []
        page_url = f"{settings.root_path}/doc/{url_quote(doc_id)}/page/{{page}}.jpg"
        return render_document(row, text, chunks, pages, start, end, back_url=chat_path(settings), ocr_rows=rows,
                               page_url=page_url)

    @app.get("/doc/{doc_id}/page/{page}.jpg", summary="One page of a PDF original as an image (a scan's page as read)")
    def page_image(doc_id: str, page: int, request: Request) -> Response:
        from rag.web.docview import page_jpeg  # a sync route: FastAPI renders it in its thread pool

        meta = reader(request).documents_by_id.get(doc_id)
        if meta is None:
            raise UnknownDocumentError(f"unknown document {doc_id[:80]!r}", f"没有编号为“{doc_id[:80]}”的文档。")
        turns = {int(p): int(d) for p, d in meta.get("ocr_turns") or []}
        from rag.store.shared import original, shared

        stored = (lambda: original(settings, doc_id)) if shared(settings) else None  # another machine's upload
        jpeg = page_jpeg(settings.data_dir / meta.get("file", ""), meta.get("fingerprint", ""), page, turns.get(page, 0),
                         stored)
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/feedback", summary="What staff asked, what was refused and what got 👎 (administrators)")
    def review(request: Request, only: Literal["", "refused", "down"] = Query("", description="refused | down"),
               since: str = Query("", max_length=40, description="from this date, e.g. 2026-12-01")) -> list[dict]:
        from rag.web.feedback import review_rows

        require_admin(request)
        return review_rows(questions.read(), app.state.feedback.read(), since=since.strip(), only=only)

    @app.post("/api/feedback", summary="Record a 👍/👎 vote with an optional comment", max_body_size=small)
    def feedback(body: FeedbackRequest, request: Request) -> dict:
        try:
            app.state.feedback.append(body.model_dump() | {"user": check_user(request, settings) or ""})
        except OSError as exc:
            raise RagError(f"feedback not written: {exc}", "反馈暂时无法保存，请稍后再试。") from exc
        return {"ok": True}

    @app.get("/healthz", summary="Index loaded, model ready")
    def healthz() -> JSONResponse:
        status: dict = {"status": "ok", "backend": settings.llm_backend}
        try:
            status["index"] = {"chunks": len(engine.index), "documents": len(engine.index.documents),
                               "embedder": engine.index.config.get("embedder")}
        except RagError as exc:
            status |= {"status": "error", "index": error_body(exc)}
        llm = engine._models["llm"]
        loaded = llm is not None and getattr(llm, "_llama", "n/a") is not None
        status["model_ready"] = settings.llm_backend == "extractive" or loaded
        if llm is not None and hasattr(llm, "state"):
            status["llm"] = llm.state()  # "open": questions are answered extractively until it retries
            if status["llm"]["state"] == "open":
                status["status"] = "degraded"
        return JSONResponse(status, 503 if status["status"] == "error" else 200)

    @app.get("/embed-demo", response_class=HTMLResponse, summary="An intranet page with the chat embedded three ways")
    def embed_demo(request: Request) -> str:
        return render_embed_demo(str(request.base_url), settings)

    @app.get("/embed/bubble.js", summary="A floating chat bubble for any intranet page: <script src=…/embed/bubble.js defer>")
    def bubble_js() -> Response:
        return Response(bubble_script(settings), media_type="application/javascript; charset=utf-8",
                        headers={"Cache-Control": "public, max-age=600", "X-Content-Type-Options": "nosniff"})

    return app


class AdminOnly(RagError):
    user_message = "只有管理员可以添加或删除文档。"


def _document_parts(engine: Engine, doc_id: str, settings: Settings):
    """(row, full text, passages, PDF page offsets) of one document; UnknownDocumentError when there is none."""
    from rag.store.library import document_row, today_of

    meta = engine.documents_by_id.get(doc_id)
    if meta is None:
        raise UnknownDocumentError(f"unknown document {doc_id[:80]!r}", f"没有编号为“{doc_id[:80]}”的文档。")
    chunks = engine.index.chunks_of(doc_id)
    return document_row(meta, len(chunks), today_of(settings)), engine.index.text_of(doc_id), chunks, list(meta.get("pages", []))


def _sse(kind: str, data) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _sse_error(status: int, body: dict, headers: dict | None = None) -> StreamingResponse:
    return StreamingResponse(iter([_sse("error", body)]), status_code=status, media_type="text/event-stream",
                             headers=headers)


def _refusal(path: str, status: int, body: dict, headers: dict | None = None):
    """A request turned away before its route: an SSE `error` event on the stream route (what its clients read),
    JSON elsewhere."""
    if path.endswith("/api/ask/stream"):
        return _sse_error(status, body, headers)
    if "/v1/" in path:  # OpenAI clients read OpenAI's error shape
        kind = {401: "authentication_error", 429: "rate_limit_error"}.get(status, "invalid_request_error")
        return openai_compat.error_response(status, body["message"], kind, body["error"], headers)
    return JSONResponse(body, status, headers=headers)


def _safe_errors(errors: list) -> list[dict]:
    """Pydantic's errors without the input values (they may be huge or unprintable)."""
    return [{"loc": [str(x) for x in e.get("loc", ())], "type": e.get("type", "")} for e in errors[:10]]


def chat_path(settings: Settings) -> str:
    """The chat's path as the browser sees it (the public prefix, then the UI's mount point), ending in "/"."""
    path = settings.root_path.rstrip("/") + settings.ui_path.rstrip("/") + "/"
    return path if path.startswith("/") else "/" + path


def js_string(value: str) -> str:
    """A JavaScript string literal: JSON, ASCII only (so U+2028/U+2029 are escaped), with no "<", ">" or "&" left that
    could close a <script> element or start markup."""
    return (json.dumps(value, ensure_ascii=True).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026"))


BUBBLE_PLACEHOLDER = '"__POLICY_QA_UI_PATH__"'


@functools.cache
def _bubble_source() -> str:
    """rag/assets/bubble.js, shipped in the wheel as package data."""
    from importlib.resources import files

    source = files("rag").joinpath("assets", "bubble.js").read_text(encoding="utf-8")
    if source.count(BUBBLE_PLACEHOLDER) != 1:
        raise RagError("rag/assets/bubble.js lacks its placeholder", _STATUS_MESSAGES[500])
    return source


def bubble_script(settings: Settings) -> str:
    """The bubble script with the chat's path filled in. The server's origin is not written here: the script takes it
    from its own address (document.currentScript.src), so nothing of the request (its Host header) is reflected."""
    return _bubble_source().replace(BUBBLE_PLACEHOLDER, js_string(chat_path(settings)))


_SANE_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")
ORIGIN_PLACEHOLDER = "https://问答服务地址"


def _origin(base_url: str) -> str:
    """scheme://host[:port] of the request, or a placeholder when its Host header is anything but a host name or address."""
    try:
        parts = urlsplit(base_url)
    except ValueError:
        return ORIGIN_PLACEHOLDER
    if parts.scheme in ("http", "https") and _SANE_HOST.fullmatch(parts.netloc):
        return f"{parts.scheme}://{parts.netloc}"
    return ORIGIN_PLACEHOLDER


def render_embed_demo(base_url: str, settings: Settings) -> str:
    """The demo page. The live iframe and bubble use paths on this server; the snippets to copy show the origin the
    request came in on (its Host header) only when that is a plain host name or address, and always escaped."""
    root = settings.root_path.rstrip("/")
    origin = _origin(base_url)
    ui = chat_path(settings)
    values = {
        "UI_PATH": html.escape(ui, quote=True),
        "ROOT": html.escape(root, quote=True),
        "UI": html.escape(origin + ui, quote=True),
        "BASE": html.escape(origin + root, quote=True),
        "FRAME_ANCESTORS": html.escape(settings.frame_ancestors),
        "CORS": html.escape(settings.cors_origins) if settings.cors_origins.strip() else "（未设置）",
    }
    return re.sub(r"\{(" + "|".join(values) + r")\}", lambda m: values[m.group(1)], EMBED_DEMO)


EMBED_DEMO = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>内网门户 · 政策问答嵌入示例</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>body{font-family:"WenQuanYi Zen Hei",sans-serif;margin:24px;background:#f4f6f9;color:#1d2939}
header{background:#1f4e8c;color:#fff;padding:12px 20px;border-radius:6px}
iframe{width:100%;height:780px;border:1px solid #ccd;border-radius:6px;background:#fff}
pre{background:#fff;border:1px solid #d0d5dd;border-radius:6px;padding:10px 14px;overflow-x:auto}
table{border-collapse:collapse;background:#fff;margin:8px 0 18px}
th,td{border:1px solid #d0d5dd;padding:6px 10px;text-align:left;vertical-align:top}
code{background:#eef2f7;padding:0 4px;border-radius:3px}</style></head>
<body><header><h1>某单位内网门户</h1><p>下方是嵌入的“政策问答”助手（iframe）；右下角的“政策问答”按钮是悬浮气泡。</p></header>
<main><h2>政策问答</h2>
<iframe id="policy-qa" src="{UI_PATH}" title="政策问答" allow="clipboard-write"></iframe>

<h2>三种嵌入方式与所需设置</h2>
<table>
<tr><th>方式</th><th>门户页面加入的代码</th><th>问答服务需要的设置</th></tr>
<tr><td>一、iframe</td><td>见下方代码 1</td><td><code>RAG_FRAME_ANCESTORS</code> 须包含门户页面的来源，例如
<code>'self' https://portal.example.cn</code>（默认 <code>'self'</code> 只允许本服务自己的页面嵌入）。</td></tr>
<tr><td>二、悬浮气泡</td><td>见下方代码 2</td><td>气泡面板里是同一个 iframe，所以同样需要 <code>RAG_FRAME_ANCESTORS</code> 允许门户来源；
脚本本身用普通 &lt;script&gt; 加载，不需要登录，也不需要 <code>RAG_CORS_ORIGINS</code>。</td></tr>
<tr><td>三、Web Component</td><td>见下方代码 3</td><td>脚本和接口由门户页面跨源请求，需要 <code>RAG_CORS_ORIGINS</code> 列出门户来源，
例如 <code>https://portal.example.cn</code>（不经过 iframe，与 <code>RAG_FRAME_ANCESTORS</code> 无关）。</td></tr>
</table>
<p>本服务当前设置：<code>RAG_FRAME_ANCESTORS</code> = <code>{FRAME_ANCESTORS}</code>；<code>RAG_CORS_ORIGINS</code> = <code>{CORS}</code>。
若门户页面自己设置了内容安全策略（CSP），其 <code>script-src</code> / <code>frame-src</code> 也须允许本服务的地址。
启用登录（<code>RAG_AUTH_USERS</code> 或单点登录）时，iframe 与气泡中的问答页面照常要求登录。</p>

<h3>代码 1：iframe</h3>
<pre>&lt;iframe src="{UI}" title="政策问答" allow="clipboard-write"
        style="width:100%;height:780px;border:0"&gt;&lt;/iframe&gt;</pre>
<h3>代码 2：悬浮气泡（右下角按钮，点击打开问答面板；脚本由本服务提供，不依赖公网 CDN）</h3>
<pre>&lt;script src="{BASE}/embed/bubble.js" defer&gt;&lt;/script&gt;</pre>
<h3>代码 3：Web Component（脚本由本服务提供，不依赖公网 CDN）</h3>
<pre>&lt;script type="module" src="{BASE}/gradio-static/gradio.js"&gt;&lt;/script&gt;
&lt;gradio-app src="{UI}"&gt;&lt;/gradio-app&gt;</pre>
</main>
<script src="{ROOT}/embed/bubble.js" defer></script>
</body></html>"""
