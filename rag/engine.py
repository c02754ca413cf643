"""The loaded state one process needs: embedder, index, retriever, LLM. Built lazily, once per settings.

The index can change under a running server (an upload, `rag add` in another process, another server on the same
PostgreSQL later): `pinned()` first reloads if a writer swapped in a new generation, then returns a view of the engine
fixed on one generation, so one question is answered from one index from start to end.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Mapping
from functools import cached_property

from cachetools import LRUCache

from rag.errors import RagError
from rag.language.vocab import use_vocabulary
from rag.models.embedders import Embedder, make_embedder
from rag.search.retrieval import Retriever
from rag.settings import Settings
from rag.store.backends import backend_for
from rag.store.base import Index
from rag.store.view import DocumentView

log = logging.getLogger(__name__)


class _State:
    """One loaded generation of the index and what is derived from it."""

    def __init__(self, index: Index, embedder: Embedder, settings: Settings):
        self.index = index
        self._embedder = embedder
        self._settings = settings

    @cached_property
    def retriever(self) -> Retriever:
        return Retriever(self.index, self._embedder, self._settings)

    @cached_property
    def documents_by_id(self) -> "DocumentsById":
        """Document metadata by id, plus `text`: the document's passages joined (for the year check)."""
        return DocumentsById(self.index)

    @cached_property
    def document_view(self):
        """Documents, facts and passages in reading order, for answer plans."""
        return DocumentView(self.index.documents, self.index.chunks_of)


class DocumentsById(Mapping):
    """doc_id → metadata | {"text": passages joined}, built per document when first asked (a library of thousands
    of documents is never joined whole)."""

    def __init__(self, index):
        self._index = index
        self._meta = {d["doc_id"]: d for d in index.documents}
        self._cache: LRUCache[str, dict] = LRUCache(maxsize=256)
        self._lock = threading.Lock()

    def __getitem__(self, doc_id: str) -> dict:
        if doc_id not in self._meta:
            raise KeyError(doc_id)
        with self._lock:
            found = self._cache.get(doc_id)
        if found is None:
            found = self._meta[doc_id] | {"text": " ".join(c.text for c in self._index.chunks_of(doc_id))}
            with self._lock:
                self._cache[doc_id] = found
        return found

    def __iter__(self):
        return iter(self._meta)

    def __len__(self) -> int:
        return len(self._meta)


class Engine:
    """Holds models and the index for one `Settings`; nothing heavy happens until first use."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None, llm=None, index: Index | None = None):
        self.settings = settings
        use_vocabulary(settings.vocab_dir)  # every step reads the vocabulary of these settings (RAG_VOCAB_DIR)
        self._embedder = embedder
        self._models = {"llm": llm}  # shared by every pinned view
        self._scoped: LRUCache = LRUCache(maxsize=64)  # (generation, allowed documents) → a reader's state; shared
        self._lock = threading.Lock()
        self._state: _State | None = None
        if index is not None:
            self._state = _State(index, self.embedder, settings)  # already loaded: share it

    @cached_property
    def embedder(self) -> Embedder:
        return self._embedder or make_embedder(self.settings.embedder, self.settings)

    def _loaded(self) -> _State:
        state = self._state
        if state is None:
            with self._lock:
                if self._state is None:
                    self._state = _State(backend_for(self.settings).load(self.embedder), self.embedder, self.settings)
                state = self._state
        return state

    @property
    def index(self) -> Index:
        return self._loaded().index

    @property
    def retriever(self) -> Retriever:
        return self._loaded().retriever

    @property
    def documents_by_id(self) -> Mapping[str, dict]:
        return self._loaded().documents_by_id

    @property
    def document_view(self):
        return self._loaded().document_view

    def refresh(self) -> bool:
        """Reload when a writer swapped in another generation since this engine loaded. True when it reloaded.
        A new generation that cannot be loaded is logged and the loaded one kept."""
        current = backend_for(self.settings).generation()
        state = self._state
        if not current or (state is not None and state.index.config.get("_file") == current):
            return False
        with self._lock:
            if self._state is not None and self._state.index.config.get("_file") == current:
                return False
            try:
                index = backend_for(self.settings).load(self.embedder)
            except RagError as exc:
                if self._state is None:
                    raise
                log.warning("keeping the loaded index: %s", exc)
                return False
            self._state = _State(index, self.embedder, self.settings)
            return True

    def pinned(self) -> "Engine":
        """This engine on the newest generation, fixed there: later reloads do not change what the view answers from."""
        self.refresh()
        view = copy.copy(self)
        view._state = self._loaded()
        return view

    def scoped(self, allowed: frozenset[str] | None) -> "Engine":
        """This engine (pinned) as one reader sees it: only the documents in `allowed` (their knowledge bases), for
        retrieval, titles, plans and documents alike; None: every document. The reader's state is kept per
        generation and set of documents, so its retriever's caches are built once, not per question."""
        view = self.pinned()
        if allowed is None:
            return view
        from rag.store.bases import ScopedIndex

        state = view._loaded()
        key = (id(state), allowed)
        with self._lock:
            scoped = self._scoped.get(key)
            if scoped is None or scoped[0] is not state:
                scoped = self._scoped[key] = (state, _State(ScopedIndex(state.index, allowed), self.embedder,
                                                            self.settings))
        view._state = scoped[1]
        return view

    @property
    def llm(self):
        """The configured LLM backend, loaded on first use (thread-safe)."""
        with self._lock:
            if self._models["llm"] is None:
                from rag.models.llms import make_llm

                self._models["llm"] = make_llm(self.settings)
            return self._models["llm"]

    def index_freshness(self) -> tuple[str, str]:
        """('current' | 'stale' | 'missing', why) without loading the index."""
        from rag.store.library import index_status

        return index_status(self.settings, self.embedder)
