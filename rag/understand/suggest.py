"""Suggested follow-up questions under an answer, taken from the headings of the cited sections and of the sections
next to them in the same document (templates: `vocab/suggestions.txt`). Nothing is invented: every suggestion names a
heading that exists, so the question it asks can be answered from that section."""

from __future__ import annotations

from pathlib import Path

from rag.language.vocab import load_vocabulary

MAX_SUGGESTIONS = 3
MAX_EXAMPLES = 5


def example_questions(documents: list[dict], vocab_dir: Path, limit: int = MAX_EXAMPLES) -> list[str]:
    """Example questions for the chat page and the out-of-scope message: the curated ones (`vocab/examples.tsv`)
    whose document is in the library, then questions built from the library's own titles (a question about a
    document's facts is answerable whatever the document is). Never an example about a document not held."""
    held = {doc.get("doc_id") for doc in documents}
    out = []
    path = vocab_dir / "examples.tsv"
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            doc_id, _tab, question = line.partition("\t")
            if not line.startswith("#") and question.strip() and doc_id.strip() in held:
                out.append(question.strip())
    asks = iter(load_vocabulary(vocab_dir).example_asks * limit)
    for doc in documents:
        if len(out) >= limit:
            break
        title = doc.get("title", "")
        if title and not any(title in q for q in out) and doc.get("doc_id") not in _curated_docs(path):
            out.append(f"《{title}》{next(asks)}")
    return out[:limit]


def _curated_docs(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {line.split("\t", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()
            if "\t" in line and not line.startswith("#")}


def heading_of(chunk) -> str:
    """The deepest titled heading of a passage, without its number ('四、（二）加强保护' → '加强保护'); '' when the
    passage sits under untitled headings only (a bare 第十条)."""
    for part, marker in zip(reversed(chunk.section_path), reversed(chunk.markers or [""] * len(chunk.section_path)),
                            strict=False):
        text = part.removeprefix(marker).strip(" 　：:") if marker else part.strip(" 　：:")
        if 2 <= len(text) <= 30:
            return text
    return ""


def suggest_followups(answer: dict, view, vocab_dir: Path, limit: int = MAX_SUGGESTIONS) -> list[str]:
    """Up to `limit` questions: the cited sections' headings first, then the sections that follow them. `view` is the
    engine's DocumentView (each document's passages read once and kept)."""
    forms = load_vocabulary(Path(vocab_dir)).suggestions
    if not forms or answer.get("refused") or not answer.get("citations"):
        return []
    question = answer.get("question", "")
    cited, neighbours = [], []
    for citation in answer["citations"]:
        chunks = view.chunks.get(citation["doc_id"], [])
        position = next((i for i, c in enumerate(chunks) if c.chunk_id == citation.get("chunk_id")), None)
        if position is None:
            continue
        here = heading_of(chunks[position])
        cited.append((chunks[position].title, here))
        for later in chunks[position + 1:position + 6]:
            there = heading_of(later)
            if there and there != here:
                neighbours.append((later.title, there))
                break
    out: list[str] = []
    seen: set[str] = set()
    for form, pairs in ((forms[0], cited), (forms[-1], neighbours)):
        for title, heading in pairs:
            if not heading or heading in seen or heading in question:
                continue
            seen.add(heading)
            out.append(form.format(title=title, heading=heading))
    return out[:limit]
