"""The policy library as an MCP server (the official `mcp` SDK, streamable HTTP at /mcp), so an assistant in an office
suite or an IDE can search and cite the policies: three read-only tools —

  search_policies(query, k, doc_id, region)  the passages an answer would be drawn from (the answer path's own
                                             understand + retrieve steps)
  ask_policies(question, history)            the checked answer with its citations, or an honest refusal
  get_document(doc_id, start, end)           a document's facts and a span of its text (what a citation points at)

Served inside `rag serve`, behind the same login (Basic, a Bearer key user:password, or the SSO proxy's header),
rate limit and concurrency slots as every other route. Bad arguments (an unknown document, a bad span) come back as
the protocol's tool errors with a Chinese message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio

MAX_SPAN = 20_000  # characters of a document one get_document call returns


def build_server(search: Callable[..., list[dict]], ask: Callable[[str, list[dict]], Awaitable[dict]],
                 documents: Callable[[], dict[str, dict]], text_of: Callable[[str], str]):
    """The MCP server with its three tools. `search(query, k, filters)` and `text_of(doc_id)` are blocking calls
    (run in a worker thread); `ask(question, history)` is the API's own awaitable answer."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer("policy-qa", log_level="WARNING", instructions="检索和引用已收录的政策文件：先用 search_policies 找段落，"
                       "ask_policies 得到带出处的回答，get_document 查看原文。")

    @server.tool()
    async def search_policies(query: str, k: int = 5, doc_id: list[str] | None = None,
                              region: str | None = None) -> list[dict[str, Any]]:
        """检索政策文件段落：与回答所用的检索相同。query: 问题或关键词；k: 段落数（1–50）；doc_id / region: 只在这些文件或地区中检索。"""
        if not 1 <= k <= 50:
            raise ToolError(f"k 须在 1 到 50 之间，收到 {k}。")
        filters = {key: value for key, value in (("doc_id", doc_id), ("region", region)) if value}
        return await anyio.to_thread.run_sync(lambda: search(query, k, filters or None))

    @server.tool()
    async def ask_policies(question: str, history: list[dict[str, str]] | None = None) -> dict[str, Any]:
        """就政策文件提问：返回核对过的回答（[n] 标注出处）和出处列表；文件没有写明时如实拒答。history: 之前的对话
        [{"role": "user" | "assistant", "content": "…"}]。"""
        answer = await ask(question, list(history or []))
        return {"answer": answer["answer"], "refused": answer["refused"], "answer_id": answer["answer_id"],
                "citations": [{key: c[key] for key in ("marker", "doc_id", "title", "section", "quote", "start", "end",
                                                        "url")} for c in answer["citations"]]}

    @server.tool()
    async def get_document(doc_id: str, start: int = 0, end: int = 2000) -> dict[str, Any]:
        """查看一份文件：标题、文号、日期等信息，以及原文 [start, end) 一段（引用的 start/end 即其位置）。"""
        doc = documents().get(doc_id)
        if doc is None:
            raise ToolError(f"没有编号为 {doc_id!r} 的文件（可用 search_policies 找到文件编号）。")
        if start < 0 or end <= start or end - start > MAX_SPAN:
            raise ToolError(f"start/end 须满足 0 ≤ start < end 且一次不超过 {MAX_SPAN} 字。")
        text = await anyio.to_thread.run_sync(lambda: text_of(doc_id))
        facts = {key: doc[key] for key in ("title", "issuer", "doc_number", "date", "region", "period") if doc.get(key)}
        return {"doc_id": doc_id, **facts, "length": len(text), "start": start, "end": min(end, len(text)),
                "text": text[start:end]}

    return server


def mount(app, server) -> None:
    """The server's streamable-HTTP endpoint at /mcp on `app`, its session manager run by the app's lifespan."""
    import contextlib

    from mcp.server.transport_security import TransportSecuritySettings

    # The app's own login guards /mcp, and its tools only read: the SDK's localhost-only Host check would refuse the
    # intranet name the server is reached by.
    asgi = server.streamable_http_app(streamable_http_path="/", stateless_http=True, json_response=True,
                                      transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    app.mount("/mcp", asgi)
    previous = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(scope_app):
        async with server.session_manager.run(), previous(scope_app) as state:
            yield state

    app.router.lifespan_context = lifespan
