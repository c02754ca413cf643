"""The index on disk: immutable segments plus a generation file naming them, swapped in with one rename.

    index/
      CURRENT                the name of the current generation file (replaced atomically)
      gen-000007.json        how the index was built (embedder, dimension, chunker, tokenizer, versions) and which
                             segments make it up, with the documents each hides (removed or replaced since)
      segments/seg-…/        one batch of documents, every file read memory-mapped:
                               chunks.jsonl + chunk_offsets.npy   passages, one JSON line each (read by seeking)
                               documents.json, doc_codes.npy      the documents, and each passage's document
                               texts.jsonl + text_offsets.npy     full texts (the document view)
                               terms.json + postings_*.npy        BM25 postings (rag/store/sparse.py)
                               vectors.npy [+ vectors.hnsw]       float32 vectors [+ HNSW graph when large]
                               segment.json                       written last: a segment without it is incomplete
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
import threading
import time
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path

import numpy as np
from cachetools import LRUCache

from rag.errors import IndexMismatchError, IndexMissingError
from rag.ingest.chunking import Chunk, chunk_corpus
from rag.ingest.documents import Document
from rag.models.embedders import Embedder
from rag.settings import Settings
from rag.store.dense import HNSW_FILE, Dense, DenseSegment, build_hnsw, top_ids
from rag.store.segments import FORMAT_VERSION, Progress, Segment, chunker_config, make_segment
from rag.store.sparse import BM25, Postings

POINTER = "CURRENT"
SEGMENTS = "segments"


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


def _write_lines(path: Path, items: list) -> np.ndarray:
    """JSON lines, and the byte offset of each line (n + 1 of them) for reading one line by seeking."""
    lines = [(json.dumps(item, ensure_ascii=False) + "\n").encode("utf-8") for item in items]
    path.write_bytes(b"".join(lines))
    return np.cumsum([0] + [len(line) for line in lines], dtype=np.int64)


def write_segment(index_dir: Path, segment: Segment, hnsw_min: int = 0) -> dict:
    """Write a segment's files (segment.json last) and return its entry for a generation file. A segment of at
    least `hnsw_min` passages (0: never) also gets an HNSW graph."""
    folder = _new_segment_folder(index_dir)
    np.save(folder / "chunk_offsets.npy", _write_lines(folder / "chunks.jsonl", [c.to_record() for c in segment.chunks]))
    (folder / "documents.json").write_text(json.dumps(segment.documents, ensure_ascii=False, indent=1), encoding="utf-8")
    texts = [segment.texts.get(d["doc_id"], "") for d in segment.documents]
    np.save(folder / "text_offsets.npy", _write_lines(folder / "texts.jsonl", texts))
    code = {d["doc_id"]: i for i, d in enumerate(segment.documents)}
    np.save(folder / "doc_codes.npy", np.array([code[c.doc_id] for c in segment.chunks], dtype=np.int32))
    segment.postings.save(folder)
    np.save(folder / "vectors.npy", np.ascontiguousarray(segment.vectors, dtype=np.float32))
    if hnsw_min and len(segment.chunks) >= hnsw_min:
        build_hnsw(folder / "vectors.npy", folder / HNSW_FILE)
    return _sealed(folder, len(segment.chunks), [d["doc_id"] for d in segment.documents])


def _new_segment_folder(index_dir: Path) -> Path:
    root = index_dir / SEGMENTS
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"seg-{time.strftime('%Y%m%d%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**9:09d}"
    folder.mkdir()
    return folder


def _sealed(folder: Path, chunks: int, docs: list[str]) -> dict:
    """segment.json written last (a segment without it is incomplete), everything synced; the generation's entry."""
    (folder / "segment.json").write_text(json.dumps({"chunks": chunks, "docs": docs}, ensure_ascii=False),
                                         encoding="utf-8")
    _fsync_dir(folder)
    return {"name": folder.name, "chunks": chunks, "docs": docs, "hidden": []}


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


def _incomplete(folder: Path, why: str) -> IndexMissingError:
    return IndexMissingError(f"{folder}: {why}", "索引文件不完整，请运行 `rag index --rebuild`。")


_CHUNK_TYPES = {"chunk_id": str, "doc_id": str, "title": str, "start": int, "end": int, "text": str, "section_path": list}


def _random_access(array: np.ndarray) -> np.ndarray:
    """Tell the kernel a memory-mapped array is read a few rows at a time (candidates' vectors): without read-ahead
    a search keeps only the pages it used, not the megabytes around them."""
    import mmap

    handle = getattr(array, "_mmap", None)
    if handle is not None:
        handle.madvise(mmap.MADV_RANDOM)
    return array


