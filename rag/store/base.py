"""The store interface, in three narrow parts: a `Backend` (where an index lives and how it changes), the loaded
`Index` (one generation, read-only) and a `Query` against it (the retriever's ranked candidates).

Two implementations: rag/store/embedded.py (segments in the index directory, the default) and rag/store/postgres.py
(PostgreSQL + pgvector); rag/store/backends.py picks one from `settings.store`. Both take the same `Segment`
(rag/store/segments.py) to write.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from contextlib import AbstractContextManager
from typing import Protocol

import numpy as np

from rag.ingest.chunking import Chunk
from rag.models.embedders import Embedder
from rag.store.segments import Segment


class InForce(frozenset):
    """The documents in force in `year` (a period ending in `year` or later, or none stated), as a filter: a store that
    keeps each document's end year (PostgreSQL) filters by that column instead of by thousands of names."""

    year: int

    def __new__(cls, doc_ids, year: int):
        self = super().__new__(cls, doc_ids)
        self.year = year
        return self


class Query(Protocol):
    """One question's tokens and vector against a loaded index; ids are the index's global passage ids."""

    def bm25_top(self, limit: int, doc_ids: AbstractSet[str] | None = None) -> np.ndarray: ...
    def dense_top(self, limit: int, doc_ids: AbstractSet[str] | None = None) -> np.ndarray: ...
    def bm25_of(self, ids: np.ndarray) -> np.ndarray: ...
    def dense_of(self, ids: np.ndarray) -> np.ndarray: ...
    def doc_of(self, ids: np.ndarray) -> list[str]: ...
    def chunks(self, ids: np.ndarray) -> list[Chunk]: ...


class Index(Protocol):
    """One generation of the store, as loaded: the record it was built with, the documents' metadata in reading order,
    passages read on demand."""

    config: dict
    documents: list[dict]

    def __len__(self) -> int: ...
    def passage_counts(self) -> dict[str, int]: ...
    def chunks_of(self, doc_id: str) -> list[Chunk]: ...
    @property
    def chunks(self) -> list[Chunk]: ...
    def text_of(self, doc_id: str) -> str: ...
    @property
    def exact_dense(self) -> bool: ...
    def exact_dense_top(self, vector: np.ndarray, limit: int) -> np.ndarray: ...
    def query(self, tokens: list[str], vector: np.ndarray | None) -> Query: ...


class Backend(Protocol):
    """Where the index lives: its record, a generation stamp readers compare, the writers' lock, one atomic change."""

    def read_config(self) -> dict | None: ...
    def generation(self) -> str: ...
    def writer_lock(self) -> AbstractContextManager[None] | Iterator[None]: ...
    def apply_changes(self, config: dict, segment: Segment | None, remove: set[str], fingerprints: dict[str, str],
                      skipped: list | None = None) -> dict: ...
    def load(self, embedder: Embedder) -> Index: ...
