"""Steps 4 and 5, phrase and check: the passages packed into the prompt within its token budget, and every sentence
of the model's draft traced to a cited passage (rag/answer/grounding.py) — the code's own answer when nothing holds."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

from rag.answer.decide import (
    Reply,
    citation_for,
    fall_back,
    merge_citations,
)
from rag.answer.grounding import (
    Evidence,
    check_answer,
    coverage,
    question_terms,
    quote_for,
    says_cannot_answer,
)
from rag.answer.plans import (
    Plan,
    Statement,
)
from rag.answer.result import Citation
from rag.language.facts import days_in, normalise_numbers, quantities_in
from rag.language.text import compact
from rag.language.tokens import count_tokens
from rag.models.prompts import render
from rag.search.retrieval import ScoredChunk
from rag.settings import Settings
from rag.understand.query import Query


def pack_passages(passages: list[ScoredChunk], settings: Settings, first: Sequence[ScoredChunk] = (),
                  budget: int = 0) -> list[ScoredChunk]:
    """`first` (the passages holding the evidence), then the most relevant others, while they fit the token budget.

    Prompt reading dominates the wait on a CPU (~95 tokens/s for the 1.5B model), so the budget is the latency knob.
    """
    # keeps order, drops repeats (one passage, or one whole section reached from two of its pieces)
    ordered = list({(ctx.chunk.doc_id, ctx.chunk.start, ctx.chunk.end): ctx for ctx in [*first, *passages]}.values())
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


MAX_COMPARED_DOCS = 3  # documents of a comparison the model is given a passage of each (the budget grows with them)


def each_documents_best(query: Query, passages: Sequence[ScoredChunk]) -> list[ScoredChunk]:
    """For a question over several documents ("北京和浙江的技术市场条例…分别", two laws compared): the best passage of
    each document in play, in the order they were named (else as ranked), at most MAX_COMPARED_DOCS — so that the
    model reads every side of a comparison even when the first passage alone fills the plain budget."""
    if not query.cross:
        return []
    best: dict[str, ScoredChunk] = {}
    for ctx in passages:
        best.setdefault(ctx.chunk.doc_id, ctx)
    order = [d for d in query.docs if d in best] + [d for d in best if d not in query.docs]
    return [best[d] for d in order[:MAX_COMPARED_DOCS]]


def within(ctx: ScoredChunk, passages: Sequence[ScoredChunk]) -> bool:
    """`ctx` is one of `passages` or inside one of them (a whole article holding the piece)."""
    return any(p.chunk.doc_id == ctx.chunk.doc_id and p.chunk.start <= ctx.chunk.start and ctx.chunk.end <= p.chunk.end
               for p in passages)


def passages_for_model(query: Query, plan: Plan, eligible: list[ScoredChunk], settings: Settings,
                       expand: Callable[[list[ScoredChunk]], list[ScoredChunk]] | None = None) -> list[ScoredChunk]:
    """Step 4's reading list: the passages the plan found first (each document's, for a comparison), then the best
    others, within the token budget — `expand` gives whole articles for pieces (`retrieve.whole_sections`); then, past
    the budget, each side of a comparison (RAG_COMPARE_EACH_DOCUMENT) and retrieval's best passage when the plan's
    evidence is another one (RAG_READ_BEST_PASSAGE: the 第七条 the plan quoted filled the budget, the 第十九条 penalty
    retrieval ranked first never reached the model)."""
    first = [e.ctx for e in plan.evidence] + [st.ctx for st in plan.statements if st.ctx is not None]
    budget = settings.context_budget_tokens * (2 if plan.kind in ("cross", "compound") else 1)
    if expand is not None:  # the model reads whole articles, not the pieces the chunker cut them into (once each)
        passages = pack_passages(expand([*first, *eligible]), settings, budget=budget)
    else:
        passages = pack_passages(eligible, settings, first=first, budget=budget)
    if settings.compare_each_document:
        read = {p.chunk.doc_id for p in passages}
        passages += [c for c in each_documents_best(query, eligible) if c.chunk.doc_id not in read]
    if settings.read_best_passage and eligible and not within(eligible[0], passages):
        passages.append(eligible[0])
    return passages


def passages_for_document(card: list[ScoredChunk], plan: Plan, eligible: list[ScoredChunk],
                           settings: Settings) -> list[ScoredChunk]:
    """Step 4's reading list for a question about a document itself: its card (`retrieve.document_card`: opening
    and closing passages), then the passages the plan found and retrieval's best, within twice the token budget."""
    first = [e.ctx for e in plan.evidence] + [st.ctx for st in plan.statements if st.ctx is not None]
    out = list(card)
    used = sum(count_tokens(c.chunk.text) + 20 for c in out)
    for ctx in [*first, *eligible[:1]]:
        cost = count_tokens(ctx.chunk.text) + 20
        if within(ctx, out) or used + cost > 2 * settings.context_budget_tokens:
            continue
        out.append(ctx)
        used += cost
    return out


def build_prompt(question: str, passages: list[ScoredChunk], settings: Settings, system: str = "system") -> list[dict]:
    """System prompt (fixed per kind, so llama.cpp reuses its KV cache) + numbered passages and the question.
    `system` names the prompt file: `system` when the code found the evidence, `system_unsure` when it hands a
    question it is unsure of to the model (find the clause a colloquial question means; "not stated" only when the
    passages do not touch the matter)."""
    numbered = [{"number": i + 1, "title": p.chunk.title, "section": p.chunk.section, "text": p.chunk.text}
                for i, p in enumerate(passages)]
    return [
        {"role": "system", "content": render(settings.prompts_dir, system)},
        {"role": "user", "content": render(settings.prompts_dir, "answer", passages=numbered, question=question)},
    ]


