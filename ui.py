"""The web app: a Gradio chat (Chinese UI) with a sources panel, mounted on the FastAPI API.

`create_app(settings)` builds the Gradio Blocks without launching; `create_server(settings)` mounts it
on the API; `serve(settings)` runs uvicorn. Retrieval and checking live in `rag`; callbacks only render.
"""

import html
import json
import os
import re
import threading
from pathlib import Path
from urllib.parse import quote

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from rag.answer.pipeline import stream_answer  # noqa: E402
from rag.engine import Engine  # noqa: E402
from rag.errors import RagError, StoreUnavailableError  # noqa: E402
from rag.settings import Settings  # noqa: E402
from rag.understand.suggest import example_questions, suggest_followups  # noqa: E402
from rag.web.access import Definitions, access_for, readable_bases, reader_engine  # noqa: E402
from rag.web.conversations import (  # noqa: E402
    ConversationError,
    conversation_store,
    new_owner_id,
    shared_browser_secret,
    shown,
)
from rag.web.feedback import log_question, questions_log  # noqa: E402

ALL = "全部文档"
ALL_BASES = "全部可查阅的知识库"
CSS = """
.source-card{border:1px solid #d9dee7;border-radius:6px;padding:6px 10px;margin:6px 0;background:#fafbfc}
.source-card summary{cursor:pointer;font-weight:600}
.source-card mark{background:#ffe58f}
.source-note{color:#667085;font-size:0.9em}
.source-card a.open-doc{margin-left:8px;font-weight:normal;font-size:0.9em}
.dark .source-card{background:#1f2430;border-color:#3b4252;color:#e5e9f0}
.dark .source-card mark{background:#b08900;color:#111}
.dark .source-note{color:#a0a8b8}
#chat details summary{cursor:pointer;color:#475467}
.dark #chat details summary{color:#c0c8d8}
@media (max-width: 720px){#chat{height:60vh !important}}
#conversations label{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:100%}
"""
# Gradio's own buttons whose tooltips its Chinese locale leaves in English (or a browser not set to Chinese shows
# in English): named in Chinese, on every message as it appears.
TOOLTIPS = {"Copy message": "复制这条消息（含出处）", "Copy conversation": "复制整个对话", "Toggle Sidebar": "展开或收起对话记录",
            "Like": "赞", "Dislike": "踩", "Clear": "清空对话（开始新对话）", "Copied message": "已复制",
            "Copied conversation": "已复制", "Copy": "复制", "Copied": "已复制", "Undo": "撤销", "Retry": "重新生成"}
PAGE_SCRIPT = """() => {
  const names = NAMES;
  const rename = root => root.querySelectorAll('button[aria-label], button[title]').forEach(b => {
    for (const key of ['aria-label', 'title']) { const v = b.getAttribute(key); if (v && names[v]) b.setAttribute(key, names[v]); }
  });
  rename(document);
  new MutationObserver(ms => ms.forEach(m => m.target.nodeType === 1 && rename(m.target)))
    .observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['aria-label', 'title']});
  // on a phone the conversation list starts closed (its toggle opens it), so the chat is what one sees first
  if (window.innerWidth < 720) { setTimeout(() => { const b = document.querySelector('#sidebar.open .toggle-button');
    if (b) b.click(); }, 300); }
}""".replace("NAMES", json.dumps(TOOLTIPS, ensure_ascii=False))
PLACEHOLDER = "例如：乌海市到2025年每万人发明专利拥有量的目标是多少？"
BUSY_PLACEHOLDER = "正在回答上一个问题……可以先输入下一个问题，回答完成后再发送；点“停止”可中断。"
BROWSER_ID = re.compile(r"^browser:[A-Za-z0-9_-]{16,64}$")
IN_FORCE = "不含已到期文件"
UPLOAD_TYPES = [".txt", ".md", ".docx", ".pdf", ".html", ".htm"]
DOC_COLUMNS = [("doc_id", "编号"), ("title", "标题"), ("issuer", "发文机关"), ("region", "地区"), ("date", "日期"),
               ("doc_number", "文号"), ("period", "期限"), ("status", "状态"), ("passages", "段落")]
DOC_WIDTHS = ["11%", "25%", "13%", "9%", "9%", "12%", "9%", "6%", "6%"]


def _gradio():
    try:
        import gradio as gr
    except ImportError as exc:  # pragma: no cover - the set-up installs it
        raise SystemExit("gradio is not installed: run `make setup`") from exc
    return gr


def filter_choices(engine: Engine) -> list[str]:
    """'全部文档', then each region, then each document (by title)."""
    regions = sorted({d.get("region", "") for d in engine.index.documents if d.get("region")})
    return [ALL] + [f"地区：{r}" for r in regions] + list(_document_labels(engine))


def _document_labels(engine: Engine) -> dict[str, str]:
    """Scope label → doc_id: 《title》, with the id when two documents share a title (each reachable by itself)."""
    from collections import Counter

    counts = Counter(d["title"] for d in engine.index.documents)
    return {(f"《{d['title']}》（{d['doc_id']}）" if counts[d["title"]] > 1 else f"《{d['title']}》"): d["doc_id"]
            for d in engine.index.documents}


