"""Reading `data/`: the manifest, converting each file to text (rag.ingest.converters), and masking web-page chrome."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import CorpusError
from rag.ingest.converters import SUPPORTED, Extracted
from rag.ingest.converters import convert as _convert
from rag.ingest.docfacts import FACTS_VERSION, extract_facts, facts_to_json, merge_with_manifest
from rag.language.text import simplified_in_place
from rag.language.vocab import load_vocabulary

MANIFEST_NAME = "manifest.json"
# Bump when conversion changes: a document's fingerprint includes it, so `rag index` re-reads changed formats.
CONVERTER_VERSION = 2  # 2: traditional characters read as simplified; titles never a 第X章/条 heading

# Whole lines that are layout, in any format: a converter's page marker, a page number alone on its line (- 12 -,
# 第3页 共50页, 12/50). A web page's furniture lines (打印 关闭, 上一篇：…) are vocabulary: vocab/page_chrome.txt.
_LAYOUT_LINE = (r"<!--.*?-->|[-—–]\s*\d{1,4}\s*[-—–]|第\s*\d{1,4}\s*页(?:\s*[,，/]?\s*共\s*\d{1,4}\s*页)?"
                r"|\d{1,4}\s*/\s*\d{1,4}")


@functools.lru_cache(maxsize=4)
def _chrome_line(source: str) -> re.Pattern:
    """Whole lines that are page furniture, not policy text. Masking them with spaces (instead of deleting them)
    keeps every character offset identical to the file on disk."""
    furniture = "|".join(load_vocabulary(source).page_chrome)
    return re.compile(r"^\s*(?:" + (furniture + "|" if furniture else "") + _LAYOUT_LINE + r")\s*$")


@dataclass(frozen=True)
class Document:
    """One policy document; `text` is the file's text with chrome lines blanked (same offsets)."""

    doc_id: str
    title: str
    text: str
    path: Path
    issuer: str = ""
    region: str = ""
    province: str = ""
    city: str = ""
    date: str = ""
    doc_number: str = ""
    aliases: tuple[str, ...] = field(default_factory=tuple)
    encoding: str = "utf-8"
    in_manifest: bool = True
    facts: dict = field(default_factory=dict)  # docfacts.Fact by name: what the text states, the manifest filling gaps
    format: str = "text"  # text | docx | pdf | html
    outline: tuple = ()  # (start, end, level) of headings the layout marks (Word styles, HTML <h1>–<h6>)
    pages: tuple = ()  # PDF: offset where each page starts
    kb: str = ""  # the knowledge base it belongs to (rag/store/bases.py); "" = the first
    ocr_pages: tuple = ()  # PDF: the 1-based pages whose text OCR read (scans)
    ocr_rows: tuple = ()  # (start, end, page, left, top, right, bottom): each OCR'd row on its page (fractions)
    ocr_pictures: int = 0  # Word: pictures whose text OCR read
    ocr_turns: tuple = ()  # (page, clockwise degrees): scanned pages read turned (sideways, upside down)
    fingerprint: str = ""  # changes when the file's bytes, its manifest entry or the conversion change

    def metadata(self) -> dict:
        """The manifest view of this document (no text)."""
        return {
            "doc_id": self.doc_id,
            "title": self.title,
            "issuer": self.issuer,
            "region": self.region,
            "province": self.province,
            "city": self.city,
            "date": self.date,
            "doc_number": self.doc_number,
            "aliases": list(self.aliases),
            "file": self.path.name,
            "chars": len(self.text),
            "in_manifest": self.in_manifest,
            "period": self.facts["period"].value if "period" in self.facts else "",
            "facts": facts_to_json(self.facts),
            "format": self.format,
            "pages": list(self.pages),
            "kb": self.kb,
            "ocr_pages": list(self.ocr_pages),
            "ocr_rows": [list(row) for row in self.ocr_rows],
            "ocr_pictures": self.ocr_pictures,
            "ocr_turns": [list(turn) for turn in self.ocr_turns],
            "fingerprint": self.fingerprint,
        }

    def page_of(self, offset: int) -> int | None:
        """1-based PDF page holding `offset`; None for formats without pages."""
        return page_of(self.pages, offset)


def page_of(pages, offset: int) -> int | None:
    """1-based page holding `offset`, given each page's start offset; None when there are no pages."""
    import bisect

    return bisect.bisect_right(list(pages), offset) if pages else None


