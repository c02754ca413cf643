"""Heading-aware chunking: a section tree from Chinese policy headings, passages with paths and offsets.

Headings recognised (outermost first): 第X章, 第X节, 一、, （一）/(一), 第X条, 1./1．/1、, （1）/(1).
They are found at the start of a line, and also inline after a sentence end followed by
whitespace: one of the corpus documents is a single 5,000-character line whose headings
are separated only by spaces. Headings that carry no marker but a layout (a Word heading style,
an HTML <h2>) come from the converter's outline; a document with no headings at all is 正文.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field

from rag.ingest.documents import Document
from rag.language.tokens import count_tokens

CN_DIGITS = "一二三四五六七八九十百零〇两"

# (rank, kind, pattern). A heading closes every open heading of equal or higher rank.
HEADING_KINDS: list[tuple[float, str, str]] = [
    (0.0, "chapter", rf"第[{CN_DIGITS}\d]{{1,4}}章"),
    (0.5, "part", rf"第[{CN_DIGITS}\d]{{1,4}}节"),
    (1.0, "cn", rf"[{CN_DIGITS}]{{1,3}}、"),
    (2.0, "cn_paren", rf"[（(][{CN_DIGITS}]{{1,3}}[）)]"),
    (2.5, "article", rf"第[{CN_DIGITS}千\d]{{1,7}}条"),  # up to 第一千九百九十九条: codes of 2,000 articles
    (3.0, "num", r"\d{1,2}[.．、](?![\d.．])"),
    (4.0, "num_paren", r"[（(]\d{1,2}[）)]"),
]
_HEADING_RE = re.compile("|".join(f"(?P<{kind}>{pattern})" for _, kind, pattern in HEADING_KINDS))
_RANK = {kind: rank for rank, kind, _ in HEADING_KINDS}
# Inline headings follow a sentence end (or a closing bracket such as "…政府]") and whitespace.
_INLINE_BEFORE = set("。；;！？!?]】）)：:")
_TITLE_END = re.compile(r"[。！？!?\n]")
_SENTENCE_END = "。；！？;!?\n"
_CLAUSE_END = "，,、：:"
_CLOSERS = "”’」』）)]】"
MAX_TITLE_CHARS = 60
# Bump when the chunking algorithm changes: it is part of the index signature, so old indexes go stale.
CHUNKER_VERSION = 6  # 6: page markers and page-number lines are layout; 3: styled headings from the outline; 正文 for documents without headings; 4: items stay in articles; 5: long unpunctuated text cut at line ends, linearly
PREAMBLE_LABEL = "（正文前言）"
BODY_LABEL = "正文"  # the one section of a document without headings (news-like text)


@dataclass(frozen=True)
class Heading:
    start: int  # offset of the marker in the document text
    title_end: int  # offset just past the heading's title
    rank: float
    kind: str
    marker: str  # "四、", "（二）", "1." — normalised to full-width brackets
    title: str  # "主要措施"
    path: tuple[str, ...] = ()  # labels from the root, this heading last

    @property
    def label(self) -> str:
        return f"{self.marker}{self.title}"


@dataclass(frozen=True)
class ChunkerConfig:
    max_tokens: int = 240
    min_chars: int = 60
    contextual_headers: bool = True
    method: str = "heading"  # heading | vanilla (LangChain RecursiveCharacterTextSplitter 500/50, the baseline)

    def as_dict(self) -> dict:
        return asdict(self) | {"version": CHUNKER_VERSION}


@dataclass
class Chunk:
    """A passage: verbatim text `doc.text[start:end]` with its place in the section tree."""

    chunk_id: str
    doc_id: str
    title: str
    region: str
    section_path: list[str]
    start: int
    end: int
    text: str
    header: str = ""
    markers: list[str] = field(default_factory=list)

    @property
    def section(self) -> str:
        """The full path, e.g. '四、主要措施 › （二）提升知识产权运用水平'."""
        return " › ".join(self.section_path) if self.section_path else PREAMBLE_LABEL

    @property
    def section_short(self) -> str:
        """The markers only, e.g. '四、（二）' — the form used in citations."""
        return "".join(self.markers) if self.markers else PREAMBLE_LABEL

    @property
    def index_text(self) -> str:
        """What is embedded and BM25-indexed: the contextual header, then the verbatim passage."""
        return f"{self.header}\n{self.text}" if self.header else self.text

    @property
    def text_hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def to_record(self) -> dict:
        record = asdict(self)
        record["section"] = self.section
        record["hash"] = self.text_hash
        return record

    @classmethod
    def from_record(cls, record: dict) -> "Chunk":
        keys = {"chunk_id", "doc_id", "title", "region", "section_path", "start", "end", "text", "header", "markers"}
        return cls(**{k: record[k] for k in keys if k in record})


def normalise_marker(marker: str) -> str:
    """'(一)' → '（一）', '1．' → '1.', so citations look the same whatever the source used."""
    marker = marker.replace("(", "（").replace(")", "）").replace("．", ".")
    return re.sub(r"^(\d+)、$", r"\1.", marker)


# A line longer than this is a document run together (line breaks lost in a copy): there 第X章/节/条 start a section
# right after a sentence end, with no whitespace. The longest line of a real paragraph in the seed and corpus-dev
# documents is 794 characters (a service guide's table row); a run-together plan line of 5,304 keeps its spaces.
RUN_ON_LINE_CHARS = 1000
_RUN_ON_KINDS = ("chapter", "part", "article")


def _is_heading_position(text: str, pos: int) -> bool:
    line_start = text.rfind("\n", 0, pos) + 1
    before = text[line_start:pos]
    if not before.strip(" \t\u3000\xa0"):
        return True
    stripped = before.rstrip(" \t\u3000\xa0")
    heading = _HEADING_RE.match(text, pos)
    if len(stripped) == len(before):  # inline headings need real whitespace before the marker, except in a run-on line
        line_end = text.find("\n", pos)
        run_on = (line_end if line_end >= 0 else len(text)) - line_start > RUN_ON_LINE_CHARS
        return (run_on and heading is not None and heading.lastgroup in _RUN_ON_KINDS
                and stripped[-1] in _INLINE_BEFORE)
    # After a sentence end anything may start; top-level markers (一、, 第X章) need only the whitespace.
    return stripped[-1] in _INLINE_BEFORE or (heading is not None and heading.lastgroup in ("cn", "chapter", "part"))


def find_headings(text: str, outline: tuple | list = ()) -> list[Heading]:
    """All headings of a document in order, each with its path from the root.

    `outline`: (start, end, level) of headings the layout marks (Word styles, HTML <h1>–<h6>)."""
    found: list[Heading] = []
    # Markers that follow a heading title after whitespace ("一、总体要求 (一)指导思想。") are
    # headings too, even though no sentence end precedes them.
    after_title: set[int] = set()
    for match in _HEADING_RE.finditer(text):
        if match.start() not in after_title and not _is_heading_position(text, match.start()):
            continue
        kind = match.lastgroup or ""
        title_start = match.end()
        # A heading's title runs to the sentence end, the line end, or the next inline heading.
        limit = min(len(text), title_start + MAX_TITLE_CHARS)
        end_match = _TITLE_END.search(text, title_start, limit)
        title_end = end_match.start() if end_match else limit
        next_heading = _next_inline_heading(text, title_start, title_end, kind)
        if next_heading is not None:
            title_end = next_heading
            after_title.add(next_heading)
        title = text[title_start:title_end].strip(" \t\u3000\xa0")
        if kind == "num" and not title:
            continue  # a bare "1." is a list number, not a section
        if kind == "article":
            title, title_end = "", match.end()  # 第X条 headings carry their text in the article body
        found.append(Heading(match.start(), title_end, _RANK[kind], kind, normalise_marker(match.group()), title))
    if outline:
        found = _with_styled(text, found, outline)
    return _with_paths(_items_stay_in_articles(_drop_overlaps(found)))


_ITEM_KINDS = ("cn_paren", "num", "num_paren")


def _items_stay_in_articles(headings: list[Heading]) -> list[Heading]:
    """（一）（二）… after 第X条 are the article's enumerated items, not sections: the article is one unit
    ("有下列情形之一的：（一）…（二）…" stays with its items). Outside articles (plans) they stay headings."""
    kept, in_article = [], False
    for heading in headings:
        if heading.kind == "article":
            in_article = True
        elif heading.rank < _RANK["article"] and heading.kind not in _ITEM_KINDS:
            in_article = False  # a chapter or section closes the article
        elif in_article and heading.kind in _ITEM_KINDS:
            continue
        kept.append(heading)
    return kept


def _with_styled(text: str, found: list[Heading], outline) -> list[Heading]:
    """Add the layout's headings that carry no marker ("总体要求" in Word's 标题 1).

    A styled level takes the rank of the marked headings styled at that level ("一、…" in 标题 2 → rank of 一、);
    a level without marked headings sits just under the level above it. The document's first line, when styled,
    is its title, not a section."""
    by_start = {h.start: h for h in found}
    first_text = len(text) - len(text.lstrip())
    styled = [(s, e, lvl) for s, e, lvl in sorted(outline) if s != first_text and text[s:e].strip()]
    level_rank: dict[int, float] = {}
    for start, _end, level in styled:
        if start in by_start:
            level_rank[level] = min(level_rank.get(level, by_start[start].rank), by_start[start].rank)
    ranks, previous = {}, -1.0
    for level in sorted({lvl for _, _, lvl in styled}):
        previous = level_rank.get(level, previous + 0.1)
        ranks[level] = previous
    out = [h for h in found if not any(s < h.start < e for s, e, _ in styled)]  # markers inside a styled title
    for start, end, level in styled:
        if start in by_start:
            continue
        label = text[start:end].strip()[:MAX_TITLE_CHARS]
        out.append(Heading(start, end, ranks[level], "styled", label, ""))
    return sorted(out, key=lambda h: h.start)


def _next_inline_heading(text: str, start: int, end: int, kind: str = "") -> int | None:
    """Where a heading's title gives way to the next heading: a marker after whitespace, or a 第X条 right after the
    title of a chapter or section run together with it ("第一章 总则第一条 为…")."""
    for match in _HEADING_RE.finditer(text, start, end):
        if match.start() > start and (text[match.start() - 1] in " \t\u3000\xa0"
                                      or (kind in ("chapter", "part") and match.lastgroup == "article")):
            return match.start()
    return None


def _drop_overlaps(headings: list[Heading]) -> list[Heading]:
    """A marker inside another heading's title ("一、" in "（一）统一、规范…") is not a heading."""
    kept: list[Heading] = []
    for heading in headings:
        if kept and heading.start < kept[-1].title_end:
            continue
        kept.append(heading)
    return kept


