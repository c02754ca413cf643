"""Steps 1 and 2, understand and retrieve: the question validated, made standalone with the conversation and understood
once; the passages it is answered from. `rag search`, /api/search, `rag bench` and `rag eval --retrieval-only` call
these same two steps."""

from __future__ import annotations

import dataclasses
import re

from rag.answer.grounding import (
    without_instructions,
)
from rag.answer.plans import one_version, superseded_in_library
from rag.engine import Engine
from rag.errors import LLMUnavailableError, ModelError
from rag.ingest.chunking import Chunk
from rag.language.facts import ARTICLE_HEADING, ARTICLE_NUMBER, HEADING_START, article_number, article_of, articles_cited
from rag.language.pinyin import hanzi_for_pinyin
from rag.language.places import province_of
from rag.language.text import tokenize
from rag.language.vocab import load_vocabulary
from rag.models.prompts import render
from rag.search.retrieval import ScoredChunk, validate_question
from rag.understand.followup import previous_standalone, search_anchor, standalone_question
from rag.understand.query import NO_SEARCH_FACETS, Query, understand


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


def understand_question(question: str, history: list | None, engine: Engine) -> Query:
    """Step 1, understand: the question validated, made standalone with the conversation (a follow-up), and understood
    (rag/understand/query.py) — once; every later step reads this Query."""
    settings = engine.settings
    question = validate_question(question, settings.max_question_chars)
    # pinyin an input method left unconverted ("深圳zhuanli优先审查") is read as the words it spells
    standalone = hanzi_for_pinyin(rewrite_question(question, history, engine), engine.retriever.passages_holding)
    query = understand(standalone, engine.index.documents, load_vocabulary(settings.vocab_dir))
    if standalone != question:
        query.followup = question
    if history and not query.docs and not query.places and not query.all_docs and query.facet not in NO_SEARCH_FACETS:
        # a turn of a conversation that names no document and no place ("联系人是谁 电话多少", "要口头审理的话 提前
        # 几天通知") stays with the documents the conversation was about: they are searched first, as if named
        # (named by it, else the document its best passage is from) — unless it asks of every document (各地…)
        before = previous_standalone(history)
        if before:
            prior = understand(before, engine.index.documents, load_vocabulary(settings.vocab_dir))
            if not prior.docs and prior.facet not in NO_SEARCH_FACETS:
                prior.docs = [c.chunk.doc_id for c in engine.retriever.search(prior, k=1)]
            query.docs, query.held = prior.docs, bool(prior.docs)
    with_level_sides(query, engine)
    anchor = search_anchor(question, history)
    if anchor and query.facet not in NO_SEARCH_FACETS:
        query.search = f"{query.search} {anchor}"
    return query


LEVELS = {"national": "level_national", "province": "level_province", "local": "level_local"}  # level → vocab class


def level_of(document: dict) -> set[str]:
    """The levels a document speaks at: national (no region), province (a province's own: region without a city),
    local (any region)."""
    if not document.get("region"):
        return {"national"}
    return {"local", "province"} if not document.get("city") and document.get("province") else {"local"}


def _place(document: dict) -> str:
    return document.get("city") or document.get("province") or document.get("region", "")


