"""Retrieval: hybrid BM25 + dense search over the store, returning scored passages."""