def filters_from_choice(choice: str | None, engine: Engine, in_force: bool = False) -> dict | None:
    extra = {"in_force": True} if in_force else {}
    if not choice or choice == ALL:
        return extra or None
    return (_choice_filter(choice, engine) or {}) | extra


def _choice_filter(choice: str, engine: Engine) -> dict | None:
    if choice.startswith("地区："):
        return {"region": choice.removeprefix("地区：")}
    labels = _document_labels(engine)
    return {"doc_id": [labels.get(choice, choice)]}


def _highlight(text: str, quote: str) -> str:
    escaped = html.escape(text)
    if quote and quote.strip() in text:
        q = html.escape(quote.strip())
        return escaped.replace(q, f"<mark>{q}</mark>", 1)
    return escaped


def _doc_link(url: str, page: int | None = None) -> str:
    label = f"查看原文（第{page}页）" if page else "查看原文"
    return f'<a class="open-doc" href="{html.escape(url, quote=True)}" target="_blank" rel="noopener">{label}</a>'


def render_sources(contexts: list[dict], note: str, root_path: str = "") -> str:
    """Retrieved passages, shown while the model is still writing; each links to its place in the original."""
    cards = [f'<p class="source-note">{html.escape(note)}</p>']
    for c in contexts:
        url = f"{root_path}/doc/{quote(c['doc_id'])}?start={c.get('start', 0)}&end={c.get('end', 0)}#cited"
        cards.append(f'<details class="source-card"><summary>[{c["rank"]}] 《{html.escape(c["title"])}》 '
                     f'{html.escape(c["section"])}{_doc_link(url)}</summary><div>{html.escape(c["text"])}</div></details>')
    return "\n".join(cards)


def answer_message(answer: dict) -> str:
    """The chat message of a final answer: its text (escaped, never HTML from the model or the documents) with each
    [n] linked to the cited span in the original, how a follow-up was understood, and its own sources below it
    (so every message keeps its sources, and copying a message copies them too)."""
    text = html.escape(answer["answer"])
    urls = {c["marker"]: c.get("url") for c in answer.get("citations", []) if c.get("url")}
    text = re.sub(r"\[(\d{1,2})\]", lambda m: f"[[{m.group(1)}]]({urls[int(m.group(1))]})" if int(m.group(1)) in urls
                  else m.group(0), text)
    rewritten = (answer.get("rewritten_question") or "").strip()
    if rewritten and rewritten.rstrip("？?") != answer["question"].strip().rstrip("？?"):
        text += f"\n\n（按“{html.escape(rewritten)}”理解）"
    if answer.get("citations"):
        lines = []
        for c in answer["citations"]:
            page = f"（第{c['page']}页）" if c.get("page") else ""
            link = f" [查看原文]({c['url']})" if c.get("url") else ""
            quote_text = html.escape(re.sub(r"\s+", " ", c.get("quote") or c["text"])[:160])
            lines.append(f"[{c['marker']}] 《{html.escape(c['title'])}》 {html.escape(c['section'])}{page}{link}  \n> {quote_text}")
        text += "\n\n<details><summary>出处（" + str(len(lines)) + "）</summary>\n\n" + "\n\n".join(lines) + "\n\n</details>"
    return text


def render_citations(answer: dict, root_path: str = "") -> str:
    """The cited passages with the supporting sentence highlighted and a link to it in the original (with the PDF
    page); for a refusal, the nearest sections."""
    if answer["refused"]:
        return render_sources(answer["contexts"][:3], "文档中没有找到答案。最接近的章节：", root_path)
    cards = ['<p class="source-note">回答中每个 [n] 对应下列出处（已由程序核对）：</p>']
    for c in answer["citations"]:
        page = f"（第{c['page']}页）" if c.get("page") else ""
        link = _doc_link(c["url"], c.get("page")) if c.get("url") else ""
        cards.append(f'<details class="source-card" open><summary>[{c["marker"]}] 《{html.escape(c["title"])}》 '
                     f'{html.escape(c["section"])}{page}{link}</summary><div>{_highlight(c["text"], c["quote"])}</div>'
                     f'</details>')
    return "\n".join(cards)


def document_table(engine: Engine, settings: Settings) -> list[list]:
    from rag.store.library import list_documents, today_of

    rows = list_documents(engine.pinned().index, today_of(settings))
    return [[row[key] for key, _ in DOC_COLUMNS] for row in rows]


def document_choices(engine: Engine) -> list[tuple[str, str]]:
    """The delete and edit lists: each document by its title, with its id to tell two alike apart."""
    return [(f"《{d.get('title') or d['doc_id']}》（{d['doc_id']}）", d["doc_id"]) for d in engine.index.documents]


def request_user(request, settings: Settings) -> str:
    """Who is asking: Gradio's login, or the SSO proxy's user header (only from a trusted proxy); '' for nobody."""
    user = getattr(request, "username", None) or ""
    raw = getattr(request, "request", None)
    if not user and settings.trusted_user_header and raw is not None and hasattr(raw, "headers"):
        from rag.web.auth import check_user

        user = check_user(raw, settings) or ""
    return user