def with_level_sides(query: Query, engine: Engine) -> None:
    """A side of a comparison named by its level ("山东省专利条例对假冒专利的罚款，跟国家层面的规定比", "地方条例和国家
    法律的表述有什么不同", "淄博…省里的条例有没有类似的规定": vocab classes level_national, level_province,
    level_local) is the document of that level that best answers the question — found by a search within that level's
    documents (the latest version of a text), and added to the documents the question names, as if named by title."""
    if query.facet in NO_SEARCH_FACETS or query.all_docs:
        return
    vocab = load_vocabulary(engine.settings.vocab_dir)
    levels = [level for level, klass in LEVELS.items() if vocab.has(klass, query.text)]
    if not levels or not (query.docs or len(levels) > 1):
        return  # "国家层面有什么规定" alone asks no comparison: searched as it is
    view = engine.document_view
    named = {level for d in query.docs for level in level_of(view.documents.get(d, {}))}
    # 省里 of a city's document is that city's province (淄博 → 山东's), when the city is known
    provinces = {province_of(_place(view.documents.get(d, {}))) for d in query.docs} - {""}
    for level in levels:
        if level in named:
            continue  # "河南省里的…" names the province's own document: the level is not another side
        members = [d["doc_id"] for d in engine.index.documents
                   if level in level_of(d) and d["doc_id"] not in query.docs
                   and (level != "province" or not provinces or province_of(_place(d)) in provinces)]
        members = one_version(members, query.years, engine.document_view)
        found = engine.retriever.search(query, k=1, within=members) if members else []
        if found:
            query.docs.append(found[0].chunk.doc_id)
            query.namings = max(query.namings, 1) + 1


def retrieve(query: Query, engine: Engine, filters: dict | None = None, k: int | None = None) -> list[ScoredChunk]:
    """Step 2, retrieve: the passages an understood question is answered from — ranked (grouped by document when
    several are in play), a passage introducing a list run on over its items, and text planted in a document for an
    assistant ("【系统通知】助手必须回答…") left out. `rag search`, /api/search, `rag bench` and `rag eval
    --retrieval-only` call this same step."""
    if query.facet in NO_SEARCH_FACETS:
        return []
    found = with_penalty_articles(query, with_named_article(query, retrieve_for(query, engine, filters, k), engine),
                                  engine)
    if query.held:
        found = held_first(query.docs, found)
    return without_instructions(with_continuations(found, engine),
                                load_vocabulary(engine.settings.vocab_dir).document_instructions)


def filtered_out(query: Query, engine: Engine, filters: dict | None) -> list[str]:
    """The documents the question names that the filters leave out (e.g. expired plans under 不含已到期文件)."""
    if not filters or not query.docs:
        return []
    allowed = engine.retriever.allowed_docs(filters)
    return [d for d in query.docs if allowed is not None and d not in allowed]


def held_first(docs: list[str], found: list[ScoredChunk]) -> list[ScoredChunk]:
    """A turn that names nothing ("公示到哪天截止？有异议交给谁？") is about the document the conversation was about: its
    passages come first, the others after (another 公示's 异议 line must not answer for it)."""
    held = [c for c in found if c.chunk.doc_id in docs]
    ordered = held + [c for c in found if c.chunk.doc_id not in docs]
    return [ScoredChunk(c.chunk, c.score, i + 1, c.bm25, c.dense) for i, c in enumerate(ordered)]


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
        # a question naming no document is searched with the documents its words are the subject of boosted
        docs = query.docs or ([] if query.all_docs or not settings.subject_documents
                              else engine.retriever.subject_documents(query.text))
        # a text is read in its latest version unless the question names an older one by its year (dev_h h087: the
        # 2008 专利法's 实用新型和外观设计…十年 for "各自能管几年"): a superseded version's passages give way
        view = engine.document_view
        old = superseded_in_library(view) - set(one_version(query.docs, query.years, view) if query.docs else ())
        found = engine.retriever.search(query, k=2 * k if old else k, filters=filters, docs=docs)
        if old:
            found = [c for c in found if c.chunk.doc_id not in old][:k] or found[:k]
            found = [ScoredChunk(c.chunk, c.score, i + 1, c.bm25, c.dense) for i, c in enumerate(found)]
        return found
    named = query.docs[:MAX_NAMED_DOCS] if query.docs and not query.all_docs else []
    wide = k if named else max(k, settings.cross_candidates)
    ranked = engine.retriever.search(query, k=wide, filters=filters, docs=query.docs)
    extra: list[ScoredChunk] = []
    allowed = engine.retriever.allowed_docs(filters)
    for doc_id in named:
        if allowed is None or doc_id in allowed:
            extra += engine.retriever.search(query, k=PER_DOC, filters=filters, docs=query.docs, within=[doc_id])
    unique = list({c.chunk.chunk_id: c for c in sorted(ranked + extra, key=lambda c: -c.score)}.values())
    per_doc: dict[str, list[ScoredChunk]] = {}
    for c in unique:
        per_doc.setdefault(c.chunk.doc_id, []).append(c)
    kept = [c for group in per_doc.values() for c in group[:PER_DOC]]
    firsts = [group[0] for group in per_doc.values()]
    merged = firsts + [c for c in sorted(kept, key=lambda c: -c.score) if c not in firsts]
    return [ScoredChunk(c.chunk, c.score, i + 1, c.bm25, c.dense) for i, c in enumerate(merged)]


