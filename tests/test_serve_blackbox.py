"""Issue 19, the bar kept for F1, F3, F4 and F10: black-box against `rag serve` itself (a separate process, started
as `make run` starts it: `rag index`, then `rag serve`), over HTTP only. No login is configured, so the client at
this machine is the administrator; a forged X-Forwarded-For does not change who it is (F1/F7)."""

import os
import shutil
import subprocess
import sys
import time

import httpx
import pytest

from rag.evaluation.loadcheck import free_port
from tests.conftest import DATA

HUNAN = "hunan-2022-ip-strong-province-plan.txt"
LONG_NAME = "关于进一步加强和改进知识产权快速协同保护工作推动重点产业高质量发展若干措施的实施细则及配套服务指南征求意见稿附件说明材料汇编"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("served")
    data = tmp / "data"
    shutil.copytree(DATA, data)
    port = free_port()
    env = os.environ | {"RAG_DATA_DIR": str(data), "RAG_INDEX_DIR": str(tmp / "index"), "RAG_EMBEDDER": "fake",
                        "RAG_LLM_BACKEND": "extractive", "RAG_PORT": str(port), "RAG_HOST": "127.0.0.1",
                        "RAG_FEEDBACK_PATH": str(tmp / "feedback.jsonl"), "RAG_RATE_LIMIT_PER_MINUTE": "0"}
    subprocess.run([sys.executable, "-m", "rag.cli", "index"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("rag serve did not start")
        yield base, data
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def upload(base: str, files: list[tuple[str, bytes]]) -> httpx.Response:
    return httpx.post(f"{base}/api/documents", files=[("files", (name, raw, "text/plain")) for name, raw in files],
                      timeout=120)


def document_text(base: str, doc_id: str) -> str:
    response = httpx.get(f"{base}/api/documents/{doc_id}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["text"]


def test_f1_a_forged_forwarded_for_is_not_the_machine_and_cannot_delete(served):
    base, data = served
    response = httpx.delete(f"{base}/api/documents/hunan-2022", headers={"X-Forwarded-For": "10.0.0.5"}, timeout=30)
    assert response.status_code == 403, response.text
    assert "管理员" in response.json()["message"]
    assert (data / HUNAN).exists()


def test_f3_a_replacement_then_a_long_chinese_name_in_one_batch(served):
    base, data = served
    replacement = "湖南省知识产权强省建设方案（修订）\n一、总体要求\n到2025年，全省每万人口高价值发明专利拥有量达到9件。\n".encode()
    response = upload(base, [(HUNAN, replacement), (f"{LONG_NAME}.txt", "某市实施细则\n第一条 本细则自发布之日起施行。\n".encode())])
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["replaced"] == ["hunan-2022"] and len(report["added"]) == 1 and not report["failed"]
    assert "到2025年，全省每万人口高价值发明专利拥有量达到9件" in document_text(base, "hunan-2022")
    assert "本细则自发布之日起施行" in document_text(base, report["added"][0])
    assert not list(data.glob(".backup-*")) and not list(data.glob(".partial-*"))
    listed = {row["doc_id"] for row in httpx.get(f"{base}/api/documents", timeout=30).json()}
    assert {"hunan-2022", report["added"][0]} <= listed


def test_f4_two_files_of_one_name_from_different_folders_stay_two_documents(served):
    base, data = served
    first = "关于开展专利转化专项行动的通知\n一、各区县于6月30日前报送转化项目清单。\n".encode()
    second = "关于开展商标品牌指导站建设的通知\n一、每个区县至少建设1家商标品牌指导站。\n".encode()
    response = upload(base, [("通知.txt", first), ("通知.txt", second)])
    assert response.status_code == 200, response.text
    added = response.json()["added"]
    assert len(added) == 2 and len(set(added)) == 2
    texts = [document_text(base, doc_id) for doc_id in added]
    assert "6月30日前报送转化项目清单" in texts[0] and "商标品牌指导站" in texts[1]
    page = httpx.get(f"{base}/doc/{added[0]}", params={"start": 0, "end": 10}, timeout=30).text
    assert "专利转化专项行动" in page and "商标品牌指导站建设" not in page
    assert sorted(p.name for p in data.glob("通知*.txt")) == ["通知-2.txt", "通知.txt"]


def test_f10_long_file_names_are_bounded_in_bytes_and_keep_their_type(served):
    base, data = served
    for name in (f"{LONG_NAME}二.txt", "a" * 130 + ".txt"):
        response = upload(base, [(name, "某县知识产权工作要点\n一、全年办理专利质押融资5亿元。\n".encode())])
        assert response.status_code == 200, response.text
        report = response.json()
        assert len(report["added"]) == 1 and not report["failed"]
    names = [p.name for p in data.iterdir() if p.suffix == ".txt"]
    assert all(len(n.encode()) <= 150 for n in names)
    assert any(n.startswith("aaaa") for n in names)