def conversation_owner(request, settings: Settings, browser_id: str | None) -> tuple[str, str]:
    """(owner, browser id): a logged-in user owns their conversations on any browser; with no login, the random id
    this browser keeps in its storage (a new one when it has none or a malformed one)."""
    user = request_user(request, settings)
    browser_id = browser_id if isinstance(browser_id, str) and BROWSER_ID.match(browser_id) else new_owner_id()
    return (f"user:{user}" if user else browser_id), browser_id


def request_is_admin(request, settings: Settings) -> bool:
    """The Gradio request's user (Gradio's login) or, without login, the person at this machine."""
    from rag.web.auth import is_admin

    if request is None:
        return False
    user = getattr(request, "username", None) or ""
    raw = getattr(request, "request", None)
    if not user and raw is not None and hasattr(raw, "client") and hasattr(raw, "headers"):
        return is_admin("", settings, raw)
    return is_admin(user, settings) if user else False


def create_app(settings: Settings, engine: Engine | None = None):
    """The Gradio Blocks app (not launched)."""
    gr = _gradio()
    engine = engine or Engine(settings)
    root = settings.root_path
    conversations = conversation_store(settings)  # files, or the shared database (RAG_STORE on PostgreSQL)
    definitions = Definitions(settings)
    try:
        bases = definitions.current()
        if bases.defined:
            # the page as first sent holds no document of a base its reader may not read: the load fills it per user
            open_to_all = {b.id for b in bases.bases if "*" in b.readers}
            open_docs = [d for d in engine.index.documents if bases.of(d) in open_to_all]
            choices, examples = [ALL], example_questions(open_docs, settings.vocab_dir)
        else:
            choices, examples = filter_choices(engine), example_questions(engine.index.documents, settings.vocab_dir)
    except RagError:
        choices, examples = [ALL], []

    def who(request):
        """The access of the page's user (Gradio's login or the SSO header; the person at this machine)."""
        raw = getattr(request, "request", None)
        return access_for(raw if raw is not None and hasattr(raw, "headers") else None, settings, definitions,
                          user=request_user(request, settings))

    def source_for(request, base: str = "") -> Engine:
        """The engine this page's user reads: the documents of their knowledge bases (of `base` when chosen)."""
        return reader_engine(engine, definitions, who(request), base or None)

    def may_write(request, doc_id: str = "") -> bool:
        """An administrator of the installation, or (with knowledge bases) of the base the document is in."""
        if not definitions.current().defined:
            return request_is_admin(request, settings)
        access = who(request)
        if not doc_id:
            return bool(access.administers)
        meta = engine.pinned().documents_by_id.get(doc_id)
        return meta is not None and definitions.current().of(meta) in access.administers

    def _library_updates(message: str, request=None):
        """The status line, the table, the scope list and both document lists after a change."""
        source = source_for(request)
        docs = document_choices(source)
        return (message, document_table(source, settings), gr.update(choices=filter_choices(source)),
                gr.update(choices=docs, value=None), gr.update(choices=docs, value=None))

    def upload(files, base: str | None, request: gr.Request, progress=gr.Progress()):
        from rag.store.library import add_documents

        unchanged = (gr.update(),) * 4
        if not may_write(request):
            return ("只有管理员可以添加文档。", *unchanged)
        bases = definitions.current()
        target = ""
        if bases.defined:
            administered = who(request).administers
            target = base or administered[0]
            if target not in administered:
                return ("您不是这个知识库的管理员，不能在其中添加文档。", *unchanged)
        if not files:
            return ("请先选择要上传的文件（.txt .md .docx .pdf .html）。", *unchanged)
        uploads = []
        for f in files:
            path = Path(f if isinstance(f, str) else f.name)
            if not uploaded_here(path):  # a server path sent to the function by hand (Gradio skips its own check here)
                return ("⚠️ 只能导入通过本页面上传的文件。", *unchanged)
            uploads.append((_original_name(path), path.read_bytes()))
        progress(0.02, desc=f"正在读取和转换 {len(uploads)} 个文件…")

        def report(done: int, total: int) -> None:  # embedding is most of the time: 5% → 100%
            progress(0.05 + 0.95 * done / max(1, total), desc=f"已嵌入 {done}/{total} 个段落")

        def reading(name: str, done: int, total: int) -> None:  # a scan: OCR page by page (minutes for 100 pages)
            progress(done / max(1, total), desc=f"正在文字识别 {name}：第 {done}/{total} 页")

        try:
            result = add_documents(settings, engine.embedder, uploads, progress=report, reading=reading, kb=target,
                                   default_kb=bases.default.id if target else "")
        except RagError as exc:
            return (f"⚠️ {exc.user_message}", *unchanged)
        if result.added or result.replaced:  # imported into data/: Gradio's copy must not outlive a later delete
            for f in files:
                Path(f if isinstance(f, str) else f.name).unlink(missing_ok=True)
        engine.refresh()
        return _library_updates(html.escape(result.message), request)

    def delete(doc_id: str, confirmed: bool, request: gr.Request):
        from rag.store.library import remove_document

        unchanged = (gr.update(),) * 4
        if not may_write(request, doc_id or ""):
            return ("只有这篇文档所在知识库的管理员可以删除它。" if doc_id else "只有管理员可以删除文档。", *unchanged)
        if not doc_id:
            return ("请先选择要删除的文档。", *unchanged)
        if not confirmed:
            return ("已取消删除。", *unchanged)
        try:
            result = remove_document(settings, engine.embedder, doc_id)
        except RagError as exc:
            return (f"⚠️ {exc.user_message}", *unchanged)
        engine.refresh()
        return _library_updates(html.escape(result.message), request)

    def facts_of(doc_id: str, request: gr.Request):
        """The edit form filled with the document's current facts."""
        from rag.store.library import document_row, today_of

        try:
            meta = source_for(request).documents_by_id.get(doc_id or "")
        except RagError:
            meta = None
        if meta is None:
            return ("",) * 5
        row = document_row(meta, 0, today_of(settings))
        return row["title"], row["issuer"], row["region"], row["date"], row["doc_number"]

    def save_facts(doc_id: str, title: str, issuer: str, region: str, date: str, doc_number: str, request: gr.Request,
                   progress=gr.Progress()):
        from rag.store.library import update_facts

        unchanged = (gr.update(),) * 4
        if not may_write(request, doc_id or ""):
            return ("只有这篇文档所在知识库的管理员可以修改它的信息。" if doc_id else "只有管理员可以修改文档信息。", *unchanged)
        if not doc_id:
            return ("请先选择要修改的文档。", *unchanged)
        progress(0.05, desc="正在更新文档信息并重建它的段落…")
        try:
            update_facts(settings, engine.embedder, doc_id, {"title": title, "issuer": issuer, "region": region,
                                                             "date": date, "doc_number": doc_number})
        except RagError as exc:
            return (f"⚠️ {exc.user_message}", *unchanged)
        engine.refresh()
        return _library_updates(f"已更新《{html.escape((title or doc_id).strip())}》的文档信息。", request)

    def _conversation_list(owner: str, selected: str | None = None):
        try:
            items = conversations.list(owner)
        except ConversationError:
            items = []
        return gr.update(choices=[(c.label(), c.id) for c in items[:100]], value=selected)

    def on_load(browser_id: str | None, request: gr.Request):
        admin = request_is_admin(request, settings)
        writer = may_write(request)
        bases, access = definitions.current(), who(request)
        readable = readable_bases(definitions, access) if bases.defined else []
        base_choices = [(ALL_BASES, "")] + [(b["name"], b["id"]) for b in readable]
        writable = [(b.name, b.id) for b in bases.bases if b.id in access.administers] if bases.defined else []
        try:
            engine.refresh()
            source = source_for(request)
            table, scope_choices, docs = document_table(source, settings), filter_choices(source), document_choices(source)
        except RagError:
            table, scope_choices, docs = [], [ALL], []
        owner, browser_id = conversation_owner(request, settings, browser_id)
        latest = next(iter(conversations.list(owner)), None)
        messages, note = _shown(latest)
        return (gr.update(visible=writer), gr.update(visible=admin), table, gr.update(choices=scope_choices),
                gr.update(choices=docs), gr.update(choices=docs), browser_id, owner,
                _conversation_list(owner, latest.id if latest else None), messages, latest.id if latest else None, note,
                gr.update(interactive=True, placeholder=PLACEHOLDER), gr.update(interactive=True),
                gr.update(choices=base_choices, value="", visible=len(readable) > 1),
                gr.update(choices=writable, value=writable[0][1] if writable else None, visible=bool(writable)))

    def _shown(conversation) -> tuple[list, str]:
        if conversation is None:
            return [], ""
        messages, hidden = shown(conversation)
        return messages, (f"这个对话较早的 {hidden} 条消息已保存，未在此显示。" if hidden else "")

    def open_conversation(conversation_id: str, owner: str):
        try:
            conversation = conversations.get(owner, conversation_id)
        except ConversationError as exc:
            return gr.update(), gr.update(), None, exc.user_message
        messages, note = _shown(conversation)
        return messages, conversation.id, None, note

    def new_conversation(owner: str):
        return [], "", None, "", None, _conversation_list(owner), ""

    def rename_conversation(conversation_id: str | None, name: str, owner: str):
        if not conversation_id:
            return gr.update(), "请先选择或开始一个对话。", gr.update()
        try:
            conversation = conversations.rename(owner, conversation_id, name)
        except ConversationError as exc:
            return gr.update(), exc.user_message, gr.update()
        return _conversation_list(owner, conversation.id), "已重命名。", gr.update(value="")

    def delete_conversation(conversation_id: str | None, confirmed: bool, owner: str):
        if not conversation_id:
            return gr.update(), gr.update(), gr.update(), "请先选择要删除的对话。"
        if not confirmed:
            return gr.update(), gr.update(), gr.update(), "已取消删除。"
        try:
            conversations.delete(owner, conversation_id)
        except ConversationError as exc:
            return gr.update(), gr.update(), gr.update(), exc.user_message
        latest = next(iter(conversations.list(owner)), None)
        messages, note = _shown(latest)
        return (_conversation_list(owner, latest.id if latest else None), messages, latest.id if latest else None,
                "已删除该对话。" + note)

    inflight: dict[str, list] = {}  # session → the conversation as last shown while an answer is written (for stop)
    answering: set[str] = set()  # sessions with an answer being written: one at a time per page
    answering_lock = threading.Lock()

    def respond(question: str, history: list, choice: str, in_force: bool, owner: str, current: str | None,
                base: str | None = "", request: gr.Request = None):
        session = getattr(request, "session_hash", None) or ""
        with answering_lock:
            busy = session in answering and bool(session)
            answering.add(session)
        if busy:  # Enter (or a suggestion) while this page's answer is written: say so, keep the typed question
            yield (gr.update(), gr.update(), gr.update(), gr.update(), current, gr.update(),
                   "上一个回答还没有完成：新问题保留在输入框中，回答完成后请再发送（或先点“停止”）。", gr.update())
            return
        try:
            for update in _respond(question, history, choice, in_force, owner, current, base or "", request):
                inflight[session] = update[0]
                yield update
        finally:
            inflight.pop(session, None)
            with answering_lock:
                answering.discard(session)

    def _respond(question: str, history: list, choice: str, in_force: bool, owner: str, current: str | None,
                 base: str = "", request=None):
        history = list(history or [])
        question = (question or "").strip()
        busy = gr.update(value="", placeholder=BUSY_PLACEHOLDER)
        idle = gr.update(placeholder=PLACEHOLDER)
        if not question:
            yield history, gr.update(), gr.update(), idle, current, gr.update(), "请输入问题。", gr.update(interactive=True)
            return
        prior = [{"role": m["role"], "content": html.unescape(_text(m["content"]))} for m in history]
        # shown as text: a question is never rendered as HTML (no <img> fetched, no markup injected)
        history.append({"role": "user", "content": html.escape(question)})
        history.append({"role": "assistant", "content": "正在检索…"})
        yield history, "", None, busy, current, gr.update(), "", gr.update(interactive=False)
        try:
            source = source_for(request, base)  # the user's knowledge bases (or the one chosen)
            filters = filters_from_choice(choice, source, in_force)
            partial = ""
            for event in stream_answer(question, prior, engine=source, filters=filters):
                if event.kind == "sources":
                    history[-1]["content"] = "已找到相关段落，正在生成回答…"
                    yield (history, render_sources([c.to_context() for c in event.data], "检索到的段落：", root), None,
                           gr.update(), current, gr.update(), "", gr.update())
                elif event.kind == "sentence":  # only sentences that passed the citation check are shown
                    partial += event.data
                    history[-1]["content"] = partial + "\n\n（生成中…）"
                    yield history, gr.update(), None, gr.update(), current, gr.update(), "", gr.update()
                elif event.kind == "final":
                    answer = event.data.to_dict()
                    history[-1]["content"] = answer_message(answer)
                    history[-1]["metadata"] = {"id": answer["answer_id"]}
                    follow = suggest_followups(answer, source.document_view, settings.vocab_dir)
                    if follow:
                        history[-1]["options"] = [{"value": q, "label": q} for q in follow]
                    log_question(questions_log(settings), answer)
                    note = ""
                    try:
                        current = conversations.add_turn(owner, current, history[-2:], title=question).id
                    except ConversationError as exc:
                        note = exc.user_message
                    yield (history, render_citations(answer, root), answer, idle, current,
                           _conversation_list(owner, current), note, gr.update(interactive=True))
                # 'token' events are the model's unchecked text: never shown, only checked sentences are
        except RagError as exc:
            history[-1]["content"] = f"⚠️ {exc.user_message}"
            yield history, "", None, idle, current, gr.update(), "", gr.update(interactive=True)
        except Exception as exc:  # noqa: BLE001 - a Chinese message in the chat, never an English toast
            import logging

            logging.getLogger("rag.ui").exception("answer failed: %s", exc)
            history[-1]["content"] = "⚠️ 生成回答时出错，请稍后重试或换一种问法。"
            yield history, "", None, idle, current, gr.update(), "", gr.update(interactive=True)

    def pick_suggestion(data: gr.SelectData):
        return data.value

    def stopped(request: gr.Request = None):
        """The answer being written is cancelled; its message says so (what the page showed is kept)."""
        session = getattr(request, "session_hash", None) or ""
        with answering_lock:  # the cancelled answer may never reach its own clean-up
            answering.discard(session)
        history = list(inflight.pop(session, None) or [])
        if not history:
            return gr.update(), "已停止。", gr.update(placeholder=PLACEHOLDER), gr.update(interactive=True)
        if history and history[-1].get("role") == "assistant" and not (history[-1].get("metadata") or {}).get("id"):
            text = _text(history[-1]["content"]).replace("\n\n（生成中…）", "")
            history[-1] = {"role": "assistant", "content": text + "\n\n（已停止）"}
        return history, "已停止。", gr.update(placeholder=PLACEHOLDER), gr.update(interactive=True)

    def vote(kind: str, last: dict | None, comment: str):
        if not last:
            return "请先提问，再评价回答。", gr.update()
        return _record_vote(kind, last, comment), gr.update(value="")

    def _record_vote(kind: str, answer: dict, comment: str) -> str:
        from rag.web.feedback import votes_log

        try:
            votes_log(settings).append({
                "answer_id": answer.get("answer_id", ""), "question": answer["question"], "answer": answer["answer"],
                "vote": kind, "comment": (comment or "")[:2000],
                "citations": [{k: c[k] for k in ("marker", "doc_id", "title", "section")} for c in answer["citations"]],
            })
        except (OSError, RagError):
            return "⚠️ 反馈没有保存成功（存储不可写），请稍后再试。"
        return "已记录您的反馈，谢谢！" if kind == "up" else "已记录，我们会改进。谢谢！"

    def vote_message(data: gr.LikeData, history: list, comment: str):
        """👍/👎 under any answer of the conversation: the latest vote on an answer counts."""
        index = data.index[0] if isinstance(data.index, (list, tuple)) and data.index else data.index
        message = history[index] if isinstance(index, int) and 0 <= index < len(history) else {}
        answer_id = (message.get("metadata") or {}).get("id")
        if not answer_id:
            return "这条消息已不存在或不是回答，无法评价。", gr.update()
        question = next((_text(m["content"]) for m in reversed(history[:index]) if m["role"] == "user"), "")
        record = {"answer_id": answer_id, "question": html.unescape(question), "answer": _text(message["content"]),
                  "citations": []}
        kind = "up" if data.liked else "down"
        return _record_vote(kind, record, comment), gr.update(value="")

    def _review_rows(only: str, since: str) -> list[dict]:
        from rag.web.feedback import questions_log, review_rows, votes_log

        return review_rows(questions_log(settings).read(), votes_log(settings).read(),
                           since=(since or "").strip(), only={"未答（拒答）": "refused", "没帮助": "down"}.get(only, ""))

    def review(only: str, since: str, request: gr.Request):
        if not request_is_admin(request, settings):
            return [], "只有管理员可以查看反馈与未答。"
        rows = _review_rows(only, since)
        table = [[r["time"], r["question"], "拒答" if r["refused"] else "已答", r["reason"],
                  {"up": "👍", "down": "👎"}.get(r["vote"], ""), r["comment"]] for r in rows[:500]]
        return table, f"共 {len(rows)} 条。" if rows else "没有符合条件的记录。"

    def export(only: str, since: str, request: gr.Request):
        import tempfile

        from rag.web.feedback import as_dataset

        if not request_is_admin(request, settings):
            return None, "只有管理员可以导出。"
        rows = _review_rows(only, since)
        if not rows:
            return None, "没有可导出的记录（所选条件下为空）。"
        out = Path(tempfile.mkdtemp(prefix="rag-export-")) / "feedback_dataset.jsonl"
        out.write_text(as_dataset(rows), encoding="utf-8")
        return str(out), f"已导出 {len(rows)} 条，格式与评测集相同（要点和证据请评测人员补充）。"

    with gr.Blocks(title="政策问答", analytics_enabled=False) as demo:
        browser_id = gr.BrowserState("", storage_key="policy-qa-owner",
                                     secret=shared_browser_secret(settings) or None)
        owner = gr.State("")
        current = gr.State(None)
        last = gr.State(None)
        with gr.Sidebar(label="对话记录", open=True, elem_id="sidebar"):
            new_chat = gr.Button("＋ 新对话", elem_id="clear", variant="primary")
            conversation_list = gr.Radio([], label="历史对话", elem_id="conversations")
            conversation_name = gr.Textbox(label="重命名当前对话", max_length=80, elem_id="conversation-name")
            with gr.Row():
                rename_button = gr.Button("重命名", size="sm", elem_id="conversation-rename")
                forget_button = gr.Button("删除对话", size="sm", variant="stop", elem_id="conversation-delete")
            conversation_status = gr.Markdown(elem_id="conversation-status")
        gr.Markdown("## 政策问答\n依据已收录的政策文件回答；每句结论都标注出处，文件中没有的内容会明确说明。")
        with gr.Tab("问答", id="chat-tab"), gr.Row():
            with gr.Column(scale=3):
                with gr.Row():
                    knowledge_base = gr.Dropdown([(ALL_BASES, "")], value="", label="知识库", elem_id="knowledge-base",
                                                 scale=2, visible=False)
                    scope = gr.Dropdown(choices, value=ALL, label="检索范围（文档或地区）", elem_id="scope", scale=3)
                    in_force = gr.Checkbox(label=IN_FORCE, value=False, elem_id="in-force", scale=1)
                chatbot = gr.Chatbot(label="对话", height="62vh", elem_id="chat", buttons=["copy", "copy_all"],
                                     feedback_options=("Like", "Dislike"), sanitize_html=True)
                # off until the page knows whose conversation this is (the load below turns them on)
                question = gr.Textbox(label="问题", placeholder="正在加载……", elem_id="question", interactive=False,
                                      max_length=settings.max_question_chars)
                with gr.Row():
                    send = gr.Button("提问", variant="primary", elem_id="send", interactive=False)
                    stop = gr.Button("停止", variant="stop", elem_id="stop")
                if examples:  # about documents the library holds (vocab/examples.tsv, else built from its titles)
                    gr.Examples(examples, inputs=question, label="示例问题")
            with gr.Column(scale=2):
                gr.Markdown("### 出处")
                sources = gr.HTML(elem_id="sources")
                gr.Markdown("### 这个回答有帮助吗？")
                comment = gr.Textbox(label="意见（可选）", elem_id="comment")
                with gr.Row():
                    up = gr.Button("有帮助", elem_id="vote-up")
                    down = gr.Button("没帮助", elem_id="vote-down")
                thanks = gr.Markdown(elem_id="vote-status")
        with gr.Tab("文档管理", id="admin-tab", visible=False, elem_id="admin-tab") as admin_tab:
            gr.Markdown("上传政策文件（.txt .md .docx .pdf .html，可多选）：只处理新文件，已有文档不受影响；同名文件会被替换。"
                        "扫描件（没有文字层的 PDF）和 Word 中的图片用文字识别读出（每页约 2 秒，进度显示在下方）。")
            upload_kb = gr.Dropdown([], label="导入到知识库", elem_id="upload-kb", visible=False)
            # no file_types filter in the browser: a .doc or .xlsx gets the app's Chinese advice, not Gradio's toast
            files = gr.File(label="选择文件", file_count="multiple", elem_id="upload-files")
            upload_button = gr.Button("导入", variant="primary", elem_id="upload-button")
            status = gr.Markdown(elem_id="admin-status")
            table = gr.Dataframe(headers=[label for _, label in DOC_COLUMNS], interactive=False, elem_id="documents-table",
                                 wrap=True, column_widths=DOC_WIDTHS, max_height=520)
            with gr.Accordion("修改文档信息（标题、发文机关、地区、日期、文号）", open=False, elem_id="edit-facts"):
                edited = gr.Dropdown([], label="要修改的文档", elem_id="edit-doc")
                with gr.Row():
                    fact_title = gr.Textbox(label="标题", elem_id="edit-title", max_length=200, scale=3)
                    fact_issuer = gr.Textbox(label="发文机关", elem_id="edit-issuer", max_length=100, scale=2)
                with gr.Row():
                    fact_region = gr.Textbox(label="地区", elem_id="edit-region", max_length=40)
                    fact_date = gr.Textbox(label="日期（如 2024-03-01）", elem_id="edit-date", max_length=40)
                    fact_number = gr.Textbox(label="文号", elem_id="edit-number", max_length=60)
                save_button = gr.Button("保存修改", variant="primary", elem_id="edit-save")
            with gr.Row():
                doomed = gr.Dropdown([], label="要删除的文档", elem_id="delete-doc", scale=3)
                delete_button = gr.Button("删除", variant="stop", elem_id="delete-button", scale=1)
            confirmed = gr.Checkbox(value=False, visible=False)
        with gr.Tab("反馈与未答", id="review-tab", visible=False, elem_id="review-tab") as review_tab:
            gr.Markdown("员工提出的问题、被拒答的问题和“没帮助”的回答（含意见）；可导出为评测集格式。")
            with gr.Row():
                only = gr.Radio(["全部", "未答（拒答）", "没帮助"], value="全部", label="显示", elem_id="review-only")
                since = gr.Textbox(label="起始日期（如 2026-12-01，可空）", elem_id="review-since")
                refresh = gr.Button("刷新", elem_id="review-refresh")
                export_button = gr.Button("导出为评测集", elem_id="review-export")
            review_status = gr.Markdown(elem_id="review-status")
            review_table = gr.Dataframe(headers=["时间", "问题", "结果", "拒答原因", "评价", "意见"], interactive=False,
                                        wrap=True, elem_id="review-table")
            exported = gr.File(label="导出的文件", elem_id="review-file")
        ask_inputs = [question, chatbot, scope, in_force, owner, current, knowledge_base]
        ask_outputs = [chatbot, sources, last, question, current, conversation_list, conversation_status, send]
        # one answer at a time per page: while one is written the send button is off and the box says so; Enter
        # meanwhile gets "上一个回答还没有完成" from respond, and what is typed stays in the box. ("multiple": the
        # browser's own once-only guard stays shut after a stop; the server decides.)
        asked = send.click(respond, ask_inputs, ask_outputs, trigger_mode="multiple")
        submitted = question.submit(respond, ask_inputs, ask_outputs, trigger_mode="multiple")
        suggested = chatbot.option_select(pick_suggestion, None, question).then(respond, ask_inputs, ask_outputs)
        stop.click(stopped, None, [chatbot, thanks, question, send], cancels=[asked, submitted, suggested])
        chatbot.like(vote_message, [chatbot, comment], [thanks, comment])
        conversation_list.input(open_conversation, [conversation_list, owner], [chatbot, current, last, conversation_status])
        new_chat.click(new_conversation, [owner], [chatbot, sources, last, thanks, current, conversation_list,
                                                   conversation_status])
        rename_button.click(rename_conversation, [current, conversation_name, owner],
                            [conversation_list, conversation_status, conversation_name])
        forget_button.click(delete_conversation, [current, confirmed, owner],
                            [conversation_list, chatbot, current, conversation_status],
                            js="(c, x, o) => [c, confirm('确定删除这个对话吗？删除后无法恢复。'), o]")
        refresh.click(review, [only, since], [review_table, review_status])
        export_button.click(export, [only, since], [exported, review_status])
        library_outputs = [status, table, scope, doomed, edited]
        upload_button.click(upload, [files, upload_kb], library_outputs, show_progress_on=[status])
        edited.input(facts_of, [edited], [fact_title, fact_issuer, fact_region, fact_date, fact_number])
        save_button.click(save_facts, [edited, fact_title, fact_issuer, fact_region, fact_date, fact_number],
                          library_outputs, show_progress_on=[status])
        # the browser asks "确定删除…？" before anything is sent
        delete_button.click(delete, [doomed, confirmed], library_outputs, show_progress_on=[status],
                            js="(d, c) => [d, d ? confirm('确定删除这篇文档吗？删除后它不会再被引用。') : false]")
        demo.load(on_load, [browser_id], [admin_tab, review_tab, table, scope, doomed, edited, browser_id, owner,
                                          conversation_list, chatbot, current, conversation_status, question, send,
                                          knowledge_base, upload_kb])
        # on a phone the conversation list starts closed (its toggle opens it), so the chat is what one sees first
        demo.load(None, None, None, js=PAGE_SCRIPT)
        chatbot.clear(new_conversation, [owner], [chatbot, sources, last, thanks, current, conversation_list,
                                                 conversation_status])  # its 🗑 starts a new one; the old stays listed
        up.click(lambda lst, c: vote("up", lst, c), [last, comment], [thanks, comment])
        down.click(lambda lst, c: vote("down", lst, c), [last, comment], [thanks, comment])
    demo.queue(default_concurrency_limit=settings.max_concurrency)
    return demo


