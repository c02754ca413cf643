"""The loaded state one process needs: embedder, index, retriever, LLM. Built lazily, once per settings."""

from __future__ import annotations

import threading
from functools import cached_property

from rag.embedders import Embedder, make_embedder
from rag.index import Index, load_index
from rag.retrieval import Retriever
from rag.settings import Settings


class Engine:
    """Holds models and the index for one `Settings`; nothing heavy happens until first use."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None, llm=None, index: Index | None = None):
        self.settings = settings
        self._embedder = embedder
        self._llm = llm
        self._lock = threading.Lock()
        if index is not None:
            self.__dict__["index"] = index  # already loaded: share it instead of reading index/ again

    @cached_property
    def embedder(self) -> Embedder:
        return self._embedder or make_embedder(self.settings.embedder)

    @cached_property
    def index(self) -> Index:
        return load_index(self.settings.index_dir, self.embedder)

    @cached_property
    def retriever(self) -> Retriever:
        return Retriever(self.index, self.embedder, self.settings)

    @cached_property
    def documents_by_id(self) -> dict[str, dict]:
        """Document metadata by id, plus `text`: the document's passages joined (for the year check)."""
        texts: dict[str, list[str]] = {}
        for chunk in self.index.chunks:
            texts.setdefault(chunk.doc_id, []).append(chunk.text)
        return {doc["doc_id"]: doc | {"text": " ".join(texts.get(doc["doc_id"], []))} for doc in self.index.documents}

    @cached_property
    def document_view(self):
        """Documents, facts and passages in reading order, for answer plans."""
        from rag.plans import DocumentView

        return DocumentView(self.index.documents, self.index.chunks)

    @property
    def llm(self):
        """The configured LLM backend, loaded on first use (thread-safe)."""
        with self._lock:
            if self._llm is None:
                from rag.llms import make_llm

                self._llm = make_llm(self.settings)
            return self._llm

    def index_freshness(self) -> tuple[str, str]:
        """('current' | 'stale' | 'missing', why) without loading the index."""
        from rag.library import index_status

        return index_status(self.settings, self.embedder)
