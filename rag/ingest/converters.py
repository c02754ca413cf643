"""Files to text: plain text, Word (.docx), PDF with a text layer, and government web pages (.html/.htm).

Each converter returns the document's text plus what the layout says and the characters do not: headings marked by
a Word style or an HTML <h1>–<h6> (as an outline of offsets into the text), and where each PDF page starts. Offsets
into `Extracted.text` are what passages, citations and the document view use.

Libraries: python-docx (MIT), pypdfium2 (Apache-2.0/BSD), trafilatura (Apache-2.0) for the article body of a web
page. Every failure is a CorpusError whose user message names the file and says what to do.
"""

from __future__ import annotations

import io
import re
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
    """A file's text and layout. `outline`: (start, end, level) of styled headings; `pages`: offset of each page."""

    text: str
    format: str
    encoding: str = "utf-8"
    outline: list[tuple[int, int, int]] = field(default_factory=list)
    pages: list[int] = field(default_factory=list)


def check_supported(name: str) -> str:
    """The converter for a file name, or CorpusError saying which types are accepted."""
    suffix = Path(name).suffix.lower()
    if suffix in SUPPORTED:
        return SUPPORTED[suffix]
    advice = _ADVICE.get(suffix, "")
    raise CorpusError(f"{name}: unsupported type {suffix or '(none)'}",
                      f"文件 {name} 的类型（{suffix or '无扩展名'}）不支持；支持 .txt .md .docx .pdf .html。{advice}")


def convert(name: str, raw: bytes) -> Extracted:
    """Text and layout of one file's bytes. CorpusError with a Chinese message naming the file when it cannot be read."""
    kind = check_supported(name)
    if not raw.strip():
        raise CorpusError(f"{name}: empty", f"文件 {name} 是空的。")
    try:
        extracted = {"text": _text, "docx": _docx, "pdf": _pdf, "html": _html}[kind](name, raw)
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


def _docx(name: str, raw: bytes) -> Extracted:
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
    for child in body.iterchildren():
        if child.tag == qn("w:p") and child in paragraphs:
            paragraph = paragraphs[child]
            out.add(paragraph.text, _heading_level(paragraph.style.name if paragraph.style is not None else ""))
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
    return Extracted(out.text, "docx", outline=out.outline)


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


def _pdf(name: str, raw: bytes) -> Extracted:
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
        pages, starts, length = [], [], 0
        for page in pdf:
            text = page.get_textpage().get_text_bounded().replace("\r\n", "\n").replace("\r", "\n")
            lines = [" " * len(line) if _PAGE_NUMBER.match(line) else line for line in text.split("\n")]
            text = "\n".join(lines).rstrip() + "\n"
            starts.append(length)
            pages.append(text)
            length += len(text)
    finally:
        pdf.close()
    text = "".join(pages)
    if not re.sub(r"\s", "", text):
        raise CorpusError(f"{name}: no text layer",
                          f"文件 {name} 没有文字层（可能是扫描件或图片），无法检索；请上传带文字的 PDF 或 Word 版本。")
    return Extracted(text, "pdf", outline=[], pages=starts)


def _html(name: str, raw: bytes) -> Extracted:
    import trafilatura
    from lxml import etree

    # trafilatura decodes the bytes itself (the page's declared charset, then detection: GB2312 pages are common).
    xml = trafilatura.extract(raw, output_format="xml", include_formatting=False, include_tables=True,
                              include_comments=False, favor_recall=True)
    out = _Builder()
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
