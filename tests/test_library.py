"""The knowledge base: formats, faults, document facts without a manifest, chunking of unseen layouts, incremental
adds and removals, validity."""

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.errors import CorpusError
from rag.ingest.chunking import chunk_document
from rag.ingest.converters import convert
from rag.ingest.documents import load_document
from rag.models.embedders import FakeEmbedder
from rag.search.retrieval import Retriever
from rag.store.embedded import SEGMENTS, load_index, read_config
from rag.store.library import add_documents, ensure_index, list_documents, remove_document, sync_index

from .makedocs import HTML_PAGE, docx_bytes, pdf_bytes

LAYOUTS = Path(__file__).parent / "layouts"


class CountingEmbedder(FakeEmbedder):
    """The fake embedder, counting the passages it is asked to embed."""

    def __init__(self, dim: int = 256):
        super().__init__(dim)
        self.embedded = 0

    def embed_documents(self, texts):
        self.embedded += len(texts)
        return super().embed_documents(texts)


def sections(doc) -> list[str]:
    return [c.section for c in chunk_document(doc)]


# ---------------------------------------------------------------- layouts the five documents do not have

def test_regulation_with_chapters_and_articles():
    doc = load_document(LAYOUTS / "regulation.txt")
    paths = sections(doc)
    assert "第一章总则" in paths[1] and any(p.startswith("第二章保护措施") for p in paths)
    assert any(p == "第三章附则 › 第六条" for p in paths)
    assert doc.title == "云岭县知识产权保护办法" and doc.region == "云岭县" and "云岭" in doc.aliases
    assert doc.facts["period"].value == "2024-2029"  # 自2024年5月1日起施行，有效期五年


def test_chapters_and_sections_and_title_years():
    doc = load_document(LAYOUTS / "chapters.txt")
    paths = sections(doc)
    assert paths[0] == "（正文前言）" and paths[-1] == "第三章保障措施 › 第一节资金保障"
    assert doc.facts["period"].value == "2023-2025"


def test_news_without_headings_is_one_body_section():
    doc = load_document(LAYOUTS / "news.txt")
    assert set(sections(doc)) == {"正文"} and not doc.facts.get("period")


def test_word_heading_styles_become_sections_and_facts_come_from_the_text():
    doc = load_document(Path("滨海数据登记办法.docx"), raw=docx_bytes())
    paths = sections(doc)
    assert "总体要求" in paths and "激励措施" in paths and any(p.endswith("登记机构") for p in paths)
    assert doc.title == "滨海市数据知识产权登记管理暂行办法" and doc.format == "docx"
    assert doc.facts["doc_number"].value == "滨市监规〔2025〕3号" and doc.facts["issuer"].value == "滨海市市场监督管理局"
    assert doc.facts["period"].value == "2025-2027" and doc.region == "滨海市"
    number = doc.facts["doc_number"]
    assert doc.text[number.start:number.end] == "滨市监规〔2025〕3号"  # offsets point into the converted text


def test_pdf_pages_and_numbered_headings():
    doc = load_document(Path("海州专利转化.pdf"), raw=pdf_bytes())
    chunks = chunk_document(doc)
    assert [c.section for c in chunks][1:] == ["一、工作目标", "二、重点任务", "三、保障措施"]
    assert doc.page_of(chunks[-1].start) == 2 and doc.page_of(chunks[1].start) == 1
    assert "- 2 -" not in doc.text  # page numbers are furniture
    assert doc.facts["period"].value == "2024-2026" and doc.region == "海州市"


def test_government_web_page_body_without_furniture():
    doc = load_document(Path("江宁纲要.html"), raw=HTML_PAGE.encode())
    assert "无障碍" not in doc.text and "打印" not in doc.text and "网站标识码" not in doc.text and "首页" not in doc.text
    assert "每万人口高价值发明专利拥有量达到18件" in doc.text
    assert {"战略目标", "重点任务"} <= set(sections(doc))
    assert doc.facts["doc_number"].value == "江政发〔2021〕12号" and doc.facts["period"].value == "2021-2035"
    gbk = HTML_PAGE.replace('charset="utf-8"', 'charset="gb2312"').encode("gb18030")
    assert "每万人口高价值发明专利" in load_document(Path("江宁.htm"), raw=gbk).text


