"""Hybrid retrieval: BM25 over jieba tokens fused with dense (FAISS) similarity, with document/region filters.

Fusion is a weighted sum of min-max-normalised scores. Equal-weight reciprocal rank fusion was
measured worse than BM25 alone on this corpus (e5-small is weak on Chinese policy text); a small
dense weight only breaks ties and rescues paraphrases.
"""

from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from cachetools import LRUCache

from rag.errors import QueryError, UnknownFilterError
from rag.ingest.chunking import Chunk
from rag.language.facts import is_cross_document, requested_kind, states
from rag.language.places import places_in
from rag.language.text import CJK, tokenize
from rag.models.embedders import Embedder
from rag.settings import Settings
from rag.store.base import InForce
from rag.understand.query import Query

# A title word is a question's subject document when that document holds at least this share of the passages that
# say it (among the first SUBJECT_POOL that say it) and at least SUBJECT_MIN_PASSAGES of them (README, round 9)
SUBJECT_SHARE = 0.75
SUBJECT_MIN_PASSAGES = 2
SUBJECT_POOL = 2000
HELD_CAP = 50  # passages counted holding a word (enough to tell the library's words from the rest)


@dataclass
class ScoredChunk:
    """A retrieved passage with its fused score and the two scores it came from."""

    chunk: Chunk
    score: float
    rank: int
    bm25: float = 0.0
    dense: float = 0.0

    def to_context(self) -> dict:
        """The contract shape: rank, doc_id, title, section, text, score (+ ids for linking)."""
        c = self.chunk
        return {
            "rank": self.rank,
            "doc_id": c.doc_id,
            "title": c.title,
            "section": c.section,
            "section_short": c.section_short,
            "text": c.text,
            "score": round(float(self.score), 4),
            "chunk_id": c.chunk_id,
            "start": c.start,
            "end": c.end,
        }


def validate_question(question: str | None, max_chars: int) -> str:
    """The question stripped; QueryError with a clear message when empty or too long."""
    question = (question or "").strip()
    if not question:
        raise QueryError("empty question", "问题不能为空，请输入要查询的内容。")
    if len(question) > max_chars:
        raise QueryError(
            f"question of {len(question)} characters exceeds {max_chars}",
            f"问题过长（{len(question)} 字），请缩短到 {max_chars} 字以内。",
        )
    return question


@functools.cache
def _side_pool() -> ThreadPoolExecutor:
    """Threads for the vector searches that run beside the BM25 ones (created on first use)."""
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="rag-dense")


def _within(doc_of: np.ndarray, documents: set[str] | frozenset[str]) -> np.ndarray:
    """Which candidates belong to `documents` (a set lookup each: the set may hold most of a large library)."""
    return np.fromiter((d in documents for d in doc_of), bool, len(doc_of))


def _minmax(values: np.ndarray) -> np.ndarray:
    if values.size == 0:
        return values
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-9:
        return np.zeros_like(values) if high <= 0 else np.ones_like(values)
    return (values - low) / (high - low)


