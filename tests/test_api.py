import base64
import json
import threading

import pytest
from fastapi.testclient import TestClient

from rag.engine import Engine
from rag.models.llms import FakeLLM
from rag.web.api import create_api

from .conftest import engine_with_llm


@pytest.fixture
def client(real_engine, tmp_path):
    settings = real_engine.settings.replace(feedback_path=tmp_path / "feedback.jsonl", rate_limit_per_minute=1000)
    engine = Engine(settings, embedder=real_engine.embedder, index=real_engine.index)
    return TestClient(create_api(settings, engine))


def test_ask_returns_the_answer_with_references(client):
    r = client.post("/api/ask", json={"question": "沈阳开展知识产权证券化工作的牵头单位是谁？"})
    assert r.status_code == 200
    data = r.json()
    assert "浑南区政府" in data["answer"] and not data["refused"]
    c = data["citations"][0]
    assert c["title"].startswith("沈阳市") and c["section"] and "浑南区政府" in c["text"]
    assert data["contexts"][0]["rank"] == 1 and "retrieve_ms" in data["timings"]


def test_ask_with_history_and_filters(client):
    r = client.post("/api/ask", json={"question": "那杭州呢？",
                                      "history": [{"role": "user", "content": "河南省2020年知识产权质押融资额的目标是多少？"}]})
    assert "5亿元" in r.json()["answer"]
    r = client.post("/api/ask", json={"question": "知识产权质押融资", "filters": {"doc_id": ["missing"]}})
    assert r.status_code == 400 and "没有这些文档" in r.json()["message"]


