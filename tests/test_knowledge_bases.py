"""Knowledge bases with access: a user of one department cannot see, search, cite or open a document of another's
base by any route — documents, search, ask, stream, the document view, page images, /v1 and MCP — guessed ids
included; writes go only where the user administers; a user who reads no base is told so in Chinese."""

import base64
import json

import pytest
from fastapi.testclient import TestClient

from rag.engine import Engine
from rag.models.embedders import FakeEmbedder
from rag.store.bases import load_bases
from rag.store.library import ensure_index
from rag.web.api import create_api

BASES = {"knowledge_bases": [
    {"id": "policy", "name": "政策法规", "readers": ["*"], "admins": ["boss"]},
    {"id": "internal", "name": "内部通知", "readers": ["@dept-a"], "admins": ["alice"]},
]}
USERS = "staff:pw1,alice:pw2,boss:pw3,bob:pw4"
WUHAI = "乌海要打造哪些特色品牌？"


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


STAFF, ALICE, BOSS, BOB = basic("staff", "pw1"), basic("alice", "pw2"), basic("boss", "pw3"), basic("bob", "pw4")


def library(settings, bases: dict) -> TestClient:
    data = settings.data_dir
    (data / "knowledge_bases.json").write_text(json.dumps(bases, ensure_ascii=False), encoding="utf-8")
    manifest = json.loads((data / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["documents"]:
        if entry["file"].startswith("wuhai"):
            entry["kb"] = "internal"  # 乌海's plan is the internal department's
    (data / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    embedder = FakeEmbedder()
    ensure_index(settings, embedder)
    return TestClient(create_api(settings, Engine(settings, embedder=embedder)))


@pytest.fixture
def client(real_settings):
    settings = real_settings.replace(auth_users=USERS, user_groups="alice:dept-a,bob:dept-b", rate_limit_per_minute=0,
                                     today="2026-11-25")
    return library(settings, BASES)


def test_a_reader_of_one_base_sees_nothing_of_another_by_any_route(client):
    ids = {r["doc_id"] for r in client.get("/api/documents", headers=STAFF).json()}
    assert ids == {"hangzhou-2016", "henan-2020", "hunan-2022", "shenyang-2020"}
    assert client.get("/api/knowledge-bases", headers=STAFF).json() == [{"id": "policy", "name": "政策法规",
                                                                          "administer": False}]
    for path in ("/api/documents/wuhai-2022", "/doc/wuhai-2022?start=0&end=10", "/doc/wuhai-2022/page/1.jpg"):
        refused = client.get(path, headers=STAFF)
        assert refused.status_code == 404 and "没有编号为" in refused.json()["message"], path  # as if it did not exist
    found = client.get("/api/search", params={"q": "乌海 葡萄 特色品牌", "k": 10}, headers=STAFF).json()
    assert found and all(p["doc_id"] != "wuhai-2022" for p in found)
    answer = client.post("/api/ask", json={"question": WUHAI}, headers=STAFF).json()
    assert all(c["doc_id"] != "wuhai-2022" for c in answer["citations"]) and "乌海葡萄" not in answer["answer"]
    assert all(c["doc_id"] != "wuhai-2022" for c in answer.get("contexts", []))
    chosen = client.post("/api/ask", json={"question": WUHAI, "knowledge_base": "internal"}, headers=STAFF)
    assert chosen.status_code == 403 and "没有名为“internal”的知识库，或您没有查阅它的权限" in chosen.json()["message"]
    stream = client.post("/api/ask/stream", json={"question": WUHAI}, headers=STAFF).text
    assert "wuhai-2022" not in stream and "乌海葡萄" not in stream


def test_a_reader_of_both_bases_gets_the_answer_and_can_narrow_to_one(client):
    answer = client.post("/api/ask", json={"question": WUHAI}, headers=ALICE).json()
    assert not answer["refused"] and answer["citations"][0]["doc_id"] == "wuhai-2022" and "乌海葡萄" in answer["answer"]
    page = client.get(answer["citations"][0]["url"].split("#")[0], headers=ALICE)
    assert page.status_code == 200 and '<mark id="cited">' in page.text
    narrowed = client.get("/api/search", params={"q": "知识产权质押融资", "k": 10, "kb": "internal"}, headers=ALICE).json()
    assert narrowed and {p["doc_id"] for p in narrowed} == {"wuhai-2022"}
    rows = client.get("/api/documents", params={"kb": "internal"}, headers=ALICE).json()
    assert [(r["doc_id"], r["kb"]) for r in rows] == [("wuhai-2022", "internal")]


def test_the_openai_api_offers_each_readable_base_as_a_model(client):
    models = {m["id"] for m in client.get("/v1/models", headers=STAFF).json()["data"]}
    assert models == {"policy-qa", "policy"}
    assert {m["id"] for m in client.get("/v1/models", headers=ALICE).json()["data"]} == {"policy-qa", "policy", "internal"}
    body = {"model": "internal", "messages": [{"role": "user", "content": WUHAI}]}
    refused = client.post("/v1/chat/completions", json=body, headers=STAFF)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "model_not_found"
    answered = client.post("/v1/chat/completions", json=body, headers=ALICE).json()
    assert answered["model"] == "internal" and "乌海葡萄" in answered["choices"][0]["message"]["content"]
    assert {c["doc_id"] for c in answered["choices"][0]["message"]["reference"]["citations"]} == {"wuhai-2022"}


def test_writes_go_only_where_the_user_administers(client):
    files = [("files", ("内部通知一.txt", "关于内部培训的通知\n内部培训定于每月第一个周五举行。".encode(), "text/plain"))]
    added = client.post("/api/documents", files=files, data={"kb": "internal"}, headers=ALICE)
    assert added.status_code == 200, added.text
    assert client.get("/api/documents/内部通知一", headers=ALICE).status_code == 200
    assert client.get("/api/documents/内部通知一", headers=STAFF).status_code == 404  # went into the internal base
    not_hers = client.post("/api/documents", files=files, data={"kb": "policy"}, headers=ALICE)
    assert not_hers.status_code == 403 and "政策法规" in not_hers.json()["message"]
    nobody = client.post("/api/documents", files=files, headers=STAFF)
    assert nobody.status_code == 403 and "不是任何知识库的管理员" in nobody.json()["message"]
    assert client.delete("/api/documents/henan-2020", headers=ALICE).status_code == 403  # she reads it, does not run it
    assert client.delete("/api/documents/wuhai-2022", headers=BOSS).status_code == 404  # he cannot even see it
    assert client.delete("/api/documents/内部通知一", headers=ALICE).json()["removed"] == ["内部通知一"]
    same_name = [("files", ("hunan-2022-ip-strong-province-plan.txt", "冒名的文件\n内容。".encode(), "text/plain"))]
    clash = client.post("/api/documents", files=same_name, data={"kb": "internal"}, headers=ALICE)
    assert clash.status_code == 422 and "另一个知识库" in clash.json()["failed"][0]["message"]
    assert client.get("/api/documents/hunan-2022", headers=STAFF).json()["title"] != "冒名的文件"


def test_a_user_who_reads_no_base_is_told_so(real_settings):
    settings = real_settings.replace(auth_users=USERS, user_groups="bob:dept-b", rate_limit_per_minute=0)
    closed = {"knowledge_bases": [{"id": "policy", "name": "政策法规", "readers": ["@dept-b"], "admins": []},
                                  {"id": "internal", "name": "内部通知", "readers": ["@dept-a"], "admins": []}]}
    client = library(settings, closed)
    refused = client.post("/api/ask", json={"question": WUHAI}, headers=STAFF)
    assert refused.status_code == 403 and "您还没有可以查阅的知识库" in refused.json()["message"]
    assert client.get("/api/documents", headers=STAFF).status_code == 403
    assert client.post("/api/ask", json={"question": "湖南的目标是什么？"}, headers=BOB).status_code == 200


def test_groups_come_from_a_trusted_proxy_only(real_settings):
    settings = real_settings.replace(trusted_user_header="X-Remote-User", trusted_groups_header="X-Remote-Groups",
                                     trusted_proxies="127.0.0.1,testclient", rate_limit_per_minute=0)
    client = library(settings, BASES)
    via_proxy = {"X-Remote-User": "carol", "X-Remote-Groups": "dept-x,dept-a"}
    assert {r["id"] for r in client.get("/api/knowledge-bases", headers=via_proxy).json()} == {"policy", "internal"}
    assert {r["id"] for r in client.get("/api/knowledge-bases", headers={"X-Remote-User": "carol"}).json()} == {"policy"}


def test_a_bad_definition_is_named_in_chinese(tmp_path):
    (tmp_path / "knowledge_bases.json").write_text('{"knowledge_bases": [{"id": "a"}, {"id": "a"}]}', encoding="utf-8")
    with pytest.raises(Exception) as bad:
        load_bases(tmp_path)
    assert "编号不能为空、重复" in bad.value.user_message
    (tmp_path / "knowledge_bases.json").write_text("not json", encoding="utf-8")
    with pytest.raises(Exception) as broken:
        load_bases(tmp_path)
    assert "格式有误" in broken.value.user_message
    assert not load_bases(tmp_path / "nothing-here").defined


def test_mcp_tools_answer_only_from_the_callers_bases(real_settings):
    import asyncio

    from rag.evaluation.loadcheck import free_port
    from tests.conftest import running
    from tests.test_mcp import _data, _session

    settings = real_settings.replace(auth_users=USERS, user_groups="alice:dept-a", rate_limit_per_minute=0)
    client = library(settings, BASES)
    with running(client.app, free_port()) as base:
        url = f"{base}/mcp/"
        found, answered, opened = asyncio.run(_session(url, [
            lambda s: s.call_tool("search_policies", {"query": "乌海 葡萄 特色品牌", "k": 10}),
            lambda s: s.call_tool("ask_policies", {"question": WUHAI}),
            lambda s: s.call_tool("get_document", {"doc_id": "wuhai-2022"}),
        ], headers=STAFF))
        assert all(p["doc_id"] != "wuhai-2022" for p in _data(found))
        assert all(c["doc_id"] != "wuhai-2022" for c in _data(answered)["citations"])
        assert opened.is_error and "没有编号为" in opened.content[0].text  # another base's id: as if it did not exist
        (hers,) = asyncio.run(_session(url, [lambda s: s.call_tool("get_document", {"doc_id": "wuhai-2022"})],
                                       headers=ALICE))
        assert _data(hers)["doc_id"] == "wuhai-2022"


def test_a_base_taken_out_while_a_question_runs_hides_its_documents_and_hands_them_to_nobody(client, real_settings):
    import threading

    data = real_settings.data_dir
    definition = data / "knowledge_bases.json"
    release, started = threading.Event(), threading.Event()
    from rag.web import api as api_module

    original = api_module.stream_answer

    def slow(*args, **kwargs):  # the question has its engine; the base goes away before it is answered
        started.set()
        release.wait(10)
        yield from original(*args, **kwargs)

    api_module.stream_answer = slow
    try:
        reply = {}
        asking = threading.Thread(target=lambda: reply.update(client.post("/api/ask", json={"question": WUHAI},
                                                                          headers=ALICE).json()))
        asking.start()
        assert started.wait(10)
        definition.write_text(json.dumps({"knowledge_bases": [BASES["knowledge_bases"][0]]}, ensure_ascii=False),
                              encoding="utf-8")
        import os
        import time

        os.utime(definition, (time.time() + 5, time.time() + 5))  # a new modification time, even within one second
        release.set()
        asking.join(30)
    finally:
        api_module.stream_answer = original
    assert reply and "乌海葡萄" in reply["answer"]  # the question already running finishes from what it started with
    for who in (ALICE, STAFF, BOSS):  # afterwards nobody reads the internal plan, not even through the first base
        assert client.get("/api/documents/wuhai-2022", headers=who).status_code == 404
        after = client.post("/api/ask", json={"question": WUHAI}, headers=who).json()
        assert all(c["doc_id"] != "wuhai-2022" for c in after["citations"])


def test_the_contracts_names_filters_kb_and_the_default_model(client):
    scoped = client.post("/api/ask", json={"question": WUHAI, "filters": {"kb": "internal"}}, headers=ALICE).json()
    assert {c["doc_id"] for c in scoped["citations"]} == {"wuhai-2022"}
    refused = client.post("/api/ask", json={"question": WUHAI, "filters": {"kb": "internal"}}, headers=STAFF)
    assert refused.status_code == 403
    every = client.post("/v1/chat/completions", json={"model": "default", "messages": [{"role": "user", "content": WUHAI}]},
                        headers=ALICE).json()
    assert "乌海葡萄" in every["choices"][0]["message"]["content"]
    assert {r["kb"] for r in client.get("/api/documents", headers=ALICE).json()} == {"policy", "internal"}


def test_rag_kb_create_list_delete_and_rag_add_into_a_base(real_corpus, tmp_path, monkeypatch, capsys):
    from rag.cli import main

    monkeypatch.setenv("RAG_DATA_DIR", str(real_corpus))
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("RAG_EMBEDDER", "fake")
    monkeypatch.setenv("RAG_LLM_BACKEND", "extractive")
    assert main(["index"]) == 0
    assert main(["kb", "create", "internal", "--name", "内部通知", "--readers", "@dept-a", "--admins", "alice"]) == 0
    capsys.readouterr()
    notice = tmp_path / "内部培训通知.txt"
    notice.write_text("关于内部培训的通知\n内部培训定于每月第一个周五举行。\n", encoding="utf-8")
    assert main(["add", str(notice), "--kb", "internal"]) == 0
    capsys.readouterr()
    assert main(["kb", "list", "--json"]) == 0
    listed = {b["id"]: b for b in json.loads(capsys.readouterr().out)}
    assert listed["default"]["readers"] == ["*"] and listed["default"]["documents"] == 5  # the documents already there
    assert listed["internal"] == {"id": "internal", "name": "内部通知", "readers": ["@dept-a"], "admins": ["alice"],
                                  "documents": 1}
    assert main(["add", str(notice), "--kb", "nowhere"]) == 2  # the exit code of every Chinese error
    assert "没有名为“nowhere”的知识库" in capsys.readouterr().err
    assert main(["kb", "delete", "internal"]) == 0
    assert main(["kb", "list", "--json"]) == 0
    out = capsys.readouterr().out
    assert [b["id"] for b in json.loads(out[out.index("["):])] == ["default"]
