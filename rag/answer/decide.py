"""Step 3, decide: the answer plan for the question's facet (rag/answer/plans.py) — answered by code, handed to the
model, or refused — and the code's own replies (`Reply`: the plan rendered with citations, refusals, the scope
message), from which the Answer is assembled once (`answered`)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from rag.answer.grounding import (
    Evidence,
    best_evidence,
    coverage,
    question_terms,
    whole_sentence,
)
from rag.answer.plans import (
    Plan,
    Statement,
    is_document_facet,
    names_a_section,
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
from rag.ingest.docfacts import iso_date, period_text, validity
from rag.language.facts import requested_kind, split_sentences, states
from rag.language.text import normalise
from rag.language.vocab import Vocabulary, load_vocabulary
from rag.models.prompts import render
from rag.search.retrieval import ScoredChunk
from rag.settings import Settings
from rag.understand.query import (
    DOCUMENT_FACT_MAX_CONTENT,
    TOOL_TASKS,
    Query,
    content_besides_document,
    expected_units,
    sub_questions,
    title_forms,
)
from rag.understand.suggest import example_questions

MODEL_READS = ("evidence", "cross", "compound")  # plans a configured model answers from the passages


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
    contexts = base.contexts if reply.contexts is None else reply.contexts
    return dataclasses.replace(base, answer=reply.text, citations=list(reply.citations), refused=reply.refused,
                               refusal_reason=reply.reason, contexts=contexts, notes=notes, **fields)


def refusal(reason: str, settings: Settings, nearest: list[ScoredChunk]) -> Reply:
    seen, sections = set(), []
    for ctx in nearest:
        key = (ctx.chunk.title, ctx.chunk.section)
        if key not in seen:
            seen.add(key)
            sections.append({"title": ctx.chunk.title, "section": ctx.chunk.section})
    return refused(render(settings.prompts_dir, "refusal", reason=reason, nearest=sections[:3]), reason)


def refused(text: str, reason: str) -> Reply:
    """A refusal: this text, this reason, nothing cited."""
    return Reply(text, refused=True, reason=reason)


def citation_for(number: int, ctx: ScoredChunk, supports: str, quote: str) -> Citation:
    c = ctx.chunk
    return Citation(number, c.doc_id, c.title, c.section, c.text, supports, quote, c.chunk_id, c.section_short, c.start, c.end)


def merge_citations(citations: list[Citation]) -> list[Citation]:
    merged: dict[int, Citation] = {}
    for c in citations:
        if c.marker in merged:
            merged[c.marker].supports += " " + c.supports
        else:
            merged[c.marker] = c
    return [merged[k] for k in sorted(merged)]


def excluded_message(excluded: list[str], engine: Engine) -> Reply:
    from rag.store.library import today_of

    today = today_of(engine.settings)
    parts = []
    for doc_id in excluded:
        doc = engine.documents_by_id.get(doc_id, {})
        why = (f"期限为{period_text(doc['period'])}，已到期" if doc.get("period")
               and validity(doc["period"], today) == "已到期" else "不在所选检索范围内")
        parts.append(f"《{doc.get('title', doc_id)}》（{why}）")
    return refused(f"所问的{'、'.join(parts)}已被当前的检索范围排除，因此没有检索它。"
                    "如需查看，请取消勾选“不含已到期文件”或把检索范围改为“全部文档”后再问。", "所问文件被筛选条件排除")


def about_the_document(query: Query, engine: Engine) -> bool:
    """A question about a document itself: a document facet (文号, 发布单位, 施行日期), or a question naming a document
    that asks about one of its events (通过, 修正, 会议) with no content words besides ("…是哪次会议通过的，修正过几次")."""
    if is_document_facet(query):
        return True
    vocab = load_vocabulary(engine.settings.vocab_dir)
    return (bool(query.docs) and vocab.has("document_events", query.text)
            and sum(map(len, content_besides_document(query.text, engine.index.documents, vocab))) < DOCUMENT_FACT_MAX_CONTENT)


def make_plan(query: Query, passages: list[ScoredChunk], engine: Engine) -> Plan:
    """The answer plan for the question's facet (see rag/answer/plans.py); a compound question gets one plan per part."""
    parts = sub_questions(query, engine.index.documents, load_vocabulary(engine.settings.vocab_dir))
    if len(parts) > 1:
        plans = [_plan_one(part, passages, engine) for part in parts]
        if all(p.refused for p in plans):
            return plans[0]
        # a part the documents do not answer is said to be that part ("关于“最多补多久”：没有足够相关的内容"), not a
        # bare reason between two cited sentences
        statements = [s for part, p in zip(parts, plans, strict=True)
                      for s in (p.statements if not p.refused else [Statement(f"关于“{_asked(part)}”：{p.reason}")])]
        statements = list({s.text: s for s in reversed(statements)}.values())[::-1]  # two parts, one fact: said once
        return Plan("compound", statements, parts=[p.kind for p in plans])
    return _plan_one(query, passages, engine)


