"""An OpenAI-compatible chat API over the policy library: `POST /v1/chat/completions` (streaming or not) and
`GET /v1/models`, so any OpenAI client (the `openai` package, Open WebUI, LobeChat, a company chat front end) asks the
library without learning our API.

- The last user message is the question; earlier user/assistant messages are the conversation (follow-ups resolve
  against them); system messages are not obeyed (the library's own prompt and checks decide what is said).
- The answer is the same checked answer as /api/ask: its text carries [n] markers, and `choices[0].message.reference`
  holds the citations (marker, document, section, quoted sentence, link to the original), `refused` and `answer_id`
  (as RAGFlow's `reference`).
- Streaming sends the role first, then the checked answer sentence by sentence, then a last chunk with
  `finish_reason: "stop"` and the reference: no unchecked draft is ever sent.
- Errors have OpenAI's shape `{"error": {"message", "type", "code", "param"}}` with the message in Chinese; the same
  login (a Bearer key `user:password` of RAG_AUTH_USERS, or Basic, or the SSO proxy's header), rate limit and
  concurrency slots as every other route.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_MODEL = "default"  # the contract's name for "every base the user reads" (../shared/INTERFACES.md)
MODEL_ID = "policy-qa"  # every knowledge base the user may read; each readable base is a model of its own too
_SENTENCE = re.compile(r"[^。！？!?\n]+(?:[。！？!?]+(?:\[\d+\])*|\n|$)")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[dict] | None = ""


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # temperature, max_tokens, user…: accepted, not used
    model: str = MODEL_ID
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=60)
    stream: bool = False
    n: int = 1
    tools: list | None = None
    functions: list | None = None
    tool_choice: Any = None


class OpenAIError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str = "",
                 param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "code": self.code or None, "param": self.param}}


def error_response(status: int, message: str, kind: str = "invalid_request_error", code: str = "",
                   headers: dict | None = None) -> JSONResponse:
    return JSONResponse(OpenAIError(status, message, kind, code).body(), status, headers=headers)


def _text(content: str | list[dict] | None, where: str) -> str:
    """A message's text: a string, or text parts; an image or audio part is refused (the library reads text)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part.get("type") != "text":
            raise OpenAIError(400, f"{where}只能是文字，不支持 {part.get('type', '未知')} 类型的内容（图片、音频等）。",
                              code="unsupported_content", param="messages")
        parts.append(str(part.get("text", "")))
    return "".join(parts)


def question_and_history(request: ChatRequest) -> tuple[str, list[dict]]:
    """The last user message, and the user/assistant turns before it."""
    if request.n != 1:
        raise OpenAIError(400, f"只支持 n=1（每次一个回答），收到 n={request.n}。", code="unsupported_n", param="n")
    if request.tools or request.functions or request.tool_choice not in (None, "none"):
        raise OpenAIError(400, "不支持工具调用（tools / functions）：本接口只回答政策问题。", code="unsupported_tools",
                          param="tools")
    turns = [(m.role, _text(m.content, "消息")) for m in request.messages]
    if turns[-1][0] != "user" or not turns[-1][1].strip():
        raise OpenAIError(400, "最后一条消息必须是用户的问题（role 为 user，内容不为空）。", param="messages")
    history = [{"role": role, "content": text} for role, text in turns[:-1] if role in ("user", "assistant") and text]
    return turns[-1][1], history


def _invalid(exc: ValidationError) -> str:
    """The question or a turn the API's own rules refuse (empty, control characters, too many turns), in Chinese."""
    message = str(exc.errors()[0].get("msg", "")).removeprefix("Value error, ")
    return message if re.search(r"[\u4e00-\u9fff]", message) else f"问题或对话记录不符合要求（{message}）。"


def reference(answer: dict) -> dict:
    return {"refused": answer["refused"], "answer_id": answer["answer_id"],
            "citations": [{key: c[key] for key in ("marker", "doc_id", "title", "section", "quote", "page", "url")}
                          for c in answer["citations"]]}