def _with_paths(headings: list[Heading]) -> list[Heading]:
    stack: list[Heading] = []
    out = []
    for heading in headings:
        while stack and stack[-1].rank >= heading.rank:
            stack.pop()
        path = tuple(h.label for h in stack) + (heading.label,)
        heading = Heading(heading.start, heading.title_end, heading.rank, heading.kind, heading.marker, heading.title, path)
        stack.append(heading)
        out.append(heading)
    return out


@dataclass
class _Section:
    start: int
    end: int
    path: tuple[str, ...]
    markers: tuple[str, ...]
    body_start: int  # where the text after the heading title begins

    def has_body(self, text: str) -> bool:
        return bool(re.sub(r"[\s。：:，,]", "", text[self.body_start : self.end]))


def _sections(doc: Document, headings: list[Heading]) -> list[_Section]:
    text = doc.text
    sections = []
    marker_stack: dict[tuple[str, ...], tuple[str, ...]] = {}
    first = headings[0].start if headings else len(text)
    if text[:first].strip():
        sections.append(_Section(0, first, (), (), 0))
    for i, heading in enumerate(headings):
        end = headings[i + 1].start if i + 1 < len(headings) else len(text)
        parent_markers = marker_stack.get(heading.path[:-1], ())
        markers = parent_markers + (heading.marker,)
        marker_stack[heading.path] = markers
        sections.append(_Section(heading.start, end, heading.path, markers, heading.title_end))
    return sections


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _cut_points(text: str, start: int, end: int, enders: str) -> list[int]:
    """Offsets just after each sentence (or clause) end within [start, end).

    No cut inside brackets, and none right before one: "…专利。[牵头单位:…]" stays whole,
    so a task keeps its responsible departments.
    """
    points = []
    depth = 0
    i = start
    while i < end:
        ch = text[i]
        if ch in "[【":
            depth += 1
        elif ch in "]】":
            depth = max(0, depth - 1)
        if ch in enders and depth == 0:
            j = i + 1
            while j < end and text[j] in _CLOSERS:
                j += 1
            k = j
            while k < end and text[k] in " \t\u3000":
                k += 1
            if (k >= end or text[k] not in "[【") and not _is_signature_line(text, j, end):
                points.append(j)
            i = j
        else:
            i += 1
    if not points or points[-1] != end:
        points.append(end)
    return points


