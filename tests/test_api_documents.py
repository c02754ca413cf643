"""The knowledge base over HTTP: list, upload, view with the cited span, delete; administrators only."""

import base64

import pytest
from fastapi.testclient import TestClient

from rag.engine import Engine
from rag.models.embedders import FakeEmbedder
from rag.store.library import ensure_index
from rag.web.api import create_api

from .makedocs import docx_bytes, pdf_bytes


@pytest.fixture
def app_settings(real_settings, tmp_path):
    return real_settings.replace(feedback_path=tmp_path / "f.jsonl", today="2026-11-25", rate_limit_per_minute=0)


def client_for(settings) -> TestClient:
    embedder = FakeEmbedder()
    ensure_index(settings, embedder)
    return TestClient(create_api(settings, Engine(settings, embedder=embedder)))


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_upload_ask_view_and_delete(app_settings):
    client = client_for(app_settings)  # no login configured, request from this machine: the local administrator
    listed = client.get("/api/documents").json()
    assert {r["doc_id"] for r in listed} == {"hangzhou-2016", "henan-2020", "hunan-2022", "shenyang-2020", "wuhai-2022"}
    assert {r["status"] for r in listed} == {"已到期", "期限未说明"}
    assert {r["doc_id"] for r in client.get("/api/documents?in_force=true").json()} == {"hangzhou-2016", "hunan-2022"}

    files = [("files", ("海州专利转化.pdf", pdf_bytes(), "application/pdf")),
             ("files", ("滨海数据登记办法.docx", docx_bytes(), "application/octet-stream"))]
    added = client.post("/api/documents", files=files)
    assert added.status_code == 200, added.text
    report = added.json()
    assert sorted(report["added"]) == ["海州专利转化", "滨海数据登记办法"]
    rows = {r["doc_id"]: r for r in report["documents"]}
    assert rows["滨海数据登记办法"]["doc_number"] == "滨市监规〔2025〕3号" and rows["海州专利转化"]["status"] == "在效"

    answer = client.post("/api/ask", json={"question": "海州专利转化专项资金每年安排多少？"}).json()
    assert not answer["refused"] and "3000万元" in answer["answer"]
    citation = answer["citations"][0]
    assert citation["doc_id"] == "海州专利转化" and citation["page"] == 2 and citation["url"].startswith("/doc/")
    page = client.get(citation["url"].split("#")[0])
    assert page.status_code == 200 and '<mark id="cited">' in page.text and "第 2 页" in page.text
    marked = page.text.split('<mark id="cited">')[1].split("</mark>")[0]
    assert "3000万元" in marked

    detail = client.get("/api/documents/滨海数据登记办法").json()
    assert detail["facts"]["doc_number"]["value"] == "滨市监规〔2025〕3号" and "数据知识产权登记" in detail["text"]
    assert all(detail["text"][p["start"]:p["end"]] for p in detail["passages"])

    assert client.delete("/api/documents/海州专利转化").json()["removed"] == ["海州专利转化"]
    again = client.post("/api/ask", json={"question": "海州专利转化专项资金每年安排多少？"}).json()
    assert all(c["doc_id"] != "海州专利转化" for c in again["citations"])
    assert client.get("/doc/海州专利转化").status_code == 404
    missing = client.delete("/api/documents/海州专利转化")
    assert missing.status_code == 404 and "没有编号为" in missing.json()["message"]


def test_only_administrators_change_documents(app_settings):
    settings = app_settings.replace(auth_users="staff:pw1,boss:pw2", admin_users="boss")
    client = client_for(settings)
    files = [("files", ("a.txt", "丙市专利奖励办法\n每件奖励一万元。".encode(), "text/plain"))]
    refused = client.post("/api/documents", files=files, headers=basic("staff", "pw1"))
    assert refused.status_code == 403 and "管理员" in refused.json()["message"]
    assert client.delete("/api/documents/henan-2020", headers=basic("staff", "pw1")).status_code == 403
    assert client.get("/api/documents", headers=basic("staff", "pw1")).status_code == 200  # reading is for everyone
    assert client.post("/api/documents", files=files, headers=basic("boss", "pw2")).status_code == 200
    # a forwarded request is not "the person at this machine"
    open_client = client_for(app_settings)
    assert open_client.post("/api/documents", files=files, headers={"X-Forwarded-For": "10.0.0.9"}).status_code == 403


def test_upload_faults_are_reported_and_lose_nothing(app_settings):
    client = client_for(app_settings)
    before = client.get("/api/documents").json()
    bad = client.post("/api/documents", files=[("files", ("扫描件.pdf", pdf_bytes(image_only=True), "application/pdf")),
                                              ("files", ("报表.xlsx", b"PK\x03\x04", "application/octet-stream"))])
    assert bad.status_code == 422
    messages = " ".join(f["message"] for f in bad.json()["failed"])
    assert "扫描件.pdf" in messages and "没有识别出文字" in messages and "报表.xlsx" in messages and "不支持" in messages
    assert client.get("/api/documents").json() == before
    too_many = client.post("/api/documents", data={"title": "x"},
                           files=[("files", ("a.txt", b"a", "text/plain")), ("files", ("b.txt", b"b", "text/plain"))])
    assert too_many.status_code == 400 and "单个文件" in too_many.json()["message"]


def test_upload_form_fields_are_validated_before_anything_is_stored(app_settings):
    """Issue 19 F6: a 200,000-character title or a date that is not a date gets a Chinese message; nothing is added."""
    client = client_for(app_settings)
    files = {"files": ("某市办法.txt", "某市办法\n第一条 本办法自发布之日起施行。\n".encode(), "text/plain")}
    for fields, words in (({"title": "长" * 200_000}, "标题过长"), ({"date": "not-a-date"}, "无法识别")):
        response = client.post("/api/documents", files=files, data=fields)
        assert response.status_code == 422, response.text
        assert words in response.json()["message"]
    assert not (app_settings.data_dir / "某市办法.txt").exists()
    assert "某市办法" not in (app_settings.data_dir / "manifest.json").read_text(encoding="utf-8")


def test_the_review_of_questions_and_votes_is_for_administrators(app_settings):
    settings = app_settings.replace(auth_users="staff:pw1,boss:pw2", admin_users="boss")
    client = client_for(settings)
    answer = client.post("/api/ask", json={"question": "乌海要打造哪些特色品牌？"}, headers=basic("staff", "pw1")).json()
    refused = client.post("/api/ask", json={"question": "北京市的专利资助标准是多少？"},
                          headers=basic("staff", "pw1")).json()
    assert refused["refused"]
    vote = {"question": answer["question"], "answer": answer["answer"], "vote": "down", "answer_id": answer["answer_id"]}
    assert client.post("/api/feedback", json=vote, headers=basic("staff", "pw1")).status_code == 200
    assert client.get("/api/feedback", headers=basic("staff", "pw1")).status_code == 403
    rows = client.get("/api/feedback", headers=basic("boss", "pw2")).json()
    assert {r["answer_id"] for r in rows} == {answer["answer_id"], refused["answer_id"]}
    down = client.get("/api/feedback", params={"only": "down"}, headers=basic("boss", "pw2")).json()
    assert [r["answer_id"] for r in down] == [answer["answer_id"]]
    assert [r["answer_id"] for r in client.get("/api/feedback", params={"only": "refused"},
                                               headers=basic("boss", "pw2")).json()] == [refused["answer_id"]]