def test_stream_sends_sources_checked_sentences_and_final(real_engine, tmp_path):
    # the model writes a supported sentence and an injected one; only the checked sentence is ever sent
    llm = FakeLLM(replies=["全市有效注册商标总数突破4500件[1]。北京的目标是100亿元[1]。"])
    engine = engine_with_llm(real_engine, llm, feedback_path=tmp_path / "f.jsonl")
    client = TestClient(create_api(engine.settings, engine))
    with client.stream("POST", "/api/ask/stream", json={"question": "乌海有效注册商标总数要突破多少件？"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        body = "".join(r.iter_text())
    events = [block.split("\n")[0].removeprefix("event: ") for block in body.strip().split("\n\n")]
    assert events[0] == "sources" and events[-1] == "final" and "sentence" in events and "token" not in events
    assert "4500件" in body and "北京" not in body and "100亿" not in body
    final = json.loads(body.strip().split("\n\n")[-1].split("data: ", 1)[1])
    assert "4500件" in final["answer"] and final["citations"]
    assert "prompt" not in final and "raw_answer" not in final  # only with RAG_DEBUG=1


def test_stream_reports_errors_as_events(client):
    with client.stream("POST", "/api/ask/stream", json={"question": "   "}) as r:
        body = "".join(r.iter_text())
    assert body.startswith("event: error") and "不能为空" in body


def test_search_documents_health(client):
    rows = client.get("/api/search", params={"q": "湖南地理标志品牌", "k": 3}).json()
    assert len(rows) == 3 and {"rank", "score", "doc_id", "title", "section", "text"} <= set(rows[0])
    assert {r["doc_id"] for r in client.get("/api/search", params={"q": "品牌", "region": "湖南"}).json()} == {"hunan-2022"}
    docs = client.get("/api/documents").json()
    assert {d["doc_id"] for d in docs} >= {"wuhai-2022"} and all(d["title"] and d["region"] for d in docs)
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["index"]["chunks"] > 100 and health["model_ready"]
    assert client.get("/openapi.json").json()["paths"]["/api/ask"]


def test_bad_input_gets_clear_4xx(client):
    assert client.post("/api/ask", json={"question": ""}).status_code == 400
    long = client.post("/api/ask", json={"question": "问" * 1000})
    assert long.status_code == 400 and "过长" in long.json()["message"]
    assert client.post("/api/ask", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    assert client.post("/api/ask", json={"history": []}).status_code == 422
    huge = client.post("/api/ask", content=b"x" * 100_000, headers={"content-type": "application/json"})
    assert huge.status_code == 413


def test_feedback_lines_are_never_lost(client, real_engine, tmp_path):
    vote = {"question": "q", "answer": "a", "vote": "up", "comment": "好", "citations": [{"marker": 1}]}
    threads = [threading.Thread(target=lambda: client.post("/api/feedback", json=vote)) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    path = tmp_path / "feedback.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 20 and all(json.loads(line)["vote"] == "up" for line in lines)
    assert client.post("/api/feedback", json=vote | {"vote": "maybe"}).status_code == 422


def test_auth_rate_limit_and_frame_headers(real_engine, tmp_path):
    settings = real_engine.settings.replace(auth_users="staff:secret", rate_limit_per_minute=2,
                                            frame_ancestors="'self' https://intranet.example", cors_origins="https://intranet.example",
                                            feedback_path=tmp_path / "f.jsonl")
    engine = Engine(settings, embedder=real_engine.embedder, index=real_engine.index)
    client = TestClient(create_api(settings, engine))
    assert client.get("/api/documents").status_code == 401
    assert client.get("/healthz").status_code == 200
    auth = {"Authorization": "Basic " + base64.b64encode(b"staff:secret").decode()}
    ok = client.get("/api/documents", headers=auth)
    assert ok.status_code == 200 and ok.headers["content-security-policy"] == "frame-ancestors 'self' https://intranet.example"
    assert client.get("/api/documents", headers={"Authorization": "Basic " + base64.b64encode(b"staff:nope").decode()}).status_code == 401
    codes = [client.post("/api/ask", json={"question": "乌海葡萄"}, headers=auth).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    pre = client.options("/api/ask", headers={"Origin": "https://intranet.example", "Access-Control-Request-Method": "POST"})
    assert pre.headers.get("access-control-allow-origin") == "https://intranet.example"


def test_trusted_sso_header_only_from_the_configured_proxy(real_engine, tmp_path):
    # TestClient's peer address is "testclient": here it plays the SSO proxy
    settings = real_engine.settings.replace(trusted_user_header="X-Remote-User", trusted_proxies="testclient",
                                            feedback_path=tmp_path / "f.jsonl")
    engine = Engine(settings, embedder=real_engine.embedder, index=real_engine.index)
    client = TestClient(create_api(settings, engine))
    assert client.get("/api/documents").status_code == 401
    assert client.get("/api/documents", headers={"X-Remote-User": "zhang"}).status_code == 200
    client.post("/api/feedback", json={"question": "q", "answer": "a", "vote": "down"}, headers={"X-Remote-User": "zhang"})
    assert json.loads((tmp_path / "f.jsonl").read_text(encoding="utf-8"))["user"] == "zhang"


def test_missing_index_is_a_503_with_a_message(tmp_path, real_engine):
    settings = real_engine.settings.replace(index_dir=tmp_path / "none", feedback_path=tmp_path / "f.jsonl")
    client = TestClient(create_api(settings, Engine(settings, embedder=real_engine.embedder)))
    r = client.post("/api/ask", json={"question": "乌海葡萄"})
    assert r.status_code == 503 and "rag index" in r.json()["message"]
    assert client.get("/healthz").status_code == 503


def test_client_leaving_mid_stream_frees_its_slot(real_engine, tmp_path):
    engine = engine_with_llm(real_engine, FakeLLM(), feedback_path=tmp_path / "f.jsonl", max_concurrency=1)
    app = create_api(engine.settings, engine)
    client = TestClient(app)
    with client.stream("POST", "/api/ask/stream", json={"question": "乌海要打造哪些特色品牌？"}) as r:
        first = next(r.iter_lines())
        assert first.startswith("event: sources")
    # the one slot is free again: the next question is answered, not stuck in the queue
    assert app.state.slots.acquire(timeout=5)
    app.state.slots.release()
    assert client.post("/api/ask", json={"question": "乌海要打造哪些特色品牌？"}).status_code == 200


def test_identity_and_rate_limit_headers_are_ignored_from_other_clients(real_engine, tmp_path):
    settings = real_engine.settings.replace(trusted_user_header="X-Remote-User", trusted_proxies="10.1.2.3",
                                            auth_users="staff:secret", rate_limit_per_minute=2,
                                            feedback_path=tmp_path / "f.jsonl")
    engine = Engine(settings, embedder=real_engine.embedder, index=real_engine.index)
    client = TestClient(create_api(settings, engine))
    forged = {"X-Remote-User": "zhang"}
    assert client.get("/api/documents", headers=forged).status_code == 401  # not from the proxy: no identity
    auth = {"Authorization": "Basic " + base64.b64encode(b"staff:secret").decode()}
    client.post("/api/feedback", json={"question": "q", "answer": "a", "vote": "up"}, headers=auth | forged)
    assert json.loads((tmp_path / "f.jsonl").read_text(encoding="utf-8"))["user"] == "staff"
    # rotating X-Forwarded-For does not escape the limit, and searching is limited too
    codes = [client.get("/api/search", params={"q": "质押"}, headers=auth | {"X-Forwarded-For": f"192.0.2.{i}"}).status_code
             for i in range(4)]
    assert codes[:1] == [200] and 429 in codes


def test_gradio_routes_are_rate_limited_and_uploads_need_an_admin(real_engine, tmp_path):
    settings = real_engine.settings.replace(rate_limit_per_minute=2, feedback_path=tmp_path / "f.jsonl")
    engine = Engine(settings, embedder=real_engine.embedder, index=real_engine.index)
    client = TestClient(create_api(settings, engine))
    # a forwarded request is not the local administrator of an installation without login
    upload = client.post("/gradio_api/upload", files={"files": ("a.txt", b"x")}, headers={"X-Forwarded-For": "10.1.1.1"})
    assert upload.status_code == 403 and "管理员" in upload.json()["message"]
    codes = [client.post("/gradio_api/call/respond", json={"data": []}).status_code for _ in range(3)]
    assert codes[-1] == 429


@pytest.mark.parametrize("body, fragment", [
    ({"question": "乌海", "filters": {"doc_id": 5}}, "doc_id"),
    ({"question": "乌海", "filters": {"region": ["湖南"]}}, "region"),
    ({"question": "乌海", "filters": {"nonsense": 1}}, "不认识的字段"),
    ({"question": "乌海\ud800"}, "无法识别的字符"),
    ({"question": "乌海", "history": [{"role": "user", "content": "a\ud800"}]}, "无法识别的字符"),
    ({"question": "乌海\u0000\u0007"}, "控制字符"),
    ({"question": "乌海", "history": [{"role": "user", "content": "问"}] * 1200}, "history"),
    ({"history": []}, "缺少字段 question"),
])
def test_bad_requests_get_a_chinese_json_error_and_an_sse_error_event(client, body, fragment):
    raw = json.dumps(body)  # keeps lone surrogates escaped, as a hostile client would send them
    r = client.post("/api/ask", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "ValidationError" and fragment in r.json()["message"]
    with client.stream("POST", "/api/ask/stream", content=raw, headers={"content-type": "application/json"}) as s:
        text = "".join(s.iter_text())
    assert s.status_code == 422 and text.startswith("event: error") and fragment in text


def test_every_error_status_is_json_in_chinese(client):
    missing = client.get("/api/nowhere")
    assert missing.status_code == 404 and missing.json()["message"] == "没有这个地址。"
    wrong = client.put("/api/ask", json={})
    assert wrong.status_code == 405 and "不支持" in wrong.json()["message"]
    broken = client.post("/api/ask/stream", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "event: error" in broken.text


def test_a_feedback_file_that_cannot_be_written_is_a_clear_error(real_engine, tmp_path):
    (tmp_path / "ro").mkdir()
    settings = real_engine.settings.replace(feedback_path=tmp_path / "ro")  # a directory: cannot be appended to
    engine = Engine(settings, embedder=real_engine.embedder, index=real_engine.index)
    r = TestClient(create_api(settings, engine)).post("/api/feedback", json={"question": "q", "answer": "a", "vote": "up"})
    assert r.status_code == 500 and r.json()["message"] == "反馈暂时无法保存，请稍后再试。"


def test_the_body_limit_counts_the_bytes_received(real_engine, tmp_path):
    settings = real_engine.settings.replace(feedback_path=tmp_path / "f.jsonl", max_body_bytes=65536)
    engine = Engine(settings, embedder=real_engine.embedder, index=real_engine.index)
    client = TestClient(create_api(settings, engine))

    def chunked(total: int, prefix: bytes = b'{"question": "q", "answer": "a", "vote": "up", "comment": "'):
        yield prefix
        sent = len(prefix)
        while sent < total:
            yield b"x" * 65536
            sent += 65536
        yield b'"}'

    big = client.post("/api/feedback", content=chunked(3_000_000), headers={"content-type": "application/json"})
    assert big.status_code == 413 and "过大" in big.json()["message"]
    assert not (tmp_path / "f.jsonl").exists()  # nothing of it was written
    huge = client.post("/api/ask", content=chunked(13_500_000, b'{"question": "'), headers={"content-type": "application/json"})
    assert huge.status_code == 413
    assert client.post("/api/feedback", json={"question": "q", "answer": "a", "vote": "up"}).status_code == 200


def test_api_docs_are_served_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "/static-offline-docs/swagger-ui-bundle.js" in page.text
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200


def test_behind_a_trusted_proxy_the_limit_keys_on_the_client_it_forwards_for(real_engine, tmp_path):
    """uvicorn's ProxyHeadersMiddleware reads X-Forwarded-For from the configured proxy only: the client is the last
    address no trusted proxy added, so a client cannot pick its own key by sending X-Forwarded-For to the proxy."""
    settings = real_engine.settings.replace(trusted_proxies="testclient, 10.0.0.0/8", rate_limit_per_minute=1,
                                            feedback_path=tmp_path / "f.jsonl")
    client = TestClient(create_api(settings, Engine(settings, embedder=real_engine.embedder, index=real_engine.index)))

    def search(forwarded_for: str) -> int:
        return client.get("/api/search", params={"q": "质押"}, headers={"X-Forwarded-For": forwarded_for}).status_code

    assert search("192.0.2.1") == 200
    assert search("192.0.2.2") == 200  # another client behind the proxy has a limit of its own
    # what the client itself wrote before the proxy appended its address does not make it someone else
    assert search("203.0.113.9, 192.0.2.1") == 429
    assert search("198.51.100.7, 192.0.2.1, 10.1.1.1") == 429  # 10.1.1.1: a second trusted proxy in the chain
