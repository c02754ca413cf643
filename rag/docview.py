"""The original document as a page: its facts, then its whole text with the cited span highlighted and scrolled into
view, passage anchors (#chunk-id) and, for PDFs, where each page begins. Plain HTML; every text is escaped."""

from __future__ import annotations

import html

from rag.chunking import Chunk
from rag.documents import page_of

STYLE = """
body{font-family:"WenQuanYi Zen Hei","Noto Sans CJK SC",sans-serif;margin:0;background:#f4f6f9;color:#1d2939}
header{background:#1f4e8c;color:#fff;padding:14px 24px}
header h1{font-size:1.3em;margin:0 0 6px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;margin:0;font-size:.92em}
dt{opacity:.8}dd{margin:0}
.status{display:inline-block;padding:0 8px;border-radius:10px;background:#fff;color:#1f4e8c;font-weight:600}
.status.expired{color:#b42318}
main{max-width:900px;margin:18px auto;background:#fff;padding:22px 30px;border-radius:6px;line-height:1.8;
white-space:pre-wrap;word-break:break-all}
mark#cited{background:#ffe58a;outline:2px solid #f5b700;border-radius:2px}
.page{display:block;text-align:center;color:#98a2b3;font-size:.85em;border-top:1px dashed #d0d5dd;margin:10px 0}
.cite-page{font-weight:600}
"""


def render_document(row: dict, text: str, chunks: list[Chunk], pages: list[int], start: int | None = None,
                    end: int | None = None) -> str:
    """The HTML page of one document. `start`/`end`: the cited span (offsets into `text`), highlighted."""
    marks: list[tuple[int, int, str]] = []  # (offset, order, html) inserted before text[offset]
    for number, offset in enumerate(pages, start=1):
        if number > 1:
            marks.append((offset, 0, f'<span class="page" id="page-{number}">第 {number} 页</span>'))
    for chunk in chunks:
        marks.append((chunk.start, 1, f'<span id="{html.escape(chunk.chunk_id, quote=True)}"></span>'))
    cited_page = None
    if start is not None and end is not None and 0 <= start < end <= len(text):
        marks.append((start, 2, '<mark id="cited">'))
        marks.append((end, -1, "</mark>"))
        cited_page = page_of(pages, start)
    marks.sort(key=lambda m: (m[0], m[1]))
    out, position = [], 0
    for offset, _order, fragment in marks:
        out.append(html.escape(text[position:offset]))
        out.append(fragment)
        position = offset
    out.append(html.escape(text[position:]))
    body = "".join(out).strip("\n")
    status_class = "status expired" if row.get("status") == "已到期" else "status"
    facts = [("发文机关", row.get("issuer")), ("日期", row.get("date")), ("文号", row.get("doc_number")),
             ("地区", row.get("region")), ("期限", row.get("period")), ("格式", row.get("format")),
             ("页数", row.get("pages") or None)]
    items = "".join(f"<dt>{label}</dt><dd>{html.escape(str(value))}</dd>" for label, value in facts if value)
    items += f'<dt>状态</dt><dd><span class="{status_class}">{html.escape(row.get("status", ""))}</span></dd>'
    if cited_page:
        items += f'<dt>引用位置</dt><dd class="cite-page">第 {cited_page} 页</dd>'
    title = html.escape(row.get("title", ""))
    return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>{STYLE}</style></head>
<body><header><h1>{title}</h1><dl>{items}</dl></header><main id="text">{body}</main>
<script>const c=document.getElementById("cited");if(c){{c.scrollIntoView({{block:"center"}});}}</script>
</body></html>"""