# ---------------------------------------------------------------- faults: a clear message naming the file

@pytest.mark.parametrize("name, raw, words", [
    ("扫描件.pdf", pdf_bytes(image_only=True), ["扫描件.pdf", "没有识别出文字"]),
    ("加密.pdf", pdf_bytes(password="secret"), ["加密.pdf", "密码"]),
    ("坏的.pdf", b"%PDF-1.4\n1 0 obj garbage", ["坏的.pdf", "损坏"]),
    ("坏的.docx", b"PK\x03\x04 not really a zip", ["坏的.docx", "损坏"]),
    ("加密.docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600, ["加密.docx", "密码"]),
    ("旧版.doc", b"\xd0\xcf\x11\xe0", [".doc", "另存为 .docx"]),
    ("表格.xlsx", b"PK", ["表格.xlsx", "不支持"]),
    ("空的.txt", b"   \n", ["空的.txt", "空的"]),
    ("乱码.txt", bytes(range(128, 256)) * 20, ["乱码.txt", "编码"]),
    ("空网页.html", b"<html><body><div class='nav'></div></body></html>", ["空网页.html"]),
])
def test_faulty_files_get_a_message_naming_them(name, raw, words):
    with pytest.raises(CorpusError) as info:
        convert(name, raw)
    assert all(word in info.value.user_message for word in words), info.value.user_message


def test_gb18030_text_file():
    text = "测试市知识产权专项资金管理办法\n一、资金用途\n专项资金用于专利导航。".encode("gb18030")
    assert convert("资金办法.txt", text).encoding == "gb18030"


# ---------------------------------------------------------------- incremental adds and removals

def test_adding_one_document_embeds_only_its_passages(real_settings):
    embedder = CountingEmbedder()
    index, _ = ensure_index(real_settings, embedder)
    before = len(index)
    embedder.embedded = 0
    report = add_documents(real_settings, embedder, [("海州专利转化.pdf", pdf_bytes())])
    assert report.added == ["海州专利转化"] and report.passages_embedded == embedder.embedded == 4
    row = report.documents[0]
    assert row["title"].startswith("海州市专利转化运用专项行动方案") and row["period"] == "2024-2026" and row["pages"] == 2
    index = load_index(real_settings.index_dir, embedder)
    assert len(index) == before + 4 and (real_settings.data_dir / "海州专利转化.pdf").exists()
    top = Retriever(index, embedder, real_settings).search("海州专利转化专项资金每年多少", k=1)[0]
    assert top.chunk.doc_id == "海州专利转化" and "3000万元" in top.chunk.text
    # `rag index` afterwards sees nothing to do: the added file's fingerprint is recorded
    embedder.embedded = 0
    _, what = ensure_index(real_settings, embedder)
    assert what == "current" and embedder.embedded == 0


def test_replacing_and_removing(real_settings):
    embedder = CountingEmbedder()
    ensure_index(real_settings, embedder)
    add_documents(real_settings, embedder, [("通知.txt", "甲市专利奖励办法\n一、奖励标准\n每件发明专利奖励1万元。".encode())])
    report = add_documents(real_settings, embedder, [("通知.txt", "甲市专利奖励办法\n一、奖励标准\n每件发明专利奖励2万元。".encode())])
    assert report.replaced == ["通知"] and not report.added
    index = load_index(real_settings.index_dir, embedder)
    texts = [c.text for c in index.chunks if c.doc_id == "通知"]
    assert any("2万元" in t for t in texts) and not any("1万元" in t for t in texts)
    removed = remove_document(real_settings, embedder, "通知")
    assert removed.removed == ["通知"]
    index = load_index(real_settings.index_dir, embedder)
    assert all(c.doc_id != "通知" for c in index.chunks) and len(index.documents) == 5
    assert not (real_settings.data_dir / "通知.txt").exists()
    assert list((real_settings.data_dir / ".removed").iterdir())  # moved aside, not destroyed
    with pytest.raises(CorpusError) as info:
        remove_document(real_settings, embedder, "没有这篇")
    assert "没有编号为“没有这篇”的文档" in info.value.user_message


def test_a_bad_file_in_a_batch_is_reported_and_the_rest_added(real_settings):
    embedder = FakeEmbedder()
    index, _ = ensure_index(real_settings, embedder)
    report = add_documents(real_settings.replace(max_upload_mb=1), embedder, [
        ("扫描件.pdf", pdf_bytes(image_only=True)),
        ("大文件.txt", "知识产权。".encode() * 200_000),
        ("滨海数据登记办法.docx", docx_bytes()),
    ])
    assert report.added == ["滨海数据登记办法"]
    messages = {f["file"]: f["message"] for f in report.failed}
    assert "没有识别出文字" in messages["扫描件.pdf"] and "过大" in messages["大文件.txt"] and "上限 1 MB" in messages["大文件.txt"]
    assert not (real_settings.data_dir / "扫描件.pdf").exists()
    assert len(load_index(real_settings.index_dir, embedder).documents) == 6


def test_file_names_cannot_escape_the_data_directory(real_settings, tmp_path):
    embedder = FakeEmbedder()
    ensure_index(real_settings, embedder)
    report = add_documents(real_settings, embedder, [("../../evil.txt", "乙市商标奖励办法\n每件奖励五千元。".encode())])
    assert report.added == ["evil"] and (real_settings.data_dir / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists() and not (real_settings.data_dir.parent / "evil.txt").exists()


def test_flags_override_the_facts_and_survive_rag_index(real_settings):
    embedder = CountingEmbedder()
    ensure_index(real_settings, embedder)
    add_documents(real_settings, embedder, [("news.txt", (LAYOUTS / "news.txt").read_bytes())],
                  overrides={"title": "南湖区知识产权工作推进会通报", "region": "浙江省嘉兴市南湖区", "issuer": "南湖区人民政府"})
    rows = {r["doc_id"]: r for r in list_documents(load_index(real_settings.index_dir, embedder), dt.date(2026, 1, 1))}
    assert rows["news"]["title"] == "南湖区知识产权工作推进会通报" and rows["news"]["region"] == "浙江省嘉兴市南湖区"
    assert rows["news"]["issuer"] == "南湖区人民政府" and rows["news"]["status"] == "期限未说明"
    embedder.embedded = 0
    assert ensure_index(real_settings, embedder)[1] == "current" and embedder.embedded == 0


def test_many_small_adds_keep_few_segments(real_settings):
    embedder = FakeEmbedder()
    ensure_index(real_settings, embedder)
    for i in range(40):
        add_documents(real_settings, embedder, [(f"small-{i:03d}.txt", f"第{i}号通知\n一、事项\n事项编号{i}号，办理时限{i}天。".encode())])
    config = read_config(real_settings.index_dir)
    assert config["documents"] == 45 and len(config["segments"]) <= 8
    assert len(list((real_settings.index_dir / SEGMENTS).iterdir())) <= 2 * len(config["segments"]) + 2
    index = load_index(real_settings.index_dir, embedder)
    assert sum(1 for d in index.documents if d["doc_id"].startswith("small-")) == 40


def test_validity_with_a_settable_today(real_settings):
    embedder = FakeEmbedder()
    index, _ = ensure_index(real_settings, embedder)
    rows = {r["doc_id"]: r["status"] for r in list_documents(index, dt.date(2023, 6, 1))}
    assert rows == {"shenyang-2020": "在效", "wuhai-2022": "在效", "henan-2020": "已到期", "hunan-2022": "期限未说明",
                    "hangzhou-2016": "期限未说明"}
    rows = {r["doc_id"]: r["status"] for r in list_documents(index, dt.date(2026, 1, 1))}
    assert rows["shenyang-2020"] == "已到期" and rows["wuhai-2022"] == "已到期"


def test_an_interrupted_or_failed_build_leaves_the_index_as_it_was(real_settings):
    embedder = FakeEmbedder()
    before, _ = ensure_index(real_settings, embedder)

    class Broken(FakeEmbedder):
        def embed_documents(self, texts):
            raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError):
        add_documents(real_settings, Broken(), [("海州专利转化.pdf", pdf_bytes())])
    after = load_index(real_settings.index_dir, embedder)
    assert [c.chunk_id for c in after.chunks] == [c.chunk_id for c in before.chunks]
    assert not (real_settings.data_dir / "海州专利转化.pdf").exists()  # the file is taken back out too


KILL_SCRIPT = """
import sys, time
import rag.store.embedded as index_module
from rag.models.embedders import FakeEmbedder
phase = sys.argv[1]
if phase == "embedding":
    original = FakeEmbedder.embed_documents
    def slow(self, texts):
        print("EMBEDDING", flush=True)
        time.sleep(30)
        return original(self, texts)
    FakeEmbedder.embed_documents = slow
else:
    original_swap = index_module._swap
    def slow_swap(tmp, pointer):
        print("SWAPPING", flush=True)
        time.sleep(30)
        original_swap(tmp, pointer)
    index_module._swap = slow_swap
from rag.cli import main
sys.exit(main(["add", *sys.argv[2:]]))
"""


@pytest.mark.parametrize("phase, cue", [("embedding", "EMBEDDING"), ("swap", "SWAPPING")])
def test_killing_rag_add_midway_leaves_a_loadable_index_equal_to_the_one_before(real_settings, tmp_path, phase, cue):
    embedder = FakeEmbedder()
    before, _ = ensure_index(real_settings, embedder)
    generation_before = read_config(real_settings.index_dir)["_file"]
    pdf = tmp_path / "海州专利转化.pdf"
    pdf.write_bytes(pdf_bytes())
    env = os.environ | {"RAG_DATA_DIR": str(real_settings.data_dir), "RAG_INDEX_DIR": str(real_settings.index_dir),
                        "RAG_EMBEDDER": "fake"}
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, phase, str(pdf)], stdout=subprocess.PIPE, env=env, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if cue in (proc.stdout.readline() or ""):
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert read_config(real_settings.index_dir)["_file"] == generation_before
    after = load_index(real_settings.index_dir, embedder)
    assert [c.to_record() for c in after.chunks] == [c.to_record() for c in before.chunks]
    assert after.documents == before.documents
    # the next `rag index` finishes the job from data/ (the file was written before the index changed)
    index, report = sync_index(real_settings, embedder)
    assert report.added == ["海州专利转化"] and len(index) == len(before) + 4
    assert json.loads((real_settings.index_dir / read_config(real_settings.index_dir)["_file"]).read_text())["documents"] == 6


