"""Issue 18's bad input, through `rag add` into a new, empty library: a document that is one long line, one that is all
headings, a table-only page, a 2,000-article code, a document in traditional characters, one whose title line is
missing — each indexed with a sensible title and structure, or refused with a Chinese message and nothing indexed.
(Scanned PDFs: tests/test_ocr.py.) The documents are made from a real regulation of ../shared/corpus-dev."""

import datetime as dt
import re

import pytest

from rag.ingest.chunking import chunk_document, find_headings
from rag.ingest.documents import load_document
from rag.language.text import simplified
from rag.models.embedders import FakeEmbedder
from rag.search.retrieval import Retriever
from rag.settings import PROJECT_ROOT
from rag.store.embedded import load_index
from rag.store.library import add_documents, list_documents

from .conftest import make_settings

REGULATION = PROJECT_ROOT.parent / "shared" / "corpus-dev" / "docs" / "chongqing-patent-promotion-protection-regulation-2011.txt"
TITLE = "重庆市专利促进与保护条例"


@pytest.fixture
def regulation() -> str:
    if not REGULATION.exists():
        pytest.fail("../shared/corpus-dev is missing: CI runs with ../shared beside the clone")
    return REGULATION.read_text(encoding="utf-8")


@pytest.fixture
def empty_library(tmp_path):
    return make_settings(tmp_path / "data", tmp_path / "index")


def _add(settings, name: str, text: str | bytes):
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return add_documents(settings, FakeEmbedder(), [(name, raw)])


def _rows(settings) -> list[dict]:
    if not (settings.index_dir / "config.json").exists() and not any(settings.index_dir.glob("*")):
        return []
    return list_documents(load_index(settings.index_dir, FakeEmbedder()), dt.date(2026, 1, 1))


def _row(settings, doc_id: str) -> dict:
    return next(d for d in _rows(settings) if d["doc_id"] == doc_id)


def test_the_first_document_goes_into_a_new_empty_library(empty_library, regulation):
    report = _add(empty_library, "条例.txt", regulation)
    assert report.added == ["条例"] and not report.failed
    assert _row(empty_library, "条例")["title"] == TITLE


def test_a_document_run_together_on_one_line_gets_its_title_and_articles(empty_library, regulation):
    one_line = re.sub(r"\s*\n\s*", "", regulation.replace("## ", ""))
    assert "\n" not in one_line.strip()
    report = _add(empty_library, "one-line.txt", one_line)
    assert report.added == ["one-line"]
    assert _row(empty_library, "one-line")["title"] == TITLE
    doc = load_document(empty_library.data_dir / "one-line.txt")
    paths = [" ".join(c.section_path) for c in chunk_document(doc)]
    assert any("第二章" in p for p in paths) and any("第三条" in p for p in paths)
    assert not any("第一条" in p and "总则" in p and len(p) > 20 for p in paths)  # the chapter title stops at 第一条


@pytest.mark.parametrize("name, text", [
    ("提纲.md", "# 重庆市专利促进与保护条例\n\n## 第一章 总则\n\n## 第二章 专利促进\n\n## 第三章 专利保护\n"),
    ("headings.txt", "第一章 总则\n第二章 专利促进\n第三章 专利保护\n第四章 法律责任\n"),
])
def test_a_document_of_headings_only_is_refused_in_chinese_and_nothing_is_indexed(empty_library, name, text):
    report = _add(empty_library, name, text)
    assert not report.added and len(report.failed) == 1
    assert "没有正文" in report.failed[0]["message"] and name in report.failed[0]["message"]
    assert _rows(empty_library) == []


def test_a_page_that_is_only_a_table_is_named_by_its_page_title_else_by_its_file_name(empty_library):
    rows = [("西湖龙井", "浙江省杭州市"), ("五常大米", "黑龙江省五常市"), ("赣南脐橙", "江西省赣州市"), ("安溪铁观音", "福建省安溪县")]
    table = "<tr><th>序号</th><th>产品名称</th><th>所在地</th></tr>" + "".join(
        f"<tr><td>{i}</td><td>{a}</td><td>{b}</td></tr>" for i, (a, b) in enumerate(rows, 1))
    titled = f"<html><head><meta charset='utf-8'><title>地理标志产品名单_国家知识产权局</title></head><body><table>{table}</table></body></html>"
    untitled = f"<html><head><meta charset='utf-8'></head><body><table>{table}</table></body></html>"
    _add(empty_library, "page.html", titled)
    _add(empty_library, "示范区产品名单.html", untitled)
    _add(empty_library, "list-2021.html", untitled)
    assert _row(empty_library, "page")["title"] == "地理标志产品名单"
    assert _row(empty_library, "示范区产品名单")["title"] == "示范区产品名单"
    assert _row(empty_library, "list-2021")["title"] == "list-2021"  # not the table's header row
    index = load_index(empty_library.index_dir, FakeEmbedder())
    top = Retriever(index, FakeEmbedder(), empty_library).search("赣南脐橙在哪里", k=1)[0]
    assert "江西省赣州市" in top.chunk.text