def _is_signature_line(text: str, start: int, end: int) -> bool:
    """A short line without sentence punctuation (an issuer, a date, "(此件主动公开)") belongs to what precedes it."""
    line_end = text.find("\n", start, end)
    line = text[start : line_end if line_end >= 0 else end].strip()
    if not line:
        # blank lines: look at the next non-blank line
        rest = text[start:end].lstrip()
        if not rest:
            return False
        line = rest.split("\n", 1)[0].strip()
    return len(line) <= 24 and not re.search(r"[。；;！？!?:：]", line) and not _HEADING_RE.match(line)


def split_span(text: str, start: int, end: int, max_tokens: int, body_start: int | None = None) -> list[tuple[int, int]]:
    """Split [start, end) at sentence ends into as few pieces under `max_tokens` as possible, evenly sized.

    No piece ends before `body_start`: a heading always keeps some of its text.
    """
    if count_tokens(text[start:end]) <= max_tokens:
        return [(start, end)]
    units: list[tuple[int, int]] = []
    prev = start
    for point in _cut_points(text, start, end, _SENTENCE_END):
        if body_start is not None and not re.sub(r"[\s。：:]", "", text[max(start, body_start) : point]):
            continue  # the heading alone is not a piece
        if count_tokens(text[prev:point]) > max_tokens:
            units.extend(_split_long_sentence(text, prev, point, max_tokens))
        else:
            units.append((prev, point))
        prev = point
    sizes = [count_tokens(text[s:e]) for s, e in units]
    return [(units[i][0], units[j - 1][1]) for i, j in _balanced_groups(sizes, max_tokens)]


