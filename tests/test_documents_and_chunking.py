import re

import pytest

from rag.errors import CorpusError
from rag.ingest.chunking import ChunkerConfig, chunk_document, find_headings, split_span
from rag.ingest.converters import decode_bytes
from rag.ingest.documents import load_corpus, mask_chrome
from rag.language.tokens import count_tokens

from .conftest import DATA

HEADING_ONLY = re.compile(r"^([一二三四五六七八九十]+、|[（(][一二三四五六七八九十]+[）)]|\d+[.．]|第.{1,4}[章条])[^。；]{0,40}$")


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(DATA)


def test_manifest_gives_titles_regions_and_numbers(corpus):
    docs = corpus.by_id()
    assert set(docs) == {"henan-2020", "hangzhou-2016", "wuhai-2022", "shenyang-2020", "hunan-2022"}
    assert docs["wuhai-2022"].doc_number == "乌市监知字〔2022〕169号"
    assert docs["henan-2020"].region == "河南省"
    assert all(d.in_manifest and d.title and d.issuer and d.date for d in corpus.documents)


def test_chrome_is_masked_without_moving_offsets(corpus):
    wuhai = corpus.by_id()["wuhai-2022"]
    raw = wuhai.path.read_text(encoding="utf-8")
    assert len(wuhai.text) == len(raw)
    assert "无障碍" not in wuhai.text and "浏览次数" not in wuhai.text and "打印 关闭" not in wuhai.text
    assert "乌市监知字〔2022〕169号" in wuhai.text  # body text kept
    henan = corpus.by_id()["henan-2020"]
    assert "验证码" not in henan.text and "郑重声明" not in henan.text
    assert "附件:2020年推动知识产权高质量发展任务清单" in henan.text


@pytest.mark.parametrize("doc_id", ["henan-2020", "hangzhou-2016", "wuhai-2022", "shenyang-2020", "hunan-2022"])
def test_every_document_chunks_cleanly(corpus, doc_id):
    doc = corpus.by_id()[doc_id]
    config = ChunkerConfig()
    chunks = chunk_document(doc, config)
    assert len(chunks) >= 15
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text  # offsets round-trip to the source
        assert chunk.text.strip() == chunk.text and chunk.text
        assert not HEADING_ONLY.match(chunk.text.strip()), chunk.text
        assert count_tokens(chunk.text) <= config.max_tokens * 1.05
        assert chunk.header.startswith(doc.region) and doc.title in chunk.header
    # every character of the body is in some chunk, in order
    covered = "".join(c.text for c in chunks)
    body = re.sub(r"\s", "", doc.text)
    assert len(re.sub(r"\s", "", covered)) >= len(body) * 0.99
    assert sum(1 for c in chunks if c.section_path) >= len(chunks) * 0.8


def test_section_paths_follow_the_heading_tree(corpus):
    chunks = chunk_document(corpus.by_id()["wuhai-2022"])
    by_text = {c.chunk_id: c for c in chunks}
    target = next(c for c in by_text.values() if "积极稳妥发展知识产权金融" in c.text)
    assert target.section_path[:2] == ["四、主要措施", "（二）提升知识产权运用水平,助推实体经济创新发展"]
    assert target.section_short.startswith("四、（二）")


def test_inline_single_line_document_gets_its_headings(corpus):
    shenyang = corpus.by_id()["shenyang-2020"]
    assert shenyang.text.count("\n") < 10  # the body really is one long line
    paths = [" › ".join(h.path) for h in find_headings(shenyang.text)]
    assert "一、总体要求 › （一）指导思想" in paths
    assert "二、主要任务 › （四）实施知识产权金融创新赋能工程 › 13.开展知识产权证券化工作" in paths
    assert "三、保障措施 › （四）强化绩效考评" in paths
    assert not any("1.市场主导" in p and "（二）" not in p for p in paths)


def test_fixture_inline_and_articles(fixture_corpus):
    corpus = load_corpus(fixture_corpus)
    docs = corpus.by_id()
    inline = chunk_document(docs["demo-inline"], ChunkerConfig(max_tokens=90))
    assert any(c.section_path and c.section_path[-1].startswith("2.促进地理标志运用") for c in inline)
    task = next(c for c in inline if "培育高价值专利" in c.text)
    assert "[牵头单位:市市场监管局;责任单位:市科技局]" in task.text  # responsible units stay with their task
    articles = find_headings(docs["demo-articles"].text)
    assert [h.path for h in articles][:2] == [("第一章总则",), ("第一章总则", "第一条")]
    assert ("第二章保护措施", "第三条") in [h.path for h in articles]