def _chunk(ident: str, created: int, model: str, delta: dict, finish: str | None = None, **extra) -> str:
    body = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def sentences(text: str) -> list[str]:
    """The answer in sentence pieces that join back to exactly the text."""
    pieces = [m.group(0) for m in _SENTENCE.finditer(text) if m.group(0)]
    return pieces if "".join(pieces) == text else [text]


def add_routes(app: FastAPI, ask: Callable[..., Awaitable[dict]], max_body: int,
               bases: Callable[[Request], list[str]] = lambda request: []) -> None:
    """The two routes on `app`. `ask(question, history, request, base)` is the API's own answer (its worker and
    concurrency slot, logged, from the knowledge bases the request's user reads), as clients see it; `bases(request)`
    the ids of the knowledge bases that user reads (each a model)."""

    @app.get("/v1/models", summary="OpenAI-compatible: the models (the whole library, and each readable knowledge base)")
    def models(request: Request) -> dict:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "policy-qa"}
                                           for name in (MODEL_ID, *bases(request))]}

    @app.post("/v1/chat/completions", summary="OpenAI-compatible chat: the checked answer, citations in message.reference",
              max_body_size=max_body,
              openapi_extra={"requestBody": {"content": {"application/json": {"schema": ChatRequest.model_json_schema()}},
                                             "required": True}})
    async def chat_completions(request: Request):
        from rag.errors import QueryError, RagError

        try:
            body = ChatRequest.model_validate(json.loads(await request.body()))
            known = (MODEL_ID, *bases(request))
            if body.model not in (*known, DEFAULT_MODEL, ""):
                raise OpenAIError(404, f"没有名为 {body.model[:40]!r} 的模型；可用的模型：{'、'.join(known)}（GET /v1/models）。",
                                  code="model_not_found", param="model")
            base = None if body.model in (MODEL_ID, DEFAULT_MODEL, "") else body.model
            question, history = question_and_history(body)
        except OpenAIError as exc:
            return JSONResponse(exc.body(), exc.status)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first.get("loc", ()))
            return error_response(422, f"请求格式不对：{where} {first.get('msg', '')}".strip())
        except (ValueError, UnicodeDecodeError, RecursionError):
            return error_response(400, "请求体不是有效的 JSON。")
        ident, created, model = f"chatcmpl-{int(time.time() * 1000):x}", int(time.time()), body.model or MODEL_ID
        if not body.stream:
            try:
                answer = await ask(question, history, request, base)
            except ValidationError as exc:
                return error_response(400, _invalid(exc), code="invalid_question")
            except QueryError as exc:
                return error_response(400, exc.user_message, code="invalid_question")
            except RagError as exc:
                if getattr(exc, "status", 0) == 403:  # no knowledge base this user may read
                    return error_response(403, exc.user_message, "permission_error", "knowledge_base_forbidden")
                return error_response(503, exc.user_message, "server_error", "unavailable")
            message = {"role": "assistant", "content": answer["answer"], "reference": reference(answer)}
            return {"id": ident, "object": "chat.completion", "created": created, "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}

        async def stream():
            yield _chunk(ident, created, model, {"role": "assistant", "content": ""})
            try:
                answer = await ask(question, history, request, base)
            except ValidationError as exc:
                yield f"data: {json.dumps({'error': {'message': _invalid(exc), 'type': 'invalid_request_error'}}, ensure_ascii=False)}\n\n"
                yield "data: [DONE]\n\n"
                return
            except RagError as exc:
                kind = "invalid_request_error" if isinstance(exc, QueryError) else "server_error"
                yield f"data: {json.dumps({'error': {'message': exc.user_message, 'type': kind}}, ensure_ascii=False)}\n\n"
                yield "data: [DONE]\n\n"
                return
            for piece in sentences(answer["answer"]):
                yield _chunk(ident, created, model, {"content": piece})
            yield _chunk(ident, created, model, {}, "stop", reference=reference(answer))
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
