"""Step 6, cite: where each citation is in its document (offsets, page, link), whose place the answer speaks for,
whether a cited plan has expired — a new Answer, with its record in the trace."""

from __future__ import annotations

import dataclasses
import time
from urllib.parse import quote as url_quote

from rag.answer.decide import (
    answered,
    scope_message,
)
from rag.answer.result import Answer, Citation
from rag.engine import Engine
from rag.ingest.docfacts import period_text, validity
from rag.ingest.documents import page_of


def cite(answer: Answer, engine: Engine) -> Answer:
    """Step 6, cite: where each citation is in its document (offsets, page, link), whose place the answer speaks for,
    whether a cited plan has expired — a new Answer with its record in the trace."""
    started = time.perf_counter()
    if answer.refused and answer.understood.get("scope_class") and not answer.citations:
        # a weather or market question the library has nothing on: say what the library holds
        answer = answered(answer, scope_message(engine, "out_of_scope", answer.understood["scope_class"]))
    citations = [located(c, engine) for c in answer.citations]
    text, notes = answer.answer, []
    if not answer.refused and citations:
        uncovered = place_note(answer.understood.get("uncovered", []), citations, engine)
        # a place nobody covers is said first; else, for several places, whose figure is whose
        text = uncovered + text if uncovered else text + mixed_places_note(text, citations, engine)
        if answer.understood.get("facet") != "period":
            clause, expired = expired_note(citations, engine)
            text += clause
            notes += ["cited documents whose period has ended: " + ", ".join(expired)] if expired else []
    record = {"step": "cite", "ms": round((time.perf_counter() - started) * 1000, 1),
              "citations": [c.chunk_id for c in citations]}
    return dataclasses.replace(answer, answer=text, citations=citations, notes=answer.notes + notes,
                               trace=answer.trace + [record])


def located(citation: Citation, engine: Engine) -> Citation:
    """The citation with its quote's place: the PDF page, and the link to the document view at the quote."""
    if citation.start < 0:
        return citation
    at = citation.text.find(citation.quote) if citation.quote else -1
    quote_start, quote_end = ((citation.start + at, citation.start + at + len(citation.quote)) if at >= 0
                              else (citation.start, citation.end))
    page = page_of(engine.documents_by_id.get(citation.doc_id, {}).get("pages"), quote_start)
    url = f"{engine.settings.root_path}/doc/{url_quote(citation.doc_id)}?start={quote_start}&end={quote_end}#cited"
    return dataclasses.replace(citation, page=page, url=url)


def mixed_places_note(text: str, citations: list[Citation], engine: Engine) -> str:
    """An answer that quotes documents of different places says which figure is whose, unless its own sentences
    already name each place: two cities' targets are never read as one. The clause to add, or ""."""
    if len(citations) < 2:
        return ""
    regions: dict[str, list[int]] = {}
    titles: dict[str, str] = {}
    for citation in citations:
        doc = engine.documents_by_id.get(citation.doc_id, {})
        label = doc.get("region") or "全国"
        regions.setdefault(label, []).append(citation.marker)
        titles.setdefault(label, doc.get("title", citation.doc_id))
    if len(regions) < 2 or all(places_named_in(text, label) for label in regions):
        return ""
    parts = [f"{label}《{titles[label]}》" + "".join(f"[{m}]" for m in dict.fromkeys(markers))
             for label, markers in regions.items()]
    return "\n（以上分别出自：" + "；".join(parts) + "）"


def places_named_in(text: str, region: str) -> bool:
    """Whether the text names the region by any of its usual forms (河南省 / 河南, 杭州市 / 杭州)."""
    from rag.language.places import short_forms

    return any(form in text for form in short_forms(region))


def place_note(uncovered: list[str], citations: list[Citation], engine: Engine) -> str:
    """An answer for a place that no cited document is about says whose text it quotes: never one place's figures
    presented as another's (义乌 answered from 浙江's regulation or from a national law). The lead to add, or ""."""
    places = [p for p in uncovered if p]
    if not places:
        return ""
    about = " ".join(engine.documents_by_id.get(c.doc_id, {}).get("region", "") + c.text for c in citations)
    missing = [p for p in places if p not in about]
    if not missing:
        return ""
    sources = []
    for doc_id in dict.fromkeys(c.doc_id for c in citations):
        doc = engine.documents_by_id.get(doc_id, {})
        sources.append(f"{doc.get('region') or '全国'}的《{doc.get('title', doc_id)}》")
    return f"现有文件没有专门关于{'、'.join(missing)}的内容；以下是{'、'.join(sources)}的规定：\n"


def expired_note(citations: list[Citation], engine: Engine) -> tuple[str, list[str]]:
    """An answer that relies on a plan whose period is over says so in one short clause: the clause, and the titles."""
    from rag.store.library import today_of

    today = today_of(engine.settings)
    clauses = []
    for doc_id in dict.fromkeys(c.doc_id for c in citations):
        doc = engine.documents_by_id.get(doc_id, {})
        period = doc.get("period", "")
        if validity(period, today) == "已到期":
            clauses.append((doc.get("title", doc_id), period_text(period)))
    if len(clauses) == 1:
        return f"（该文件期限为{clauses[0][1]}，已到期）", [clauses[0][0]]
    if clauses:
        return "（" + "；".join(f"《{t}》期限为{p}" for t, p in clauses) + "，均已到期）", [t for t, _ in clauses]
    return "", []
