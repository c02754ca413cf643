"""Deciding what the passages support, exactly, in code.

- number normalisation (十五亿 → 15亿, 百分之三十 → 30%, full-width digits) so figures compare;
- which passages may answer a question (the places and years it names must match);
- whether the passages state the kind of fact asked for (a quantity, a date) at all;
- citation checking of a generated answer: markers parsed however loosely the model wrote them,
  every figure traced to a cited passage, sentences re-cited or dropped;
- the extractive answer: the best-supported sentences of the top passages, each cited.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rag.language.facts import (
    ARTICLE_HEADING,
    ITEM,
    article_of,
    is_cross_document,
    normalise_numbers,
    numbers_in,
    ordinal_phrases,
    ordinals,
    provision_text,
    provisions_cited,
    quantities_in,
    requested_kind,
    split_sentences,
    stands_alone,
    states,
    with_passage_bounds,
    wrapped_breaks,
)
from rag.language.places import places_in
from rag.language.text import compact, normalise, tokenize, years_in
from rag.language.vocab import load_vocabulary
from rag.search.retrieval import ScoredChunk

if TYPE_CHECKING:
    from rag.understand.query import Query

_BARE_HEADING = re.compile(r"^[一二三四五六七八九十]{1,3}、[^。；;]{0,16}$")
_QUOTES = re.compile(r"[“”\"'‘’《》「」『』]")
_SENTENCE = re.compile(r"[^。！？!?；;\n]+[。！？!?；;]*")

_MARKER_PATTERNS = [
    re.compile(r"\[\s*(\d{1,2})\s*\]"),
    re.compile(r"【\s*(\d{1,2})\s*】"),
    re.compile(r"(?:资料|文件|段落|来源|参考|材料|passage)\s*[\[【(（]?\s*(\d{1,2})\s*[\]】)）]?", re.IGNORECASE),
]
# Bracketed source notes the model invents around markers: "[来源:资料[2]第4段]", "(见资料1)".
_SOURCE_NOTE = re.compile(r"[\[【(（][^\[\]【】()（）]{0,12}(?:资料|文件|来源|段落|参考)[^\]】)）]{0,16}[\]】)）]?")

def question_terms(question: str) -> list[str]:
    """Content words of the question, without places (checked separately), years, and the words that only say
    what kind of answer is wanted (多少, 目标, 分别, 吗: vocab/facets.tsv figure and yes/no cues; 有何差异, 对比一下:
    vocab class `comparison`)."""
    places = set(places_in(question))
    question = re.sub(r"20\d\d\s*年?", " ", question)
    for cue in load_vocabulary().answer_kind_cues:
        question = question.replace(cue, " ")
    question = load_vocabulary().without("comparison", question)  # 有何差异, 对比一下: no content
    terms = []
    not_content = load_vocabulary().of("not_content")
    codes = {word.lower() for word in re.findall(r"[A-Za-z]+", question) if not word.islower()}  # ZC, CNIPA
    for token in tokenize(question):
        if token in places or any(p in token for p in places) or re.fullmatch(r"\d+|20\d\d年?", token):
            continue
        if token in not_content or (re.fullmatch(r"[a-z]+", token) and token not in codes):
            # an English word the glossary (vocab/synonyms.tsv) did not turn into the documents' term ("怎么define的",
            # "from which date起算") can match no Chinese passage; acronyms and codes (ZC, CNIPA) are upper case
            continue
        if token not in terms:
            terms.append(token)
    # cut_for_search also yields the parts of long words (知识产权 → 知识, 产权): counting them again would let one
    # long word outweigh the rest of the question, so only the longest words count.
    return [t for t in terms if not any(t != other and t in other for other in terms)]


def coverage(terms: list[str], text: str) -> float:
    """Share of `terms` found in `text` (normalised); longer terms weigh more."""
    if not terms:
        return 1.0
    # quotation marks inside a term ("“蓝天”专项整治") do not stop it from matching 蓝天专项整治
    haystack = _QUOTES.sub("", normalise(text))
    total = sum(len(t) for t in terms)
    return sum(len(t) * _share_in(t, haystack) for t in terms) / total


def _share_in(term: str, haystack: str) -> float:
    """1 for a term the text holds; for a longer word it does not (答辩期 in a text saying 答辩书, 登记簿副本 beside
    副本), half the share of its character pairs the text holds; 0 for a two-character word it does not hold.
    (Measured, extractive: full credit for the pairs gained dev_h +0.018 but answered two near misses on dev —
    申请费 credited by 申请, 注册资本 by 注册; half credit keeps every refusal and gains on the held-out read sets.)"""
    if term in haystack or any(same in haystack for same in _equivalents().get(term, ())):
        return 1.0
    if len(term) < 3:
        return 0.0
    pairs = [term[i:i + 2] for i in range(len(term) - 1)]
    return 0.5 * sum(1 for p in pairs if p in haystack) / len(pairs)


def _equivalents() -> dict[str, tuple[str, ...]]:
    """Terms the texts use for one thing (vocab class `equivalent`, "国家知识产权局|国务院专利行政部门"): each counts as
    held where the text holds another. Kept beside the (frozen) vocabulary."""
    vocab = load_vocabulary()
    found = vocab.__dict__.get("_equivalents")
    if found is None:
        found = {}
        for group in vocab.of("equivalent"):
            names = [normalise(n) for n in group.split("|") if n]
            for name in names:
                found[name] = tuple(n for n in names if n != name)
        found = vocab.__dict__.setdefault("_equivalents", found)
    return found


# --------------------------------------------------------------------------- eligibility


@dataclass
class Eligibility:
    """Passages that may answer the question, and why others were set aside."""

    passages: list[ScoredChunk]
    reason: str = ""  # set when none is eligible
    places: list[str] = field(default_factory=list)
    years: list[str] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)  # places named that only nationwide documents speak for


def held_passages(query: Query, passages: list[ScoredChunk], min_cover: float, figure_cover: float) -> list[ScoredChunk]:
    """A turn that names nothing is about the documents the conversation was about (`query.held`): when their passages
    hold a sentence that answers it at the bar the plan will use (a figure question's: a figure at `figure_cover`),
    only theirs are read — another 公示's 异议 line, worded like the question, must not answer for the 公示 being
    discussed; else every eligible passage, as before."""
    own = [p for p in passages if p.chunk.doc_id in query.docs]
    figure = query.facet == "figure"
    bar = figure_cover if figure else min_cover
    if own and len(own) < len(passages) and any(e.cover >= bar and (not figure or quantities_in(e.sentence))
                                                for e in best_evidence(query.evidence_text, own)):
        return own
    return passages


def is_nationwide(doc: dict) -> bool:
    """A document for the whole country (a national law, a CNIPA rule): it has no region of its own."""
    region = doc.get("region", "")
    return region == "" or region in load_vocabulary().of("nationwide")


def _about_places(ctx: ScoredChunk, documents: Mapping[str, dict], places: list[str]) -> bool:
    """The passage's document (its region, title, aliases) or its own text names one of `places`, or the document is
    nationwide."""
    doc = documents.get(ctx.chunk.doc_id, {})
    about = " ".join([doc.get("region", ""), doc.get("title", ""), " ".join(doc.get("aliases", [])), ctx.chunk.text])
    return any(place in about for place in places) or is_nationwide(doc)


def eligible_passages(question: str, contexts: list[ScoredChunk], documents: Mapping[str, dict],
                      named: Collection[str] = (), text_of: Callable[[str], str] | None = None) -> Eligibility:
    """Keep passages whose document (or own text) covers every place and year the question names. When the question
    names several documents (`named`: "《河南省专利保护条例》和2023年《专利法实施细则》分别…"), a year is how it names
    one of them: their passages are kept whatever year they hold. An instance of a series the question names (第四批,
    第二十四届: vocab class `series_counters`) must be one its document names (`text_of`: a document's whole text) —
    the 第三批's 公示 does not answer for the 第四批."""
    places = places_in(question)
    years = years_in(normalise_numbers(question))  # 二〇〇八年 is 2008
    series = ordinals(question, load_vocabulary().of("series_counters"))
    by_name = set(named) if len(named) >= 2 else set()
    named_series: dict[str, set] = {}
    kept = []
    for ctx in contexts:
        if places and ctx.chunk.doc_id not in by_name and not _about_places(ctx, documents, places):
            continue  # another place's document: never its figures for the place asked (one it names is asked)
        if series and text_of is not None:
            doc_id = ctx.chunk.doc_id
            if doc_id not in named_series:
                named_series[doc_id] = ordinals(documents.get(doc_id, {}).get("title", "") + text_of(doc_id),
                                                [counter for counter, _ in series])
            # like years: of several (第三批…和…第二十三届), each document is one of them
            if not (series <= named_series[doc_id] if len(series) == 1 else series & named_series[doc_id]):
                continue
        doc = documents.get(ctx.chunk.doc_id, {})
        doc_text = " ".join([doc.get("title", ""), str(doc.get("date", "")), doc.get("text", "") or ctx.chunk.text])
        # one year must be the document's; of several ("2025年春运…云驰2022年交付…"), each part is about one of them
        if (years and ctx.chunk.doc_id not in by_name
                and not (all if len(years) == 1 else any)(year in doc_text for year in years)):
            continue
        kept.append(ctx)
    reason = ""
    if not kept and contexts:
        if places and not any(any(p in " ".join([documents.get(c.chunk.doc_id, {}).get("region", ""), c.chunk.text])
                                  for p in places) for c in contexts):
            reason = f"文档中没有关于“{'、'.join(places)}”的相关内容"
        elif years:
            reason = f"文档没有给出 {'、'.join(years)} 年的相关内容"
        elif series and text_of is not None:
            asked = "、".join(ordinal_phrases(question, [counter for counter, _ in series]))
            reason = f"文档没有给出{asked}的相关内容"
        else:
            reason = "没有找到相关内容"
    # a place no kept passage is about (义乌 answered from a nationwide law or from 浙江's regulation) is said so
    covered = {p for p in places for c in kept if p in " ".join([documents.get(c.chunk.doc_id, {}).get("region", ""),
                                                                   documents.get(c.chunk.doc_id, {}).get("title", ""),
                                                                   c.chunk.text])}
    return Eligibility(kept, reason, places, years, [p for p in places if kept and p not in covered])


# --------------------------------------------------------------------------- extractive answers


@dataclass
class Evidence:
    """One passage sentence scored against the question."""

    ctx: ScoredChunk
    start: int  # offsets within the passage text
    end: int
    score: float
    cover: float
    # an enumerated item's lead ("第三十九条 …有下列情形之一，三年内不得申请…：") when the item is the evidence: the item
    # says only the condition, the lead what follows from it
    lead: tuple[int, int] | None = None

    @property
    def sentence(self) -> str:
        """The sentence as it reads, after its item's lead when it is an enumerated item ("…：……（四）…的")."""
        own = self._reads(self.start, self.end)
        if self.lead is None:
            return own
        between = self.ctx.chunk.text[self.lead[1] : self.start]
        return self._reads(*self.lead) + ("" if not between.strip() else "……") + own

    @property
    def quote(self) -> str:
        """The evidence's own span of the passage, as written (what a citation highlights)."""
        return self.ctx.chunk.text[self.start : self.end].strip()

    def _reads(self, start: int, end: int) -> str:
        """A span as it reads: a line break the page width put inside it is taken out ("应当考虑下列因素")."""
        text = self.ctx.chunk.text
        breaks = [b for b in sorted(wrapped_breaks(text)) if start <= b < end]
        if not breaks:
            return text[start:end].strip()
        pieces, at = [], start
        for b in breaks:
            pieces.append(text[at:b])
            at = b + 1
        pieces.append(text[at:end])
        return "".join(pieces).strip()


def best_evidence(question: str, passages: list[ScoredChunk], limit: int = 2, kind: str | None = None,
                  only_bare: bool = False) -> list[Evidence]:
    """The passage sentences that best answer the question, best first.

    A sentence scores by how many question words it (with its section heading) holds, by the
    passage's retrieval rank, and by stating the kind of fact asked (a quantity, a date, a document
    number). A date or document number often stands alone on a line ("2022年8月8日"), so such a
    sentence borrows the word coverage of its whole passage; with `only_bare`, only a line that stands alone does
    (a document's history lines each say their own event: "…会议修订", "…公布").
    Cross-document questions get the best sentence of each document.
    """
    terms = question_terms(question)
    kind = requested_kind(question) if kind is None else kind  # "when": the time of an event the text tells
    if load_vocabulary().has("list_asked", question):
        limit = max(limit, 4)  # a list may run over several sentences: (一)…(二)…(三)…
    scored: list[Evidence] = []
    # a sentence punishing an article ("违反本条例第五条规定的，…处…罚款") is about the act that article describes:
    # for a question asking a consequence it holds the question's words as far as that article does
    # (as far as the paragraph or item it cites does: 违反本条例第二十条第一款第二项 is about that item alone)
    acts = ({(c.chunk.doc_id, n): c.chunk for c in passages if (n := article_of(c.chunk.section_path, c.chunk.text))}
            if load_vocabulary().has("consequence_asks", question) else {})

    def act_cover(doc_id: str, article: int, paragraph: int, item: int) -> float:
        chunk = acts.get((doc_id, article))
        return coverage(terms, provision_text(chunk.text, paragraph, item) + " " + chunk.section) if chunk else 0.0

    for ctx in passages:
        text = ctx.chunk.text
        context = ctx.chunk.section
        passage_cover = coverage(terms, text + " " + context)
        for start, end in split_sentences(text):
            sentence = text[start:end]
            if len(compact(sentence)) < 6 or _BARE_HEADING.match(compact(sentence)) or is_heading(sentence, ctx):
                continue
            cover = coverage(terms, sentence + " " + context)
            if acts:
                cover = max([cover] + [act_cover(ctx.chunk.doc_id, *cited) for cited in provisions_cited(sentence)])
            score = cover + 0.15 / ctx.rank
            if kind and states(kind, sentence):
                if kind in ("date", "docno", "when") and (not only_bare or stands_alone(sentence)):
                    cover = max(cover, passage_cover)
                score = cover + 0.15 / ctx.rank + 0.35
            scored.append(Evidence(ctx, start, end, score, cover))
    scored.sort(key=lambda e: -e.score)
    if is_cross_document(question):
        per_doc: dict[str, Evidence] = {}
        for ev in scored:
            if ev.cover >= 0.34 and ev.ctx.chunk.doc_id not in per_doc:
                per_doc[ev.ctx.chunk.doc_id] = ev
        return said_once([with_lead(ev) for ev in list(per_doc.values())[:4]])
    chosen: list[Evidence] = []
    for ev in scored:
        if len(chosen) >= limit:
            break
        if chosen and (ev.score < chosen[0].score * (0.6 if limit > 2 else 0.8) or ev.cover < 0.34):
            break
        chosen.append(ev)
    return said_once([with_lead(with_enumeration(ev)) for ev in chosen])


def said_once(evidence: list[Evidence]) -> list[Evidence]:
    """Evidence another one already says is left out (an item of a list already given whole); a lead already said
    (by an earlier item of the same list, or inside an earlier span) is not said again."""
    out: list[Evidence] = []
    for ev in evidence:
        same = [o for o in out if o.ctx.chunk.chunk_id == ev.ctx.chunk.chunk_id]
        if any(o.start <= ev.start and ev.end <= o.end for o in same):
            continue
        if ev.lead is not None and any(o.lead == ev.lead or (o.start <= ev.lead[0] and ev.lead[1] <= o.end) for o in same):
            ev = dataclasses.replace(ev, lead=None)
        out.append(ev)
    return out


_LEAD_END = re.compile(r"[：:]\s*$")  # a sentence that introduces a list
MAX_ENUMERATION_CHARS = 800


MAX_SENTENCE_CHARS = 300


def whole_sentence(ev: Evidence) -> Evidence:
    """The whole sentence a clause belongs to: legal text joins the clauses of one provision with ； ("…的，由市知识产权局
    责令改正；拒不改正的，处一千元以上一万元以下罚款。"), and what a clause is about is often said in the clause next to it.
    Runs from the previous 。/line start to the next 。/line end, at most MAX_SENTENCE_CHARS; the clause itself when
    it already is a whole sentence or the sentence is longer."""
    text = ev.ctx.chunk.text
    before = max(text.rfind(mark, 0, ev.start) for mark in "。！？\n") + 1
    after = [i for i in (text.find(mark, ev.end - 1) for mark in "。！？\n") if i >= 0]
    end = min(after) + (text[min(after)] != "\n") if after else len(text)
    if (before, end) == (ev.start, ev.end) or end - before > MAX_SENTENCE_CHARS or end <= ev.start:
        return ev
    return dataclasses.replace(ev, start=before, end=max(end, ev.end))


def with_enumeration(ev: Evidence) -> Evidence:
    """A sentence that introduces a list ("有下列情形之一的，不予受理：", "名单如下：") is nothing without its items:
    the evidence runs on over the lines that follow it in the passage — its enumerated items, or a list of short
    lines, one name per line — up to the next article or MAX_ENUMERATION_CHARS."""
    text = ev.ctx.chunk.text
    if not _LEAD_END.search(text[ev.start : ev.end]):
        # a clause of a lead cut at its ；("…有下列行为之一的，…责令其限期改正；情节严重的，予以撤销并公告："): the whole
        # sentence is the lead
        whole = whole_sentence(ev)
        if whole is ev or not _LEAD_END.search(text[whole.start : whole.end]):
            return ev
        ev = whole
    end = ev.end
    lines = list(re.finditer(r"[^\n]+", text[end:]))
    if not lines:
        return ev
    enumerated = bool(ITEM.match(lines[0].group()))
    for line in lines:
        body = line.group().strip()
        if not body:
            continue
        if ARTICLE_HEADING.match(body) or (not enumerated and len(body) > 40) or line.end() > MAX_ENUMERATION_CHARS:
            break
        if enumerated and not ITEM.match(body):
            break  # the paragraph after the last item
        end = ev.end + line.end()
    if end == ev.end:
        return ev
    return dataclasses.replace(ev, end=end)


def with_lead(ev: Evidence) -> Evidence:
    """An enumerated item ("（二）同一侵权人再次侵犯同一专利权的；") read with the sentence that introduces its list
    ("第二十条 有下列行为之一的，由市专利管理部门依法进行查处:"): the lead line ending in a colon above it in the
    passage, with no other article or non-item paragraph between them."""
    text = ev.ctx.chunk.text
    if ev.lead is not None or not ITEM.match(text[ev.start : ev.end]):
        return ev
    line_start = text.rfind("\n", 0, ev.start) + 1
    for line in reversed(list(re.finditer(r"\S[^\n]*", text[:line_start]))):  # lines, from their first character
        body = line.group().rstrip()
        if ITEM.match(body):
            continue
        if not _LEAD_END.search(body) or len(body) > MAX_SENTENCE_CHARS:
            return ev  # a paragraph that is not a list's lead: the item stands on its own
        return dataclasses.replace(ev, lead=(line.start(), line.end()))
    return ev


def is_heading(sentence: str, ctx: ScoredChunk) -> bool:
    """A heading of the passage's section path standing as a sentence ("(四)实施知识产权金融创新赋能工程。"):
    never an answer sentence."""
    bare = compact(normalise(sentence)).rstrip("。.；;:：")
    if not bare:
        return True
    return any(bare == compact(normalise(label)).rstrip("。.；;:：") for label in ctx.chunk.section_path)


# --------------------------------------------------------------------------- checking generated answers


@dataclass
class CheckedSentence:
    text: str  # without markers
    markers: list[int]  # passage numbers (1-based) that support it
    claimed: list[int]  # what the model cited
    status: str  # kept | recited | dropped
    why: str = ""


def parse_markers(sentence: str) -> tuple[str, list[int]]:
    """Strip every citation form the model used; return the bare sentence and the numbers it cited."""
    cited: list[int] = []
    for note in _SOURCE_NOTE.findall(sentence):
        cited += [int(n) for n in re.findall(r"\d{1,2}", note)]
    bare = _SOURCE_NOTE.sub("", sentence)
    for pattern in _MARKER_PATTERNS:
        cited += [int(n) for n in pattern.findall(bare)]
        bare = pattern.sub("", bare)
    seen: list[int] = []
    for n in cited:
        if n not in seen:
            seen.append(n)
    return bare.strip(), seen


def says_cannot_answer(text: str) -> bool:
    """The model says the passages do not answer (vocab/model_refusals.txt)."""
    return bool(load_vocabulary().model_refusal_re.search(text))


def supports(sentence: str, ctx: ScoredChunk, question: str) -> bool:
    """The passage holds the sentence's figures, with their units, and is about the places the sentence names.

    Bare numbers may come from the passage, its heading or the question; a quantity ("4件") must appear as
    that quantity in the passage, so "杭州：4件" is not supported by a passage that says 乌海…4件 and 杭州…36件
    only if the place matches too.
    """
    chunk = ctx.chunk
    sentence = ITEM.sub("", sentence).lstrip()  # "1. 申请科技项目的": the model's numbering is layout, not a figure
    allowed = numbers_in(chunk.text) | numbers_in(chunk.header or chunk.title) | referenced_numbers(question)
    if not numbers_in(sentence) <= allowed:
        return False
    if not _durations_as_days(quantities_in(sentence)) <= _durations_as_days(quantities_in(chunk.text)):
        return False
    # a document number (法释〔2021〕7号, 国知发保字〔2018〕39号) is one name: its numbers found apart are not support
    passage_numbers = {_doc_number_key(m) for m in _ANY_DOC_NUMBER.findall(chunk.text + " " + chunk.title)}
    if any(_doc_number_key(m) not in passage_numbers for m in _ANY_DOC_NUMBER.findall(sentence)):
        return False
    places = places_in(sentence)
    about = " ".join([chunk.header, chunk.title, chunk.region, chunk.text])
    if places and not any(place in about for place in places):
        return False
    # Names listed or quoted in the sentence must each stand in the passage: 50% character overlap would let
    # "浏阳花炮、酒鬼酒、茅台酒等" through on the strength of the first two.
    haystack = _QUOTES.sub("", compact(normalise(chunk.text + " " + chunk.title)))
    return all(_QUOTES.sub("", compact(normalise(name))) in haystack for name in named_items(sentence))


def _durations_as_days(quantities: list[str]) -> set[str]:
    """Quantities compared with 天 and 日 as one unit: the texts write "十日内", staff and the model "10天"."""
    return {q[:-1] + "日" if q.endswith("天") else q for q in quantities}


# What a question may lend an answer: the years and article numbers it refers to ("2022年", "第十六条"), never a figure
# it asserts ("注册费已调整为300元", "期限为6个月"): an answer's figures come from the cited passage.
_REFERENCE = re.compile(r"(?<!\d)(?:1[89]|20)\d\d(?=\s*年|\D|$)|第[一二三四五六七八九十百零〇\d]+[条款项章节批届号]")


_ANY_DOC_NUMBER = re.compile(r"[〔\[［(（【]\s*\d{4}\s*[〕\]］)）】]\s*第?\s*\d{1,4}\s*号")


def _doc_number_key(text: str) -> str:
    """〔2021〕7号, [2021]7号 and （2021）第7号 are one number."""
    return "-".join(re.findall(r"\d+", normalise_numbers(text)))


def referenced_numbers(question: str) -> set[str]:
    return set().union(*(numbers_in(m.group()) for m in _REFERENCE.finditer(normalise_numbers(question) + " " + question)))


def named_items(sentence: str) -> list[str]:
    """Names a sentence lists (after the first 、: "做强浏阳花炮、酒鬼酒和茅台酒等" → 酒鬼酒, 茅台酒) or quotes (“…”, 《…》)."""
    bare, _ = parse_markers(sentence)
    names = re.findall(r"[“《]([^”》]{2,20})[”》]", bare)
    if "、" in bare:
        parts = bare.split("、")
        last = re.split(r"等|为代表|这些|这几|[，,。；;]", parts[-1])[0]
        for piece in parts[1:-1] + re.split(r"以及|和|及|与", last):
            piece = piece.strip(" “”《》\"'")
            if 2 <= len(piece) <= 12 and not re.search(r"[，,。；;：:]", piece):
                names.append(piece)
    return names


def overlap(sentence: str, passage: str) -> float:
    """Share of the sentence's character bigrams found in the passage."""
    a = compact(normalise_numbers(sentence))
    b = compact(normalise_numbers(passage))
    grams = {a[i : i + 2] for i in range(len(a) - 1)}
    if not grams:
        return 0.0
    return sum(1 for g in grams if g in b) / len(grams)


def check_answer(answer: str, passages: list[ScoredChunk], question: str, min_overlap: float = 0.5) -> list[CheckedSentence]:
    """Check each sentence of a generated answer against the passages it may cite (numbered 1..n).

    A sentence whose figures are in a cited passage keeps that marker; one cited wrongly is re-cited
    to the passage that holds its figures; one that no passage supports is dropped. Sentences without
    figures must still overlap a passage, or they are dropped as unsupported.
    """
    out = []
    for start, end in split_sentences(answer):
        bare, claimed = parse_markers(answer[start:end])
        bare = _without_dangling_lead(chinese_punctuation(bare))
        if len(compact(bare)) < 2:
            continue
        valid = [n for n in claimed if 1 <= n <= len(passages)]
        probe = ITEM.sub("", bare).lstrip()  # checked without the model's own list numbering (1. 2、 （一）)
        if restates(probe, question):
            out.append(CheckedSentence(bare, [], claimed, "dropped", "says only what the question says"))
            continue
        holding = [n for n in valid if supports(probe, passages[n - 1], question) and
                   (numbers_in(probe) or overlap(probe, passages[n - 1].chunk.text) >= min_overlap)]
        if holding:
            out.append(CheckedSentence(bounded(bare, passages[holding[0] - 1]), holding, claimed, "kept"))
            continue
        candidates = [i + 1 for i, p in enumerate(passages) if supports(probe, p, question)]
        ranked = sorted(candidates, key=lambda n: -overlap(probe, passages[n - 1].chunk.text))
        if ranked and (overlap(probe, passages[ranked[0] - 1].chunk.text) >= min_overlap or
                       (numbers_in(probe) and overlap(probe, passages[ranked[0] - 1].chunk.text) >= min_overlap / 2)):
            out.append(CheckedSentence(bounded(bare, passages[ranked[0] - 1]), [ranked[0]], claimed, "recited",
                                       "re-cited to the passage that holds it" if claimed else "citation added"))
        elif (joined := clause_support(probe, passages, question, min_overlap)):
            out.append(CheckedSentence(bare, joined, claimed, "recited", "its clauses cited to the passages holding them"))
        else:
            why = "figures not in any passage" if numbers_in(bare) else "not supported by any passage"
            out.append(CheckedSentence(bare, [], claimed, "dropped", why))
    return out


def bounded(sentence: str, ctx: ScoredChunk) -> str:
    """A checked sentence's figures bounded as its passage bounds them (不低于20%, 四个月内: `with_passage_bounds`):
    a small model drops the bound, which is part of what the text says."""
    vocab = load_vocabulary()
    return with_passage_bounds(sentence, ctx.chunk.text, vocab.of("bound_before"), vocab.of("bound_after"),
                               vocab.of("bound_written"))


_HALF_WIDTH = {",": "，", ";": "；", ":": "：", "?": "？", "!": "！", "(": "（", ")": "）"}
_BETWEEN_CHINESE = re.compile(r"(?<=[\u4e00-\u9fff》」”）])\s*([,;:?!])(?=\s*[\u4e00-\u9fff《「“（])")


def chinese_punctuation(sentence: str) -> str:
    """The question reaches the model NFKC-normalised (，→ ,) and the model copies it: "根据《…》,专利纠纷调解不成的,
    …". Half-width punctuation between Chinese characters is given back its full width (9:00, 1,000 stay)."""
    return _BETWEEN_CHINESE.sub(lambda m: _HALF_WIDTH[m.group(1)], sentence)


def _without_dangling_lead(sentence: str) -> str:
    """"根据，专利管理部门…" (the model wrote 根据[1]，… and the marker was moved): the lead word, now without its
    object, is dropped."""
    for word in load_vocabulary().of("cited_lead"):
        if re.match(rf"\s*{word}\s*[，,]", sentence):
            return re.sub(rf"^\s*{word}\s*[，,]\s*", "", sentence)
    return sentence


RESTATED_OVERLAP = 0.9  # share of a sentence's character pairs found in the question that makes it a restatement


def restates(sentence: str, question: str) -> bool:
    """A sentence made of the question's own words and figures ("…的具体项目名单有[1]。" to "…的具体项目名单有哪些？")
    answers nothing, however well its words match a passage. Not for a yes/no question (`yes_no` in
    question_words.tsv), where restating affirms."""
    if load_vocabulary().has("yes_no", question) or len(compact(sentence)) < 6:
        return False
    return overlap(sentence, question) >= RESTATED_OVERLAP and numbers_in(sentence) <= numbers_in(question)


def clause_support(sentence: str, passages: list[ScoredChunk], question: str, min_overlap: float) -> list[int]:
    """A sentence that joins facts of two passages ("…2000年11月25日通过，2005年12月2日修订，2006年3月1日起施行"
    from a law's history lines and its last article): the passages holding its clauses, when every clause with a
    figure is held by one and every other clause overlaps one or only restates the question; [] when any clause is
    not, or none is held."""
    clauses = [c for c in re.split(r"[，,；;]", sentence) if len(compact(c)) >= 2]
    if len(clauses) < 2:
        return []
    cited: list[int] = []
    for clause in clauses:
        fits = [i + 1 for i, p in enumerate(passages) if supports(clause, p, question)
                and (numbers_in(clause) or overlap(clause, p.chunk.text) >= min_overlap)]
        if not fits and not numbers_in(clause) and overlap(clause, question) >= RESTATED_OVERLAP:
            continue  # "北京和浙江…的办理时限不同": the question's own words frame the clauses that say what differs
        if not fits:
            return []
        best = max(fits, key=lambda n: overlap(clause, passages[n - 1].chunk.text))
        cited += [best] if best not in cited else []
    return sorted(cited)


def quote_for(sentence: str, ctx: ScoredChunk) -> str:
    """The passage sentence that best matches an answer sentence (highlighted in the UI)."""
    best, best_score = "", -1.0
    text = ctx.chunk.text
    wanted = numbers_in(sentence)
    for start, end in split_sentences(text):
        candidate = text[start:end].strip()
        score = overlap(sentence, candidate) + (0.5 if wanted and wanted <= numbers_in(candidate) else 0)
        if score > best_score:
            best, best_score = candidate, score
    return best


def without_instructions(contexts: list[ScoredChunk], cues: tuple[str, ...]) -> list[ScoredChunk]:
    """The passages with every sentence aimed at an assistant (vocab/document_instructions.txt) blanked out, each
    character replaced by a space so that offsets, quotes and the document view stay exact."""
    if not cues:
        return contexts
    out = []
    for ctx in contexts:
        text = ctx.chunk.text
        spans = [(a, b) for a, b in split_sentences(text) if any(cue in text[a:b].lower() for cue in cues)]
        if not spans:
            out.append(ctx)
            continue
        chars = list(text)
        for a, b in spans:
            chars[a:b] = [ch if ch == "\n" else " " for ch in text[a:b]]
        chunk = dataclasses.replace(ctx.chunk, text="".join(chars))
        out.append(ScoredChunk(chunk, ctx.score, ctx.rank, ctx.bm25, ctx.dense))
    return out