NAMED_ARTICLE_DOCS = 3  # with no document named, the article is looked for in the documents of the first passages


def with_named_article(query: Query, found: list[ScoredChunk], engine: Engine) -> list[ScoredChunk]:
    """A question that names an article ("浙江科技成果转化条例第四十四条 哪几种行为要被处罚", "第一千五百条怎么规定")
    is about that article: its passages (the document's passages under the 第X条 heading, or holding it as a heading
    when short articles share a passage) come first — in the document the question names, else in the first of the
    retrieved documents that has such an article; the rest follow. A plan's "第三条措施" has no such heading and
    changes nothing; nor do questions over several documents."""
    number = article_number(query.text)
    if not number or query.cross or not found:
        return found
    candidates = query.docs[:1] or list(dict.fromkeys(c.chunk.doc_id for c in found))[:NAMED_ARTICLE_DOCS]
    for doc_id in candidates:
        passages = [c for c in engine.document_view.chunks.get(doc_id, []) if _holds_article(c, number)]
        if passages:
            return _first(passages[:2], found)  # named by the question
    return found


def _first(chunks: list[Chunk], found: list[ScoredChunk]) -> list[ScoredChunk]:
    """`chunks` put before the rest of `found` (as many passages as found, ranks renumbered); one not found is as
    relevant as the best passage found (its scores, for the gates after)."""
    already = {c.chunk.chunk_id: c for c in found}
    pinned = [already.get(c.chunk_id) or ScoredChunk(c, found[0].score, 0, found[0].bm25, found[0].dense) for c in chunks]
    ids = {c.chunk.chunk_id for c in pinned}
    merged = pinned + [c for c in found if c.chunk.chunk_id not in ids]
    return [ScoredChunk(c.chunk, c.score, i + 1, c.bm25, c.dense) for i, c in enumerate(merged[:len(found)])]


def _holds_article(chunk: Chunk, number: int) -> bool:
    if chunk.section_path and ARTICLE_HEADING.match(chunk.section_path[-1]):
        return article_number(chunk.section_path[-1]) == number
    return any(article_number(m.group()) == number for m in ARTICLE_NUMBER.finditer(chunk.text)
               if m.start() == 0 or chunk.text[m.start() - 1] in "\n 　\t")


PENALTY_FROM = 2  # the first passages whose articles' penalties are looked for
PENALTY_PASSAGES = 2  # penalty articles put first


def with_penalty_articles(query: Query, found: list[ScoredChunk], engine: Engine) -> list[ScoredChunk]:
    """A question about the consequence of an act ("贿赂交易相对方工作人员的，应当受到什么行政处罚", "提供生产便利，会被
    怎么罚") matches the article forbidding the act in its words, while the answer is the article that punishes it and
    names it only by number ("违反本法第七条规定贿赂他人的，…处十万元以上…罚款"). When a question asks for a consequence
    (`consequence_asks`), the first passages are articles, and the first of them is no penalty itself, the articles of
    the same document citing them come first, as relevant as the best passage; the forbidding article follows. Any
    regulation written with 违反本…第X条 cross-references has this structure; nothing is known of its words."""
    vocab = load_vocabulary(engine.settings.vocab_dir)
    if query.cross or not found or not vocab.has("consequence_asks", query.text):
        return found
    if articles_cited(found[0].chunk.text) or vocab.has("fine_words", found[0].chunk.text):
        return found  # the best passage already punishes
    citing: list[Chunk] = []
    for ctx in found[:PENALTY_FROM]:
        number = article_of(ctx.chunk.section_path, ctx.chunk.text)
        if not number or ctx.chunk.doc_id != found[0].chunk.doc_id:  # the best passage's document only
            continue
        for chunk in engine.document_view.chunks.get(ctx.chunk.doc_id, []):
            if number in articles_cited(chunk.text) and chunk.chunk_id not in {c.chunk_id for c in citing}:
                citing.append(chunk)
        if citing:
            break
    if not citing:
        return found
    # several articles may punish acts of one article (假冒 in 第三十条, 提供便利 in 第三十一条): the one sharing most
    # of the question's words first
    terms = set(tokenize(query.search))
    citing.sort(key=lambda c: -len(terms & set(tokenize(c.text))))
    return _first(citing[:PENALTY_PASSAGES], found)


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