def _balanced_groups(sizes: list[int], max_tokens: int) -> list[tuple[int, int]]:
    """Partition units into contiguous groups: fewest groups under the bound, then most even sizes."""
    n = len(sizes)
    prefix = [0]
    for size in sizes:
        prefix.append(prefix[-1] + size)
    best: list[tuple[int, int, int] | None] = [None] * (n + 1)  # (groups, sum of squares, previous cut)
    best[0] = (0, 0, 0)
    for i in range(1, n + 1):
        for j in range(i - 1, -1, -1):
            group = prefix[i] - prefix[j]
            if group > max_tokens and j < i - 1:
                break
            if best[j] is None:
                continue
            groups, squares, _ = best[j]  # type: ignore[misc]
            candidate = (groups + 1, squares + group * group, j)
            if best[i] is None or candidate[:2] < best[i][:2]:  # type: ignore[index]
                best[i] = candidate
    bounds = []
    i = n
    while i > 0:
        j = best[i][2]  # type: ignore[index]
        bounds.append((j, i))
        i = j
    return bounds[::-1]


def _split_long_sentence(text: str, start: int, end: int, max_tokens: int) -> list[tuple[int, int]]:
    out, piece_start = [], start
    prev = start
    for point in _cut_points(text, start, end, _CLAUSE_END):
        if point - piece_start > 0 and count_tokens(text[piece_start:point]) > max_tokens and prev > piece_start:
            out.append((piece_start, prev))
            piece_start = prev
        prev = point
    out.append((piece_start, end))
    # A clause still over the bound is cut at a line end (else by characters); never lose text. Linear: the remainder
    # is counted only once it is short enough to fit (a character is at most a few tokens, never less than a sixth).
    final = []
    step = max(1, max_tokens * 2 // 3)
    for s, e in out:
        while e - s > max_tokens // 2 and (e - s > 6 * max_tokens or count_tokens(text[s:e]) > max_tokens):
            cut = s + step
            line_end = text.rfind("\n", s + step // 2, cut)
            cut = line_end + 1 if line_end > s else cut
            final.append((s, cut))
            s = cut
        final.append((s, e))
    return final


# A document with fewer characters than this outside its title and headings has nothing to answer from (a table of
# contents, a conversion that kept only the headings); any sentence at all ("第一条 替换。") is a body.
MIN_BODY_CHARS = 1


def body_chars(doc: Document) -> int:
    """Letters, digits and Chinese characters of the document outside its title line and its headings — a heading
    that is a whole sentence ("一、各区县于6月30日前报送清单。") is body."""
    text = doc.text
    covered = bytearray(len(text))
    spans = [(h.start, h.title_end) for h in find_headings(text, doc.outline)
             if text[h.title_end:h.title_end + 1] not in tuple("。；！？;!?")] + [(s, e) for s, e, _ in doc.outline]
    title_at = text.find(doc.title, 0, 3000) if doc.title else -1
    if title_at >= 0:
        spans.append((title_at, title_at + len(doc.title)))
    for start, end in spans:
        covered[start:end] = b"\x01" * (end - start)
    return sum(1 for i, ch in enumerate(text) if not covered[i] and ch.isalnum())


def chunk_document(doc: Document, config: ChunkerConfig = ChunkerConfig()) -> list[Chunk]:
    """Passages of one document, in reading order, covering all of its body text."""
    text = doc.text
    headings = find_headings(text, doc.outline)
    sections = _sections(doc, headings)
    if not headings and sections:  # news-like text: one body section, not a preamble
        sections[0].path, sections[0].markers = (BODY_LABEL,), (BODY_LABEL,)

    # A heading with no body of its own ("一、总体要求" right before "（一）指导思想") is glued
    # to the section that follows, so no passage is a bare heading.
    spans: list[tuple[int, int, int, tuple[str, ...], tuple[str, ...]]] = []
    carry_start: int | None = None
    for section in sections:
        start = carry_start if carry_start is not None else section.start
        if not section.has_body(text):
            carry_start = start
            continue
        carry_start = None
        spans.append((start, section.end, section.body_start, section.path, section.markers))
    if carry_start is not None and spans:
        s, _, body, path, markers = spans[-1]
        spans[-1] = (s, len(text), body, path, markers)

    pieces: list[tuple[int, int, tuple[str, ...], tuple[str, ...]]] = []
    for start, end, body_start, path, markers in spans:
        start, end = _trimmed(text, start, end)
        for p_start, p_end in split_span(text, start, end, config.max_tokens, body_start):
            p_start, p_end = _trimmed(text, p_start, p_end)
            if p_end > p_start:
                pieces.append((p_start, p_end, path, markers))

    pieces = _merge_tiny_siblings(text, pieces, config)
    chunks = []
    for i, (start, end, path, markers) in enumerate(pieces):
        chunk = Chunk(
            chunk_id=f"{doc.doc_id}#{i:03d}",
            doc_id=doc.doc_id,
            title=doc.title,
            region=doc.region,
            section_path=list(path),
            start=start,
            end=end,
            text=text[start:end],
            markers=list(markers),
        )
        if config.contextual_headers:
            chunk.header = contextual_header(doc, chunk)
        chunks.append(chunk)
    return chunks


def _merge_tiny_siblings(text: str, pieces: list, config: ChunkerConfig) -> list:
    """Merge consecutive small passages under the same parent while they fit the token bound."""
    merged: list = []
    for piece in pieces:
        start, end, path, markers = piece
        if merged:
            p_start, p_end, p_path, p_markers = merged[-1]
            # top-level sections stay apart: merged, they would have no common heading to cite
            same_parent = p_path[:-1] == path[:-1] and len(p_path) == len(path) and len(p_path) > 1
            small = (p_end - p_start) < config.min_chars or (end - start) < config.min_chars
            fits = count_tokens(text[p_start:end]) <= config.max_tokens
            if same_parent and small and fits:
                merged[-1] = (p_start, end, path[:-1], markers[:-1])
                continue
            if p_path and path[: len(p_path)] == p_path and p_path != path and (p_end - p_start) < config.min_chars:
                # a short lead-in paragraph of a section merges into its first child
                if count_tokens(text[p_start:end]) <= config.max_tokens:
                    merged[-1] = (p_start, end, path, markers)
                    continue
        merged.append(piece)
    return merged


def contextual_header(doc: Document, chunk: Chunk) -> str:
    """Region + title + section path: the context a passage alone lacks (many say only 我省/我市)."""
    region = " ".join(x for x in (doc.region, *doc.aliases) if x)
    return f"{region}｜{doc.title}｜{chunk.section}"


def chunk_corpus(documents: list[Document], config: ChunkerConfig = ChunkerConfig()) -> list[Chunk]:
    """Passages of every document."""
    chunker = vanilla_chunks if config.method == "vanilla" else chunk_document
    return [chunk for doc in documents for chunk in chunker(doc, config)]


def vanilla_chunks(doc: Document, config: ChunkerConfig = ChunkerConfig()) -> list[Chunk]:
    """The recipe a new user reaches for: RecursiveCharacterTextSplitter at 500/50 characters, no structure.

    Kept as the baseline the evaluation compares against.
    """
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50, add_start_index=True)
    chunks = []
    for i, piece in enumerate(splitter.create_documents([doc.text])):
        start = piece.metadata["start_index"]
        chunk = Chunk(f"{doc.doc_id}#v{i:03d}", doc.doc_id, doc.title, doc.region, [], start, start + len(piece.page_content),
                      piece.page_content)
        if config.contextual_headers:
            chunk.header = contextual_header(doc, chunk)
        chunks.append(chunk)
    return chunks
