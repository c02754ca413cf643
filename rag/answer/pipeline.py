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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from rag.answer.cite import cite
from rag.answer.decide import (
    MODEL_READS,
    about_the_document,
    answered,
    excluded_message,
    fall_back,
    make_plan,
    over_budget_reply,
    refusal,
    refused_plan,
    render_plan,
    scope_message,
)
from rag.answer.grounding import (
    Eligibility,
    eligible_passages,
    held_passages,
)
from rag.answer.phrase import (
    build_prompt,
    checked,
    checked_sentences,
    last_sentence_end,
    pack_passages,
    passages_for_document,
    passages_for_model,
    within,
)
from rag.answer.plans import (
    one_version,
    targets_for,
)
from rag.answer.result import Answer
from rag.answer.retrieve import (
    document_card,
    filtered_out,
    retrieve,
    retrieve_for,
    understand_question,
    whole_sections,
)
from rag.engine import Engine
from rag.errors import LLMUnavailableError, ModelError
from rag.settings import Settings
from rag.understand.query import NO_SEARCH_FACETS

__all__ = ["answer", "stream_answer", "understand_question", "retrieve", "retrieve_for", "build_prompt", "pack_passages", "cite"]


@dataclass
class Event:
    """What `stream_answer` yields: 'sources' (after retrieval), 'token' (model text), 'final' (the Answer)."""

    kind: str
    data: Any  # the passages ('sources'), a piece of text ('token'), the Answer ('final')


def stream_answer(question: str, history: list | None = None, settings: Settings | None = None,
                  engine: Engine | None = None, filters: dict | None = None) -> Iterator[Event]:
    """The whole path as events: sources as soon as retrieval is done, then model tokens and checked sentences,
    then the Answer (the steps in the module's docstring)."""
    engine = (engine or Engine(settings or Settings.load())).pinned()  # one question, one index generation
    for event in _answer_events(question, history, engine, filters):
        yield Event("final", cite(event.data, engine)) if event.kind == "final" else event


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
        yield Event("final", answered(base, scope_message(engine, query.facet, query.scope_class)))
        return
    excluded = filtered_out(query, engine, filters)
    contexts = retrieve(query, engine, filters)
    lap("retrieve_ms", "retrieve", passages=[c.chunk.chunk_id for c in contexts])
    base = dataclasses.replace(base, contexts=contexts)
    yield Event("sources", contexts)
    if over_budget():
        yield Event("final", answered(base, over_budget_reply(settings)))
        return
    if excluded and len(excluded) == len(query.docs):
        # every document the question names is left out by the filter: say so, do not answer from the others
        yield Event("final", answered(base, excluded_message(excluded, engine)))
        return

    eligibility: Eligibility = eligible_passages(query.text, contexts, engine.documents_by_id,
                                                     query.docs if query.cross else (), engine.index.text_of)
    if not eligibility.passages:
        yield Event("final", answered(base, refusal(eligibility.reason, settings, contexts)))
        return
    if eligibility.uncovered:
        base = dataclasses.replace(base, understood=base.understood | {"uncovered": eligibility.uncovered})
    kept = one_version(query.docs, query.years, engine.document_view, query.versions) if query.docs else []
    if len(kept) < len(query.docs):  # an older version of the text named is left out, its passages too
        eligibility.passages = [p for p in eligibility.passages if p.chunk.doc_id in kept
                                or p.chunk.doc_id not in query.docs] or eligibility.passages

    if query.held:
        eligibility.passages = held_passages(query, eligibility.passages, settings.evidence_min_cover,
                                             settings.figure_min_cover)
    plan = make_plan(query, eligibility.passages, engine)
    model = engine.llm if settings.llm_backend != "extractive" else None
    # Model reads, code checks: a plan the code is not sure of (its evidence gates said no) is handed to the model
    # with the passages, instead of refused; the model's "not stated" and the citation check then decide.
    handover = plan.refused and not plan.settled and model is not None and settings.model_reads_unsure
    # A question about a document itself that its registered facts do not answer whole (two facts asked, a 会议 or
    # 修正 the facts do not hold): the model reads the document's opening and closing passages
    card = (document_card(targets_for(query, engine.document_view, eligibility.passages), engine)
            if model is not None and settings.model_reads_documents and about_the_document(query, engine) and not plan.settled
            and (plan.refused or plan.kind != "facts") else [])
    lap("plan_ms", "decide", eligible=len(eligibility.passages), plan=plan.kind, refused=plan.refused,
        reason=plan.reason, handover=handover, card=[c.chunk.chunk_id for c in card])
    handover = handover or bool(card)
    if plan.refused and not handover:
        yield Event("final", answered(base, refused_plan(plan, settings, contexts)))
        return
    reads = plan.kind in MODEL_READS and all(kind in MODEL_READS + ("refusal", "near_miss") for kind in plan.parts)
    if model is None or not (reads or handover):
        # A document's own facts and a section's items are exact from structure: built by code. The rest is read
        # by the model from the passages, and checked.
        reply = render_plan(plan, contexts)
        lap("generate_ms", "phrase", by="code")
        yield Event("final", answered(base, reply))
        return
    notes = ([f"a question about the document: the model read its opening and closing passages ({plan.kind} plan)"]
             if card else [f"the code's plan was unsure ({plan.reason}): the model read the passages"] if handover else [])
    evidence = plan.evidence
    expand = (lambda found: whole_sections(found, engine)) if settings.whole_sections else None
    passages = (passages_for_document(card, plan, eligibility.passages, settings) if card
                else passages_for_model(query, plan, eligibility.passages, settings, expand))
    evidence = [e for e in evidence if within(e.ctx, passages)]
    unsure = handover and not card and settings.unsure_prompt
    prompt = build_prompt(query.text, passages, settings, "system_unsure" if unsure else "system")
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
            end = last_sentence_end(draft)
            if end > shown:
                for sentence in checked_sentences(draft[shown:end], passages, query.text):
                    yield Event("sentence", sentence)
                shown = end
    except (LLMUnavailableError, ModelError) as exc:
        if not settings.llm_fallback_extractive:
            raise
        reply = fall_back(plan, settings, contexts)
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
            reply = fall_back(plan, settings, contexts)
            if not reply.refused:
                reply = dataclasses.replace(reply, text=reply.text + "（模型生成超时，以上为程序从原文摘录的回答）")
            yield Event("final", answered(base, reply, notes=notes))
            return
        pieces = [draft]
    raw = "".join(pieces).strip()
    reply = checked(raw, evidence, passages, settings, lap, plan, contexts, query)
    yield Event("final", answered(base, reply, raw_answer=raw, notes=notes))


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