class SegmentReader:
    """One segment, memory-mapped: passages are read one record at a time, never all parsed at load."""

    def __init__(self, folder: Path, entry: dict, dim: int, graph: bool = True):
        self.folder = folder
        self._fds: dict[str, int] = {}
        if not (folder / "segment.json").exists():
            raise _incomplete(folder, "incomplete segment")
        self.documents = json.loads((folder / "documents.json").read_text(encoding="utf-8"))
        if not isinstance(self.documents, list) or not all(
                isinstance(d, dict) and isinstance(d.get("doc_id"), str) and isinstance(d.get("title", ""), str)
                for d in self.documents):
            raise _shape_error(folder, "documents.json")
        self.doc_codes = np.load(folder / "doc_codes.npy", mmap_mode="r")
        self.chunk_offsets = np.load(folder / "chunk_offsets.npy", mmap_mode="r")
        self.text_offsets = np.load(folder / "text_offsets.npy", mmap_mode="r")
        try:
            self.postings = Postings.load(folder)
        except ValueError as exc:
            raise _shape_error(folder, "terms.json / postings") from exc
        if not all(isinstance(t, str) for t in self.postings.terms[:1000]):
            raise _shape_error(folder, "terms.json")
        self.vectors = _random_access(np.load(folder / "vectors.npy", mmap_mode="r"))
        n = int(entry["chunks"])
        size = (folder / "chunks.jsonl").stat().st_size
        if (len(self.doc_codes) != n or len(self.chunk_offsets) != n + 1 or len(self.postings) != n
                or self.vectors.shape != (n, dim) or int(self.chunk_offsets[-1]) != size
                or len(self.text_offsets) != len(self.documents) + 1):
            raise _incomplete(folder, "files disagree on the passage count")
        if n and (self.doc_codes.min() < 0 or self.doc_codes.max() >= len(self.documents)):
            raise _shape_error(folder, "doc_codes.npy")
        self.hnsw = None
        if graph and (folder / HNSW_FILE).exists():  # a merge copies vectors and builds its own graph
            import faiss

            self.hnsw = faiss.read_index(str(folder / HNSW_FILE))
        if n:
            self.record(0)  # a first passage of the wrong shape is refused at load, not at the first question

    def __len__(self) -> int:
        return len(self.doc_codes)

    def _read(self, name: str, lo: int, hi: int) -> bytes:
        """Bytes lo:hi of a segment file by a positioned read (no mapping: RSS stays what the process holds)."""
        fd = self._fds.get(name)
        if fd is None:
            fd = self._fds.setdefault(name, os.open(self.folder / name, os.O_RDONLY))
        return os.pread(fd, hi - lo, lo)

    def __del__(self):
        for fd in getattr(self, "_fds", {}).values():
            with contextlib.suppress(OSError):
                os.close(fd)

    def record(self, row: int) -> dict:
        lo, hi = int(self.chunk_offsets[row]), int(self.chunk_offsets[row + 1])
        try:
            record = json.loads(self._read("chunks.jsonl", lo, hi))
        except ValueError as exc:
            raise _shape_error(self.folder, "chunks.jsonl") from exc
        if not isinstance(record, dict) or not all(isinstance(record.get(k), t) for k, t in _CHUNK_TYPES.items()):
            raise _shape_error(self.folder, "chunks.jsonl")
        if record["doc_id"] != self.documents[int(self.doc_codes[row])]["doc_id"]:
            raise _shape_error(self.folder, "chunks.jsonl 与 documents.json 不一致")
        return record

    def text(self, position: int) -> str:
        lo, hi = int(self.text_offsets[position]), int(self.text_offsets[position + 1])
        return json.loads(self._read("texts.jsonl", lo, hi))


