"""Hybrid retrieval: BM25 over jieba tokens fused with dense (FAISS) similarity, with document/region filters.

Fusion is a weighted sum of min-max-normalised scores. Equal-weight reciprocal rank fusion was
measured worse than BM25 alone on this corpus (e5-small is weak on Chinese policy text); a small
dense weight only breaks ties and rescues paraphrases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rag.chunking import Chunk
from rag.embedders import Embedder
from rag.errors import QueryError, UnknownFilterError
from rag.facts import is_cross_document, requested_kind, states
from rag.index import Index
from rag.settings import Settings
from rag.text import places_in, tokenize


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


def _minmax(values: np.ndarray) -> np.ndarray:
    if values.size == 0:
        return values
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-9:
        return np.zeros_like(values) if high <= 0 else np.ones_like(values)
    return (values - low) / (high - low)


class Retriever:
    """Searches one loaded index. Stateless between calls; safe to share across threads."""

    def __init__(self, index: Index, embedder: Embedder, settings: Settings):
        self.index = index
        self.embedder = embedder
        self.settings = settings
        self._doc_ids = np.array([c.doc_id for c in index.chunks])

    def allowed_mask(self, filters: dict | None) -> np.ndarray | None:
        """Boolean mask of passages the filters allow; UnknownFilterError for names that match nothing."""
        if not filters:
            return None
        mask = np.ones(len(self.index.chunks), dtype=bool)
        doc_ids = filters.get("doc_id") or filters.get("doc_ids")
        if doc_ids:
            wanted = {doc_ids} if isinstance(doc_ids, str) else set(doc_ids)
            known = {d["doc_id"] for d in self.index.documents}
            unknown = wanted - known
            if unknown:
                raise UnknownFilterError(
                    f"unknown documents: {sorted(unknown)}", f"没有这些文档：{'、'.join(sorted(unknown))}。可选：{'、'.join(sorted(known))}"
                )
            mask &= np.isin(self._doc_ids, list(wanted))
        if filters.get("in_force"):
            from rag.docfacts import validity
            from rag.library import today_of

            today = today_of(self.settings)
            current = {d["doc_id"] for d in self.index.documents if validity(d.get("period", ""), today) != "已到期"}
            mask &= np.isin(self._doc_ids, list(current))
        region = filters.get("region")
        if region:
            matching = {
                d["doc_id"] for d in self.index.documents if region in d.get("region", "") or region in d.get("title", "")
            }
            if not matching:
                regions = sorted({d.get("region", "") for d in self.index.documents if d.get("region")})
                raise UnknownFilterError(f"unknown region {region!r}", f"没有地区为“{region}”的文档。可选：{'、'.join(regions)}")
            mask &= np.isin(self._doc_ids, list(matching))
        return mask

    def search(self, query: str, k: int | None = None, filters: dict | None = None, mode: str | None = None,
               docs: list[str] | None = None) -> list[ScoredChunk]:
        """Top-k passages for `query`, best first. `docs`: the documents the question targets (boosted); by default
        those whose region the query names."""
        query = validate_question(query, self.settings.max_question_chars)
        k = k or self.settings.top_k
        mode = mode or self.settings.retrieval_mode
        n = len(self.index.chunks)
        bm25 = self.index.bm25.scores(tokenize(query)) if mode != "dense" else np.zeros(n, np.float32)
        dense = self._dense_scores(query) if mode != "bm25" or self.settings.dense_weight > 0 else np.zeros(n, np.float32)
        if mode == "bm25":
            fused = bm25.astype(np.float64)
        elif mode == "dense":
            fused = dense.astype(np.float64)
        else:
            w = self.settings.dense_weight
            fused = (1 - w) * _minmax(bm25) + w * _minmax(dense)
        named_docs = set(docs) if docs is not None else self.documents_named_in(query)
        # The boosts are on the 0–1 scale of the fused score; the single-signal modes stay pure ablations.
        if named_docs and self.settings.region_boost and mode == "hybrid":
            fused = fused + self.settings.region_boost * np.isin(self._doc_ids, list(named_docs))
        kind = requested_kind(query)
        if kind and self.settings.answer_type_boost and mode == "hybrid":
            # A question asking for a date or a figure prefers passages that state one.
            fused = fused + self.settings.answer_type_boost * self._states_mask(kind)
        mask = self.allowed_mask(filters)
        if mask is not None:
            fused = np.where(mask, fused, -np.inf)
        # Ties (e.g. BM25 zero everywhere) fall back on dense similarity, then reading order.
        order = np.lexsort((np.arange(n), -dense, -fused))
        if not named_docs and is_cross_document(query):
            order = self._best_per_document_first(order)
        results = []
        for i in order:
            if len(results) == k:
                break
            if not np.isfinite(fused[i]):
                continue  # filtered out (the per-document ordering interleaves them with allowed passages)
            results.append(ScoredChunk(self.index.chunks[i], float(fused[i]), len(results) + 1, float(bm25[i]), float(dense[i])))
        return results

    def _states_mask(self, kind: str) -> np.ndarray:
        cache = self.__dict__.setdefault("_states_cache", {})
        if kind not in cache:
            cache[kind] = np.array([states(kind, c.text) for c in self.index.chunks], dtype=np.float64)
        return cache[kind]

    def documents_named_in(self, query: str) -> set[str]:
        """Documents whose region, aliases or title contain a place the question names."""
        places = places_in(query)
        if not places:
            return set()
        named = set()
        for doc in self.index.documents:
            haystack = " ".join([doc.get("region", ""), doc.get("title", ""), *doc.get("aliases", [])])
            if any(place in haystack for place in places):
                named.add(doc["doc_id"])
        return named

    def _best_per_document_first(self, order: np.ndarray) -> np.ndarray:
        seen: set[str] = set()
        firsts, rest = [], []
        for i in order:
            (rest if self._doc_ids[i] in seen else firsts).append(i)
            seen.add(self._doc_ids[i])
        return np.array(firsts + rest)

    def _dense_scores(self, query: str) -> np.ndarray:
        vector = np.ascontiguousarray(self.embedder.embed_query(query).reshape(1, -1), dtype=np.float32)
        n = len(self.index.chunks)
        scores, ids = self.index.vectors.search(vector, n)
        out = np.zeros(n, dtype=np.float32)
        valid = ids[0] >= 0
        out[ids[0][valid]] = scores[0][valid]
        return out
