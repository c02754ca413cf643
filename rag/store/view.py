"""A read view of the library for answer plans: documents' metadata and facts, and each document's passages in
reading order, fetched from the store when first needed."""

from __future__ import annotations

from collections.abc import Callable

from cachetools import LRUCache

from rag.ingest.chunking import Chunk
from rag.ingest.docfacts import facts_from_json


class _PerDocument:
    """A document's passages in reading order, read from the store when first needed."""

    def __init__(self, chunks_of: Callable[[str], list[Chunk]]):
        self._chunks_of = chunks_of
        self._cache: LRUCache[str, list[Chunk]] = LRUCache(maxsize=256)

    def get(self, doc_id: str, default=None) -> list[Chunk]:
        found = self._cache.get(doc_id)
        if found is None:
            found = self._cache[doc_id] = self._chunks_of(doc_id)
        return found or (default if default is not None else [])


class DocumentView:
    """What planning needs to know about the indexed documents: metadata, facts, passages in reading order."""

    def __init__(self, documents: list[dict], chunks_of: Callable[[str], list[Chunk]]):
        self.documents = {d["doc_id"]: d for d in documents}
        self.order = [d["doc_id"] for d in documents]
        self.chunks = _PerDocument(chunks_of)
        self._by_title: dict[str, list[str]] = {}
        for d in documents:
            self._by_title.setdefault(d.get("title", d["doc_id"]), []).append(d["doc_id"])

    def facts(self, doc_id: str) -> dict:
        return facts_from_json(self.documents.get(doc_id, {}).get("facts", {}))

    def label(self, doc_id: str) -> str:
        """A short name for lines of a cross-document answer: the place (杭州), else the title."""
        doc = self.documents.get(doc_id, {})
        for name in (*doc.get("aliases", []), doc.get("city", ""), doc.get("province", ""), doc.get("region", "")):
            if name and len(name) >= 2:
                return name.removesuffix("市").removesuffix("省")
        return f"《{doc.get('title', doc_id)}》"

    def title(self, doc_id: str) -> str:
        return self.documents.get(doc_id, {}).get("title", doc_id)

    def versions(self, doc_id: str) -> list[str]:
        """The documents of the same title (versions of one text: 专利法 as amended in 2008 and in 2020)."""
        return self._by_title.get(self.title(doc_id), [doc_id])

    def chunk_at(self, doc_id: str, offset: int) -> Chunk | None:
        for chunk in self.chunks.get(doc_id, []):
            if chunk.start <= offset < chunk.end:
                return chunk
        return None
