"""Scanned PDFs and pictures in Word files read by OCR (rapidocr on the CPU): text in reading order, paragraphs whole,
headings at line starts, each row's place on its page; limits and empty scans refused in Chinese; progress told page by
page through the conversion child; the document view shows the scanned page with the cited rows marked."""

import io
import re

import pytest
from fastapi.testclient import TestClient

from rag.engine import Engine
from rag.errors import CorpusError
from rag.evaluation.ocr_bench import accuracy
from rag.evaluation.scans import font_path, page_images, scan_pdf
from rag.ingest.convert_worker import ConvertWorker
from rag.ingest.converters import OcrOptions, convert
from rag.ingest.ocr import Box, full_width, page_lines
from rag.models.embedders import FakeEmbedder
from rag.store.library import add_documents, ensure_index
from rag.web.api import create_api

needs_font = pytest.mark.skipif(font_path() is None, reason="fonts-wqy-zenhei (installed by `make browser`) is missing")

TEXT = """海州市专利转化专项资金管理办法
第一章  总则
第一条  为促进专利技术转化实施，提高专利运用效益，根据有关规定，结合本市实际，制定本办法。本办法所称专项资金，是指市财政预算安排用于支持专利转化实施的资金。
第二条  专项资金每年安排3000万元，由市知识产权局会同市财政局管理。
第二章  支持范围
第三条  有下列情形之一的，可以申请专项资金：
（一）专利权人在本市实施发明专利的；
（二）高校院所向本市企业转让或者许可专利的。
"""


def test_rows_of_a_page_are_read_in_order_and_wrapped_paragraphs_are_joined():
    # two paragraphs set with a first-line indent; the first wraps at the right margin; a heading between them
    h = 20.0
    boxes = [Box("第二条", 100, 100, 160, 120, 0.99), Box("专项资金每年安排3000万元，由市知", 170, 101, 900, 121, 0.98),
             Box("识产权局会同市财政局管理。", 100, 140, 500, 160, 0.97),
             Box("第二章  支持范围", 400, 180, 600, 200, 0.99),
             Box("有下列情形之一的，可以申请专项", 140, 220, 900, 240, 0.99),
             Box("资金：", 100, 260, 160, 280, 0.99), Box("（一）专利权人在本市实施发明专利的；", 100, 300, 880, 300 + h, 0.99)]
    lines = page_lines(boxes, 1000.0, 1400.0)
    assert [line.text for line in lines] == ["第二条专项资金每年安排3000万元，由市知识产权局会同市财政局管理。", "第二章  支持范围",
                                             "有下列情形之一的，可以申请专项资金：", "（一）专利权人在本市实施发明专利的；"]
    first = lines[0]
    assert len(first.rows) == 2 and first.text[first.rows[1][0]:first.rows[1][1]] == "识产权局会同市财政局管理。"
    left, top, right, bottom = first.rows[1][2]
    assert (left, top, right, bottom) == (0.1, round(140 / 1400, 4), 0.5, round(160 / 1400, 4))


def test_ascii_punctuation_beside_chinese_becomes_full_width():
    assert full_width("2020年底,知识产权(一)指导思想:好") == "2020年底，知识产权（一）指导思想：好"
    assert full_width("实施方案(2020)") == "实施方案（2020）"
    assert full_width("version 1.2 (beta), ok") == "version 1.2 (beta), ok"


@needs_font
def test_a_scanned_pdf_is_read_with_its_structure_and_the_place_of_each_row():
    read = convert("办法扫描件.pdf", scan_pdf(TEXT))
    assert read.ocr_pages == [1] and read.pages == [0]
    assert accuracy(read.text, TEXT) >= 0.95, read.text
    lines = read.text.splitlines()
    assert "第一章总则" in [re.sub(r"\s+", "", line) for line in lines]  # a heading stays a line of its own
    first = next(line for line in lines if line.startswith("第一条"))
    assert first.rstrip("。").endswith("用于支持专利转化实施的资金")  # the paragraph wrapped over three rows is one line
    assert any(line.startswith("（二）") for line in lines)  # an item starts its line
    for start, end, page, left, top, right, bottom in read.ocr_rows:
        assert page == 1 and 0 <= left < right <= 1 and 0 <= top < bottom <= 1 and read.text[start:end].strip()
    tops = [row[4] for row in read.ocr_rows]
    assert tops == sorted(tops)  # rows in reading order


