"""Dense similarity over the segments' vectors: exact below a size, FAISS HNSW above it.

Every segment keeps its float32 vectors as a memory-mapped .npy file: exact scores for a few passages (the fusion's
candidates) read only those rows. A segment of at least `hnsw_min` passages also carries an HNSW graph over 8-bit
scalar-quantised vectors (a quarter of the memory of flat vectors); its neighbours are re-scored exactly. Filters
that leave few passages are searched exactly; larger filtered searches pass FAISS a bitmap of allowed passages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HNSW_FILE = "vectors.hnsw"
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 64
EXACT_MAX = 20_000  # a filtered search over at most this many passages is exact


TRAIN_SAMPLE = 1_000  # vectors given to the quantiser's training beside each dimension's minimum and maximum
ADD_BLOCK = 50_000


def build_hnsw(vectors: np.ndarray | Path, path: Path) -> None:
    """Write an HNSW graph (inner product, SQ8 storage) over `vectors` — an array, or a .npy file read block by block
    (each block mapped only while it is read, so a 10^6 × 384 file never sits in the process). The 8-bit quantiser's
    per-dimension ranges are the exact minimum and maximum over all vectors, as training on all of them gives."""
    import faiss

    def blocks():
        total = len(vectors) if not isinstance(vectors, Path) else np.load(vectors, mmap_mode="r").shape[0]
        for start in range(0, total, ADD_BLOCK):
            source = np.load(vectors, mmap_mode="r") if isinstance(vectors, Path) else vectors
            block = np.ascontiguousarray(source[start:start + ADD_BLOCK], dtype=np.float32)
            del source
            yield block

    low = high = None
    for block in blocks():
        low = block.min(axis=0) if low is None else np.minimum(low, block.min(axis=0))
        high = block.max(axis=0) if high is None else np.maximum(high, block.max(axis=0))
    first = next(blocks(), None)
    if first is None or low is None or high is None:
        return
    dim = first.shape[1]
    index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, HNSW_M, faiss.METRIC_INNER_PRODUCT)  # type: ignore[arg-type]
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.train(np.vstack([low, high, first[:TRAIN_SAMPLE]]).astype(np.float32))  # min/max: the quantiser's range
    for block in blocks():
        index.add(block)
    faiss.write_index(index, str(path))


def top_ids(scores: np.ndarray, limit: int) -> np.ndarray:
    """Positions of the `limit` largest scores, best first, lower position first among equals — argpartition (O(n)),
    not a full sort."""
    if limit <= 0:
        return np.zeros(0, np.int64)
    if limit < len(scores):
        part = np.argpartition(-scores, limit - 1)[:limit]
        # among positions tied with the limit-th score the lowest win, as in a full sort
        edge = scores[part].min()
        part = np.concatenate([part[scores[part] > edge], np.nonzero(scores == edge)[0][:limit]])
    else:
        part = np.arange(len(scores))
    return part[np.lexsort((part, -scores[part]))][:limit].astype(np.int64)


def read_rows(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows (ascending) of a memory-mapped .npy by positioned reads: they pass through the page cache without being
    mapped into this process, so scoring candidates scattered over a large index does not grow its RSS."""
    filename = getattr(vectors, "filename", None)
    if filename is None or not len(rows):
        return np.asarray(vectors[rows], dtype=np.float32)
    width = vectors.shape[1] * vectors.itemsize
    out = np.empty((len(rows), vectors.shape[1]), dtype=vectors.dtype)
    fd = os.open(filename, os.O_RDONLY)
    try:
        for i, row in enumerate(rows.tolist()):
            offset = vectors.offset  # type: ignore[attr-defined]  # a np.memmap (it has a filename)
            out[i] = np.frombuffer(os.pread(fd, width, offset + row * width), dtype=vectors.dtype)
    finally:
        os.close(fd)
    return out.astype(np.float32, copy=False)


def _scan(vectors: np.ndarray, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Inner products of `rows` in blocks (a large memory-mapped segment is never copied whole)."""
    out = np.empty(len(rows), np.float32)
    for lo in range(0, len(rows), 65_536):
        block = rows[lo:lo + 65_536]
        out[lo:lo + len(block)] = np.asarray(vectors[block], dtype=np.float32) @ query
    return out


@dataclass
class DenseSegment:
    vectors: np.ndarray  # (n, dim) float32, memory-mapped
    hnsw: object | None = None  # faiss index when the segment is large


class Dense:
    """Searches several segments as one: global passage ids are segment offset + row."""

    def __init__(self, parts: list[DenseSegment], visible: np.ndarray, ef_search: int = 128):
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(p.vectors) for p in parts])
        self.visible = visible
        self.ef_search = ef_search
        self.exact = False  # True: scan every segment (measuring what the graphs miss)

    def of(self, query: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact inner products for the passages `ids` (reads only their rows)."""
        out = np.zeros(len(ids), dtype=np.float32)
        segment = np.searchsorted(self.offsets, ids, side="right") - 1
        for s in np.unique(segment):
            at = np.nonzero(segment == s)[0]
            rows = ids[at] - self.offsets[s]
            order = np.argsort(rows)
            block = read_rows(self.parts[s].vectors, rows[order])
            out[at[order]] = block @ query
        return out

    def top(self, query: np.ndarray, limit: int, allowed: np.ndarray | None = None) -> np.ndarray:
        """Global ids of about the `limit` most similar visible (and allowed) passages, best first."""
        mask = self.visible if allowed is None else allowed & self.visible
        ids: list[np.ndarray] = []
        for s, part in enumerate(self.parts):
            lo, hi = int(self.offsets[s]), int(self.offsets[s + 1])
            local = mask[lo:hi]
            count = int(local.sum())
            if not count:
                continue
            if part.hnsw is None or count <= EXACT_MAX or self.exact:
                rows = np.arange(hi - lo) if count == hi - lo else np.nonzero(local)[0]
                scores = _scan(part.vectors, rows, query)
                ids.append(rows[top_ids(scores, limit)] + lo)
            else:
                # the graph's neighbours are ranked on 8-bit vectors: fetch twice as many, re-score them exactly
                ids.append(self._hnsw(part.hnsw, query, 2 * limit, None if count == hi - lo else local) + lo)
        if not ids:
            return np.zeros(0, np.int64)
        found = np.concatenate(ids).astype(np.int64)
        if len(found) > limit or len(self.parts) > 1:
            found = found[top_ids(self.of(query, found), limit)]
        return found

    def _hnsw(self, index, query: np.ndarray, limit: int, local: np.ndarray | None) -> np.ndarray:
        import faiss

        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
        params.efSearch = max(self.ef_search, limit)
        if local is not None:
            bitmap = np.packbits(local, bitorder="little")
            params.sel = faiss.IDSelectorBitmap(len(local), faiss.swig_ptr(bitmap))
            _, found = index.search(query.reshape(1, -1), limit, params=params)
            del bitmap
        else:
            _, found = index.search(query.reshape(1, -1), limit, params=params)
        found = found[0]
        return found[found >= 0].astype(np.int64)
