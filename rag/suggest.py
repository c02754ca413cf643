"""Suggested follow-up questions under an answer, taken from the headings of the cited sections and of the sections
next to them in the same document (templates: `vocab/suggestions.txt`). Nothing is invented: every suggestion names a
heading that exists, so the question it asks can be answered from that section."""

from __future__ import annotations

from pathlib import Path

MAX_SUGGESTIONS = 3


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
    from rag.query import load_vocabulary

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
