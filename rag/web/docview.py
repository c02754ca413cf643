"""The original document as a page: a link back to the chat, its facts, then its whole text with the headings set
in bold (chapters larger), the cited span highlighted and scrolled into view, passage anchors (#chunk-id) and, for
PDFs, where each page begins. Plain HTML; every text is escaped. Markup only wraps the text (spans, the mark): the
text itself is unchanged, so offsets into it stay exact."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

from cachetools import LRUCache, cached

from rag.ingest.chunking import _HEADING_RE, BODY_LABEL, MAX_TITLE_CHARS, PREAMBLE_LABEL, Chunk, find_headings
from rag.ingest.documents import page_of

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
.back{display:inline-block;color:#fff;text-decoration:none;font-size:.92em;margin:0 0 8px;padding:2px 6px 2px 0}
.back:hover{text-decoration:underline}.back:focus-visible{outline:2px solid #f5b700;outline-offset:2px}
.h{font-weight:700;color:#12355f}.h1{font-size:1.3em}.h2{font-size:1.12em}
.page{display:block;text-align:center;color:#98a2b3;font-size:.85em;border-top:1px dashed #d0d5dd;margin:10px 0}
.cite-page{font-weight:600}
.split{display:flex;gap:18px;align-items:flex-start;max-width:1700px;margin:0 auto;padding:0 14px}
.split main{flex:1 1 55%;margin:18px 0;max-width:none}
.scan{flex:1 1 45%;position:sticky;top:8px;margin:18px 0;max-height:calc(100vh - 16px);overflow:auto;
background:#fff;padding:12px 16px;border-radius:6px}
@media(max-width:1000px){.split{display:block}.scan{position:static;max-height:none}}
.scan figcaption{font-size:.9em;color:#475467;margin:0 0 8px}
.sheet{position:relative;display:inline-block;max-width:100%;border:1px solid #d0d5dd}
.sheet img{display:block;max-width:100%;height:auto}
.sheet .row{position:absolute;background:rgba(255,229,138,.45);outline:2px solid #f5b700;border-radius:2px}
.page a{color:#667085}
"""


# Heading kinds (rag.ingest.chunking) by how they are set: 1 chapter-level (larger), 2 section-level (一、, 第X节), 3 bold.
_LEVELS = {"chapter": 1, "part": 2, "cn": 2}
_SPACE = " \t\u3000\xa0\r"


def heading_spans(text: str, chunks: list[Chunk]) -> list[tuple[int, int, int]]:
    """(start, end, level) of the headings in `text`, in order and disjoint.

    The headings the chunker finds (第一章, 一、, （一）, 第X条 …, at a line start or inline after a sentence end): their
    marker and title; only the marker when the title runs on into a long paragraph. And every line equal to the last
    part of a passage's section path (headings that carry no marker, from a Word style or an HTML <h2>)."""
    found: list[tuple[int, int, int]] = []
    for heading in find_headings(text):
        marker = _HEADING_RE.match(text, heading.start)
        marker_end = marker.end() if marker else heading.start
        end = heading.title_end if heading.title_end - marker_end < MAX_TITLE_CHARS else marker_end
        while end > heading.start and text[end - 1] in _SPACE:
            end -= 1
        if end > heading.start:
            found.append((heading.start, end, _LEVELS.get(heading.kind, 3)))
    labels: dict[str, int] = {}
    for chunk in chunks:
        path = list(getattr(chunk, "section_path", None) or [])
        if path and path[-1] not in (PREAMBLE_LABEL, BODY_LABEL):
            labels.setdefault(path[-1].strip(_SPACE), 2 if len(path) == 1 else 3)
    if labels:
        for line in re.finditer(r"[^\n]+", text):
            stripped = line.group().strip(_SPACE)
            if stripped in labels:
                start = line.start() + line.group().index(stripped)
                marker = _HEADING_RE.match(text, start)
                level = _LEVELS.get(marker.lastgroup or "", 3) if marker else labels[stripped]
                found.append((start, start + len(stripped), level))
    spans: list[tuple[int, int, int]] = []
    for start, end, level in sorted(found, key=lambda s: (s[0], -s[1])):
        if not spans or start >= spans[-1][1]:
            spans.append((start, end, level))
    return spans