@needs_font
def test_a_page_photographed_at_an_angle_is_still_read():
    read = convert("斜拍.pdf", scan_pdf(TEXT, angle=2.5, seed=3))
    assert accuracy(read.text, TEXT) >= 0.9, read.text
    assert "3000万元" in read.text


@needs_font
@pytest.mark.parametrize("turn", [90, 180])
def test_a_page_scanned_sideways_or_upside_down_is_read_the_right_way_up(turn, tmp_path):
    from rag.web.docview import page_jpeg

    pdf = scan_pdf(TEXT, turn=turn)
    read = convert("倒放.pdf", pdf)
    assert read.ocr_turns == [(1, turn)]  # turned anticlockwise on the scanner, read turned back clockwise
    assert accuracy(read.text, TEXT) >= 0.95 and read.text.startswith("海州市专利转化专项资金管理办法\n")
    (tmp_path / "倒放.pdf").write_bytes(pdf)
    from PIL import Image

    shown = Image.open(io.BytesIO(page_jpeg(tmp_path / "倒放.pdf", "x", 1, read.ocr_turns[0][1])))
    assert shown.height > shown.width  # the page image is shown the way up it was read


@needs_font
def test_a_scan_with_no_text_and_the_limits_get_chinese_messages():
    blank = scan_pdf("\u3000")  # one empty, speckled page
    with pytest.raises(CorpusError) as empty:
        convert("空白扫描.pdf", blank)
    assert "没有识别出文字" in empty.value.user_message
    three_pages = scan_pdf("\n".join([TEXT] * 6))
    with pytest.raises(CorpusError) as over:
        convert("长扫描件.pdf", three_pages, OcrOptions(max_pages=1))
    assert "上限 1 页" in over.value.user_message and "拆分" in over.value.user_message
    with pytest.raises(CorpusError) as off:
        convert("扫描件.pdf", blank, OcrOptions(enabled=False))
    assert "文字识别已关闭" in off.value.user_message and "RAG_OCR=0" in off.value.user_message


@needs_font
def test_pictures_inside_a_word_file_are_read_in_place():
    import docx

    image = page_images("第二条  专项资金每年安排3000万元。", noise=False)[0].crop((0, 0, 1240, 400))
    png = io.BytesIO()
    image.save(png, "PNG")
    document = docx.Document()
    document.add_paragraph("海州市专利转化专项资金管理办法")
    document.add_paragraph("附件的扫描页如下：")
    document.add_picture(io.BytesIO(png.getvalue()))
    document.add_paragraph("第三条  本办法自发布之日起施行。")
    out = io.BytesIO()
    document.save(out)
    read = convert("办法.docx", out.getvalue())
    assert read.ocr_pictures == 1
    lines = read.text.splitlines()
    at = next(i for i, line in enumerate(lines) if "3000万元" in line)
    assert lines[at - 1] == "附件的扫描页如下：" and lines[at + 1].startswith("第三条")  # where the picture stood


