"""The web app: a Gradio chat (Chinese UI) with a sources panel, mounted on the FastAPI API.

`create_app(settings)` builds the Gradio Blocks without launching; `create_server(settings)` mounts it
on the API; `serve(settings)` runs uvicorn. Retrieval and checking live in `rag`; callbacks only render.
"""

import html
import os
import re
import threading
from pathlib import Path
from urllib.parse import quote

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from rag.engine import Engine  # noqa: E402
from rag.errors import RagError, StoreUnavailableError  # noqa: E402
from rag.feedback import log_question  # noqa: E402
from rag.pipeline import stream_answer  # noqa: E402
from rag.settings import Settings  # noqa: E402

EXAMPLES = [
    "河南省2020年全年知识产权质押融资额的目标是多少？",
    "乌海要打造哪些特色品牌？",
    "沈阳开展知识产权证券化工作的牵头单位是谁？",
    "湖南要做强哪些地理标志品牌？",
    "广东省知识产权质押融资的目标是多少？",
]
ALL = "全部文档"
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
"""
IN_FORCE = "不含已到期文件"
UPLOAD_TYPES = [".txt", ".md", ".docx", ".pdf", ".html", ".htm"]
DOC_COLUMNS = [("doc_id", "编号"), ("title", "标题"), ("issuer", "发文机关"), ("region", "地区"), ("date", "日期"),
               ("doc_number", "文号"), ("period", "期限"), ("status", "状态"), ("passages", "段落")]


def _gradio():
    try:
        import gradio as gr
    except ImportError as exc:  # pragma: no cover - the set-up installs it
        raise SystemExit("gradio is not installed: run `make setup`") from exc
    return gr


def filter_choices(engine: Engine) -> list[str]:
    """'全部文档', then each region, then each document (by title)."""
    regions = sorted({d.get("region", "") for d in engine.index.documents if d.get("region")})
    titles = [f"《{d['title']}》" for d in engine.index.documents]
    return [ALL] + [f"地区：{r}" for r in regions] + titles


def filters_from_choice(choice: str | None, engine: Engine, in_force: bool = False) -> dict | None:
    extra = {"in_force": True} if in_force else {}
    if not choice or choice == ALL:
        return extra or None
    return (_choice_filter(choice, engine) or {}) | extra


def _choice_filter(choice: str, engine: Engine) -> dict | None:
    if choice.startswith("地区："):
        return {"region": choice.removeprefix("地区：")}
    for doc in engine.index.documents:
        if choice == f"《{doc['title']}》":
            return {"doc_id": [doc["doc_id"]]}
    return {"doc_id": [choice]}


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
    from rag.library import list_documents, today_of

    rows = list_documents(engine.pinned().index, today_of(settings))
    return [[row[key] for key, _ in DOC_COLUMNS] for row in rows]


def request_is_admin(request, settings: Settings) -> bool:
    """The Gradio request's user (Gradio's login) or, without login, the person at this machine."""
    from rag.api import is_admin

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
    try:
        choices = filter_choices(engine)
    except RagError:
        choices = [ALL]

    def upload(files, request: gr.Request, progress=gr.Progress()):
        from rag.library import add_documents

        if not request_is_admin(request, settings):
            return "只有管理员可以添加文档。", gr.update(), gr.update(), gr.update()
        if not files:
            return "请先选择要上传的文件（.txt .md .docx .pdf .html）。", gr.update(), gr.update(), gr.update()
        uploads = []
        for f in files:
            path = Path(f if isinstance(f, str) else f.name)
            uploads.append((_original_name(path), path.read_bytes()))
        progress(0, desc="正在读取文件…")

        def report(done: int, total: int) -> None:
            progress(done / max(1, total), desc=f"已嵌入 {done}/{total} 个段落")

        try:
            result = add_documents(settings, engine.embedder, uploads, progress=report)
        except RagError as exc:
            return f"⚠️ {exc.user_message}", gr.update(), gr.update(), gr.update()
        engine.refresh()
        lines = [html.escape(result.message)]
        return "\n\n".join(lines), document_table(engine, settings), gr.update(choices=filter_choices(engine)), \
            gr.update(choices=[d["doc_id"] for d in engine.index.documents], value=None)

    def delete(doc_id: str, confirmed: bool, request: gr.Request):
        from rag.library import remove_document

        if not request_is_admin(request, settings):
            return "只有管理员可以删除文档。", gr.update(), gr.update(), gr.update()
        if not doc_id:
            return "请先选择要删除的文档。", gr.update(), gr.update(), gr.update()
        if not confirmed:
            return "已取消删除。", gr.update(), gr.update(), gr.update()
        try:
            result = remove_document(settings, engine.embedder, doc_id)
        except RagError as exc:
            return f"⚠️ {exc.user_message}", gr.update(), gr.update(), gr.update()
        engine.refresh()
        return html.escape(result.message), document_table(engine, settings), gr.update(choices=filter_choices(engine)), \
            gr.update(choices=[d["doc_id"] for d in engine.index.documents], value=None)

    def on_load(request: gr.Request):
        admin = request_is_admin(request, settings)
        try:
            engine.refresh()
            table, scope_choices = document_table(engine, settings), filter_choices(engine)
            ids = [d["doc_id"] for d in engine.index.documents]
        except RagError:
            table, scope_choices, ids = [], [ALL], []
        return gr.update(visible=admin), gr.update(visible=admin), table, gr.update(choices=scope_choices), gr.update(choices=ids)

    def respond(question: str, history: list, choice: str, in_force: bool = False):
        history = list(history or [])
        question = (question or "").strip()
        prior = [{"role": m["role"], "content": html.unescape(_text(m["content"]))} for m in history]
        # shown as text: a question is never rendered as HTML (no <img> fetched, no markup injected)
        history.append({"role": "user", "content": html.escape(question)})
        history.append({"role": "assistant", "content": "正在检索…"})
        yield history, "", None, gr.update(value="")
        try:
            filters = filters_from_choice(choice, engine, in_force)
            partial = ""
            for event in stream_answer(question, prior, engine=engine, filters=filters):
                if event.kind == "sources":
                    history[-1]["content"] = "已找到相关段落，正在生成回答…"
                    yield history, render_sources([c.to_context() for c in event.data], "检索到的段落：", root), None, gr.update()
                elif event.kind == "sentence":  # only sentences that passed the citation check are shown
                    partial += event.data
                    history[-1]["content"] = partial + "\n\n（生成中…）"
                    yield history, gr.update(), None, gr.update()
                elif event.kind == "final":
                    answer = event.data.to_dict()
                    history[-1]["content"] = answer_message(answer)
                    history[-1]["metadata"] = {"id": answer["answer_id"]}
                    log_question(settings.questions_file, answer)
                    yield history, render_citations(answer, root), answer, gr.update()
                # 'token' events are the model's unchecked text: never shown, only checked sentences are
        except RagError as exc:
            history[-1]["content"] = f"⚠️ {exc.user_message}"
            yield history, "", None, gr.update()
        except Exception as exc:  # noqa: BLE001 - a Chinese message in the chat, never an English toast
            import logging

            logging.getLogger("rag.ui").exception("answer failed: %s", exc)
            history[-1]["content"] = "⚠️ 生成回答时出错，请稍后重试或换一种问法。"
            yield history, "", None, gr.update()

    def vote(kind: str, last: dict | None, comment: str):
        if not last:
            return "请先提问，再评价回答。", gr.update()
        return _record_vote(kind, last, comment), gr.update(value="")

    def _record_vote(kind: str, answer: dict, comment: str) -> str:
        from rag.api import FeedbackLog

        try:
            FeedbackLog(settings.feedback_file).append({
                "answer_id": answer.get("answer_id", ""), "question": answer["question"], "answer": answer["answer"],
                "vote": kind, "comment": (comment or "")[:2000],
                "citations": [{k: c[k] for k in ("marker", "doc_id", "title", "section")} for c in answer["citations"]],
            })
        except OSError:
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
        from rag.feedback import JsonLog, review_rows

        return review_rows(JsonLog(settings.questions_file).read(), JsonLog(settings.feedback_file).read(),
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

        from rag.feedback import as_dataset

        if not request_is_admin(request, settings):
            return None, "只有管理员可以导出。"
        rows = _review_rows(only, since)
        if not rows:
            return None, "没有可导出的记录（所选条件下为空）。"
        out = Path(tempfile.mkdtemp(prefix="rag-export-")) / "feedback_dataset.jsonl"
        out.write_text(as_dataset(rows), encoding="utf-8")
        return str(out), f"已导出 {len(rows)} 条，格式与评测集相同（要点和证据请评测人员补充）。"

    with gr.Blocks(title="政策问答", analytics_enabled=False) as demo:
        gr.Markdown("## 政策问答\n依据知识产权政策文件回答；每句结论都标注出处，文件中没有的内容会明确说明。")
        with gr.Tab("问答", id="chat-tab"), gr.Row():
            with gr.Column(scale=3):
                with gr.Row():
                    scope = gr.Dropdown(choices, value=ALL, label="检索范围（文档或地区）", elem_id="scope", scale=3)
                    in_force = gr.Checkbox(label=IN_FORCE, value=False, elem_id="in-force", scale=1)
                chatbot = gr.Chatbot(label="对话", height="62vh", elem_id="chat", buttons=["copy", "copy_all"],
                                     feedback_options=("Like", "Dislike"), sanitize_html=True)
                question = gr.Textbox(label="问题", placeholder="例如：乌海市到2025年每万人发明专利拥有量的目标是多少？",
                                      elem_id="question", max_length=settings.max_question_chars)
                with gr.Row():
                    send = gr.Button("提问", variant="primary", elem_id="send")
                    stop = gr.Button("停止", variant="stop", elem_id="stop")
                    clear = gr.Button("新对话", elem_id="clear")
                gr.Examples(EXAMPLES, inputs=question, label="示例问题")
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
                        "扫描件（没有文字层的 PDF）无法导入。")
            files = gr.File(label="选择文件", file_count="multiple", file_types=UPLOAD_TYPES, elem_id="upload-files")
            upload_button = gr.Button("导入", variant="primary", elem_id="upload-button")
            status = gr.Markdown(elem_id="admin-status")
            table = gr.Dataframe(headers=[label for _, label in DOC_COLUMNS], interactive=False, elem_id="documents-table",
                                 wrap=True)
            with gr.Row():
                doomed = gr.Dropdown([], label="要删除的文档（编号）", elem_id="delete-doc", scale=3)
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
        last = gr.State(None)
        asked = send.click(respond, [question, chatbot, scope, in_force], [chatbot, sources, last, question])
        submitted = question.submit(respond, [question, chatbot, scope, in_force], [chatbot, sources, last, question])
        stop.click(lambda: "已停止。", None, thanks, cancels=[asked, submitted])
        chatbot.like(vote_message, [chatbot, comment], [thanks, comment])
        refresh.click(review, [only, since], [review_table, review_status])
        export_button.click(export, [only, since], [exported, review_status])
        upload_button.click(upload, [files], [status, table, scope, doomed])
        # the browser asks "确定删除…？" before anything is sent
        delete_button.click(delete, [doomed, confirmed], [status, table, scope, doomed],
                            js="(d, c) => [d, d ? confirm('确定删除文档“' + d + '”吗？删除后它不会再被引用。') : false]")
        demo.load(on_load, None, [admin_tab, review_tab, table, scope, doomed])
        clear.click(lambda: ([], "", None, ""), None, [chatbot, sources, last, thanks])
        up.click(lambda lst, c: vote("up", lst, c), [last, comment], [thanks, comment])
        down.click(lambda lst, c: vote("down", lst, c), [last, comment], [thanks, comment])
    demo.queue(default_concurrency_limit=settings.max_concurrency)
    return demo


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

    from rag.api import _parse_users, create_api

    engine = engine or Engine(settings)
    app = create_api(settings, engine)
    frontend = Path(gr.__file__).parent / "templates" / "frontend"
    if frontend.exists():
        app.mount("/gradio-static", StaticFiles(directory=frontend), name="gradio-static")
    users = list(_parse_users(settings.auth_users).items()) or None
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
    uvicorn.run(create_server(settings, engine), host=settings.host, port=settings.port, log_level="warning",
                timeout_graceful_shutdown=3)


def _warm(engine: Engine) -> None:
    try:
        engine.llm.load()
    except RagError as exc:
        print(f"注意：本地模型加载失败（{exc.user_message}），回答将退回抽取式。")


if __name__ == "__main__":
    serve(Settings.load())