def render_text(text: str, chunks: list[Chunk], pages: list[int], start: int | None = None,
                end: int | None = None, scanned: dict[int, str] | None = None) -> str:
    """The text as HTML: escaped, headings in <span class="h hN">, the cited span in one <mark id="cited">, passage
    anchors and page breaks between. Headings are split where the mark begins or ends, so the tags always nest.
    `scanned`: the image address of each page read by OCR, linked from its page break."""
    scanned = scanned or {}
    points: dict[int, list[str]] = {}  # fragments that take no text, inserted before text[offset]
    for number, offset in enumerate(pages, start=1):
        if (number > 1 or number in scanned) and 0 <= offset <= len(text):
            link = (f' · <a href="{html.escape(scanned[number], quote=True)}" target="_blank">原件图片</a>'
                    if number in scanned else "")
            points.setdefault(offset, []).append(f'<span class="page" id="page-{number}">第 {number} 页（文字识别）{link}</span>'
                                                 if number in scanned else
                                                 f'<span class="page" id="page-{number}">第 {number} 页</span>')
    for chunk in chunks:
        if 0 <= chunk.start <= len(text):
            points.setdefault(chunk.start, []).append(f'<span id="{html.escape(chunk.chunk_id, quote=True)}"></span>')
    cited = start is not None and end is not None and 0 <= start < end <= len(text)
    headings = heading_spans(text, chunks)
    bounds = {0, len(text), *points}
    bounds.update(x for h in headings for x in h[:2])
    if cited and start is not None and end is not None:
        bounds.update((start, end))
    order = sorted(bounds)
    level_at = {h_start: (h_end, level) for h_start, h_end, level in headings}
    out: list[str] = []
    heading_end, heading_level = -1, 0
    for i, offset in enumerate(order):
        if cited and offset == end:
            out.append("</mark>")
        out.extend(points.get(offset, ()))
        if cited and offset == start:
            out.append('<mark id="cited">')
        if i + 1 == len(order):
            break
        if offset in level_at:
            heading_end, heading_level = level_at[offset]
        piece = html.escape(text[offset:order[i + 1]])
        out.append(f'<span class="h h{heading_level}">{piece}</span>' if offset < heading_end else piece)
    return "".join(out)


PAGE_IMAGE_SCALE = 1.5  # 108 pixels per inch: a page readable on a screen; JPEG (a scan is a photo): ~150 KB


@cached(LRUCache(maxsize=32), key=lambda path, fingerprint, page, degrees=0, shared=None: (str(path), fingerprint, page,
                                                                                          degrees))
def page_jpeg(path: Path, fingerprint: str, page: int, degrees: int = 0, shared=None) -> bytes:
    """One page of a PDF original as a JPEG (cached by the file's fingerprint), turned clockwise by `degrees` (a page
    scanned sideways is shown the way OCR read it); UnknownDocumentError in Chinese when the document has no such page
    or its original is not a PDF on this machine."""
    import pypdfium2 as pdfium

    from rag.errors import UnknownDocumentError

    missing = UnknownDocumentError(f"no page {page} of {path.name}", f"文档“{path.name}”没有第 {page} 页的原件图片。")
    if path.suffix.lower() != ".pdf":
        raise missing
    source: Path | bytes | None = path if path.is_file() else (shared() if shared is not None else None)
    if source is None:  # received by another machine, and not in the shared database either
        raise missing
    pdf = pdfium.PdfDocument(source)
    try:
        if not 1 <= page <= len(pdf):
            raise missing
        image = pdf[page - 1].render(scale=PAGE_IMAGE_SCALE, rotation=degrees).to_pil()
    finally:
        pdf.close()
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=80)
    return out.getvalue()