@needs_font
def test_the_conversion_child_tells_each_page_and_a_scan_read_once_is_kept(tmp_path):
    pdf = scan_pdf("\n".join([TEXT] * 4))
    told = []
    with ConvertWorker(60, 0, OcrOptions(), cache_dir=tmp_path / "cache") as worker:
        first = worker.convert("两页.pdf", pdf, lambda done, total: told.append((done, total)))
    assert len(first.pages) == 2 and told == [(1, 2), (2, 2)]
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1
    with ConvertWorker(60, 0, OcrOptions(), cache_dir=tmp_path / "cache") as worker:
        again = worker.convert("两页.pdf", pdf, lambda done, total: told.append((done, total)))
        assert worker._process is None  # answered from the cache: no child was started
    assert again.text == first.text and told == [(1, 2), (2, 2)]
    with ConvertWorker(60, 0, OcrOptions(scale=2.5), cache_dir=tmp_path / "cache") as worker:
        assert worker._cache_path("两页.pdf", pdf) != ConvertWorker(60, 0, OcrOptions(),
                                                                   cache_dir=tmp_path / "cache")._cache_path("两页.pdf", pdf)


@needs_font
def test_a_scan_added_to_the_library_is_answered_cited_and_shown_as_its_page(real_settings):
    settings = real_settings.replace(today="2026-11-25", rate_limit_per_minute=0)
    embedder = FakeEmbedder()
    ensure_index(settings, embedder)
    reading = []
    report = add_documents(settings, embedder, [("海州办法扫描件.pdf", scan_pdf(TEXT))],
                           reading=lambda name, done, total: reading.append((name, done, total)))
    assert report.added == ["海州办法扫描件"] and reading == [("海州办法扫描件.pdf", 1, 1)]
    assert report.documents[0]["ocr_pages"] == 1 and report.documents[0]["title"] == "海州市专利转化专项资金管理办法"
    client = TestClient(create_api(settings, Engine(settings, embedder=embedder)))
    answer = client.post("/api/ask", json={"question": "海州市专利转化专项资金每年安排多少？"}).json()
    assert not answer["refused"] and "3000万元" in answer["answer"]
    citation = answer["citations"][0]
    assert citation["doc_id"] == "海州办法扫描件" and citation["page"] == 1
    page = client.get(citation["url"].split("#")[0])
    assert page.status_code == 200 and '<mark id="cited">' in page.text
    assert 'src="/doc/%E6%B5%B7%E5%B7%9E%E5%8A%9E%E6%B3%95%E6%89%AB%E6%8F%8F%E4%BB%B6/page/1.jpg"' in page.text
    assert page.text.count('class="row"') >= 1 and "文字识别" in page.text  # the cited rows marked on the image
    image = client.get("/doc/海州办法扫描件/page/1.jpg")
    assert image.status_code == 200 and image.content.startswith(b"\xff\xd8") and image.headers["content-type"] == "image/jpeg"
    missing = client.get("/doc/海州办法扫描件/page/9.jpg")
    assert missing.status_code == 404 and "没有第 9 页" in missing.json()["message"]
    assert client.get("/api/documents/reading").json() == []  # nothing is being read now


@needs_font
def test_questions_are_answered_while_a_long_scan_is_read(real_settings):
    import threading
    import time

    from rag.store.library import reading_now

    settings = real_settings.replace(rate_limit_per_minute=0)
    embedder = FakeEmbedder()
    ensure_index(settings, embedder)
    client = TestClient(create_api(settings, Engine(settings, embedder=embedder)))
    long_scan = scan_pdf("\n".join([TEXT] * 12))  # four pages
    added = []
    worker = threading.Thread(target=lambda: added.append(add_documents(settings, embedder, [("长扫描件.pdf", long_scan)])))
    worker.start()
    deadline = time.monotonic() + 60
    while not reading_now() and time.monotonic() < deadline:
        time.sleep(0.1)
    progress = client.get("/api/documents/reading").json()
    assert progress and progress[0]["file"] == "长扫描件.pdf" and progress[0]["total"] == 4
    answer = client.post("/api/ask", json={"question": "乌海要打造哪些特色品牌？"}).json()  # the library answers meanwhile
    assert not answer["refused"] and "乌海" in answer["answer"]
    assert reading_now(), "the scan was still being read when the answer came"
    worker.join(timeout=120)
    assert added and added[0].added == ["长扫描件"] and reading_now() == []