def uploaded_here(path: Path) -> bool:
    """Is this a file Gradio received from a browser (inside its upload folder), not any path on the server?"""
    from gradio.utils import get_upload_folder

    try:
        return path.resolve().is_relative_to(Path(get_upload_folder()).resolve()) and path.is_file()
    except OSError:
        return False


def _original_name(path: Path) -> str:
    """Gradio keeps an upload's own name as the last part of its temporary path."""
    return path.name


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)


def create_server(settings: Settings, engine: Engine | None = None):
    """The API with the Gradio UI mounted at `settings.ui_path` and Gradio's own web-component script served locally."""
    gr = _gradio()
    from fastapi.staticfiles import StaticFiles

    from rag.web.api import create_api
    from rag.web.auth import parse_users

    engine = engine or Engine(settings)
    app = create_api(settings, engine)
    frontend = Path(gr.__file__).parent / "templates" / "frontend"
    if frontend.exists():
        app.mount("/gradio-static", StaticFiles(directory=frontend), name="gradio-static")
    users = list(parse_users(settings.auth_users).items()) or None
    theme = gr.themes.Default(font=["WenQuanYi Zen Hei", "Noto Sans CJK SC", "sans-serif"],
                              font_mono=["DejaVu Sans Mono", "monospace"])  # local fonts: no CDN
    return gr.mount_gradio_app(app, create_app(settings, engine), path=settings.ui_path, auth=users,
                               root_path=settings.root_path or None, theme=theme, css=CSS, ssr_mode=False,
                               footer_links=[])