def test_a_document_in_traditional_characters_is_read_searched_and_cited_as_simplified(empty_library, regulation):
    from opencc import OpenCC

    traditional = OpenCC("s2t").convert(regulation)
    assert "專利" in traditional and "條例" in traditional
    _add(empty_library, "traditional.txt", traditional)
    row = _row(empty_library, "traditional")
    assert row["title"] == TITLE and row["region"] == "重庆市"
    index = load_index(empty_library.index_dir, FakeEmbedder())
    top = Retriever(index, FakeEmbedder(), empty_library).search("重庆 专利专项资金 用于什么", k=1)[0]
    assert top.chunk.doc_id == "traditional" and "专利专项资金" in top.chunk.text
    assert simplified(top.chunk.text) == top.chunk.text and top.chunk.section_path  # 第X條 headings read as 第X条


def test_a_document_without_its_title_line_is_named_by_its_file_or_its_first_sentence(empty_library, regulation):
    body = regulation.split("\n", 1)[1]  # the title line cut off
    _add(empty_library, "重庆市专利条例.txt", body)
    _add(empty_library, "doc-7.txt", body)
    assert _row(empty_library, "重庆市专利条例")["title"] == "重庆市专利条例"
    untitled = _row(empty_library, "doc-7")["title"]
    assert not untitled.startswith(("第一章", "总则", "2007")) and untitled.startswith("为鼓励发明创造")


def _cn(n: int) -> str:
    digits = "零一二三四五六七八九"
    out = ""
    for value, unit in ((n // 1000, "千"), (n // 100 % 10, "百"), (n // 10 % 10, "十")):
        if value:
            out += ("" if unit == "十" and value == 1 and n < 20 else digits[value]) + unit
        elif out and not out.endswith("零") and n % (10 if unit == "十" else 100 if unit == "百" else 1000):
            out += "零"
    return out + (digits[n % 10] if n % 10 else "")


def test_a_code_of_two_thousand_articles_is_indexed_with_every_article(empty_library, regulation):
    sentences = [s for s in re.findall(r"[^。\n]{8,}。", regulation) if not s.startswith(("第", "#"))]
    parts = ["示例法典"]
    for n in range(1, 2001):
        if n % 100 == 1:
            parts.append(f"第{_cn(n // 100 + 1)}章 第{n // 100 + 1}部分")
        parts.append(f"第{_cn(n)}条 {sentences[n % len(sentences)]}")
    report = _add(empty_library, "code.txt", "\n".join(parts) + "\n")
    assert report.added == ["code"] and not report.failed
    doc = load_document(empty_library.data_dir / "code.txt")
    chunks = chunk_document(doc)
    covered = "".join(c.text for c in chunks)
    assert all(f"第{_cn(n)}条" in covered for n in (1, 10, 101, 999, 1000, 1500, 2000))
    articles = [h.marker for h in find_headings(doc.text) if h.kind == "article"]
    assert articles == [f"第{_cn(n)}条" for n in range(1, 2001)]  # 第一千四百九十九条 is a heading too
    assert _row(empty_library, "code")["title"] == "示例法典"
    assert max(len(c.text) for c in chunks) < 1200


def test_a_question_naming_an_article_gets_that_article_first(empty_library, regulation):
    """A 2,000-article code asked about one article by its number, in Chinese numerals or digits; a cross-reference
    to the article inside another article's sentence is not the article."""
    from rag.answer.retrieve import retrieve, understand_question
    from rag.engine import Engine

    sentences = [s for s in re.findall(r"[^。\n]{8,}。", regulation) if not s.startswith(("第", "#"))]
    parts = ["示例法典"]
    for n in range(1, 2001):
        text = sentences[n % len(sentences)]
        if n == 1499:
            text = "违反本法第一千五百条规定的，由专利管理部门责令改正。"
        parts.append(f"第{_cn(n)}条 {text}")
    _add(empty_library, "code.txt", "\n".join(parts) + "\n")
    engine = Engine(empty_library, embedder=FakeEmbedder(), index=load_index(empty_library.index_dir, FakeEmbedder()))
    for question in ("示例法典第一千五百条是怎么规定的", "第1500条讲的什么"):
        first = retrieve(understand_question(question, None, engine), engine)[0].chunk
        assert re.search(f"(?:^|\n)第{_cn(1500)}条", first.text), (question, first.text[:80])