def mask_chrome(text: str) -> str:
    """Blank page-furniture lines with spaces, so offsets into the result equal offsets into the file."""
    chrome = _chrome_line(load_vocabulary().source)
    out = []
    for line in text.split("\n"):
        if chrome.match(line):
            line = " " * len(line)
        else:  # Markdown heading marks ("## 第三章") are layout, not text
            line = _MD_HEADING.sub(lambda m: " " * len(m.group()), line)
        out.append(line)
    return "\n".join(out)


_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}(?=\s)")


_MARKUP = re.compile(r"^\s*(?:#{1,6}\s*|\*\*|>\s*)|\*\*\s*$")
_NOT_TITLE = re.compile(r"^(?:<!--|[（(]|目\s*录|来源|发布|时间|日期|索\s*引|\d{4}[-年./]\d{1,2}|[\u4e00-\u9fff]{1,8}\s*[:：])"
                        r"|[|｜]|[。；;：:，,]$|https?://|^\d{1,2}[.．、]\S"
                        r"|^[〇○Ο零一二三四五六七八九十\d]{2,4}\s*年\s*[〇○Ο零一二三四五六七八九十\d]{1,3}\s*月"
                        r"\s*[〇○Ο零一二三四五六七八九十\d]{1,3}\s*日$")  # a date line (二〇一一年九月七日) is the signature's
_ORDER_NUMBER = re.compile(r"^第[〇○零一二三四五六七八九十百\d]{1,6}号$")  # "国家知识产权局令" / "第三十二号": one title


_STRUCTURE_HEADING = re.compile(r"^第[〇○零一二三四五六七八九十百千\d]{1,8}[编章节条]")  # a section, never the title
_RUN_ON_TITLE_CHARS = 60
_TABLE_ROW = re.compile(r"\S(?:\s{2,}|\t)\S+(?:\s{2,}|\t)\S")  # three cells a converter set apart: a table's row


def title_line(text: str, kinds: tuple[str, ...] = ()) -> str:
    """The document's title, from its own head: Markdown marks, page markers, dates, 来源 lines, 文号 lines, table rows,
    section headings (第一章 总则) and sentences are passed over; the first line ending with a document kind (条例,
    办法, 通知, 公示 …, vocab/document_kinds.txt) wins, else the first short line that is not a sentence; a document
    that is one long line gives the kind-ending words it starts with. '' when there is none (see `untitled_label`)."""
    from rag.ingest.docfacts import DOC_NUMBER

    if not kinds:
        kinds = load_vocabulary().document_kinds
    candidates = []
    lines = [re.sub(r"\s+", " ", _MARKUP.sub("", raw).strip()) for raw in text[:3000].split("\n")[:40]
             if not _TABLE_ROW.search(raw.strip())]
    lines = [line for line in lines if line]
    for n, line in enumerate(lines):
        if n + 1 < len(lines) and _ORDER_NUMBER.match(lines[n + 1]) and line.endswith("令"):
            line = f"{line}{lines[n + 1]}"
        if n == 0 and len(line) > 80:
            run_on = _run_on_title(line, kinds)
            if run_on:
                return run_on
        if (len(line) > 80 or _NOT_TITLE.search(line) or DOC_NUMBER.fullmatch(line) or _ORDER_NUMBER.match(line)
                or _STRUCTURE_HEADING.match(line)):
            continue
        if line.endswith(tuple(kinds)) or re.search(r"关于.{2,60}的(?:通知|公示|公告|通告|决定|意见|批复)", line):
            return line[:80]
        if len(line) <= 40 and not re.search(r"[。！？]", line):
            candidates.append(line)
    return candidates[0] if candidates else ""


def _run_on_title(line: str, kinds: tuple[str, ...]) -> str:
    """'重庆市专利促进与保护条例2007年7月27日…通过第一章 总则第一条…' → '重庆市专利促进与保护条例': the shortest start
    of a one-line document that ends with a document kind and is followed by a date, a bracket or a section."""
    for end in range(4, min(len(line), _RUN_ON_TITLE_CHARS) + 1):
        head = line[:end]
        if head.endswith(tuple(kinds)) and re.match(r"[\d（(〔第\s]", line[end:end + 1]) and not re.search(r"[。，；：]", head):
            return head
    return ""