def _asked(part: Query) -> str:
    """A part of a compound question as its reader typed it, without the closing mark."""
    return part.original.strip().rstrip("?？。!！ ")


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
    if query.facet in ("list", "general") and not query.cross and vocab.has("list_asked", vocab.without("list_not_asked", query.text)):
        pointer = _list_held_elsewhere(query, passages, settings.evidence_min_cover, vocab)
        if pointer is not None:
            return pointer
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
            holding: dict[tuple, Evidence] = {}  # one whole sentence reached from two clauses: the better one kept
            for e in candidates:
                if all(t in normalise(e.sentence) for t in added):
                    holding.setdefault((e.ctx.chunk.chunk_id, e.start, e.end), e)
            if holding:
                return plan_evidence(query, list(holding.values())[:2], settings.evidence_min_cover,
                                     settings.figure_min_cover)
    evidence = best_evidence(query.evidence_text, passages)
    return plan_evidence(query, evidence, settings.evidence_min_cover, settings.figure_min_cover)


# the best sentences of a list question looked at for a pointer as close to the question as any (the title line and
# the opening sentence often tie with it)
POINTER_AMONG = 5
# share of the words a pointer lacks that its document says elsewhere for the question to be about that instead
# (dev: the 异议 questions of two 公示; every pointer question of dev, dev_h and held-out a/b/c stays below it)
ASKED_ELSEWHERE = 0.5


def _list_held_elsewhere(query: Query, passages: list[ScoredChunk], min_cover: float, vocab: Vocabulary) -> Plan | None:
    """A question asking for the items of a list ("名单里有哪些", "具体项目有哪些") whose best sentence (or one as close
    to the question) only points to where the list is published ("…为第三批…规范化市场(见附件)", "现将拟推荐结果予以
    公示": vocab class `list_elsewhere`) — the items are not in the text: a near miss the passages settle (a model reads
    the sentences around the pointer as the list). A pointer that introduces its items ("名单如下：") is not one."""
    # one document's list asked ("…名单都有哪些地方入选" is not "which places' documents"): its best sentences, not
    # each document's best one
    asked = vocab.without("cross_document", query.evidence_text)
    evidence = best_evidence(asked, passages, limit=POINTER_AMONG)
    best_cover = max((e.cover for e in evidence), default=0.0)
    pointers = [whole for e in evidence if e.cover >= max(min_cover, best_cover)
                and vocab.has("list_elsewhere", (whole := whole_sentence(e)).sentence)
                and not whole.sentence.strip().endswith(("：", ":"))]
    if not pointers:
        return None
    best = pointers[0]
    sentence = best.sentence.strip()
    # the words the pointer lacks ("…名单有异议，可以通过哪些方式反映": 异议, 方式) said elsewhere in its document's
    # passages: the question asks about that, not for the list
    lacking = [t for t in question_terms(asked) if t not in normalise(sentence)]
    elsewhere = " ".join(c.chunk.text.replace(sentence, " ") for c in passages if c.chunk.doc_id == best.ctx.chunk.doc_id)
    if lacking and coverage(lacking, elsewhere) >= ASKED_ELSEWHERE:
        return None
    return Plan("near_miss", [Statement(f"文件正文没有列出所问的名单或明细，相关表述是：{sentence.rstrip('；;，,。')}",
                                        best.ctx, best.quote)],
                refused=True, reason="文件正文没有列出所问的名单（见附件或另行公布）", settled=True)


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
    if not by_passages.refused:  # a history line read for its date: as exact as the facts (`Statement.exact`)
        return dataclasses.replace(by_passages, statements=[dataclasses.replace(s, exact=True)
                                                            for s in by_passages.statements])
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