def test_gb18030_no_headings_and_unreadable_files(fixture_corpus):
    corpus = load_corpus(fixture_corpus)
    docs = corpus.by_id()
    assert docs["gbk"].encoding == "gb18030" and "商标注册量达到三千件" in docs["gbk"].text
    assert docs["gbk"].title == "一、总体目标"  # no manifest entry: the first line
    plain = chunk_document(docs["noheadings"])
    assert len(plain) == 1 and plain[0].section_path == ["正文"] and "十五项" in plain[0].text
    assert [name for name, _ in corpus.skipped] == ["binary.txt"]


def test_decode_errors_and_empty_corpus(tmp_path):
    with pytest.raises(CorpusError):
        decode_bytes(bytes(range(128, 256)) * 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError) as info:
        load_corpus(tmp_path / "empty")
    assert "没有可读取的文档" in info.value.user_message
    with pytest.raises(CorpusError):
        load_corpus(tmp_path / "missing")


def test_long_sections_split_at_sentence_ends_evenly():
    text = "".join(f"第{i}句话讲知识产权质押融资工作的安排和要求。" for i in range(40))
    pieces = split_span(text, 0, len(text), 100)
    assert len(pieces) >= 5
    assert all(text[e - 1] == "。" for _, e in pieces)
    sizes = [count_tokens(text[s:e]) for s, e in pieces]
    assert max(sizes) <= 100 and min(sizes) >= max(sizes) * 0.5
    assert "".join(text[s:e] for s, e in pieces) == text


def test_mask_chrome_keeps_lengths():
    text = "无障碍\n正文第一行\n浏览次数: 12\n"
    masked = mask_chrome(text)
    assert len(masked) == len(text) and "正文第一行" in masked and "无障碍" not in masked


def test_a_word_file_whose_body_is_an_embedded_html_chunk_is_read():
    """altChunk: python-docx sees no paragraph; the text is the MHT part (quoted-printable HTML)."""
    from rag.ingest.converters import convert
    from rag.settings import PROJECT_ROOT

    path = PROJECT_ROOT.parent / "shared" / "corpus-dev" / "docs" / "national-patent-law-2008-superseded-text.docx"
    extracted = convert(path.name, path.read_bytes())
    assert extracted.text.startswith("中华人民共和国专利法")
    assert "第六十条" in extracted.text and "=E4" not in extracted.text
    assert any(extracted.text[start:end].startswith("第七章") for start, end, _ in extracted.outline)


def test_titles_come_from_the_real_title_line():
    from rag.ingest.documents import first_heading_line

    assert first_heading_line("# 北京市技术市场条例\n\n## 第一章 总则\n") == "北京市技术市场条例"
    assert first_heading_line("<!-- page: 1 -->\n**深圳市知识产权公共服务事项办事指南**\n（第二版）\n") == "深圳市知识产权公共服务事项办事指南"
    assert first_heading_line("2021-10-25 来源: 自然资源部网站\n关于推荐第二十三届中国专利奖的公示\n") == "关于推荐第二十三届中国专利奖的公示"
    assert first_heading_line("粤知产〔2011〕155号\n各地级以上市知识产权局:\n附件:活动项目表\n") == "粤知产〔2011〕155号"


def test_regions_are_read_from_the_division_table_not_any_word_ending_in_shi():
    from rag.ingest.docfacts import extract_facts

    assert extract_facts("浙江省技术市场条例\n第一条 为了……")["region"].value == "浙江省"
    assert extract_facts("上海市浦东新区建立高水平知识产权保护制度若干规定\n")["region"].value == "上海市浦东新区"
    assert "region" not in extract_facts("中华人民共和国专利法\n第一条 为了保护专利权人的合法权益")


def test_an_article_keeps_its_enumerated_items_and_markdown_marks_are_not_text(tmp_path):
    from rag.ingest.chunking import chunk_document
    from rag.ingest.documents import load_document

    path = tmp_path / "条例.md"
    path.write_text("# 某某省专利条例\n\n## 第一章 总则\n\n第一条 有下列情形之一的，不予受理：\n\n（一）申请文件未使用中文的；\n\n"
                    "（二）未写明申请人姓名的。\n\n第二条 本条例自2020年1月1日起施行。\n\n## 第二章 附则\n\n第三条 略。\n",
                    encoding="utf-8")
    doc = load_document(path)
    assert doc.title == "某某省专利条例"
    chunks = chunk_document(doc)
    first = next(c for c in chunks if "第一条" in c.text)
    assert "（二）未写明申请人姓名的。" in first.text  # small articles may share a passage; items never leave theirs
    assert not any("#" in c.text for c in chunks)