def untitled_label(text: str) -> str:
    """A label for a document with no title line (a notice that starts with its 文号, a page cut from a site): its own
    文号 alone on a line, else the start of its first sentence that is not a date or a section heading; '' for none."""
    from rag.ingest.docfacts import DOC_NUMBER

    lines = [re.sub(r"\s+", " ", _MARKUP.sub("", raw).strip()) for raw in text[:3000].split("\n")[:40]]
    lines = [line for line in lines if line]
    number = next((line for line in lines[:5] if DOC_NUMBER.fullmatch(line)), "")  # its own, alone on a line
    if number:
        return number
    head = re.sub(r"^.*(?:来源|发布)[:：].*$", "", text[:1500], flags=re.M)
    head = re.sub(r"\s*[|｜]\s*(?=\S)", "：", head, count=1)  # a flattened table: "适用范围：本指南适用于…"
    for line in head.split("\n"):
        if _TABLE_ROW.search(line.strip()):
            continue
        line = _STRUCTURE_HEADING.sub("", _MARKUP.sub("", line).strip()).strip()
        if not line or re.match(r"^[〇○Ο零一二三四五六七八九十\d]{2,4}\s*年", line) or len(line) < 6:
            continue
        sentence = re.search(r"[\u4e00-\u9fff][^。\n|｜]{5,}", line)
        if sentence:
            return sentence.group()[:30].rstrip("，,：: ") + "…"
    return ""


def _named_file(path: Path | None) -> str:
    """A file name an administrator gave (浙江省专利申请受理办事指南.html → 浙江省专利申请受理办事指南): a title when the
    text has none; names without four Chinese characters (scan001.pdf, notice-2011.txt) say nothing."""
    if path is None:
        return ""
    stem = re.sub(r"[_\-\s]+", " ", path.stem).strip()
    return stem[:60] if len(re.findall(r"[\u4e00-\u9fff]", stem)) >= 4 else ""


def first_heading_line(text: str, path: Path | None = None) -> str:
    """A title for a document without a manifest entry: its title line (see `title_line`), else the file's name when
    it is a Chinese name, else its 文号 or first sentence (`untitled_label`), else its first line."""
    found = title_line(text) or _named_file(path) or untitled_label(text)
    if found:
        return found
    for line in text.split("\n"):
        line = _MARKUP.sub("", line).strip()
        if line and not _TABLE_ROW.search(line):
            return line[:60]
    return ""