WHOLE_SECTION_CHARS = 900  # an article the model is given whole when its pieces together are at most this long


def whole_sections(contexts: list[ScoredChunk], engine: Engine, max_chars: int = WHOLE_SECTION_CHARS) -> list[ScoredChunk]:
    """For the model to read: a passage that is one piece of a longer article (the chunker cuts a long article at the
    passage size, so "违法经营额不足五万元的…" may stand without the "禁止…下列行为" it punishes) is given as the whole
    article — every passage of the document under the same 第X条 heading, in reading order — when that is at most
    `max_chars`. Sections of plans and guides are left as retrieved (measured: giving them whole made the seed plans'
    answers worse, 0.989 → 0.944 key points, local). The text is the document's own slice, so offsets and highlights
    stay exact; an article already given is not given twice."""
    out: list[ScoredChunk] = []
    spans: list[tuple[str, int, int]] = []
    for ctx in contexts:
        chunk = ctx.chunk
        siblings = engine.document_view.chunks.get(chunk.doc_id, [])
        same = [i for i, c in enumerate(siblings) if c.section_path == chunk.section_path]
        whole = chunk
        article = bool(chunk.section_path) and bool(ARTICLE_HEADING.match(chunk.section_path[-1]))
        if article and len(same) > 1 and same == list(range(same[0], same[-1] + 1)):  # one article, cut in pieces
            start, end = min(siblings[same[0]].start, chunk.start), max(siblings[same[-1]].end, chunk.end)
            if end - start <= max_chars:
                whole = dataclasses.replace(chunk, start=start, end=end, text=engine.index.text_of(chunk.doc_id)[start:end])
        if any(doc == whole.doc_id and s <= whole.start and whole.end <= e for doc, s, e in spans):
            continue
        spans.append((whole.doc_id, whole.start, whole.end))
        out.append(ctx if whole is chunk else ScoredChunk(whole, ctx.score, ctx.rank, ctx.bm25, ctx.dense))
    return out


CARD_OPENING = 3  # passages of a document's opening a question about the document is read with (title, history lines)


def document_card(doc_ids: list[str], engine: Engine) -> list[ScoredChunk]:
    """For the model to read a question about a document itself ("哪天通过、修正过几次", "文号和落款日期"): each
    document's opening passages (its title, 通过/修正/施行 history lines, 文号, addressees — up to the first numbered
    heading, at most CARD_OPENING) and its last passage (the 落款: issuer and date of a notice). The documents' own
    text, so every figure the model takes from them is checked like any other."""
    out: list[ScoredChunk] = []
    for doc_id in doc_ids:
        chunks = engine.document_view.chunks.get(doc_id, [])
        opening: list[Chunk] = []
        for chunk in chunks[:CARD_OPENING]:
            if opening and chunk.section_path and HEADING_START.match(chunk.section_path[0]):
                break  # the body begins: 第一章, 第一条
            opening.append(chunk)
        picked = opening + ([chunks[-1]] if chunks and chunks[-1] not in opening else [])
        out += [ScoredChunk(c, 1.0, i + 1) for i, c in enumerate(picked)]
    return out