class Index:
    """The embedded store: the current generation's segments searched as one.

    Global passage ids run over the segments in order (hidden passages keep their ids and are masked out), so
    loading is opening files: a passage becomes a `Chunk` only when a search returns it."""

    def __init__(self, config: dict, segments: list[SegmentReader], hidden: list[set[str]], ef_search: int = 128):
        self.config = config
        self.segments = segments
        self.offsets = np.cumsum([0] + [len(s) for s in segments])
        self._allowed: LRUCache[frozenset, np.ndarray] = LRUCache(maxsize=8)
        self._allowed_lock = threading.Lock()
        self.documents: list[dict] = []
        codes, visible, self._where = [], [], {}
        for s, (segment, gone) in enumerate(zip(segments, hidden, strict=False)):
            remap = np.full(len(segment.documents), -1, np.int32)
            for i, doc in enumerate(segment.documents):
                if doc["doc_id"] not in gone:
                    remap[i] = len(self.documents)
                    self._where[doc["doc_id"]] = (s, i)
                    self.documents.append(doc)
            code = remap[np.asarray(segment.doc_codes)] if len(segment) else np.zeros(0, np.int32)
            codes.append(code)
            visible.append(code >= 0)
        self.doc_code = np.concatenate(codes) if codes else np.zeros(0, np.int32)
        self.visible = np.concatenate(visible) if visible else np.zeros(0, bool)
        self.bm25 = BM25([s.postings for s in segments], self.visible)
        self.dense = Dense([DenseSegment(s.vectors, s.hnsw) for s in segments], self.visible, ef_search)
        self._count = int(self.visible.sum())

    def __len__(self) -> int:
        return self._count

    # ------------------------------------------------------------ passages

    def chunk(self, i: int) -> Chunk:
        s = int(np.searchsorted(self.offsets, i, side="right")) - 1
        return Chunk.from_record(self.segments[s].record(int(i - self.offsets[s])))

    def chunks_at(self, ids) -> list[Chunk]:
        return [self.chunk(int(i)) for i in ids]

    def ids_of(self, doc_id: str) -> np.ndarray:
        """Global ids of a document's passages, in reading order."""
        where = self._where.get(doc_id)
        if where is None:
            return np.zeros(0, np.int64)
        s, code = where
        rows = np.nonzero(np.asarray(self.segments[s].doc_codes) == code)[0]
        return rows + int(self.offsets[s])

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        return self.chunks_at(self.ids_of(doc_id))

    @property
    def chunks(self) -> list[Chunk]:
        """Every visible passage as a Chunk: O(n), for tools and tests (search never needs it)."""
        return self.chunks_at(np.nonzero(self.visible)[0])

    def passage_counts(self) -> dict[str, int]:
        counts = np.bincount(self.doc_code[self.visible], minlength=len(self.documents))
        return {d["doc_id"]: int(c) for d, c in zip(self.documents, counts, strict=False)}

    def text_of(self, doc_id: str) -> str:
        """The document's full text (offsets of its passages point into it); '' when unknown."""
        where = self._where.get(doc_id)
        return self.segments[where[0]].text(where[1]) if where else ""

    # ------------------------------------------------------------ search (the store interface)

    def allowed(self, doc_ids) -> np.ndarray:
        """Boolean mask of the visible passages of `doc_ids` (the last few masks are kept: one question asks for the
        same filter several times)."""
        key = doc_ids if isinstance(doc_ids, frozenset) else frozenset(doc_ids)
        with self._allowed_lock:
            mask = self._allowed.get(key)
        if mask is None:
            wanted = np.zeros(len(self.documents) + 1, bool)
            position = self.__dict__.setdefault("_position", {d["doc_id"]: i for i, d in enumerate(self.documents)})
            wanted[[position[d] for d in key if d in position]] = True
            mask = wanted[self.doc_code]  # code -1 (hidden) reads the last, False
            with self._allowed_lock:
                self._allowed[key] = mask
        return mask

    @property
    def exact_dense(self) -> bool:
        """True when every segment is searched exactly (no HNSW graph)."""
        return all(s.hnsw is None for s in self.segments)

    def exact_dense_top(self, vector: np.ndarray, limit: int) -> np.ndarray:
        """The exact top `limit` by inner product over every visible passage (a scan: for measuring recall)."""
        scores = np.full(len(self.visible), -np.inf, np.float32)
        for s, segment in enumerate(self.segments):
            for lo in range(0, len(segment), 65_536):
                block = np.asarray(segment.vectors[lo:lo + 65_536], dtype=np.float32)
                scores[self.offsets[s] + lo:self.offsets[s] + lo + len(block)] = block @ vector
        scores[~self.visible] = -np.inf
        return top_ids(scores, limit)

    def query(self, tokens: list[str], vector: np.ndarray | None) -> "EmbeddedQuery":
        return EmbeddedQuery(self, tokens, vector)