def checked(raw: str, evidence: list[Evidence], passages: list[ScoredChunk], settings: Settings,
             lap: Callable[..., None], plan: Plan, retrieved: list[ScoredChunk], query: Query) -> Reply:
    """Step 5, check: keep only the model's supported sentences, cited as [n]; the code's own answer when nothing
    holds."""
    def code_answer(note: str, **record) -> Reply:
        reply = fall_back(plan, settings, retrieved)
        lap("check_ms", "check", **record)
        return dataclasses.replace(reply, notes=notes + [note])

    notes: list[str] = []
    if says_cannot_answer(raw):
        # Whether the documents answer was decided by code before the model ran (the plan passed the evidence and
        # figure gates); a small model's "no" is a phrasing failure, not evidence.
        return code_answer("the model said the passages lack the answer; the checked evidence says otherwise: "
                         "answered extractively", kept=0, fell_back="the model said not stated")
    checked = check_answer(raw, passages, query.original)
    kept = [s for s in checked if s.status != "dropped"]
    for s in checked:
        if s.status == "recited":
            notes.append(f"recited: {s.text[:40]} ({s.why})")
        elif s.status == "dropped":  # unchecked text is not repeated, not even in a note
            notes.append(f"dropped a sentence ({s.why})")
    if kept and not plan.refused and query.facet == "figure" and not _states_the_figure(kept, evidence, query.evidence_text):
        return code_answer("the model's answer leaves out the figure the evidence states: answered extractively",
                         kept=len(kept), fell_back="the figure left out")
    if not kept:
        return code_answer("no sentence of the model's answer was supported: answered extractively", kept=0,
                         fell_back="nothing supported")
    lines, citations = [], []
    for s in kept:
        text = s.text.rstrip("。；;，, ")
        lines.append(text + "".join(f"[{n}]" for n in s.markers) + "。")
        citations += [citation_for(n, passages[n - 1], s.text, quote_for(s.text, passages[n - 1])) for n in s.markers]
    read = list(passages)
    added = _exact_facts_left_out(plan, "".join(lines), read, lines, citations)
    if added:
        notes.append(f"added {added} fact(s) of the document the model's answer left out")
    lap("check_ms", "check", kept=len(kept), dropped=sum(s.status == "dropped" for s in checked),
        recited=sum(s.status == "recited" for s in checked), added=added)
    return Reply("".join(lines), merge_citations(citations), notes=notes,
                 contexts=read if len(read) > len(passages) else None)


def _exact_facts_left_out(plan: Plan, answer: str, read: list[ScoredChunk], lines: list[str],
                          citations: list[Citation]) -> int:
    """A compound question's parts the code answers exactly — a document's own facts, read from where its text states
    them ("是以第几号令发布的？哪天通过、何时起施行？") — and each side of a comparison the code found are not lost to
    the model's phrasing: a fact whose value the checked answer does not hold is added, cited (dev_h h058, h062: the
    model gave two of three facts; h067, h076: one side's figures); a side without figures is added when the answer
    cites nothing of its document (dev_g g003). `read` gains the fact's passage when the model did not read it.
    Returns how many were added."""
    if plan.kind not in ("compound", "cross"):
        return 0
    said = compact(normalise_numbers(answer))
    cited = {c.doc_id for c in citations}
    added = 0
    for statement in plan.statements:
        if not ((statement.exact or statement.side) and statement.ctx is not None and statement.quote):
            continue
        if _holds(said, statement) if statement.exact else statement.ctx.chunk.doc_id in cited:
            continue  # a side without figures is given when the answer cites its document (dev_g g003: one side)
        number = next((i + 1 for i, p in enumerate(read) if within(statement.ctx, [p])), 0)
        if not number:
            read.append(statement.ctx)
            number = len(read)
        lines.append(statement.text.rstrip("。；;，, ") + f"[{number}]。")
        citations.append(citation_for(number, read[number - 1], statement.text, statement.quote))
        said += compact(normalise_numbers(statement.text))
        added += 1
    return added


def _holds(said: str, statement: Statement) -> bool:
    """The answer (compact, numerals as digits) gives the statement's fact: each date it states, else one of its
    figures (a side of a comparison), else its quoted value."""
    dates = days_in(statement.quote or statement.text)
    if dates:
        return all(d in said for d in dates)
    figures = quantities_in(statement.text)
    if figures:
        # whole figures: 5亿 is not said by "15亿元" (seen in the browser: 杭州's side was taken as given)
        return any(re.search(rf"(?<![\d.]){re.escape(compact(normalise_numbers(q)))}", said) for q in figures)
    return compact(normalise_numbers(statement.quote)) in said


def last_sentence_end(text: str) -> int:
    """Offset just past the last sentence end (。！？；or a line break) in a draft; 0 when none yet."""
    ends = [i + 1 for i, ch in enumerate(text) if ch in "。！？!?；;\n"]
    return ends[-1] if ends else 0


def checked_sentences(text: str, passages: list[ScoredChunk], question: str) -> list[str]:
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