def page_figure(page: int, image_url: str, rows: list, start: int | None, end: int | None) -> str:
    """The image of one page read by OCR, with the rows holding the cited span marked on it."""
    marks = []
    for row in rows:
        row_start, row_end, row_page, left, top, right, bottom = row
        if row_page == page and start is not None and end is not None and row_start < end and start < row_end:
            marks.append(f'<div class="row" style="left:{left * 100:.2f}%;top:{top * 100:.2f}%;'
                         f'width:{(right - left) * 100:.2f}%;height:{(bottom - top) * 100:.2f}%"></div>')
    caption = f"第 {page} 页原件（扫描件，文字由文字识别读出{'；引用的行已标出' if marks else ''}）"
    return (f'<section class="scan"><figure id="page-image"><figcaption>{caption}</figcaption><div class="sheet">'
            f'<img src="{html.escape(image_url, quote=True)}" alt="第 {page} 页原件">'
            f'{"".join(marks)}</div></figure></section>')


def render_document(row: dict, text: str, chunks: list[Chunk], pages: list[int], start: int | None = None,
                    end: int | None = None, back_url: str = "/", ocr_rows: list | None = None,
                    page_url: str = "") -> str:
    """The HTML page of one document. `start`/`end`: the cited span (offsets into `text`), highlighted.
    `back_url`: the chat (root_path + ui_path), for the link back. For a scan, `ocr_rows` (rag.ingest.converters
    Extracted.ocr_rows) and `page_url` (the page image's address with {page} in it): the cited page is shown as the
    image it was read from, the cited rows marked."""
    cited_page = page_of(pages, start) if start is not None and end is not None and 0 <= start < end <= len(text) else None
    ocr_pages = sorted({int(r[2]) for r in ocr_rows or ()}) if page_url else []
    scanned = {page: page_url.replace("{page}", str(page)) for page in ocr_pages}
    figure = ""
    if scanned:
        shown = cited_page if cited_page in scanned else ocr_pages[0]
        figure = page_figure(shown, scanned[shown], list(ocr_rows or ()), start, end)
    body = render_text(text, chunks, pages, start, end, scanned).strip("\n")
    status_class = "status expired" if row.get("status") == "已到期" else "status"
    facts = [("发文机关", row.get("issuer")), ("日期", row.get("date")), ("文号", row.get("doc_number")),
             ("地区", row.get("region")), ("期限", row.get("period")), ("格式", row.get("format")),
             ("页数", row.get("pages") or None),
             ("文字识别", f"{row['ocr_pages']} 页扫描页由文字识别读出，可能有个别错字" if row.get("ocr_pages") else None)]
    items = "".join(f"<dt>{label}</dt><dd>{html.escape(str(value))}</dd>" for label, value in facts if value)
    items += f'<dt>状态</dt><dd><span class="{status_class}">{html.escape(row.get("status", ""))}</span></dd>'
    if cited_page:
        items += f'<dt>引用位置</dt><dd class="cite-page">第 {cited_page} 页</dd>'
    title = html.escape(row.get("title", ""))
    back = html.escape(back_url or "/", quote=True)
    return f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>{STYLE}</style></head>
<body><header><a class="back" id="back" href="{back}">← 返回问答</a><h1>{title}</h1><dl>{items}</dl></header>
{f'<div class="split"><main id="text">{body}</main>{figure}</div>' if figure else f'<main id="text">{body}</main>'}
<script>{SCRIPT}</script>
</body></html>"""


# The back link: opened from the chat in this tab, go back to it (its conversation is still there); else follow the link.
# The cited span: centred now, and again once the page has loaded, since a #cited in the address makes the browser
# scroll the mark to the top of the window when loading ends; and whenever #cited is navigated to again.
SCRIPT = """(function(){
var b=document.getElementById("back");
if(b){b.addEventListener("click",function(e){try{
var r=document.referrer?new URL(document.referrer):null,h=new URL(b.href);
if(r&&r.origin===location.origin&&r.pathname.indexOf(h.pathname)===0&&r.pathname.indexOf("/doc/")<0&&history.length>1){
e.preventDefault();history.back();}}catch(x){}});}
var c=document.getElementById("cited");if(!c){return;}
function centre(){var tall=c.getBoundingClientRect().height>window.innerHeight*0.8;
c.scrollIntoView({block:tall?"start":"center"});}
centre();
if(document.readyState==="complete"){requestAnimationFrame(centre);}
else{window.addEventListener("load",function(){requestAnimationFrame(centre);});}
window.addEventListener("hashchange",function(){if(location.hash==="#cited"){centre();}});
})();"""
