"""One question, one path: retrieve → build prompt → generate → check citations → Answer.

Refusal does not rest on the model. The code refuses when
  1. no retrieved passage covers the places and years the question names (eligibility),
  2. the passages do not state the kind of fact asked for (no figure for a 多少 question),
  3. the model says the passages lack the answer and the evidence is not strong, or
  4. checking leaves no supported sentence and no extractive answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from rag.answer import Answer, Citation
from rag.engine import Engine
from rag.errors import LLMUnavailableError, ModelError
from rag.followup import standalone_question
from rag.grounding import (
    Eligibility,
    Evidence,
    best_evidence,
    check_answer,
    eligible_passages,
    quote_for,
    says_cannot_answer,
    states_requested_fact,
)
from rag.prompts import render
from rag.retrieval import ScoredChunk, validate_question
from rag.settings import Settings
from rag.tokens import count_tokens

__all__ = ["answer", "stream_answer", "standalone_question", "retrieve", "build_prompt", "pack_passages"]


@dataclass
class Event:
    """What `stream_answer` yields: 'sources' (after retrieval), 'token' (model text), 'final' (the Answer)."""

    kind: str
    data: object


def retrieve(question: str, engine: Engine, filters: dict | None = None) -> list[ScoredChunk]:
    """Ranked passages for a standalone question."""
    return engine.retriever.search(question, k=engine.settings.top_k, filters=filters)


def pack_passages(passages: list[ScoredChunk], settings: Settings, first: list[ScoredChunk] = ()) -> list[ScoredChunk]:
    """`first` (the passages holding the evidence), then the most relevant others, while they fit the token budget.

    Prompt reading dominates the wait on a CPU (~95 tokens/s for the 1.5B model), so the budget is the latency knob.
    """
    ordered = list({ctx.chunk.chunk_id: ctx for ctx in [*first, *passages]}.values())  # keeps order, drops repeats
    packed, used = [], 0
    for ctx in ordered[: settings.context_max_passages]:
        cost = count_tokens(ctx.chunk.text) + 20
        if packed and used + cost > settings.context_budget_tokens:
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


def _refusal(result: Answer, reason: str, settings: Settings, nearest: list[ScoredChunk]) -> Answer:
    seen, sections = set(), []
    for ctx in nearest:
        key = (ctx.chunk.title, ctx.chunk.section)
        if key not in seen:
            seen.add(key)
            sections.append({"title": ctx.chunk.title, "section": ctx.chunk.section})
    result.answer = render(settings.prompts_dir, "refusal", reason=reason, nearest=sections[:3])
    result.refused = True
    result.refusal_reason = reason
    result.citations = []
    return result


def _extractive(evidence: list[Evidence], passages: list[ScoredChunk], settings: Settings) -> tuple[str, list[Citation]]:
    """The best-supported sentences, each cited to its passage."""
    numbers = {id(p): i + 1 for i, p in enumerate(passages)}
    sentences, citations = [], []
    for ev in evidence:
        number = numbers[id(ev.ctx)]
        sentences.append({"text": ev.sentence.rstrip("；;，,"), "number": number})
        citations.append(_citation(number, ev.ctx, ev.sentence, ev.sentence))
    return render(settings.prompts_dir, "extractive", sentences=sentences), _merge_citations(citations)


def _citation(number: int, ctx: ScoredChunk, supports: str, quote: str) -> Citation:
    c = ctx.chunk
    return Citation(number, c.doc_id, c.title, c.section, c.text, supports, quote, c.chunk_id, c.section_short)


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
    """The whole path as events: sources as soon as retrieval is done, then model tokens, then the Answer."""
    engine = engine or Engine(settings or Settings.load())
    settings = engine.settings
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = (now - clock) * 1000
        clock = now

    question = validate_question(question, settings.max_question_chars)
    standalone = rewrite_question(question, history, engine)
    lap("rewrite_ms")
    contexts = retrieve(standalone, engine, filters)
    lap("retrieve_ms")
    result = Answer(question=question, answer="", refused=False, contexts=contexts, rewritten_question=standalone,
                    backend=settings.llm_backend, timings=timings)
    yield Event("sources", contexts)

    eligibility: Eligibility = eligible_passages(standalone, contexts, engine.documents_by_id)
    evidence = best_evidence(standalone, eligibility.passages)
    if settings.llm_backend == "extractive":
        passages = eligibility.passages  # no prompt to pay for: keep every eligible passage
    else:
        passages = pack_passages(eligibility.passages, settings, first=[e.ctx for e in evidence])
    packed_ids = {p.chunk.chunk_id for p in passages}
    evidence = [e for e in evidence if e.ctx.chunk.chunk_id in packed_ids]
    lap("check_evidence_ms")
    if not passages:
        yield Event("final", _refusal(result, eligibility.reason, settings, contexts))
        return
    if not states_requested_fact(standalone, evidence):
        reason = "文档没有给出所问的具体数字或日期" if evidence else "没有足够相关的内容"
        yield Event("final", _refusal(result, reason, settings, contexts))
        return
    result.contexts = passages  # the passages the generator sees, in prompt order

    llm = engine.llm if settings.llm_backend != "extractive" else None
    if llm is None:
        result.answer, result.citations = _extractive(evidence, passages, settings)
        lap("generate_ms")
        yield Event("final", result)
        return

    result.prompt = build_prompt(standalone, passages, settings)
    pieces: list[str] = []
    try:
        first = True
        for piece in llm.stream(result.prompt, max_tokens=settings.llm_max_tokens):
            if first:
                lap("first_token_ms")
                first = False
            pieces.append(piece)
            yield Event("token", piece)
    except (LLMUnavailableError, ModelError) as exc:
        if not settings.llm_fallback_extractive:
            raise
        result.notes.append(f"LLM unavailable, answered extractively: {exc}")
        result.backend = "extractive"
        result.answer, result.citations = _extractive(evidence, passages, settings)
        lap("generate_ms")
        yield Event("final", result)
        return
    lap("generate_ms")
    result.raw_answer = "".join(pieces).strip()
    yield Event("final", _checked(result, evidence, passages, settings, lap))


def _checked(result: Answer, evidence: list[Evidence], passages: list[ScoredChunk], settings: Settings,
             lap: Callable[[str], None]) -> Answer:
    """Keep only supported sentences, cited as [n]; fall back to the extractive answer when nothing holds."""
    strong = bool(evidence) and evidence[0].cover >= 0.8
    if says_cannot_answer(result.raw_answer):
        if not strong:
            return _refusal(result, "模型判断资料中没有答案", settings, result.contexts)
        result.notes.append("the model said the passages lack the answer, but the evidence is strong: answered extractively")
        result.answer, result.citations = _extractive(evidence, passages, settings)
        lap("check_ms")
        return result
    checked = check_answer(result.raw_answer, passages, result.rewritten_question)
    kept = [s for s in checked if s.status != "dropped"]
    for s in checked:
        if s.status != "kept":
            result.notes.append(f"{s.status}: {s.text[:40]} ({s.why})")
    if not kept:
        result.notes.append("no sentence of the model's answer was supported: answered extractively")
        result.answer, result.citations = _extractive(evidence, passages, settings)
        lap("check_ms")
        return result
    lines, citations = [], []
    for s in kept:
        text = s.text.rstrip("。；;，, ")
        lines.append(text + "".join(f"[{n}]" for n in s.markers) + "。")
        citations += [_citation(n, passages[n - 1], s.text, quote_for(s.text, passages[n - 1])) for n in s.markers]
    result.answer = "".join(lines)
    result.citations = _merge_citations(citations)
    lap("check_ms")
    return result


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
