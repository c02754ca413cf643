"""The floating chat-bubble embed (GET /embed/bubble.js, /embed-demo) and the document view (GET /doc/…): the script
is served without login and reflects nothing of the request; the document page links back to the chat, sets headings
in bold and still highlights exactly the cited span."""

import base64
import html
import json
import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from rag.engine import Engine
from rag.models.embedders import FakeEmbedder
from rag.store.library import ensure_index
from rag.web.api import create_api, js_string, render_embed_demo
from rag.web.docview import heading_spans, render_document

HOSTILE_HOST = 'evil.example"><script>alert(1)</script><x a="'


@pytest.fixture
def make_client(real_engine, tmp_path):
    def make(**changes) -> TestClient:
        settings = real_engine.settings.replace(feedback_path=tmp_path / "f.jsonl", rate_limit_per_minute=1000, **changes)
        return TestClient(create_api(settings, Engine(settings, embedder=real_engine.embedder, index=real_engine.index)))

    return make


def test_bubble_script_is_javascript_with_the_chat_address(make_client):
    client = make_client(root_path="/qa", ui_path="/chat")
    r = client.get("/qa/embed/bubble.js")
    assert r.status_code == 200 and r.headers["content-type"] == "application/javascript; charset=utf-8"
    js = r.text
    assert 'var UI_PATH = "/qa/chat/";' in js and "__POLICY_QA_UI_PATH__" not in js
    assert "document.currentScript" in js and "new URL(UI_PATH, script.src)" in js  # the origin comes from its own src
    assert "政策问答" in js and "aria-label" in js and 'createElement("button")' in js and 'createElement("iframe")' in js
    assert "@media (max-width:480px)" in js and "position:fixed" in js
    code = re.sub(r"/\*.*?\*/", "", js, flags=re.S)  # the usage comment names an address; the code loads nothing else
    assert "http:" not in code and "https:" not in code and not re.search(r"(?i)@import|fetch\(|XMLHttpRequest", code)
    assert make_client().get("/embed/bubble.js").text.count('var UI_PATH = "/";') == 1


def test_js_string_is_json_that_cannot_break_out_of_a_script():
    value = '</script><script>alert("x")</script>&\u2028\u2029'
    literal = js_string(value)
    assert json.loads(literal) == value
    assert not set(literal) & set("<>&\u2028\u2029")


def test_bubble_script_needs_no_login(make_client):
    client = make_client(auth_users="staff:secret")
    assert client.get("/api/documents").status_code == 401
    r = client.get("/embed/bubble.js")
    assert r.status_code == 200 and "UI_PATH" in r.text
    auth = {"Authorization": "Basic " + base64.b64encode(b"staff:secret").decode()}
    assert client.get("/embed-demo", headers=auth).status_code == 200
    # behind a prefix, and with only an SSO header configured (every request without it is refused)
    assert make_client(auth_users="staff:secret", root_path="/qa").get("/qa/embed/bubble.js").status_code == 200
    sso = make_client(trusted_user_header="X-Remote-User", trusted_proxies="10.0.0.1")
    assert sso.get("/api/documents").status_code == 401 and sso.get("/embed/bubble.js").status_code == 200


def test_a_hostile_host_header_is_not_reflected(make_client):
    client = make_client()
    for path in ("/embed-demo", "/embed/bubble.js"):
        r = client.get(path, headers={"host": HOSTILE_HOST})
        assert r.status_code == 200
        assert "evil.example" not in r.text and "alert(1)" not in r.text and '<x a="' not in r.text
    demo = client.get("/embed-demo", headers={"host": HOSTILE_HOST}).text
    assert demo.count("<script") == 1 and '<script src="/embed/bubble.js" defer></script>' in demo
    # whatever the server stack makes of such a Host, the page shows only a plain origin, or a placeholder
    settings = client.app.state.settings
    for base_url in ("http://" + HOSTILE_HOST + "/", "javascript:alert(1)//", "http://[::1/"):
        page = render_embed_demo(base_url, settings)
        assert "evil.example" not in page and "alert(1)" not in page and page.count("<script") == 1
        assert '&lt;script src="https://问答服务地址/embed/bubble.js" defer&gt;' in page
    assert '&lt;script src="http://[::1]:8080/embed/bubble.js"' in render_embed_demo("http://[::1]:8080/", settings)


