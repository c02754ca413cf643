"""The MCP server (streamable HTTP at /mcp), driven by the official `mcp` SDK's client against the running server."""

import asyncio
import contextlib
import json

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from rag.engine import Engine
from rag.evaluation.loadcheck import free_port
from rag.web.api import create_api
from tests.conftest import running


@contextlib.contextmanager
def served(real_engine, tmp_path, **changes):
    settings = real_engine.settings.replace(feedback_path=tmp_path / "f.jsonl", rate_limit_per_minute=1000, **changes)
    engine = Engine(settings, embedder=real_engine.embedder, index=real_engine.index)
    with running(create_api(settings, engine), free_port()) as base:
        yield f"{base}/mcp/"


async def _session(url: str, calls, headers: dict | None = None):
    async with httpx2.AsyncClient(headers=headers or {}, timeout=60) as http, \
            streamable_http_client(url, http_client=http) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        return [await call(session) for call in calls]


def _data(result) -> object:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        content = result.structured_content
        return content.get("result", content) if isinstance(content, dict) else content
    return json.loads(result.content[0].text)


def test_the_three_tools_search_answer_and_open_the_cited_span(real_engine, tmp_path):
    with served(real_engine, tmp_path) as url:
        tools, found, answered = asyncio.run(_session(url, [
            lambda s: s.list_tools(),
            lambda s: s.call_tool("search_policies", {"query": "沈阳知识产权证券化要发几单", "k": 3}),
            lambda s: s.call_tool("ask_policies", {"question": "沈阳知识产权证券化要发几单？"}),
        ]))
        assert {t.name for t in tools.tools} == {"search_policies", "ask_policies", "get_document"}
        passages = _data(found)
        assert len(passages) == 3 and passages[0]["doc_id"] == "shenyang-2020"
        reply = _data(answered)
        assert reply["refused"] is False and "1单" in reply["answer"] and "[1]" in reply["answer"]
        cited = reply["citations"][0]
        (span,) = asyncio.run(_session(url, [lambda s: s.call_tool(
            "get_document", {"doc_id": cited["doc_id"], "start": cited["start"], "end": cited["end"]})]))
        document = _data(span)
        assert document["title"] == cited["title"] and cited["quote"][:20] in document["text"]


def test_bad_arguments_are_tool_errors_in_chinese_and_the_login_holds(real_engine, tmp_path):
    with served(real_engine, tmp_path) as url:
        unknown, wide = asyncio.run(_session(url, [
            lambda s: s.call_tool("get_document", {"doc_id": "no-such-doc"}),
            lambda s: s.call_tool("get_document", {"doc_id": "wuhai-2022", "start": 0, "end": 10**6}),
        ]))
        assert unknown.is_error and "没有编号为" in unknown.content[0].text
        assert wide.is_error and "不超过" in wide.content[0].text
    with served(real_engine, tmp_path, auth_users="staff:secret") as url:
        hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                 "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        refused = httpx2.post(url, json=hello, headers={"Accept": "application/json, text/event-stream"})
        assert refused.status_code == 401 and refused.json()["message"] == "需要登录。"
        wrong = httpx2.post(url, json=hello, headers={"Authorization": "Bearer staff:wrong"})
        assert wrong.status_code == 401
        (tools,) = asyncio.run(_session(url, [lambda s: s.list_tools()], {"Authorization": "Bearer staff:secret"}))
        assert len(tools.tools) == 3