def test_cli_add_documents_remove(real_settings, tmp_path, capsys, monkeypatch):
    from rag.cli import main

    for key, value in {"RAG_DATA_DIR": real_settings.data_dir, "RAG_INDEX_DIR": real_settings.index_dir,
                       "RAG_EMBEDDER": "fake", "RAG_TODAY": "2026-11-25"}.items():
        monkeypatch.setenv(key, str(value))
    assert main(["index"]) == 0
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "滨海数据登记办法.docx").write_bytes(docx_bytes())
    (folder / "扫描件.pdf").write_bytes(pdf_bytes(image_only=True))
    capsys.readouterr()
    assert main(["add", str(folder), "--json"]) == 1  # one added, one refused: exit 1 so scripts notice
    out = json.loads(capsys.readouterr().out)
    assert out["added"] == ["滨海数据登记办法"] and "没有识别出文字" in out["failed"][0]["message"]
    assert main(["documents", "--json"]) == 0
    rows = {r["doc_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows["滨海数据登记办法"]) >= {"doc_id", "title", "issuer", "region", "date", "doc_number", "period", "status",
                                        "passages"}
    assert rows["滨海数据登记办法"]["status"] == "在效" and rows["wuhai-2022"]["status"] == "已到期"
    assert main(["documents", "--json", "--in-force"]) == 0
    assert "wuhai-2022" not in {r["doc_id"] for r in json.loads(capsys.readouterr().out)}
    assert main(["remove", "滨海数据登记办法"]) == 0 and "已删除 1 篇" in capsys.readouterr().out
    assert main(["remove", "滨海数据登记办法"]) == 2 and "没有编号为" in capsys.readouterr().err


def test_expired_clause_follows_the_date_and_in_force_filters(real_settings):
    from rag.answer.pipeline import answer
    from rag.engine import Engine

    embedder = FakeEmbedder()
    index, _ = ensure_index(real_settings, embedder)
    question = "乌海市到2025年每万人发明专利拥有量的目标是多少？"
    before = answer(question, engine=Engine(real_settings.replace(today="2024-06-01"), embedder=embedder, index=index))
    after = answer(question, engine=Engine(real_settings.replace(today="2026-02-01"), embedder=embedder, index=index))
    assert "已到期" not in before.answer and after.answer.endswith("（该文件期限为2021—2025年，已到期）")
    retriever = Retriever(index, embedder, real_settings.replace(today="2026-02-01"))
    hits = retriever.search("知识产权质押融资", k=20, filters={"in_force": True})
    assert hits and {h.chunk.doc_id for h in hits} <= {"hunan-2022", "hangzhou-2016"}


@pytest.mark.parametrize("text, region, period", [
    ("广西壮族自治区知识产权局关于印发专利奖励办法的通知\n各市：\n本办法自2023年1月1日起实施，有效期3年。\n", "广西壮族自治区", "2023-2026"),
    ("延边朝鲜族自治州人民政府办公室\n关于加强商标工作的意见\n", "延边朝鲜族自治州", None),
    ("苏州工业园区知识产权促进办法\n本办法有效期为五年，自2022年3月1日起施行。\n", "苏州工业园区", "2022-2027"),
])
def test_regions_and_validity_clauses_in_phrasings_the_rules_were_not_written_for(text, region, period):
    from rag.ingest.docfacts import extract_facts

    facts = extract_facts(text)
    assert facts["region"].value == region
    assert (facts["period"].value if "period" in facts else None) == period


def test_one_batch_with_two_files_of_the_same_name_keeps_both(real_settings):
    from rag.models.embedders import FakeEmbedder
    from rag.store.embedded import load_index
    from rag.store.library import add_documents, list_documents, today_of

    embedder = FakeEmbedder()
    first = "甲市专利奖励办法\n第一条 甲市对发明专利奖励五千元。\n".encode()
    second = "乙市商标奖励办法\n第一条 乙市对驰名商标奖励十万元。\n".encode()
    report = add_documents(real_settings, embedder, [("a/通知.txt", first), ("b/通知.txt", second)])
    assert len(report.added) == 2, report.message
    assert (real_settings.data_dir / "通知.txt").read_bytes() == first
    assert (real_settings.data_dir / "通知-2.txt").read_bytes() == second
    index = load_index(real_settings.index_dir, embedder)
    titles = {r["title"] for r in list_documents(index, today_of(real_settings))}
    assert {"甲市专利奖励办法", "乙市商标奖励办法"} <= titles


def test_a_long_chinese_file_name_is_shortened_in_bytes_and_keeps_its_type(real_settings):
    from rag.models.embedders import FakeEmbedder
    from rag.store.library import MAX_NAME_BYTES, add_documents

    name = "关于进一步加强和改进知识产权质押融资工作促进中小微企业创新发展若干措施的通知" * 3 + ".txt"
    report = add_documents(real_settings, FakeEmbedder(), [(name, "某市办法\n第一条 本办法自发布之日起施行。\n".encode())])
    assert len(report.added) == 1 and not report.failed, report.message
    stored = [p for p in real_settings.data_dir.iterdir() if p.name.startswith("关于进一步")]
    assert len(stored) == 1 and stored[0].suffix == ".txt"
    assert len(stored[0].name.encode("utf-8")) <= MAX_NAME_BYTES


def test_a_batch_that_fails_half_way_changes_nothing(real_settings, monkeypatch):
    """Issue 19 F3/F9: a replacement, then a file that cannot be written (disk full): the replaced file is back, nothing
    half-written stays in data/, the index is as it was, and the message is Chinese."""
    from pathlib import Path

    from rag.errors import CorpusError
    from rag.models.embedders import FakeEmbedder
    from rag.store.library import add_documents, ensure_index

    embedder = FakeEmbedder()
    ensure_index(real_settings, embedder)
    original = (real_settings.data_dir / "hunan-2022-ip-strong-province-plan.txt").read_bytes()
    before = sorted(p.name for p in real_settings.data_dir.iterdir())
    real_write = Path.write_bytes

    def full_disk(self, data):
        if "新文件" in self.name:
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    replacement = "湖南省替换版\n第一条 替换。\n".encode()
    with pytest.raises(CorpusError) as failed:
        add_documents(real_settings, embedder, [("hunan-2022-ip-strong-province-plan.txt", replacement),
                                                ("新文件.txt", "新办法\n第一条 新。\n".encode())])
    assert "没有改变任何文档" in failed.value.user_message
    monkeypatch.undo()
    assert (real_settings.data_dir / "hunan-2022-ip-strong-province-plan.txt").read_bytes() == original
    assert sorted(p.name for p in real_settings.data_dir.iterdir()) == before
    assert ensure_index(real_settings, embedder)[1] == "current"


def test_what_a_killed_add_leaves_behind_is_cleared_by_the_next_index(real_settings):
    """Issue 19 F14: `.partial-*` and `.backup-*` files in data/ do not stay for ever."""
    from rag.models.embedders import FakeEmbedder
    from rag.store.library import ensure_index

    ensure_index(real_settings, FakeEmbedder())
    (real_settings.data_dir / ".partial-123-a.txt").write_text("half", encoding="utf-8")
    (real_settings.data_dir / ".backup-123-hunan.txt").write_text("old", encoding="utf-8")
    ensure_index(real_settings, FakeEmbedder())
    assert not list(real_settings.data_dir.glob(".partial-*")) and not list(real_settings.data_dir.glob(".backup-*"))


def test_removed_originals_are_kept_for_the_configured_days_counted_from_the_removal(real_settings):
    """Issue 19 F14: data/.removed/ does not grow for ever, and a document removed today is not dropped because its
    file is old."""
    import os
    import time

    from rag.models.embedders import FakeEmbedder
    from rag.store.library import ensure_index, remove_document

    embedder = FakeEmbedder()
    ensure_index(real_settings, embedder)
    source = real_settings.data_dir / "hangzhou-2016-ip-strong-city-opinions.txt"
    os.utime(source, (time.time() - 400 * 86400,) * 2)  # uploaded long ago
    remove_document(real_settings, embedder, "hangzhou-2016")
    trash = real_settings.data_dir / ".removed"
    (kept,) = list(trash.iterdir())
    stale = trash / "20200101-000000-old.txt"
    stale.write_text("removed long ago", encoding="utf-8")
    os.utime(stale, (time.time() - 100 * 86400,) * 2)
    ensure_index(real_settings.replace(removed_keep_days=90), embedder)
    assert kept.exists() and not stale.exists()


def test_a_feedback_line_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """Issue 19 F9: a line torn by a crash does not swallow the next record, and one a full disk tears is cut back."""
    import errno
    import os

    import pytest

    from rag.web.feedback import JsonLog

    path = tmp_path / "feedback.jsonl"
    path.write_text('{"answer_id": "a1", "vote": "up"}\n{"answer_id": "a2", "vo', encoding="utf-8")  # torn by a crash
    log = JsonLog(path)
    log.append({"answer_id": "a3", "vote": "down"})
    assert [r["answer_id"] for r in log.read()] == ["a1", "a3"]
    before = path.read_bytes()

    real_write = os.write

    def disk_full(fd, data):
        real_write(fd, data[: len(data) // 2])  # the disk takes half the line, then is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError):
        log.append({"answer_id": "a4", "vote": "up"})
    monkeypatch.setattr(os, "write", real_write)
    assert path.read_bytes() == before  # nothing of the torn line stays
    log.append({"answer_id": "a5", "vote": "up"})
    assert [r["answer_id"] for r in log.read()] == ["a1", "a3", "a5"]