class EmbeddedQuery:
    """One question against the embedded store: BM25 scored once over the postings it touches."""

    def __init__(self, index: Index, tokens: list[str], vector: np.ndarray | None):
        self.index, self.tokens, self.vector = index, tokens, vector
        self._bm25: np.ndarray | None = None

    def _scores(self) -> np.ndarray:
        if self._bm25 is None:
            self._bm25 = self.index.bm25.scores(self.tokens)
        return self._bm25

    def bm25_top(self, limit: int, doc_ids: AbstractSet[str] | None = None) -> np.ndarray:
        """Passages holding a query term (BM25 > 0), best first; as the SQL store, which only sees postings."""
        mask = self.index.visible if doc_ids is None else self.index.allowed(doc_ids)
        raw = self._scores()
        mask = mask & (raw > 0)
        return top_ids(np.where(mask, raw, -np.inf), min(limit, int(mask.sum())))

    def dense_top(self, limit: int, doc_ids: AbstractSet[str] | None = None) -> np.ndarray:
        if self.vector is None:
            return np.zeros(0, np.int64)
        return self.index.dense.top(self.vector, limit, None if doc_ids is None else self.index.allowed(doc_ids))

    def bm25_of(self, ids: np.ndarray) -> np.ndarray:
        return self._scores()[ids].astype(np.float64)

    def dense_of(self, ids: np.ndarray) -> np.ndarray:
        if self.vector is None:
            return np.zeros(len(ids))
        return self.index.dense.of(self.vector, ids).astype(np.float64)

    def doc_of(self, ids: np.ndarray) -> list[str]:
        return [self.index.documents[c]["doc_id"] for c in self.index.doc_code[ids]]

    def chunks(self, ids: np.ndarray) -> list[Chunk]:
        return self.index.chunks_at(ids)


def load_index(index_dir: Path, embedder: Embedder, ef_search: int = 128) -> Index:
    """Open the current generation; refuse (IndexMismatchError) if it was built with another embedder or dimension."""
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
    try:
        segments = [SegmentReader(index_dir / SEGMENTS / e["name"], e, embedder.dim) for e in config["segments"]]
        index = Index(config, segments, [set(e.get("hidden", [])) for e in config["segments"]], ef_search)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexMissingError(f"{index_dir}: damaged index ({exc})", "索引文件已损坏，请运行 `rag index --rebuild`。") from exc
    if len(index) != config.get("chunks"):
        raise IndexMissingError(f"{index_dir}: generation and segments disagree on the passage count",
                                "索引文件不完整，请运行 `rag index --rebuild`。")
    return index


# ---------------------------------------------------------------- changing the index

@contextlib.contextmanager
def _all_or_nothing(index_dir: Path) -> Iterator[None]:
    """What a failed write (a full disk, a read-only directory) leaves is removed: the segments and generation files
    it made that the current generation does not use. Readers never saw them; a partial segment would otherwise keep
    the disk full and every later upload failing."""
    root = index_dir / SEGMENTS
    segments_before = {p.name for p in root.iterdir()} if root.is_dir() else set()
    files_before = {p.name for p in index_dir.iterdir()} if index_dir.is_dir() else set()
    try:
        yield
    except BaseException:
        current = read_config(index_dir) or {}
        used = _segment_names(current)
        if root.is_dir():
            for path in root.iterdir():
                if path.name not in segments_before and path.name not in used:
                    shutil.rmtree(path, ignore_errors=True)
        if index_dir.is_dir():
            for path in index_dir.iterdir():
                if path.name not in files_before and path.name != current.get("_file") and path.is_file():
                    path.unlink(missing_ok=True)
        raise


def apply_changes(index_dir: Path, config: dict, segment: Segment | None, remove: set[str],
                  fingerprints: dict[str, str], skipped: list | None = None) -> dict:
    """A new generation: `remove` hidden wherever they are, `segment` added, small segments merged. Returns it.

    The caller holds `writer_lock`. Documents in `segment` replace earlier versions of themselves. A write that
    fails leaves the index directory as it was."""
    with _all_or_nothing(index_dir):
        return _apply_changes(index_dir, config, segment, remove, fingerprints, skipped)