def serve(settings: Settings) -> None:
    """Run the web app with uvicorn (never `share=True`: nothing leaves the intranet)."""
    import uvicorn

    engine = Engine(settings)
    try:
        engine.index  # noqa: B018 - load now so the first question does not pay for it
    except StoreUnavailableError as exc:  # a database restarting: serve anyway, answer 503 until it is back
        print(f"注意：{exc.user_message} 在此之前提问将得到 503。", flush=True)
    except RagError as exc:
        raise SystemExit(f"错误：{exc.user_message}") from exc
    if settings.llm_backend == "local":
        threading.Thread(target=lambda: _warm(engine), daemon=True).start()
    print(f"政策问答: http://{settings.host}:{settings.port}{settings.root_path}{settings.ui_path}  "
          f"(API docs: /docs, embed demo: /embed-demo, backend: {settings.llm_backend})")
    # Streams in flight get a few seconds on SIGTERM, then the server stops whatever they are doing.
    uvicorn.run(create_server(settings, engine), **server_options(settings))


def server_options(settings: Settings) -> dict:
    """How `rag serve` runs uvicorn. The server's own proxy_headers off: it would trust X-Forwarded-For from any
    local client (FORWARDED_ALLOW_IPS defaults to 127.0.0.1); the app adds uvicorn's ProxyHeadersMiddleware itself,
    for RAG_TRUSTED_PROXIES only, and keeps the socket's peer for deciding whom to trust (rag/web/api.py)."""
    return {"host": settings.host, "port": settings.port, "log_level": "warning", "timeout_graceful_shutdown": 3,
            "proxy_headers": False}


def _warm(engine: Engine) -> None:
    try:
        engine.llm.load()
    except RagError as exc:
        print(f"注意：本地模型加载失败（{exc.user_message}），回答将退回抽取式。")


if __name__ == "__main__":
    serve(Settings.load())