def test_embed_demo_shows_three_ways_and_their_settings(make_client):
    client = make_client(root_path="/qa", frame_ancestors="'self' https://portal.example", cors_origins="https://portal.example")
    demo = client.get("/qa/embed-demo", headers={"host": "qa.intranet.example:8443"}).text
    assert '<iframe id="policy-qa" src="/qa/"' in demo and '<script src="/qa/embed/bubble.js" defer></script>' in demo
    # the snippets: the request's origin once (the prefix is not doubled), markup escaped
    assert '&lt;script src="http://qa.intranet.example:8443/qa/embed/bubble.js" defer&gt;' in demo
    assert '&lt;iframe src="http://qa.intranet.example:8443/qa/"' in demo and "/qa/qa/" not in demo
    assert "http://qa.intranet.example:8443/qa/gradio-static/gradio.js" in demo
    assert "RAG_FRAME_ANCESTORS" in demo and "RAG_CORS_ORIGINS" in demo and "悬浮气泡" in demo
    assert html.escape("'self' https://portal.example") in demo


@pytest.fixture
def fixture_client(fixture_corpus, tmp_path):
    from .conftest import make_settings

    settings = make_settings(fixture_corpus, tmp_path / "index", root_path="/qa", ui_path="/chat")
    embedder = FakeEmbedder()
    ensure_index(settings, embedder)
    return TestClient(create_api(settings, Engine(settings, embedder=embedder)))


class _Nesting(HTMLParser):
    """Fails on a closing tag that does not close the innermost open element."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def _main(page: str) -> str:
    return page.split('<main id="text">', 1)[1].split("</main>", 1)[0]


def _text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def _marked(page: str) -> str:
    return page.split('<mark id="cited">', 1)[1].split("</mark>", 1)[0]


def test_document_view_links_back_and_sets_headings(fixture_client):
    detail = fixture_client.get("/qa/api/documents/demo-articles").json()
    text = detail["text"]
    start = text.index("总则")  # inside the heading 第一章 总则, on into the first article
    end = text.index("知识产权保护，")
    page = fixture_client.get(f"/qa/doc/demo-articles?start={start}&end={end}").text
    assert '<a class="back" id="back" href="/qa/chat/">← 返回问答</a>' in page
    assert "history.back()" in page and "document.referrer" in page
    main = _main(page)
    assert '<span class="h h1">第一章 </span><mark id="cited"><span class="h h1">总则</span>' in main  # split at the mark
    assert '<span class="h h1">第二章 保护措施</span>' in main and '<span class="h h3">第三条</span> 县级' in main
    assert _text_of(_marked(page)) == text[start:end]
    assert _text_of(main) == text.strip("\n")
    checker = _Nesting()
    checker.feed(main)
    assert checker.stack == []
    # the centring runs again once the page has loaded: a #cited in the address scrolls the mark to the top
    assert 'scrollIntoView({block:tall?"start":"center"})' in page and 'addEventListener("load"' in page
    assert "hashchange" in page


def test_inline_headings_and_every_cited_span_stay_exact(fixture_client):
    detail = fixture_client.get("/qa/api/documents/demo-inline").json()
    text = detail["text"]
    page = fixture_client.get("/qa/doc/demo-inline").text
    assert '<span class="h h2">一、总体要求</span>' in page and '<span class="h h3">(一)指导思想</span>。' in page
    assert "<mark" not in page
    for passage in detail["passages"]:
        cited = fixture_client.get(f"/qa/doc/demo-inline?start={passage['start']}&end={passage['end']}").text
        assert _text_of(_marked(cited)) == text[passage["start"]:passage["end"]]
        assert _text_of(_main(cited)) == text.strip("\n")


def test_real_documents_keep_their_text_and_the_highlight(make_client, real_engine):
    client = make_client()
    detail = client.get("/api/documents/hunan-2022").json()
    text = detail["text"]
    start = text.index("一、指导思想") + 2
    end = start + 40
    page = client.get(f"/doc/hunan-2022?start={start}&end={end}#cited").text
    assert '<a class="back" id="back" href="/">← 返回问答</a>' in page
    assert '<span class="h h2">一、</span><mark id="cited"><span class="h h2">指导思想</span>' in page
    assert _text_of(_marked(page)) == text[start:end]
    assert _text_of(_main(page)) == text.strip("\n")


def test_headings_are_escaped_and_found_from_section_paths():
    from rag.ingest.chunking import Chunk

    text = "前言。\n<总体> & 要求\n正文一段。\n第一章 总则\n第一条 内容。"
    chunk = Chunk("d#000", "d", "标题", "", ["<总体> & 要求"], 4, len(text), text[4:])
    spans = heading_spans(text, [chunk])
    assert [(text[s:e], level) for s, e, level in spans] == [("<总体> & 要求", 2), ("第一章 总则", 1), ("第一条", 3)]
    page = render_document({"title": "<标题>", "status": "在效"}, text, [chunk], [], 0, 3, back_url='/x"><script>')
    assert '<span class="h h2">&lt;总体&gt; &amp; 要求</span>' in page and "<总体>" not in page
    assert 'href="/x&quot;&gt;&lt;script&gt;"' in page and "<title>&lt;标题&gt;</title>" in page