def read_manifest(data_dir: Path) -> dict[str, dict]:
    """Manifest entries keyed by file name; a missing manifest is an empty one."""
    path = data_dir / MANIFEST_NAME
    if not path.exists():
        return {}
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["documents"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorpusError(f"{path}: not a valid manifest ({exc})", "文档清单 manifest.json 格式有误。") from exc
    return {entry["file"]: entry for entry in entries}


def _province(region: str) -> str:
    match = re.match(r"^.+?(?:省|自治区)", region)
    return match.group() if match else ""


def _city(region: str) -> str:
    return region[len(_province(region)):]


def _short_places(region: str) -> tuple[str, ...]:
    """'内蒙古自治区乌海市' → ('乌海', '内蒙古'): the names people type."""
    names = [re.sub(r"(?:省|市|自治区|自治州|地区|盟|县)$", "", part) for part in (_city(region), _province(region)) if part]
    return tuple(n for n in names if len(n) >= 2)


def file_fingerprint(raw: bytes, entry: dict | None) -> str:
    """What decides whether a document must be re-read: its bytes, its manifest entry, the converter and fact
    extraction versions."""
    digest = hashlib.sha256(raw)
    digest.update(json.dumps(entry or {}, ensure_ascii=False, sort_keys=True).encode())
    digest.update(f"converter-{CONVERTER_VERSION}-facts-{FACTS_VERSION}".encode())
    return digest.hexdigest()[:20]


def doc_id_for(path: Path) -> str:
    """A document id from a file name: the stem, with characters unsafe in URLs and paths replaced."""
    stem = re.sub(r"[^\w\-.\u4e00-\u9fff]+", "-", path.stem).strip("-.") or "doc"
    return stem[:80]


def assign_doc_ids(paths: list[Path], manifest: dict[str, dict], taken: dict[str, str] | None = None) -> dict[str, str]:
    """File name → doc_id: the manifest's id, else the file's stem; a stem another file already holds gets its
    extension added (滨海.pdf and 滨海.docx → 滨海, 滨海-docx). `taken`: doc_id → file name already in the index."""
    owners = dict(taken or {})
    out = {}
    for path in paths:
        doc_id = (manifest.get(path.name) or {}).get("doc_id") or doc_id_for(path)
        if owners.get(doc_id, path.name) != path.name:
            doc_id = f"{doc_id}-{path.suffix.lower().lstrip('.')}"
        owners[doc_id] = path.name
        out[path.name] = doc_id
    return out


def load_document(path: Path, entry: dict | None = None, raw: bytes | None = None, doc_id: str = "",
                  convert: Callable[[str, bytes], Extracted] | None = None) -> Document:
    """Read and convert one file; CorpusError naming it when it cannot be read. `convert`: how bytes become text
    (default `rag.ingest.converters.convert` in this process; the library passes a ConvertWorker's, which has limits)."""
    if convert is None:
        convert = _convert
    if raw is None:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise CorpusError(f"{path}: cannot read ({exc})", f"无法读取文件 {path.name}。") from exc
    extracted = convert(path.name, raw)
    text = mask_chrome(simplified_in_place(extracted.text))  # 條例 is searched, cited and shown as 条例
    entry = entry or {}
    # the title a plan's period is read from: the registry's, else (in extract_facts) the notice's, else line one
    facts = extract_facts(text, entry.get("title", ""))
    if "title" not in facts and not entry.get("title"):
        facts = extract_facts(text, first_heading_line(text, path))
    facts = merge_with_manifest(facts, entry)
    stated_title = facts["title"].value if "title" in facts else ""
    region = entry.get("region") or (facts["region"].value if "region" in facts else "")
    return Document(
        doc_id=doc_id or entry.get("doc_id") or doc_id_for(path),
        title=entry.get("title") or stated_title or first_heading_line(text, path) or path.stem,
        text=text,
        path=path,
        issuer=entry.get("issuer", ""),
        region=region,
        province=entry.get("province") or _province(region),
        city=entry.get("city") or _city(region),
        date=str(entry.get("date", "")),
        doc_number=entry.get("doc_number", ""),
        aliases=tuple(entry.get("aliases") or _short_places(region)),
        encoding=extracted.encoding,
        in_manifest=bool(entry),
        facts=facts,
        format=extracted.format,
        outline=tuple(tuple(x) for x in extracted.outline),
        pages=tuple(extracted.pages),
        kb=str(entry.get("kb") or ""),
        ocr_pages=tuple(extracted.ocr_pages),
        ocr_rows=tuple(tuple(row) for row in extracted.ocr_rows),
        ocr_pictures=extracted.ocr_pictures,
        ocr_turns=tuple(tuple(turn) for turn in extracted.ocr_turns),
        fingerprint=file_fingerprint(raw, entry),
    )


@dataclass
class Corpus:
    """The documents of `data/`, plus files skipped with the reason."""

    documents: list[Document]
    skipped: list[tuple[str, str]]

    def fingerprint(self) -> str:
        """Changes whenever a document's text or metadata changes."""
        digest = hashlib.sha256()
        for doc in sorted(self.documents, key=lambda d: d.doc_id):
            digest.update(json.dumps(doc.metadata(), ensure_ascii=False, sort_keys=True).encode())
            digest.update(doc.text.encode())
        return digest.hexdigest()[:16]

    def by_id(self) -> dict[str, Document]:
        return {doc.doc_id: doc for doc in self.documents}


def corpus_files(data_dir: Path) -> list[Path]:
    """The document files of `data_dir` (supported types; hidden and partial files skipped)."""
    return [path for path in sorted(data_dir.iterdir())
            if path.suffix.lower() in SUPPORTED and path.is_file() and not path.name.startswith(".")]


def load_corpus(data_dir: Path) -> Corpus:
    """All readable documents of `data_dir`. Unreadable files are skipped and reported, not fatal."""
    if not data_dir.is_dir():
        raise CorpusError(f"{data_dir}: no such directory", f"文档目录 {data_dir} 不存在。")
    manifest = read_manifest(data_dir)
    documents, skipped = [], []
    paths = corpus_files(data_dir)
    ids = assign_doc_ids(paths, manifest)
    for path in paths:
        try:
            doc = load_document(path, manifest.get(path.name), doc_id=ids[path.name])
        except CorpusError as exc:
            skipped.append((path.name, exc.user_message))
            continue
        if not doc.text.strip():
            skipped.append((path.name, "文件为空。"))
            continue
        documents.append(doc)
    seen: set[str] = set()
    for doc in documents:
        if doc.doc_id in seen:
            raise CorpusError(f"duplicate doc_id {doc.doc_id}", f"文档编号 {doc.doc_id} 重复。")
        seen.add(doc.doc_id)
    if not documents:
        raise CorpusError(f"{data_dir}: no readable documents", f"文档目录 {data_dir} 中没有可读取的文档（.txt .md .docx .pdf .html）。")
    return Corpus(documents, skipped)
