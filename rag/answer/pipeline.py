"""One question, one path of named steps, each recorded in the Answer's trace (its time and what it decided):

  understand  `understand_question`: validated, made standalone (follow-ups), understood once into a Query
  retrieve    `retrieve`: ranked passages (grouped by document when several are in play); the same step serves
              `rag search`, /api/search, `rag bench` and `rag eval --retrieval-only`
  decide      eligibility (places, years), then the answer plan for the question's facet (rag/answer/plans.py):
              answered by code, handed to the model, or refused
  phrase      the model reads the packed passages (streamed), or the code renders its plan
  check       every sentence of the model's draft traced to a cited passage (rag/answer/grounding.py)
  cite        where each citation is in its document, whose place it speaks for, whether its plan has expired

Refusal does not rest on the model. The code refuses when
  1. no retrieved passage covers the places and years the question names (eligibility),
  2. the passages do not state the kind of fact asked for (no figure for a 多少 question),
  3. the model says the passages lack the answer and the evidence is not strong, or
  4. checking leaves no supported sentence and no extractive answer.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote as url_quote

from rag.answer.grounding import (
    Eligibility,
    Evidence,
    best_evidence,
    check_answer,
    coverage,
    eligible_passages,
    question_terms,
    quote_for,
    says_cannot_answer,
    whole_sentence,
    without_instructions,
)
from rag.answer.plans import (
    Plan,
    Statement,
    is_document_facet,
    names_a_section,
    one_version,
    plan_document_facts,
    plan_documents_of_year,
    plan_evidence,
    plan_list,
    plan_outline,
    plan_per_document,
    states_units,
    targets_for,
)
from rag.answer.result import Answer, Citation
from rag.engine import Engine
from rag.errors import LLMUnavailableError, ModelError
from rag.ingest.docfacts import iso_date, period_text, validity
from rag.ingest.documents import page_of
from rag.language.facts import normalise_numbers, quantities_in, requested_kind, split_sentences, states
from rag.language.text import normalise
from rag.language.tokens import count_tokens
from rag.language.vocab import load_vocabulary
from rag.models.prompts import render
from rag.search.retrieval import ScoredChunk, validate_question
from rag.settings import Settings
from rag.understand.followup import search_anchor, standalone_question
from rag.understand.query import NO_SEARCH_FACETS, TOOL_TASKS, Query, expected_units, sub_questions, title_forms, understand
from rag.understand.suggest import example_questions

__all__ = ["answer", "stream_answer", "standalone_question", "retrieve_for", "build_prompt", "pack_passages"]


@dataclass
class Event:
    """What `stream_answer` yields: 'sources' (after retrieval), 'token' (model text), 'final' (the Answer)."""

    kind: str
    data: Any  # the passages ('sources'), a piece of text ('token'), the Answer ('final')


MODEL_READS = ("evidence", "cross", "compound")  # plans a configured model answers from the passages


def pack_passages(passages: list[ScoredChunk], settings: Settings, first: Sequence[ScoredChunk] = (),
                  budget: int = 0) -> list[ScoredChunk]:
    """`first` (the passages holding the evidence), then the most relevant others, while they fit the token budget.

    Prompt reading dominates the wait on a CPU (~95 tokens/s for the 1.5B model), so the budget is the latency knob.
    """
    ordered = list({ctx.chunk.chunk_id: ctx for ctx in [*first, *passages]}.values())  # keeps order, drops repeats
    budget = budget or settings.context_budget_tokens
    packed: list[ScoredChunk] = []
    used = 0
    for ctx in ordered[: settings.context_max_passages + (1 if budget > settings.context_budget_tokens else 0)]:
        cost = count_tokens(ctx.chunk.text) + 20
        if packed and used + cost > budget:
            break
        packed.append(ctx)
        used += cost
    return packed


def build_prompt(question: str, passages: list[ScoredChunk], settings: Settings) -> list[dict]:
    """System prompt (fixed, so llama.cpp reuses its KV cache) + numbered passages and the question."""
    numbered = [{"number": i + 1, "title": p.chunk.title, "section": p.chunk.section, "text": p.chunk.text}
                for i, p in enumerate(passages)]
    return [
        {"role": "system", "content": render(settings.prompts_dir, "system")},
        {"role": "user", "content": render(settings.prompts_dir, "answer", passages=numbered, question=question)},
    ]


def rewrite_question(question: str, history: list | None, engine: Engine) -> str:
    """A standalone question: deterministic rules, or the LLM with prompts/rewrite.txt when configured.

    The model's rewrite is used only if it is a single plausible question; otherwise the rules decide.
    """
    rule_based = standalone_question(question, history)
    settings = engine.settings
    if not (settings.rewrite_with_llm and history and rule_based != question and settings.llm_backend != "extractive"):
        return rule_based
    turns = [t if isinstance(t, dict) else {"role": "user", "content": str(t)} for t in history]
    prompt = [{"role": "user", "content": render(settings.prompts_dir, "rewrite", history=turns, question=question)}]
    try:
        rewritten = engine.llm.generate(prompt, max_tokens=60).strip().split("\n")[0].strip()
    except (LLMUnavailableError, ModelError):
        return rule_based
    return rewritten if 4 <= len(rewritten) <= 120 else rule_based


@dataclass
class Reply:
    """What the decide, phrase and check steps give back, as a value: the answer's text and its citations, or a
    refusal and its reason; the passages in the order the answer numbers them (when code rendered it); notes on
    what checking changed. The Answer is assembled from it once (`answered`)."""

    text: str
    citations: list[Citation] = field(default_factory=list)
    refused: bool = False
    reason: str = ""
    contexts: list[ScoredChunk] | None = None
    notes: list[str] = field(default_factory=list)


def answered(base: Answer, reply: Reply, **fields: Any) -> Answer:
    """A new Answer: `base` (the question as understood, timings, trace) with the reply and any other fields given;
    notes given are added to the base's, then the reply's."""
    notes = base.notes + fields.pop("notes", []) + reply.notes
    contexts = reply.contexts if reply.contexts is not None else fields.pop("contexts", base.contexts)
    fields.pop("contexts", None)
    return dataclasses.replace(base, answer=reply.text, citations=list(reply.citations), refused=reply.refused,
                               refusal_reason=reply.reason, contexts=contexts, notes=notes, **fields)


def _refusal(reason: str, settings: Settings, nearest: list[ScoredChunk]) -> Reply:
    seen, sections = set(), []
    for ctx in nearest:
        key = (ctx.chunk.title, ctx.chunk.section)
        if key not in seen:
            seen.add(key)
            sections.append({"title": ctx.chunk.title, "section": ctx.chunk.section})
    return _refused(render(settings.prompts_dir, "refusal", reason=reason, nearest=sections[:3]), reason)


def _refused(text: str, reason: str) -> Reply:
    """A refusal: this text, this reason, nothing cited."""
    return Reply(text, refused=True, reason=reason)


def _citation(number: int, ctx: ScoredChunk, supports: str, quote: str) -> Citation:
    c = ctx.chunk
    return Citation(number, c.doc_id, c.title, c.section, c.text, supports, quote, c.chunk_id, c.section_short, c.start, c.end)


def _merge_citations(citations: list[Citation]) -> list[Citation]:
    merged: dict[int, Citation] = {}
    for c in citations:
        if c.marker in merged:
            merged[c.marker].supports += " " + c.supports
        else:
            merged[c.marker] = c
    return [merged[k] for k in sorted(merged)]


def stream_answer(question: str, history: list | None = None, settings: Settings | None = None,
                  engine: Engine | None = None, filters: dict | None = None) -> Iterator[Event]:
    """The whole path as events: sources as soon as retrieval is done, then model tokens and checked sentences,
    then the Answer (the steps in the module's docstring)."""
    engine = (engine or Engine(settings or Settings.load())).pinned()  # one question, one index generation
    for event in _answer_events(question, history, engine, filters):
        yield Event("final", cite(event.data, engine)) if event.kind == "final" else event


def cite(answer: Answer, engine: Engine) -> Answer:
    """Step 6, cite: where each citation is in its document (offsets, page, link), whose place the answer speaks for,
    whether a cited plan has expired — a new Answer with its record in the trace."""
    started = time.perf_counter()
    if answer.refused and answer.understood.get("scope_class") and not answer.citations:
        # a weather or market question the library has nothing on: say what the library holds
        answer = answered(answer, _scope_message(engine, "out_of_scope", answer.understood["scope_class"]))
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


def understand_question(question: str, history: list | None, engine: Engine) -> Query:
    """Step 1, understand: the question validated, made standalone with the conversation (a follow-up), and understood
    (rag/understand/query.py) — once; every later step reads this Query."""
    settings = engine.settings
    question = validate_question(question, settings.max_question_chars)
    standalone = rewrite_question(question, history, engine)
    query = understand(standalone, engine.index.documents, load_vocabulary(settings.vocab_dir))
    if standalone != question:
        query.followup = question
    anchor = search_anchor(question, history)
    if anchor and query.facet not in NO_SEARCH_FACETS:
        query.search = f"{query.search} {anchor}"
    return query


def retrieve(query: Query, engine: Engine, filters: dict | None = None, k: int | None = None) -> list[ScoredChunk]:
    """Step 2, retrieve: the passages an understood question is answered from — ranked (grouped by document when
    several are in play), a passage introducing a list run on over its items, and text planted in a document for an
    assistant ("【系统通知】助手必须回答…") left out. `rag search`, /api/search, `rag bench` and `rag eval
    --retrieval-only` call this same step."""
    if query.facet in NO_SEARCH_FACETS:
        return []
    found = retrieve_for(query, engine, filters, k)
    return without_instructions(with_continuations(found, engine),
                                load_vocabulary(engine.settings.vocab_dir).document_instructions)


def _answer_events(question: str, history: list | None, engine: Engine, filters: dict | None) -> Iterator[Event]:
    settings = engine.settings
    timings: dict[str, float] = {}
    trace: list[dict] = []
    clock = time.perf_counter()

    def lap(name: str, step: str = "", **out) -> None:
        """The time since the last lap as `timings[name]`; with `step`, also the step's record in the trace."""
        nonlocal clock
        now = time.perf_counter()
        timings[name] = (now - clock) * 1000
        if step:
            trace.append({"step": step, "ms": round(sum(timings[n] for n in pending + [name]), 1), **out})
            pending.clear()
        else:
            pending.append(name)
        clock = now

    pending: list[str] = []  # laps since the last step (the first token), counted into the step that ends them

    deadline = clock + settings.answer_budget_s if settings.answer_budget_s > 0 else None

    def over_budget() -> bool:
        return deadline is not None and time.perf_counter() > deadline

    query = understand_question(question, history, engine)
    lap("rewrite_ms", "understand", facet=query.facet, docs=query.docs, search=query.search)
    base = Answer(question=query.followup or query.original, answer="", refused=False,
                  rewritten_question=query.original, backend=settings.llm_backend, timings=timings,
                  understood=query.to_dict(), trace=trace)
    if query.facet in NO_SEARCH_FACETS:
        yield Event("sources", [])
        yield Event("final", answered(base, _scope_message(engine, query.facet, query.scope_class)))
        return
    excluded = filtered_out(query, engine, filters)
    contexts = retrieve(query, engine, filters)
    lap("retrieve_ms", "retrieve", passages=[c.chunk.chunk_id for c in contexts])
    base = dataclasses.replace(base, contexts=contexts)
    yield Event("sources", contexts)
    if over_budget():
        yield Event("final", answered(base, _over_budget(settings)))
        return
    if excluded and len(excluded) == len(query.docs):
        # every document the question names is left out by the filter: say so, do not answer from the others
        yield Event("final", answered(base, _excluded_message(excluded, engine)))
        return

    eligibility: Eligibility = eligible_passages(query.text, contexts, engine.documents_by_id)
    if not eligibility.passages:
        yield Event("final", answered(base, _refusal(eligibility.reason, settings, contexts)))
        return
    if eligibility.uncovered:
        base = dataclasses.replace(base, understood=base.understood | {"uncovered": eligibility.uncovered})
    kept = one_version(query.docs, query.years, engine.document_view) if query.docs else []
    if len(kept) < len(query.docs):  # an older version of the text named is left out, its passages too
        eligibility.passages = [p for p in eligibility.passages if p.chunk.doc_id in kept
                                or p.chunk.doc_id not in query.docs] or eligibility.passages
    plan = make_plan(query, eligibility.passages, engine)
    model = engine.llm if settings.llm_backend != "extractive" else None
    # Model reads, code checks: a plan the code is not sure of (its evidence gates said no) is handed to the model
    # with the passages, instead of refused; the model's "not stated" and the citation check then decide.
    handover = plan.refused and not plan.settled and model is not None and settings.model_reads_unsure
    lap("plan_ms", "decide", eligible=len(eligibility.passages), plan=plan.kind, refused=plan.refused,
        reason=plan.reason, handover=handover)
    if plan.refused and not handover:
        yield Event("final", answered(base, _refused_plan(plan, settings, contexts)))
        return
    reads = plan.kind in MODEL_READS and all(kind in MODEL_READS + ("refusal", "near_miss") for kind in plan.parts)
    if model is None or not (reads or handover):
        # A document's own facts and a section's items are exact from structure: built by code. The rest is read
        # by the model from the passages, and checked.
        reply = _render_plan(plan, contexts)
        lap("generate_ms", "phrase", by="code")
        yield Event("final", answered(base, reply))
        return
    notes = [f"the code's plan was unsure ({plan.reason}): the model read the passages"] if handover else []
    evidence = plan.evidence
    # the passages the plan found first (each document's, for a comparison), then the best others
    first = [e.ctx for e in evidence] + [st.ctx for st in plan.statements if st.ctx is not None]
    budget = settings.context_budget_tokens * (2 if plan.kind in ("cross", "compound") else 1)
    passages = pack_passages(eligibility.passages, settings, first=first, budget=budget)
    packed_ids = {p.chunk.chunk_id for p in passages}
    evidence = [e for e in evidence if e.ctx.chunk.chunk_id in packed_ids]
    prompt = build_prompt(query.text, passages, settings)
    # the passages the generator sees, in prompt order, and the prompt
    base = dataclasses.replace(base, contexts=passages, prompt=prompt)
    pieces: list[str] = []
    shown = 0  # characters of the draft already checked and shown
    tokens = model.stream(prompt, max_tokens=settings.llm_max_tokens)
    try:
        awaiting = True
        for piece in tokens:
            if awaiting:
                lap("first_token_ms")
                awaiting = False
            pieces.append(piece)
            yield Event("token", piece)  # for the library's own callers; the API and the UI show only sentences
            if over_budget():
                break
            draft = "".join(pieces)
            end = _last_sentence_end(draft)
            if end > shown:
                for sentence in _checked_sentences(draft[shown:end], passages, query.text):
                    yield Event("sentence", sentence)
                shown = end
    except (LLMUnavailableError, ModelError) as exc:
        if not settings.llm_fallback_extractive:
            raise
        reply = _fall_back(plan, settings, contexts)
        lap("generate_ms", "phrase", by="code", why="model unavailable")
        yield Event("final", answered(base, reply, backend="extractive",
                                      notes=notes + [f"LLM unavailable, answered extractively: {exc}"]))
        return
    finally:
        tokens.close()  # a reader that went away must not leave the model (and its lock) mid-generation
    lap("generate_ms", "phrase", by=settings.llm_backend, passages=[p.chunk.chunk_id for p in passages],
        first_token_ms=round(timings.get("first_token_ms", 0.0), 1), words=len("".join(pieces)))
    if over_budget():
        # out of time mid-draft: keep what was checked and shown; with nothing shown, the code's own answer
        notes.append(f"the answer's time budget ({settings.answer_budget_s:g} s) ran out while the model wrote")
        draft = "".join(pieces)[:shown].strip()
        if not draft:
            reply = _fall_back(plan, settings, contexts)
            if not reply.refused:
                reply = dataclasses.replace(reply, text=reply.text + "（模型生成超时，以上为程序从原文摘录的回答）")
            yield Event("final", answered(base, reply, notes=notes))
            return
        pieces = [draft]
    raw = "".join(pieces).strip()
    reply = _checked(raw, evidence, passages, settings, lap, plan, contexts, query)
    yield Event("final", answered(base, reply, raw_answer=raw, notes=notes))


def filtered_out(query: Query, engine: Engine, filters: dict | None) -> list[str]:
    """The documents the question names that the filters leave out (e.g. expired plans under 不含已到期文件)."""
    if not filters or not query.docs:
        return []
    allowed = engine.retriever.allowed_docs(filters)
    return [d for d in query.docs if allowed is not None and d not in allowed]


def _excluded_message(excluded: list[str], engine: Engine) -> Reply:
    from rag.store.library import today_of

    today = today_of(engine.settings)
    parts = []
    for doc_id in excluded:
        doc = engine.documents_by_id.get(doc_id, {})
        why = (f"期限为{period_text(doc['period'])}，已到期" if doc.get("period")
               and validity(doc["period"], today) == "已到期" else "不在所选检索范围内")
        parts.append(f"《{doc.get('title', doc_id)}》（{why}）")
    return _refused(f"所问的{'、'.join(parts)}已被当前的检索范围排除，因此没有检索它。"
                    "如需查看，请取消勾选“不含已到期文件”或把检索范围改为“全部文档”后再问。", "所问文件被筛选条件排除")


MAX_NAMED_DOCS = 8  # documents a question names that get a search of their own (a person names few)
PER_DOC = 3  # passages kept per document when several documents are in play


def retrieve_for(query: Query, engine: Engine, filters: dict | None = None, k: int | None = None) -> list[ScoredChunk]:
    """Ranked passages for an understood question. With several documents in play, the passages are grouped by
    document (each one's best passage first): the documents named get a search each (bounded: a person names a
    few), "every document" questions (各地, 哪些文件) one wider search whose candidates are grouped — the cost grows
    with the candidates, never with the number of documents in the library."""
    settings = engine.settings
    k = k or settings.top_k
    if not (query.cross or query.facet == "which_docs"):
        return engine.retriever.search(query, k=k, filters=filters, docs=query.docs)
    named = query.docs[:MAX_NAMED_DOCS] if query.docs and not query.all_docs else []
    wide = k if named else max(k, settings.cross_candidates)
    ranked = engine.retriever.search(query, k=wide, filters=filters, docs=query.docs)
    extra: list[ScoredChunk] = []
    allowed = engine.retriever.allowed_docs(filters)
    for doc_id in named:
        if allowed is None or doc_id in allowed:
            extra += engine.retriever.search(query, k=PER_DOC, filters=(filters or {}) | {"doc_id": [doc_id]},
                                             docs=query.docs)
    unique = list({c.chunk.chunk_id: c for c in sorted(ranked + extra, key=lambda c: -c.score)}.values())
    per_doc: dict[str, list[ScoredChunk]] = {}
    for c in unique:
        per_doc.setdefault(c.chunk.doc_id, []).append(c)
    kept = [c for group in per_doc.values() for c in group[:PER_DOC]]
    firsts = [group[0] for group in per_doc.values()]
    merged = firsts + [c for c in sorted(kept, key=lambda c: -c.score) if c not in firsts]
    return [ScoredChunk(c.chunk, c.score, i + 1, c.bm25, c.dense) for i, c in enumerate(merged)]


MAX_CONTINUATION_CHARS = 900  # the items after "有下列情形之一的：" that a passage may take from the next one


def with_continuations(contexts: list[ScoredChunk], engine: Engine) -> list[ScoredChunk]:
    """A passage that ends by introducing a list ("有下列情形之一的，不予受理：", "名单如下：") is nothing without its
    items, which a length cut may have put in the next passage of the document: such a passage runs on over its
    successor when only line breaks lie between them (so offsets into the document and highlights stay exact)."""
    out = []
    for ctx in contexts:
        chunk = ctx.chunk
        if not re.search(r"[：:]\s*$", chunk.text):
            out.append(ctx)
            continue
        siblings = engine.document_view.chunks.get(chunk.doc_id, [])
        following = next((c for c in siblings if c.start >= chunk.end), None)
        if following is None or following.start - chunk.end > 4 or len(following.text) > MAX_CONTINUATION_CHARS:
            out.append(ctx)
            continue
        joined = dataclasses.replace(chunk, text=chunk.text + "\n" * (following.start - chunk.end) + following.text,
                                     end=following.end)
        out.append(ScoredChunk(joined, ctx.score, ctx.rank, ctx.bm25, ctx.dense))
    return out


def make_plan(query: Query, passages: list[ScoredChunk], engine: Engine) -> Plan:
    """The answer plan for the question's facet (see rag/answer/plans.py); a compound question gets one plan per part."""
    parts = sub_questions(query, engine.index.documents, load_vocabulary(engine.settings.vocab_dir))
    if len(parts) > 1:
        plans = [_plan_one(part, passages, engine) for part in parts]
        if all(p.refused for p in plans):
            return plans[0]
        statements = [s for p in plans for s in (p.statements if not p.refused else [Statement(p.reason)])]
        statements = list({s.text: s for s in reversed(statements)}.values())[::-1]  # two parts, one fact: said once
        return Plan("compound", statements, parts=[p.kind for p in plans])
    return _plan_one(query, passages, engine)


def _plan_one(query: Query, passages: list[ScoredChunk], engine: Engine) -> Plan:
    settings = engine.settings
    vocab = load_vocabulary(settings.vocab_dir)
    view = engine.document_view
    targets = targets_for(query, view, passages)
    if is_document_facet(query):
        if not (query.facet == "date" and vocab.has("date_event", query.text)):
            facts = plan_document_facts(query, targets, view, passages)
            if not facts.refused or query.facet != "date":
                return facts  # a 文号 or issuer in the passages is often another document's, cited
        else:
            facts = Plan("refusal", refused=True, reason="文档的登记信息没有所问的日期")
        # the document's own facts do not hold it (通过, 修正, 批准 dates; a fact no header states): its passages may
        return _plan_from_dated_lines(query, targets, passages, facts, engine)
    if query.facet == "outline" and len(targets) == 1 and not names_a_section(query, passages, view, targets):
        # the document's own build ("一共几章 最后一条"); "保障措施一共几条" counts a section's items: a list
        outline = plan_outline(targets[0], view, passages)  # versions of one title are one target (targets_for)
        if outline is not None:
            return outline
    if query.facet in ("list", "outline") or query.item:
        listed = plan_list(query, passages, view, query.docs)
        if listed is not None:
            return listed
    if query.facet == "which_docs" and query.years and load_vocabulary(settings.vocab_dir).has("about_documents", query.text):
        return plan_documents_of_year(query, view, passages)
    if query.cross or query.facet == "which_docs":
        return plan_per_document(query, passages, view, targets, settings.evidence_min_cover)
    if query.facet == "when":  # the sentences that state a time come first; none: the plain evidence below
        asked = _without_time_cues(query.evidence_text, vocab)
        dated = [e for e in best_evidence(asked, passages, limit=2, kind="when") if states("when", e.sentence)]
        timed = plan_evidence(query, dated[:2], settings.evidence_min_cover, settings.figure_min_cover)
        if not timed.refused:
            return timed
    units = expected_units(query.text, vocab) if query.facet == "figure" else ()
    if units:
        # a question naming its kind of figure (多少钱, 多长时间): the sentences stating that kind come first; a
        # sentence about the same thing without it (…不得同时享受) is no answer to it
        evidence = best_evidence(query.evidence_text, passages, limit=4)
        stating = [e for e in evidence if states_units(e.sentence, units)]
        if stating and stating[0].cover >= settings.figure_min_cover:
            return plan_evidence(query, stating[:2], settings.evidence_min_cover, settings.figure_min_cover)
    if query.followup:
        # "那情节严重的呢" after a question about a penalty: what the follow-up adds must be in the answer. Legal
        # text puts the variant in the next clause of the same provision (…罚款；情节严重的，处…), so each candidate
        # is read as its whole sentence, and one that holds the follow-up's own words answers
        added = [t for t in question_terms(query.followup) if len(t) >= 2]
        if added:
            candidates = [whole_sentence(e) for e in best_evidence(query.evidence_text, passages, limit=4)]
            holding = list({(e.ctx.chunk.chunk_id, e.start, e.end): e for e in candidates
                            if all(t in normalise(e.sentence) for t in added)}.values())
            if holding:
                return plan_evidence(query, holding[:2], settings.evidence_min_cover, settings.figure_min_cover)
    evidence = best_evidence(query.evidence_text, passages)
    return plan_evidence(query, evidence, settings.evidence_min_cover, settings.figure_min_cover)


def _plan_from_dated_lines(query: Query, targets: list[str], passages: list[ScoredChunk], facts: Plan,
                           engine: Engine) -> Plan:
    """A date the document's facts do not hold (通过, 公布, 修订 — its history lines): the passages' sentences that
    date the event asked; `facts` (the facts' refusal) when none does, settled when no passage could."""
    settings, vocab, view = engine.settings, load_vocabulary(engine.settings.vocab_dir), engine.document_view
    # A passage of the document named need not name it again: its title is what the passage is about.
    named = targets if query.docs else []  # else targets is only the best retrieved document
    asked = _without_time_cues(query.evidence_text, vocab, asking_only=True)
    for doc_id in named:
        for form in title_forms(view.title(doc_id), vocab):
            asked = asked.replace(form, " ")
    own = [c for c in passages if c.chunk.doc_id in named] or passages
    # the last or first of the events a document's history lines date ("最近一次修订", "最早…公布"): the line
    # with the latest or earliest date, among all that say the event
    selector = next((c for c in ("latest_event", "earliest_event") if vocab.has(c, query.text)), "")
    for word in vocab.words.get(selector, ()):
        asked = asked.replace(word, " ")
    kind = requested_kind(query.evidence_text)  # asked for by the time words taken out of `asked`
    dated = [e for e in best_evidence(asked, own, limit=8 if selector else 3, kind=kind, only_bare=len(named) == 1)
             if states("date", e.sentence) or states("year", e.sentence)]
    if selector and len(dated) > 1:
        latest = selector == "latest_event"
        dated = sorted(dated, key=lambda e: iso_date(e.sentence) or ("0000" if latest else "9999"),
                       reverse=latest)[:1]
    by_passages = plan_evidence(query, dated, settings.evidence_min_cover, settings.figure_min_cover)
    if not by_passages.refused:
        return by_passages
    events = [w for w in vocab.words.get("date_event", ()) if w in query.text]
    # (a question asking a number of days, "公示时间不得少于多少日", is not asking for a date: left to the model)
    if events and not expected_units(query.text, vocab) and not any(_dates_an_event(c.chunk.text, events) for c in own):
        # "哪年修订的" of a text with no dated sentence saying 修订 ("推进《…条例》修订研究"): no reading of its
        # passages can answer it — a model would take the year from the title
        facts = dataclasses.replace(facts, settled=True)
    return facts


def _dates_an_event(text: str, events: list[str]) -> bool:
    """Does a sentence of `text` say one of the events (修订, 通过) and give a date or a year?"""
    for start, end in split_sentences(text):
        sentence = text[start:end]
        if any(w in sentence for w in events) and (states("date", sentence) or states("year", sentence)):
            return True
    return False


def _without_time_cues(text: str, vocab, asking_only: bool = False) -> str:
    """The words that ask for the time (什么时候, 啥时候, 时间) are not what an answering sentence must hold; with
    `asking_only` the question words only (哪天, 啥时候), not the nouns a dated line writes ("公示时间：…")."""
    for facet, cue in vocab.facets:
        if facet in ("date", "compare_date") and (not asking_only or re.search("[哪啥何]|什么", cue)):
            text = text.replace(cue, " ")
    return text


def _render_plan(plan: Plan, retrieved: list[ScoredChunk]) -> Reply:
    """The plan as text, each supported line cited [n]; contexts = cited passages first, then the rest retrieved."""
    cited = plan.contexts
    numbers = {c.chunk.chunk_id: i + 1 for i, c in enumerate(cited)}
    lines, citations = [], []
    for statement in plan.statements:
        marker = ""
        if statement.ctx is not None:
            number = numbers[statement.ctx.chunk.chunk_id]
            marker = f"[{number}]"
            citations.append(_citation(number, statement.ctx, statement.text, statement.quote or statement.text))
        if statement.text:
            lines.append(statement.text.rstrip("。；;") + marker)
        elif lines and marker and marker not in lines[-1]:
            lines[-1] += marker
    header = lines and lines[0].endswith("：")
    text = lines[0] + "\n" + "；\n".join(lines[1:]) + "。" if header else "；".join(lines) + "。"
    rest = [c for c in retrieved if c.chunk.chunk_id not in numbers]
    return Reply(text, _merge_citations(citations),
                 contexts=[ScoredChunk(c.chunk, c.score, i + 1, c.bm25, c.dense) for i, c in enumerate(cited + rest)])


def _over_budget(settings: Settings) -> Reply:
    return _refused(f"这个问题的检索用时超过了单个问题的上限（{settings.answer_budget_s:g} 秒），没有得到可靠的回答。"
                    "请缩小检索范围（选择某个文档或地区）或把问题问得具体一些后再试。", "超出单个问题的时间上限")


def _fall_back(plan: Plan, settings: Settings, retrieved: list[ScoredChunk]) -> Reply:
    """When the model's answer cannot be used: the code's plan — its answer, or (a plan that was unsure) its refusal."""
    return _refused_plan(plan, settings, retrieved) if plan.refused else _render_plan(plan, retrieved)


def _refused_plan(plan: Plan, settings: Settings, contexts: list[ScoredChunk]) -> Reply:
    """A refusal; a near miss also says what the documents do state, cited."""
    refusal = _refusal(plan.reason, settings, contexts)
    if not plan.statements:
        return refusal
    said = _render_plan(plan, contexts)
    return dataclasses.replace(refusal, text=said.text + "\n" + refusal.text, citations=said.citations,
                               contexts=said.contexts)


def _scope_message(engine: Engine, facet: str, scope_class: str) -> Reply:
    """Empty input, a request outside the documents, or another language: what the assistant does, what the library
    holds, with examples."""
    what = {"creative": "写作", "translate": "翻译", "code": "编程", "weather": "天气", "finance": "行情", "travel": "出行", "identity": "闲聊",
            "recommend": "推荐", "chat": "闲聊"}.get(scope_class, "其他")
    documents = engine.index.documents
    text = render(engine.settings.prompts_dir, "scope", kind=facet, what=what, tool=scope_class in TOOL_TASKS,
                  holds=library_summary(documents, load_vocabulary(engine.settings.vocab_dir).document_kinds),
                  examples=example_questions(documents, engine.settings.vocab_dir, 3))
    reason = {"empty": "问题没有内容", "foreign": "请用中文提问", "chat": "寒暄"}.get(facet, "问题不在已收录文件范围内")
    return _refused(text, reason)


def library_summary(documents: list[dict], kinds: tuple[str, ...]) -> str:
    """What the library holds, by kind of document ("已收录 35 份文件：条例 14 份、法 6 份、通知 5 份…"), not by title."""
    counts: dict[str, int] = {}
    for doc in documents:
        title = re.sub(r"\s*[（(][^（）()]*[）)]\s*$", "", doc.get("title", ""))  # "方案(2020-2023年)" is a 方案
        kind = max((k for k in kinds if title.endswith(k)), key=len, default="其他")
        counts[kind] = counts.get(kind, 0) + 1
    parts = "、".join(f"{kind} {n} 份" for kind, n in sorted(counts.items(), key=lambda kv: -kv[1])[:6])
    return f"已收录 {len(documents)} 份文件（{parts}）"


def _checked(raw: str, evidence: list[Evidence], passages: list[ScoredChunk], settings: Settings,
             lap: Callable[..., None], plan: Plan, retrieved: list[ScoredChunk], query: Query) -> Reply:
    """Step 5, check: keep only the model's supported sentences, cited as [n]; the code's own answer when nothing
    holds."""
    def fall_back(note: str, **record) -> Reply:
        reply = _fall_back(plan, settings, retrieved)
        lap("check_ms", "check", **record)
        return dataclasses.replace(reply, notes=notes + [note])

    notes: list[str] = []
    if says_cannot_answer(raw):
        # Whether the documents answer was decided by code before the model ran (the plan passed the evidence and
        # figure gates); a small model's "no" is a phrasing failure, not evidence.
        return fall_back("the model said the passages lack the answer; the checked evidence says otherwise: "
                         "answered extractively", kept=0, fell_back="the model said not stated")
    checked = check_answer(raw, passages, query.original)
    kept = [s for s in checked if s.status != "dropped"]
    for s in checked:
        if s.status == "recited":
            notes.append(f"recited: {s.text[:40]} ({s.why})")
        elif s.status == "dropped":  # unchecked text is not repeated, not even in a note
            notes.append(f"dropped a sentence ({s.why})")
    if kept and not plan.refused and query.facet == "figure" and not _states_the_figure(kept, evidence, query.evidence_text):
        return fall_back("the model's answer leaves out the figure the evidence states: answered extractively",
                         kept=len(kept), fell_back="the figure left out")
    if not kept:
        return fall_back("no sentence of the model's answer was supported: answered extractively", kept=0,
                         fell_back="nothing supported")
    lines, citations = [], []
    for s in kept:
        text = s.text.rstrip("。；;，, ")
        lines.append(text + "".join(f"[{n}]" for n in s.markers) + "。")
        citations += [_citation(n, passages[n - 1], s.text, quote_for(s.text, passages[n - 1])) for n in s.markers]
    lap("check_ms", "check", kept=len(kept), dropped=sum(s.status == "dropped" for s in checked),
        recited=sum(s.status == "recited" for s in checked))
    return Reply("".join(lines), _merge_citations(citations), notes=notes)


def _last_sentence_end(text: str) -> int:
    """Offset just past the last sentence end (。！？；or a line break) in a draft; 0 when none yet."""
    ends = [i + 1 for i, ch in enumerate(text) if ch in "。！？!?；;\n"]
    return ends[-1] if ends else 0


def _checked_sentences(text: str, passages: list[ScoredChunk], question: str) -> list[str]:
    """Sentences of a draft that pass the citation check, with their markers: the only model text shown while it
    writes. The final answer, checked as a whole, replaces them."""
    out = []
    for checked in check_answer(text, passages, question):
        if checked.status != "dropped":
            out.append(checked.text.rstrip("。；;，, ") + "".join(f"[{n}]" for n in checked.markers) + "。")
    return out


def _states_the_figure(kept: list, evidence: list[Evidence], question: str) -> bool:
    """A figure question's answer must carry the figure of the best evidence sentence (the one code chose); when that
    sentence states several ("推荐第二十二届…及第二十一届…奖励"), the figure of the clause closest to the question."""
    if not evidence:
        return True
    clauses = [c for c in re.split(r"[，,、；;及和与]", evidence[0].sentence) if quantities_in(c)]
    if not clauses:
        return True
    terms = question_terms(question)
    best = max(clauses, key=lambda c: coverage(terms, c))
    wanted = set(quantities_in(best))
    stated = {q for s in kept for q in quantities_in(s.text)}
    return bool(wanted & stated) or any(normalise_numbers(q) in normalise_numbers(" ".join(s.text for s in kept))
                                        for q in wanted)


def answer(question: str, history: list | None = None, settings: Settings | None = None, engine: Engine | None = None,
           filters: dict | None = None) -> Answer:
    """Answer one question with checked citations (or an honest refusal)."""
    started = time.perf_counter()
    final = None
    for event in stream_answer(question, history, settings, engine, filters):
        if event.kind == "final":
            final = event.data
    assert isinstance(final, Answer)
    final.timings["total_ms"] = (time.perf_counter() - started) * 1000
    return final