def _apply_changes(index_dir: Path, config: dict, segment: Segment | None, remove: set[str],
                   fingerprints: dict[str, str], skipped: list | None = None) -> dict:
    config = json.loads(json.dumps({k: v for k, v in config.items() if k not in ("_file", "_replace_all")}))
    hnsw_min = int(config.get("hnsw_min", 0))
    replaced = set(remove) | ({d["doc_id"] for d in segment.documents} if segment else set())
    for entry in config["segments"]:
        hidden = set(entry.get("hidden", [])) | (replaced & set(entry["docs"]))
        entry["hidden"] = sorted(hidden)
        if hidden:
            entry["visible_chunks"] = len(_visible_rows(index_dir, entry))
        else:
            entry.pop("visible_chunks", None)
    prints = {k: v for k, v in config.get("fingerprints", {}).items() if k not in replaced}
    config["fingerprints"] = prints | fingerprints
    if segment is not None and segment.chunks:
        config["segments"].append(write_segment(index_dir, segment, hnsw_min))
    if skipped is not None:
        config["skipped_files"] = skipped
    config["segments"] = _merged(index_dir, [s for s in config["segments"] if len(s["docs"]) > len(s.get("hidden", []))],
                                 config["dim"], hnsw_min)
    return commit_generation(index_dir, config)


def bulk_build(index_dir: Path, config: dict, documents: Iterable[Document], settings: Settings, embedder: Embedder,
               limit: int = 0, batch: int = 20_000, progress: Progress | None = None) -> dict:
    """A new index from many documents with bounded memory: segments of about `batch` passages are written as the
    documents stream in, then merged once into one segment (with its HNSW graph when large). `limit`: stop after
    that many passages (0: all). The caller holds `writer_lock`. Returns the committed generation."""
    with _all_or_nothing(index_dir):
        return _bulk_build(index_dir, config, documents, settings, embedder, limit, batch, progress)


def _bulk_build(index_dir: Path, config: dict, documents: Iterable[Document], settings: Settings,
                embedder: Embedder, limit: int, batch: int, progress: Progress | None) -> dict:
    config = json.loads(json.dumps({k: v for k, v in config.items() if k != "_file"}))
    entries: list[dict] = []
    docs: list[Document] = []
    chunks: list[Chunk] = []
    total = 0
    fingerprints = {}

    def flush() -> None:
        if chunks:
            entries.append(write_segment(index_dir, make_segment(docs, settings, embedder, chunks=chunks)))
            if progress:
                progress(total, limit or total)
        docs.clear()
        chunks.clear()

    for doc in documents:
        found = chunk_corpus([doc], chunker_config(settings))
        docs.append(doc)
        chunks.extend(found)
        fingerprints[doc.doc_id] = doc.fingerprint
        total += len(found)
        if len(chunks) >= batch:
            flush()
        if limit and total >= limit:
            break
    flush()
    hnsw_min = int(config.get("hnsw_min", 0))
    if len(entries) > 1 or (entries and hnsw_min and entries[0]["chunks"] >= hnsw_min):
        entries = [_merge(index_dir, entries, config["dim"], hnsw_min)]
    config["segments"] = entries
    config["fingerprints"] = fingerprints
    return commit_generation(index_dir, config)


def _visible_rows(index_dir: Path, entry: dict) -> np.ndarray:
    folder = index_dir / SEGMENTS / entry["name"]
    documents = json.loads((folder / "documents.json").read_text(encoding="utf-8"))
    hidden = set(entry.get("hidden", []))
    keep = np.array([d["doc_id"] not in hidden for d in documents] + [False], bool)
    return np.nonzero(keep[np.load(folder / "doc_codes.npy")])[0]


def _merged(index_dir: Path, segments: list[dict], dim: int, hnsw_min: int) -> list[dict]:
    """Merge the newest segments while the newer is at least half the size of the one before it (a binary counter:
    O(log n) segments, every passage rewritten O(log n) times); segments mostly hidden are rewritten too."""
    segments = list(segments)
    while len(segments) >= 2 and 2 * _visible_chunks(segments[-1]) >= _visible_chunks(segments[-2]):
        a, b = segments[-2], segments[-1]
        segments[-2:] = [_merge(index_dir, [a, b], dim, hnsw_min)]
    for i, entry in enumerate(segments):
        if entry.get("hidden") and _visible_chunks(entry) * 2 < entry["chunks"]:
            segments[i] = _merge(index_dir, [entry], dim, hnsw_min)
    return segments


MERGE_BLOCK = 50_000  # vectors copied this many rows at a time
LINE_BLOCK = 5_000  # passages' JSON lines copied this many at a time