def test_chunking_a_long_section_without_sentence_ends_is_linear(tmp_path, monkeypatch):
    """Issue 19 F5: a section of thousands of lines with no 。 was cut with a token count of the whole remainder at
    every step (6,000 lines ≈ 13 s). The characters tokenised now grow with the text, not with its square; pieces
    end at line ends and keep every character."""
    import rag.ingest.chunking as chunking
    from rag.ingest.documents import load_document

    counted = []
    real = chunking.count_tokens
    monkeypatch.setattr(chunking, "count_tokens", lambda text: counted.append(len(text)) or real(text))
    work = {}
    for lines in (1000, 4000):
        path = tmp_path / f"long{lines}.txt"
        path.write_text("长文件标题\n" + "\n".join(f"这是第{i}行内容，说明有关事项并附具体要求" for i in range(lines)),
                        encoding="utf-8")
        doc = load_document(path, None)
        counted.clear()
        chunks = chunking.chunk_document(doc)
        work[lines] = sum(counted)
        covered = sum(c.end - c.start for c in chunks)
        assert covered >= len(doc.text.strip()) - len("长文件标题") - 2 * len(chunks)  # nothing lost
        assert all(doc.text[c.end:c.end + 1] in ("\n", "") for c in chunks[1:-1])  # cut at line ends
    assert work[4000] < 6 * work[1000], work  # 4× the text: ~4× the work (it was ~16×)


def test_titles_skip_signature_dates_urls_and_numbered_lines_and_join_an_order_number():
    from rag.ingest.documents import first_heading_line, mask_chrome

    assert first_heading_line("粤知产〔2011〕155号\n二〇一一年九月七日\n") == "粤知产〔2011〕155号"
    assert first_heading_line("\t国家知识产权局令 \n第三十二号\n《专利申请号标准》现予发布。\n") == "国家知识产权局令第三十二号"
    guide = "适用范围 | 本指南适用于中国专利申请受理 | 办理方式 |\n2.专利业务服务系统:http://cponline.cnipa.gov.cn\n"
    assert first_heading_line(guide).startswith("适用范围：本指南适用于中国专利申请受理")
    # a page marker or a page number alone on its line is layout, blanked without moving any offset
    text = "第一条 总则\n<!-- page: 187 -->\n- 12 -\n第 3 页 共 50 页\n第二条 适用范围"
    masked = mask_chrome(text)
    assert len(masked) == len(text) and "page" not in masked and "12" not in masked and "50" not in masked
    assert "第一条 总则" in masked and "第二条 适用范围" in masked


def test_files_that_expand_beyond_the_limits_are_refused_in_chinese_before_they_are_read(monkeypatch):
    import io
    import zipfile

    import pypdfium2 as pdfium

    from rag.errors import CorpusError
    from rag.ingest import converters

    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:  # 70 MB of XML in a zip of about 70 KB
        archive.writestr("word/document.xml", b"<w:t>" + b" " * (70 * 1024 * 1024) + b"</w:t>")
    assert len(bomb.getvalue()) < 1024 * 1024
    with pytest.raises(CorpusError) as refused:
        converters.convert("炸弹.docx", bomb.getvalue())
    assert "超出单个文件的处理上限" in refused.value.user_message and "解压后" in refused.value.user_message

    monkeypatch.setattr(converters, "MAX_PDF_PAGES", 5)
    pdf = pdfium.PdfDocument.new()
    for _ in range(6):
        pdf.new_page(200, 200)
    out = io.BytesIO()
    pdf.save(out)
    with pytest.raises(CorpusError) as pages:
        converters.convert("长文件.pdf", out.getvalue())
    assert "6 页" in pages.value.user_message

    monkeypatch.setattr(converters, "MAX_TEXT_CHARS", 100)
    with pytest.raises(CorpusError) as long_text:
        converters.convert("长文本.txt", ("第一条 内容。\n" * 50).encode("utf-8"))
    assert "上限 100 字" in long_text.value.user_message