def render_plan(plan: Plan, retrieved: list[ScoredChunk]) -> Reply:
    """The plan as text, each supported line cited [n]; contexts = cited passages first, then the rest retrieved."""
    cited = plan.contexts
    numbers = {c.chunk.chunk_id: i + 1 for i, c in enumerate(cited)}
    lines, citations = [], []
    for statement in plan.statements:
        marker = ""
        if statement.ctx is not None:
            number = numbers[statement.ctx.chunk.chunk_id]
            marker = f"[{number}]"
            citations.append(citation_for(number, statement.ctx, statement.text, statement.quote or statement.text))
        if statement.text:
            lines.append(statement.text.rstrip("。；;") + marker)
        elif lines and marker and marker not in lines[-1]:
            lines[-1] += marker
    header = lines and lines[0].endswith("：")
    text = lines[0] + "\n" + "；\n".join(lines[1:]) + "。" if header else "；".join(lines) + "。"
    rest = [c for c in retrieved if c.chunk.chunk_id not in numbers]
    return Reply(text, merge_citations(citations),
                 contexts=[ScoredChunk(c.chunk, c.score, i + 1, c.bm25, c.dense) for i, c in enumerate(cited + rest)])


def over_budget_reply(settings: Settings) -> Reply:
    return refused(f"这个问题的检索用时超过了单个问题的上限（{settings.answer_budget_s:g} 秒），没有得到可靠的回答。"
                    "请缩小检索范围（选择某个文档或地区）或把问题问得具体一些后再试。", "超出单个问题的时间上限")


def fall_back(plan: Plan, settings: Settings, retrieved: list[ScoredChunk]) -> Reply:
    """When the model's answer cannot be used: the code's plan — its answer, or (a plan that was unsure) its refusal."""
    return refused_plan(plan, settings, retrieved) if plan.refused else render_plan(plan, retrieved)


def refused_plan(plan: Plan, settings: Settings, contexts: list[ScoredChunk]) -> Reply:
    """A refusal; a near miss also says what the documents do state, cited."""
    declined = refusal(plan.reason, settings, contexts)
    if not plan.statements:
        return declined
    said = render_plan(plan, contexts)
    return dataclasses.replace(declined, text=said.text + "\n" + declined.text, citations=said.citations,
                               contexts=said.contexts)


def scope_message(engine: Engine, facet: str, scope_class: str) -> Reply:
    """Empty input, a request outside the documents, or another language: what the assistant does, what the library
    holds, with examples."""
    what = {"creative": "写作", "translate": "翻译", "code": "编程", "weather": "天气", "finance": "行情", "travel": "出行", "identity": "闲聊",
            "recommend": "推荐", "chat": "闲聊"}.get(scope_class, "其他")
    documents = engine.index.documents
    text = render(engine.settings.prompts_dir, "scope", kind=facet, what=what, tool=scope_class in TOOL_TASKS,
                  holds=library_summary(documents, load_vocabulary(engine.settings.vocab_dir).document_kinds),
                  examples=example_questions(documents, engine.settings.vocab_dir, 3))
    reason = {"empty": "问题没有内容", "foreign": "请用中文提问", "chat": "寒暄"}.get(facet, "问题不在已收录文件范围内")
    return refused(text, reason)


def library_summary(documents: list[dict], kinds: tuple[str, ...]) -> str:
    """What the library holds, by kind of document ("已收录 35 份文件：条例 14 份、法 6 份、通知 5 份…"), not by title."""
    counts: dict[str, int] = {}
    for doc in documents:
        title = re.sub(r"\s*[（(][^（）()]*[）)]\s*$", "", doc.get("title", ""))  # "方案(2020-2023年)" is a 方案
        kind = max((k for k in kinds if title.endswith(k)), key=len, default="其他")
        counts[kind] = counts.get(kind, 0) + 1
    parts = "、".join(f"{kind} {n} 份" for kind, n in sorted(counts.items(), key=lambda kv: -kv[1])[:6])
    return f"已收录 {len(documents)} 份文件（{parts}）"