def _merge(index_dir: Path, entries: list[dict], dim: int, hnsw_min: int) -> dict:
    """One segment holding the visible passages of `entries`, streamed: passages' and texts' JSON lines copied as
    bytes, postings merged term by term into memory-mapped files (`Postings.write_merged`), vectors copied in blocks
    — nothing re-embedded, no passage parsed, memory bounded by the largest block rather than the library (a 10^6
    merge that made every passage an object peaked at 9.7 GB). The files are those `write_segment` writes."""
    root = index_dir / SEGMENTS
    folder = _new_segment_folder(index_dir)
    documents: list[dict] = []
    chunk_offsets, text_offsets, codes, postings = [np.zeros(1, np.int64)], [0], [], []
    readers = []
    with open(folder / "chunks.jsonl", "wb") as chunks_out, open(folder / "texts.jsonl", "wb") as texts_out:
        for entry in entries:
            reader = SegmentReader(root / entry["name"], entry, dim, graph=False)
            hidden = set(entry.get("hidden", []))
            rows = _visible_rows(index_dir, entry)
            new_code = np.full(len(reader.documents), -1, np.int32)
            for position, doc in enumerate(reader.documents):
                if doc["doc_id"] not in hidden:
                    new_code[position] = len(documents)
                    documents.append(doc)
                    lo, hi = int(reader.text_offsets[position]), int(reader.text_offsets[position + 1])
                    texts_out.write(reader._read("texts.jsonl", lo, hi))
                    text_offsets.append(text_offsets[-1] + hi - lo)
            starts = np.asarray(reader.chunk_offsets[rows], np.int64)
            ends = np.asarray(reader.chunk_offsets[rows + 1], np.int64)
            for block in range(0, len(rows), LINE_BLOCK):  # one read per block, kept lines cut out of it
                first, last = starts[block:block + LINE_BLOCK], ends[block:block + LINE_BLOCK]
                lo = int(first[0])
                data = reader._read("chunks.jsonl", lo, int(last[-1]))
                contiguous = int(last[-1]) - lo == int((last - first).sum())
                chunks_out.write(data if contiguous else b"".join(
                    data[a - lo:b - lo] for a, b in zip(first.tolist(), last.tolist(), strict=True)))
            chunk_offsets.append(chunk_offsets[-1][-1] + np.cumsum(ends - starts))
            codes.append(new_code[np.asarray(reader.doc_codes)[rows]])
            postings.append((reader.postings, rows))
            readers.append((reader, rows))
    n = Postings.write_merged(folder, postings)
    np.save(folder / "chunk_offsets.npy", np.concatenate(chunk_offsets).astype(np.int64))
    np.save(folder / "text_offsets.npy", np.array(text_offsets, np.int64))
    (folder / "documents.json").write_text(json.dumps(documents, ensure_ascii=False, indent=1), encoding="utf-8")
    np.save(folder / "doc_codes.npy", np.concatenate(codes).astype(np.int32) if codes else np.zeros(0, np.int32))
    np.lib.format.open_memmap(folder / "vectors.npy", "w+", np.float32, (n, dim)).flush()
    at = 0
    for reader, rows in readers:  # in blocks, every file mapped only for its block: the pages leave the process
        for block in range(0, len(rows), MERGE_BLOCK):
            part = rows[block:block + MERGE_BLOCK]
            source = np.load(reader.folder / "vectors.npy", mmap_mode="r")
            values = np.array(source[part], dtype=np.float32)
            del source
            target = np.lib.format.open_memmap(folder / "vectors.npy", "r+")
            target[at:at + len(part)] = values
            target.flush()
            del target
            at += len(part)
    if hnsw_min and n >= hnsw_min:
        build_hnsw(folder / "vectors.npy", folder / HNSW_FILE)
    return _sealed(folder, n, [d["doc_id"] for d in documents])


# ---------------------------------------------------------------- the store behind the library and the engine

class EmbeddedBackend:
    """The index operations on the index directory (the default store); rag/store/postgres.py has the same on PostgreSQL."""

    def __init__(self, index_dir: Path, ef_search: int = 128):
        self.index_dir = index_dir
        self.ef_search = ef_search

    def read_config(self) -> dict | None:
        return read_config(self.index_dir)

    def generation(self) -> str:
        return generation(self.index_dir)

    def writer_lock(self):
        return writer_lock(self.index_dir)

    def apply_changes(self, config: dict, segment: Segment | None, remove: set[str], fingerprints: dict[str, str],
                      skipped: list | None = None) -> dict:
        return apply_changes(self.index_dir, config, segment, remove, fingerprints, skipped)

    def load(self, embedder: Embedder) -> Index:
        return load_index(self.index_dir, embedder, self.ef_search)
