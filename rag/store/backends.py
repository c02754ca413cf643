"""Which store `settings.store` names: the embedded index directory or a PostgreSQL database."""

from __future__ import annotations

from rag.settings import Settings
from rag.store.base import Backend
from rag.store.embedded import EmbeddedBackend

_PG_BACKENDS: dict[str, Backend] = {}


def backend_for(settings: Settings) -> Backend:
    """The store `settings.store` names: the index directory, or a PostgreSQL database (one pool per URL)."""
    if settings.store in ("", "embedded"):
        return EmbeddedBackend(settings.index_dir, settings.hnsw_ef_search)
    if settings.store not in _PG_BACKENDS:
        from rag.store.postgres import PgBackend

        _PG_BACKENDS[settings.store] = PgBackend(settings.store, settings.hnsw_ef_search, settings.pg_bm25_depth)
    return _PG_BACKENDS[settings.store]
