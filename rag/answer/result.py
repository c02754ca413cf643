"""The one result type of a question, whatever the backend."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from rag.search.retrieval import ScoredChunk


@dataclass
class Citation:
    """A checked citation: marker [n] → the passage it points to and the answer sentence it supports."""

    marker: int
    doc_id: str
    title: str
    section: str
    text: str
    supports: str = ""  # the answer sentence this passage supports
    quote: str = ""  # the passage sentence that holds the supported facts (highlighted in the UI)
    chunk_id: str = ""
    section_short: str = ""
    start: int = -1  # the passage's offsets in its document
    end: int = -1
    page: int | None = None  # PDF page of the quote
    url: str = ""  # the document view with the quote highlighted

    def to_dict(self) -> dict:
        return {
            "marker": self.marker,
            "doc_id": self.doc_id,
            "title": self.title,
            "section": self.section,
            "section_short": self.section_short,
            "text": self.text,
            "supports": self.supports,
            "quote": self.quote,
            "chunk_id": self.chunk_id,
            "start": self.start,
            "end": self.end,
            "page": self.page,
            "url": self.url,
        }


@dataclass
class Answer:
    """answer text, refused flag, citations, retrieved contexts with scores, the rendered prompt, timings."""

    question: str
    answer: str
    refused: bool
    citations: list[Citation] = field(default_factory=list)
    contexts: list[ScoredChunk] = field(default_factory=list)  # what the generator saw, ranked
    rewritten_question: str = ""
    prompt: list[dict] = field(default_factory=list)  # chat messages sent to the LLM
    raw_answer: str = ""  # the model's text before checking
    backend: str = ""
    refusal_reason: str = ""
    notes: list[str] = field(default_factory=list)  # what checking changed (dropped sentences, fallbacks)
    timings: dict[str, float] = field(default_factory=dict)  # milliseconds per step
    understood: dict = field(default_factory=dict)  # what question understanding found (facet, documents, …)
    answer_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])  # what a vote on this answer names
    # the named steps the question took (understand → retrieve → decide → phrase → check → cite), each with its
    # milliseconds and what it decided: {"step": "decide", "ms": 1.2, "plan": "evidence", "refused": False, …}
    trace: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "answer_id": self.answer_id,
            "question": self.question,
            "rewritten_question": self.rewritten_question,
            "answer": self.answer,
            "refused": self.refused,
            "refusal_reason": self.refusal_reason,
            "citations": [c.to_dict() for c in self.citations],
            "contexts": [c.to_context() for c in self.contexts],
            "backend": self.backend,
            "notes": self.notes,
            "understood": self.understood,
            "raw_answer": self.raw_answer,
            "prompt": self.prompt,
            "timings": {k: round(v, 1) for k, v in self.timings.items()},
            "trace": self.trace,
        }