class Retriever:
    """Searches one store (the embedded index or PostgreSQL). Stateless between calls; safe to share across threads.

    Fusion ranks a candidate pool rather than every passage: the `candidate_pool` best passages by BM25 and by dense
    similarity, overall and within the filter and the documents the question names. Scores are min-max normalised
    over the pool; below `candidate_pool` passages the pool is the whole index, so small libraries rank exactly as
    a full scan would. Both stores implement the same five calls (`Store` in rag/store.py), so they fuse alike."""

    def __init__(self, index, embedder: Embedder, settings: Settings):
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self._places: LRUCache[str, set[str]] = LRUCache(maxsize=4096)
        self._lock = threading.Lock()
        self._haystacks = [(d["doc_id"], " ".join([d.get("region", ""), d.get("title", ""), *d.get("aliases", [])]))
                           for d in index.documents]
        self._all_docs = frozenset(d["doc_id"] for d in index.documents)
        self._titles = [(d["doc_id"], d.get("title", "")) for d in index.documents]
        self._subjects: LRUCache[str, str] = LRUCache(maxsize=8192)  # a word → the one document it is the subject of
        self._held: LRUCache[str, int] = LRUCache(maxsize=8192)  # a word → how many passages hold it (up to HELD_CAP)
        self._filters: LRUCache[tuple, tuple] = LRUCache(maxsize=256)  # filter → (day, the documents it allows)

    def allowed_docs(self, filters: dict | None) -> frozenset[str] | None:
        """The documents the filters allow (None: no filter); UnknownFilterError for names that match nothing. Each
        distinct filter is worked out once over the library's documents and then shared (a library has tens of
        thousands, and the store keeps what it derives from a filter by that same set)."""
        if not filters:
            return None
        doc_ids = filters.get("doc_id") or filters.get("doc_ids")
        wanted = frozenset({doc_ids} if isinstance(doc_ids, str) else doc_ids or ())
        region = filters.get("region") or ""
        key = (wanted, bool(filters.get("in_force")), region)
        with self._lock:
            found = self._filters.get(key)
        if found is not None and (not key[1] or found[0] == self._today()):
            return found[1]
        allowed = self._all_docs
        if wanted:
            unknown = wanted - allowed
            if unknown:
                known = sorted(allowed)
                named = sorted(str(u)[:80] for u in unknown)  # echoed back bounded: ten names of at most 80 characters
                more = f"等共 {len(named)} 个" if len(named) > 10 else ""
                raise UnknownFilterError(
                    f"unknown documents: {named[:10]}{' …' if more else ''}",
                    f"没有这些文档：{'、'.join(named[:10])}{more}。可选：{'、'.join(known[:50])}{'等' if len(known) > 50 else ''}")
            allowed = wanted
        if key[1]:  # alone, the filter as the store may know it (a column); with others, the documents left
            allowed = self._in_force() if allowed is self._all_docs else allowed & self._in_force()
        if region:
            matching = {d["doc_id"] for d in self.index.documents if region in d.get("region", "") or region in d.get("title", "")}
            if not matching:
                regions = sorted({d.get("region", "") for d in self.index.documents if d.get("region")})
                raise UnknownFilterError(f"unknown region {region!r}",
                                         f"没有地区为“{region}”的文档。可选：{'、'.join(regions[:50])}{'等' if len(regions) > 50 else ''}")
            allowed = allowed & matching
        with self._lock:
            self._filters[key] = (self._today(), allowed)
        return allowed

    def _today(self):
        from rag.store.library import today_of

        return today_of(self.settings)

    def _in_force(self) -> InForce:
        """Documents not expired today (computed once per day: a library has thousands)."""
        from rag.ingest.docfacts import validity

        today = self._today()
        cached = self.__dict__.get("_in_force_cache")
        if cached is None or cached[0] != today:
            current = InForce((d["doc_id"] for d in self.index.documents
                               if validity(d.get("period", ""), today) != "已到期"), today.year)
            cached = self.__dict__["_in_force_cache"] = (today, current)
        return cached[1]

    def search(self, query: Query | str, k: int | None = None, filters: dict | None = None, mode: str | None = None,
               docs: list[str] | None = None, within: list[str] | None = None) -> list[ScoredChunk]:
        """Top-k passages, best first, for an understood question (its search words, the kind of fact it asks, whether
        it asks across documents — decided once, by rag/understand/query.py) or for raw text (classified here, for
        callers without an understanding step: the LangChain retriever, the scale benchmark). `docs`: the documents
        the question targets (boosted); by default those whose region the text names. `filters` search a part of the
        library, ranked as that part alone would be; `within`: only these documents' passages returned, scored as in a
        search of the whole (filtered) library, so that several searches for one question can be merged by score."""
        if isinstance(query, Query):  # validated when it was understood: only bounded here
            text = query.search[: self.settings.max_question_chars].strip()
            if not text:
                return []
            kind, across = query.asks_kind, query.asks_every_document
        else:
            text = validate_question(query, self.settings.max_question_chars)
            kind, across = requested_kind(text), is_cross_document(text)
        return self._search(text, kind, across, k, filters, mode, docs, within)

    def _search(self, query: str, kind: str | None, across: bool, k: int | None, filters: dict | None,
                mode: str | None, docs: list[str] | None, within: list[str] | None = None) -> list[ScoredChunk]:
        k = k or self.settings.top_k
        mode = mode or self.settings.retrieval_mode
        searched = self.allowed_docs(filters)
        allowed = searched if within is None else frozenset(within) & (searched if searched is not None else self._all_docs)
        if allowed is not None and not allowed:
            return []
        named_docs = set(docs) if docs is not None else self.documents_named_in(query)
        use_dense = mode != "bm25" or self.settings.dense_weight > 0
        vector = None
        if use_dense:
            vector = np.ascontiguousarray(self.embedder.embed_query(query), dtype=np.float32).reshape(-1)
        scored = self.index.query(tokenize(query) if mode != "dense" else [], vector)
        pool = self.settings.candidate_pool
        # the candidates: the best by each signal over the documents the filters allow (the whole library, or only
        # those: a filtered search is ranked as the filtered library alone would be), within the documents `within`
        # names, and within the documents the question names
        scopes: list[set[str] | frozenset[str] | None] = [searched]
        if within is not None:
            scopes.append(allowed)
        if named_docs and mode == "hybrid":
            scopes.append(named_docs & allowed if allowed is not None else named_docs)
        scopes = [scope for scope in scopes if scope is None or scope]
        # A store whose calls may run at once (each on its own connection) has its vector searches run beside the
        # BM25 ones: the question waits for the slower of the two, not for both.
        side = _side_pool() if vector is not None and mode != "dense" and getattr(scored, "concurrent", False) else None
        dense_found = [side.submit(scored.dense_top, pool, scope) if side else None for scope in scopes] if vector is not None else []
        found = [scored.bm25_top(pool, scope) for scope in scopes] if mode != "dense" else []
        found += [job.result() if job else scored.dense_top(pool, scope) for job, scope in zip(dense_found, scopes, strict=True)]
        ids = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)
        if not len(ids):
            return []
        bm25 = scored.bm25_of(ids) if mode != "dense" else np.zeros(len(ids))
        dense = scored.dense_of(ids) if vector is not None else np.zeros(len(ids))
        if mode == "bm25":
            fused = bm25.copy()
        elif mode == "dense":
            fused = dense.copy()
        else:
            w = self.settings.dense_weight
            fused = (1 - w) * _minmax(bm25) + w * _minmax(dense)
        doc_of = np.array(scored.doc_of(ids))
        # The boosts are on the 0–1 scale of the fused score; the single-signal modes stay pure ablations.
        if named_docs and self.settings.region_boost and mode == "hybrid":
            fused = fused + self.settings.region_boost * _within(doc_of, named_docs)
        boost = self.settings.answer_type_boost
        inside = _within(doc_of, allowed) if allowed is not None else np.ones(len(ids), bool)
        if kind and boost and mode == "hybrid":
            fused = fused + boost * self._stated(scored, ids, fused, inside, kind, k, across)
        if allowed is not None:
            fused = np.where(inside, fused, -np.inf)
        # Ties (e.g. BM25 zero everywhere) fall back on dense similarity, then reading order.
        order = np.lexsort((ids, -dense, -fused))
        order = order[np.isfinite(fused[order])]
        if not named_docs and across:
            order = self._best_per_document_first(order, doc_of)
        picked = order[:k]
        chunks = scored.chunks(ids[picked])
        return [ScoredChunk(c, float(fused[i]), rank + 1, float(bm25[i]), float(dense[i]))
                for rank, (i, c) in enumerate(zip(picked, chunks, strict=False))]

    def _stated(self, scored, ids: np.ndarray, fused: np.ndarray, inside: np.ndarray, kind: str, k: int,
                across: bool) -> np.ndarray:
        """1 for the candidates whose text states the kind of fact asked (a date, a figure, a list), as far as it can
        change the top k: texts are read best first, in growing batches, until the next candidate, even stating it,
        could not pass the k-th best so far (all the allowed ones when documents are interleaved)."""
        boost = self.settings.answer_type_boost
        stated = np.zeros(len(ids))
        reach = np.nonzero(inside)[0]
        reach = reach[np.lexsort((ids[reach], -fused[reach]))]
        done, batch = 0, len(reach) if across else 4 * k
        while done < len(reach):
            part = reach[done:done + batch]
            stated[part] = [states(kind, c.text) for c in scored.chunks(ids[part])]
            done, batch = done + len(part), 2 * batch
            read = reach[:done]
            if done < len(reach) and done >= k:
                kth = np.sort(fused[read] + boost * stated[read])[-k]
                if fused[reach[done]] + boost < kth:
                    break
        return stated

    def subject_documents(self, text: str) -> list[str]:
        """The documents a question is about without naming them: a word of two or more characters that one
        document's title holds and that the library's passages hold (almost) only in that document — "布图设计侵权纠纷
        立案以后…答辩期是几天" is about the 集成电路布图设计行政执法办法, whose 第九条 never says 布图设计 and lost to
        another province's 答辩 article. Words many documents say (设计, 申请, 商标) are no one document's subject."""
        found: list[str] = []
        for term in dict.fromkeys(tokenize(text)):
            if len(term) < 2 or not CJK.search(term):
                continue
            with self._lock:
                owner = self._subjects.get(term, "?")
            if owner == "?":
                owner = self._subject_of(term)
                with self._lock:
                    self._subjects[term] = owner
            if owner and owner not in found:
                found.append(owner)
        return found

    def passages_holding(self, word: str) -> int:
        """How many of the library's passages hold `word` as a search token (counted up to HELD_CAP)."""
        with self._lock:
            count = self._held.get(word)
        if count is None:
            count = len(self.index.query([word], None).bm25_top(HELD_CAP, None))
            with self._lock:
                self._held[word] = count
        return count

    def _subject_of(self, term: str) -> str:
        """The one document whose title holds `term` when its passages hold most of the library's that do; else ''."""
        titled = [doc_id for doc_id, title in self._titles if term in title]
        if len(titled) != 1:
            return ""
        scored = self.index.query([term], None)
        holding = scored.doc_of(scored.bm25_top(SUBJECT_POOL, None))
        own = sum(1 for d in holding if d == titled[0])
        return titled[0] if own >= SUBJECT_MIN_PASSAGES and own >= SUBJECT_SHARE * len(holding) else ""

    def documents_named_in(self, query: str) -> set[str]:
        """Documents whose region, aliases or title contain a place the question names."""
        named: set[str] = set()
        for place in places_in(query):
            named |= self._documents_of_place(place)
        return named

    def _documents_of_place(self, place: str) -> set[str]:
        """Documents whose names contain `place`: a scan of every document the first time a place is asked about,
        then kept (a library of thousands of documents is asked about the same few hundred places)."""
        with self._lock:
            found = self._places.get(place)
        if found is None:
            found = {doc_id for doc_id, haystack in self._haystacks if place in haystack}
            with self._lock:
                self._places[place] = found
        return found

    @staticmethod
    def _best_per_document_first(order: np.ndarray, doc_of: np.ndarray) -> np.ndarray:
        seen: set[str] = set()
        firsts: list[int] = []
        rest: list[int] = []
        for i in order:
            (rest if doc_of[i] in seen else firsts).append(i)
            seen.add(doc_of[i])
        return np.array(firsts + rest, dtype=np.int64)
