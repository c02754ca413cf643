"""Files to text: plain text, Word (.docx), PDF (its text layer, or OCR for scanned pages), and web pages (.html/.htm).

Each converter returns the document's text plus what the layout says and the characters do not: headings marked by
a Word style or an HTML <h1>–<h6> (as an outline of offsets into the text), and where each PDF page starts. Offsets
into `Extracted.text` are what passages, citations and the document view use.

Libraries: python-docx (MIT), pypdfium2 (Apache-2.0/BSD), trafilatura (Apache-2.0) for the article body of a web
page, rapidocr (Apache-2.0, rag.ingest.ocr) for PDF pages without a text layer and pictures inside Word files. Every
failure is a CorpusError whose user message names the file and says what to do.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import CorpusError

SUPPORTED = {".txt": "text", ".md": "text", ".docx": "docx", ".pdf": "pdf", ".html": "html", ".htm": "html"}
_ADVICE = {
    ".doc": "旧版 Word 文件（.doc）请在 Word 中另存为 .docx 后再上传。",
    ".wps": "WPS 文件请另存为 .docx 后再上传。",
    ".xls": "表格文件不能作为政策文档导入，请导出为 .docx 或 .pdf。",
    ".xlsx": "表格文件不能作为政策文档导入，请导出为 .docx 或 .pdf。",
}
# A line that is only a page number: "- 3 -", "— 3 —", "第 3 页", "3/12".
_PAGE_NUMBER = re.compile(r"^\s*(?:[-—–－]\s*\d{1,4}\s*[-—–－]|第\s*\d{1,4}\s*页(?:\s*共\s*\d+\s*页)?|\d{1,4}\s*/\s*\d{1,4}|\d{1,4})\s*$")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # encrypted Office files and old .doc are OLE compound files


@dataclass
class Extracted:
    """A file's text and layout. `outline`: (start, end, level) of styled headings; `pages`: offset of each page.
    `ocr_pages`: the 1-based PDF pages read by OCR; `ocr_rows`: where each OCR'd row of text stands on its page,
    (start, end, page, left, top, right, bottom) with offsets into `text` and the rectangle in fractions of the page;
    `ocr_pictures`: pictures of a Word file whose text was read by OCR; `ocr_turns`: pages scanned sideways or upside
    down, with the turn they were read at (their rows' rectangles are on the page turned so)."""

    text: str
    format: str
    encoding: str = "utf-8"
    outline: list[tuple[int, int, int]] = field(default_factory=list)
    pages: list[int] = field(default_factory=list)
    ocr_pages: list[int] = field(default_factory=list)
    ocr_rows: list[tuple[int, int, int, float, float, float, float]] = field(default_factory=list)
    ocr_pictures: int = 0
    ocr_turns: list[tuple[int, int]] = field(default_factory=list)  # (page, clockwise degrees) of pages read turned


@dataclass(frozen=True)
class OcrOptions:
    """How pictures of text are read (RAG_OCR, RAG_OCR_MAX_PAGES, RAG_OCR_SCALE): whether at all, at most how many
    pages or pictures in one file, and the scale a PDF page is rendered at (1.5: 108 pixels per inch — on scans printed
    from the seed documents, 9–12 pt type, character accuracy 0.996 at 2.2 s a page, against 0.993 at 2.0 and 3.1 s,
    0.998 at 2.5 and 3.8 s: `rag bench --ocr`)."""

    enabled: bool = True
    max_pages: int = 200
    scale: float = 1.5


PageProgress = Callable[[int, int], None]  # (pages or pictures read so far, pages or pictures to read)
# A PDF page with fewer characters than this in its text layer is read as a picture: a scan carries at most a stamped
# page number or a few stray characters of an OCR layer nobody checked.
MIN_TEXT_LAYER_CHARS = 10
# Pictures in a Word file smaller than this (pixels, either side) are icons and rules, not text.
MIN_PICTURE_SIDE = 48


def check_supported(name: str) -> str:
    """The converter for a file name, or CorpusError saying which types are accepted."""
    suffix = Path(name).suffix.lower()
    if suffix in SUPPORTED:
        return SUPPORTED[suffix]
    advice = _ADVICE.get(suffix, "")
    raise CorpusError(f"{name}: unsupported type {suffix or '(none)'}",
                      f"文件 {name} 的类型（{suffix or '无扩展名'}）不支持；支持 .txt .md .docx .pdf .html。{advice}")


def convert(name: str, raw: bytes, ocr: OcrOptions | None = None, progress: PageProgress | None = None) -> Extracted:
    """Text and layout of one file's bytes. CorpusError with a Chinese message naming the file when it cannot be read.
    `ocr`: how scanned pages and pictures are read (default: on); `progress`: told of each page or picture OCR reads."""
    kind = check_supported(name)
    if not raw.strip():
        raise CorpusError(f"{name}: empty", f"文件 {name} 是空的。")
    ocr = ocr or OcrOptions()
    try:
        if kind == "pdf":
            extracted = _pdf(name, raw, ocr, progress)
        elif kind == "docx":
            extracted = _docx(name, raw, ocr, progress)
        else:
            extracted = {"text": _text, "html": _html}[kind](name, raw)
    except CorpusError:
        raise
    except Exception as exc:  # a library's own error on a damaged file
        raise CorpusError(f"{name}: cannot be read ({type(exc).__name__}: {exc})",
                          f"文件 {name} 已损坏或格式不对，无法读取。") from exc
    if not extracted.text.strip():
        raise CorpusError(f"{name}: no text", f"文件 {name} 中没有可读取的文字。")
    if len(extracted.text) > MAX_TEXT_CHARS:
        raise _too_big(name, f"{len(extracted.text)} characters", f"的文字有 {len(extracted.text)} 字（上限 {MAX_TEXT_CHARS} 字）")
    return extracted


def decode_bytes(raw: bytes) -> tuple[str, str]:
    """Decode a document: UTF-8 (with or without BOM) first, then GB18030 (a superset of GBK/GB2312)."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        # GB18030 decodes almost any byte string; insist the result looks like Chinese text.
        if encoding == "gb18030" and not _looks_chinese(text):
            continue
        return text.replace("\r\n", "\n").replace("\r", "\n"), encoding.replace("-sig", "")
    raise CorpusError("not UTF-8 or GB18030 text", "文件编码无法识别（需要 UTF-8 或 GB18030）。")


def _looks_chinese(text: str) -> bool:
    sample = text[:2000]
    if not sample:
        return True
    cjk = sum(1 for ch in sample if "\u4e00" <= ch <= "\u9fff")
    return cjk / max(1, len(sample.strip())) > 0.2


def _text(name: str, raw: bytes) -> Extracted:
    try:
        text, encoding = decode_bytes(raw)
    except CorpusError as exc:
        raise CorpusError(f"{name}: {exc}", f"文件 {name} 的编码无法识别（需要 UTF-8 或 GB18030）。") from exc
    return Extracted(text, "text", encoding)


class _Builder:
    """Accumulates blocks of text, one per line, recording heading offsets."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.outline: list[tuple[int, int, int]] = []

    def add(self, text: str, level: int = 0) -> None:
        text = re.sub(r"[ \t\u3000\xa0]*\n[ \t\u3000\xa0]*", "\n", text.replace("\r", "")).strip()
        if not text:
            return
        start = self.length
        if level:
            text = text.replace("\n", " ")
            self.outline.append((start, start + len(text), level))
        self.parts.append(text + "\n")
        self.length += len(text) + 1

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _heading_level(style_name: str) -> int:
    """Word heading styles ('Heading 2', '标题 2', 'Title'/'标题') → 1-based level; 0 for body text."""
    name = (style_name or "").strip().lower()
    if name in {"title", "标题"}:
        return 1
    match = re.fullmatch(r"(?:heading|标题)\s*(\d)", name)
    return int(match.group(1)) + 1 if match else 0


# Bounds on what one file may expand to while it is read (issue 19 F5): far above any real policy document (the
# longest law in ../shared has 1,200 KB of text; a code of laws of 2,000 articles about 1.5 MB), far below what a
# crafted file can make a converter spend minutes on.
MAX_EXPANDED_MB = 60  # a Word file's XML parts, uncompressed
MAX_PDF_PAGES = 3000
MAX_TEXT_CHARS = 6_000_000


def _too_big(name: str, what: str, advice: str) -> CorpusError:
    return CorpusError(f"{name}: too large ({what})", f"文件 {name} {advice}，超出单个文件的处理上限，没有导入；请拆分后再上传。")


def _docx(name: str, raw: bytes, ocr: OcrOptions, progress: PageProgress | None = None) -> Extracted:
    if raw.startswith(_OLE_MAGIC):
        raise CorpusError(f"{name}: OLE container (encrypted or legacy Word)",
                          f"文件 {name} 设有密码或是旧版 Word 格式，无法读取；请取消密码并另存为 .docx 后再上传。")
    import zipfile

    with zipfile.ZipFile(io.BytesIO(raw)) as archive:  # the sizes the zip declares: checked before anything expands
        expanded = sum(info.file_size for info in archive.infolist())
    if expanded > MAX_EXPANDED_MB * 1024 * 1024:
        raise _too_big(name, f"{expanded} bytes expanded", f"解压后有 {expanded / 1024 / 1024:.0f} MB（上限 {MAX_EXPANDED_MB} MB）")
    import docx
    from docx.oxml.ns import qn

    document = docx.Document(io.BytesIO(raw))
    out = _Builder()
    body = document.element.body
    paragraphs = {p._p: p for p in document.paragraphs}
    tables = {t._tbl: t for t in document.tables}
    pictures = _pictures(name, document, ocr) if ocr.enabled else {}
    read = 0
    for child in body.iterchildren():
        if child.tag == qn("w:p") and child in paragraphs:
            paragraph = paragraphs[child]
            out.add(paragraph.text, _heading_level(paragraph.style.name if paragraph.style is not None else ""))
            for blob in pictures.get(child, ()):
                for line in _picture_lines(blob):
                    out.add(line)
                read += 1
                if progress is not None:
                    progress(read, sum(len(b) for b in pictures.values()))
        elif child.tag == qn("w:tbl") and child in tables:
            for row in tables[child].rows:
                cells: list[str] = []
                for cell in row.cells:
                    value = cell.text.strip()
                    if value and (not cells or cells[-1] != value):  # merged cells repeat their text
                        cells.append(value)
                out.add("  ".join(cells))
    if not out.text.strip():
        chunk = _alt_chunk_html(document)
        if chunk is not None:  # the body is an embedded HTML/MHT part (w:altChunk): all of it is the document
            return _html_body(name, chunk)
    return Extracted(out.text, "docx", outline=out.outline, ocr_pictures=read)


def _pictures(name: str, document, ocr: OcrOptions) -> dict:
    """The pictures of each body paragraph (its w:drawing / v:imagedata), as image bytes, in the order they stand."""
    from docx.oxml.ns import qn

    found: dict = {}
    count = 0
    parts = document.part.related_parts
    for child in document.element.body.iterchildren():
        if child.tag != qn("w:p"):
            continue
        blobs = []
        for element in child.iter(qn("a:blip"), "{urn:schemas-microsoft-com:vml}imagedata"):
            rid = element.get(qn("r:embed")) or element.get(qn("r:id"))
            part = parts.get(rid) if rid else None
            if part is not None and getattr(part, "content_type", "").startswith("image/"):
                blobs.append(part.blob)
        if blobs:
            found[child] = blobs
            count += len(blobs)
    if count > ocr.max_pages:
        raise CorpusError(f"{name}: {count} pictures to read, over the OCR limit {ocr.max_pages}",
                          f"文件 {name} 有 {count} 张图片需要文字识别（上限 {ocr.max_pages} 张，RAG_OCR_MAX_PAGES），"
                          "没有导入；请拆分文件后再上传。")
    return found


def _picture_lines(blob: bytes) -> list[str]:
    """The lines of text in one picture of a Word file; none for a picture that is not an image OpenCV can read, or
    too small to hold text."""
    import cv2
    import numpy as np

    from rag.ingest import ocr

    image = cv2.imdecode(np.frombuffer(blob, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None or min(image.shape[:2]) < MIN_PICTURE_SIDE:
        return []
    return [line.text for line in ocr.read_image(image)]


_ALT_CHUNK = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/aFChunk"


def _alt_chunk_html(document) -> bytes | None:
    """The HTML of a Word file whose body is an imported chunk (w:altChunk → word/afchunk.mht or .html), as bytes.
    MHT is a MIME message: its text/html part is decoded (quoted-printable, base64) by the standard email parser."""
    import email
    from email import policy

    for rel in document.part.rels.values():
        if rel.reltype != _ALT_CHUNK or rel.is_external:
            continue
        blob = rel.target_part.blob
        if b"MIME-Version" in blob[:2000] or b"Content-Type: multipart" in blob[:2000]:
            message = email.message_from_bytes(blob, policy=policy.default)
            for part in message.walk():
                if part.get_content_type() == "text/html":
                    html = part.get_content()
                    return html.encode("utf-8") if isinstance(html, str) else bytes(html)
        elif blob.lstrip()[:1] == b"<":
            return blob
    return None


def _pdf(name: str, raw: bytes, ocr: OcrOptions, progress: PageProgress | None = None) -> Extracted:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(raw)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise CorpusError(f"{name}: password protected", f"文件 {name} 设有打开密码，无法读取；请提供未加密的版本。") from exc
        raise CorpusError(f"{name}: not a readable PDF ({exc})", f"文件 {name} 不是有效的 PDF 或已损坏，无法读取。") from exc
    try:
        if len(pdf) > MAX_PDF_PAGES:
            raise _too_big(name, f"{len(pdf)} pages", f"有 {len(pdf)} 页（上限 {MAX_PDF_PAGES} 页）")
        layer = [page.get_textpage().get_text_bounded().replace("\r\n", "\n").replace("\r", "\n") for page in pdf]
        scanned = [i for i, text in enumerate(layer) if len(re.sub(r"\s", "", text)) < MIN_TEXT_LAYER_CHARS]
        if scanned and not ocr.enabled:
            if len(scanned) == len(layer):
                raise CorpusError(f"{name}: no text layer and OCR is off",
                                  f"文件 {name} 没有文字层（可能是扫描件或图片），而文字识别已关闭（RAG_OCR=0），无法检索；"
                                  "请上传带文字的 PDF 或 Word 版本。")
            scanned = []
        if len(scanned) > ocr.max_pages:
            raise CorpusError(f"{name}: {len(scanned)} scanned pages, over the OCR limit {ocr.max_pages}",
                              f"文件 {name} 有 {len(scanned)} 页扫描页需要文字识别（上限 {ocr.max_pages} 页，"
                              "RAG_OCR_MAX_PAGES），没有导入；请拆分成几个文件后再上传，或提供带文字层的版本。")
        rows: dict[int, list[tuple[int, int, tuple[float, float, float, float]]]] = {}
        turns: list[tuple[int, int]] = []
        for done, i in enumerate(scanned, start=1):
            layer[i], rows[i], degrees = _ocr_page(pdf[i], ocr.scale)
            if degrees:
                turns.append((i + 1, degrees))
            if progress is not None:
                progress(done, len(scanned))
    finally:
        pdf.close()
    pages, starts, ocr_rows, length = [], [], [], 0
    for i, text in enumerate(layer):
        lines = [" " * len(line) if _PAGE_NUMBER.match(line) else line for line in text.split("\n")]
        text = "\n".join(lines).rstrip() + "\n"
        for start, end, rect in rows.get(i, ()):
            if start < len(text) and text[start:end].strip():
                ocr_rows.append((length + start, length + end, i + 1, *rect))
        starts.append(length)
        pages.append(text)
        length += len(text)
    text = "".join(pages)
    if not re.sub(r"\s", "", text):
        if scanned:
            raise CorpusError(f"{name}: OCR found no text",
                              f"文件 {name} 是扫描件或图片，但文字识别没有识别出文字（图片中可能没有文字，或过于模糊）；"
                              "请上传清晰的扫描件，或带文字的 PDF / Word 版本。")
        raise CorpusError(f"{name}: no text layer",
                          f"文件 {name} 没有文字层（可能是扫描件或图片），无法检索；请上传带文字的 PDF 或 Word 版本。")
    return Extracted(text, "pdf", outline=[], pages=starts, ocr_pages=[i + 1 for i in scanned], ocr_rows=ocr_rows,
                     ocr_turns=turns)


MAX_RENDER_SIDE = 4000  # pixels: a poster-sized page is rendered smaller, never at tens of thousands of pixels


def _ocr_page(page, scale: float) -> tuple[str, list[tuple[int, int, tuple[float, float, float, float]]], int]:
    """One PDF page rendered and read by OCR: its text (a line per paragraph), each row's (start, end, rect) and the
    clockwise turn it was read at (0 unless it was scanned sideways or upside down)."""
    from rag.ingest import ocr

    scale = min(scale, MAX_RENDER_SIDE / max(1.0, *page.get_size()))
    lines, degrees = ocr.read_page(lambda turn: page.render(scale=scale, rotation=turn).to_numpy())
    text, rows = "", []
    for line in lines:
        for start, end, rect in line.rows:
            rows.append((len(text) + start, len(text) + end, rect))
        text += line.text + "\n"
    return text, rows, degrees


def _html(name: str, raw: bytes) -> Extracted:
    import trafilatura
    from lxml import etree

    # trafilatura decodes the bytes itself (the page's declared charset, then detection: GB2312 pages are common).
    xml = trafilatura.extract(raw, output_format="xml", include_formatting=False, include_tables=True,
                              include_comments=False, favor_recall=True)
    out = _Builder()
    title = _page_title(raw)
    if title and xml and re.sub(r"\s+", "", title) not in re.sub(r"\s+", "", "".join(etree.fromstring(
            xml.encode("utf-8")).itertext()))[:300]:
        out.add(title, 1)  # a page whose body is only a table or a list: its <title> names it
    if xml:
        root = etree.fromstring(xml.encode("utf-8"))
        main = root.find("main")
        for element in (main if main is not None else root).iter("head", "p", "item", "row", "cell"):
            if element.tag == "row":
                out.add("  ".join("".join(c.itertext()).strip() for c in element.iter("cell")))
            elif element.tag == "cell" or (element.tag == "p" and _inside(element, "item")):
                continue  # cells are read with their row; a list item's paragraph with the item
            elif element.tag == "head":
                level = re.fullmatch(r"h(\d)", element.get("rend", "") or "")
                out.add("".join(element.itertext()), int(level.group(1)) if level else 2)
            else:
                out.add("".join(element.itertext()))
    if not out.text.strip():
        raise CorpusError(f"{name}: no article body", f"网页 {name} 中没有找到正文。")
    return Extracted(out.text, "html", outline=out.outline)


def _page_title(raw: bytes) -> str:
    """The page's <title> without the site's name ("关于…的公示_国家知识产权局" → "关于…的公示"); '' for none."""
    import trafilatura

    metadata = trafilatura.extract_metadata(raw)
    title = (metadata.title or "") if metadata else ""
    return re.split(r"\s*[_|｜]\s*|\s+[-—–]\s+", title.strip())[0][:80] if title.strip() else ""


def _html_body(name: str, raw: bytes) -> Extracted:
    """Every block of an HTML body (headings h1–h6 as the outline): for HTML that is all document and no page chrome,
    such as a Word file's embedded chunk, where an article extractor would keep too little."""
    import lxml.html

    root = lxml.html.fromstring(raw)
    for junk in root.xpath("//script|//style|//head"):
        junk.drop_tree()
    out = _Builder()
    for element in root.iter("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "tr"):
        if element.tag == "p" and _inside(element, "li"):
            continue
        if element.tag == "tr":
            out.add("  ".join(c.text_content().strip() for c in element.iter("td", "th")))
        elif element.tag.startswith("h") and len(element.tag) == 2:
            out.add(element.text_content(), int(element.tag[1]))
        else:
            for line in element.text_content().split("\n"):
                out.add(line)
    if not out.text.strip():
        raise CorpusError(f"{name}: no text", f"文件 {name} 中没有可读取的文字。")
    return Extracted(out.text, "docx", outline=out.outline)


def _inside(element, tag: str) -> bool:
    parent = element.getparent()
    while parent is not None:
        if parent.tag == tag:
            return True
        parent = parent.getparent()
    return False
