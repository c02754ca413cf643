"""Okapi BM25 over jieba tokens as sparse term-by-passage matrices (scipy CSR), one per index segment.

A segment stores its postings once (terms, indptr, passage rows, term frequencies, passage lengths) as .npy files
that load memory-mapped: opening a large index reads almost nothing. Statistics are global and exact at query time
(document frequencies count only visible passages, the average length is over visible passages), so a segment never
has to be rewritten because others changed, and the PostgreSQL store computes the same numbers in SQL.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

K1, B = 1.2, 0.75
MAX_TF = np.iinfo(np.uint16).max
HOT_MIN_POSTINGS = 20_000  # terms with at least this many postings keep their computed weights …
HOT_BUDGET = 384 * 2**20  # … up to this many bytes (rows and weights) per loaded index


def idf(n: int, df: int | np.ndarray) -> float | np.ndarray:
    """The "+1" form of idf: stays positive even for terms in most passages (as the SQL store computes it)."""
    return np.log1p((n - df + 0.5) / (df + 0.5))


@dataclass
class Postings:
    """One segment's postings: term i occurs in passages rows[indptr[i]:indptr[i+1]] with frequencies tf[...]."""

    terms: list[str]
    indptr: np.ndarray  # int64, len(terms) + 1
    rows: np.ndarray  # int32, passage rows, ascending within a term
    tf: np.ndarray  # uint16
    lengths: np.ndarray  # int32, tokens per passage

    def __len__(self) -> int:
        return len(self.lengths)

    @classmethod
    def from_tokens(cls, token_lists: list[list[str]]) -> "Postings":
        vocab: dict[str, int] = {}
        term_ids, rows, counts = [], [], []
        for row, tokens in enumerate(token_lists):
            for term, count in Counter(tokens).items():
                term_ids.append(vocab.setdefault(term, len(vocab)))
                rows.append(row)
                counts.append(count)
        lengths = np.array([len(t) for t in token_lists], dtype=np.int32)
        return cls._from_triples(list(vocab), np.array(term_ids, np.int64), np.array(rows, np.int64),
                                 np.array(counts, np.int64), lengths)

    @classmethod
    def _from_triples(cls, terms: list[str], term_ids: np.ndarray, rows: np.ndarray, counts: np.ndarray,
                      lengths: np.ndarray) -> "Postings":
        """Sorted by term (alphabetically, so segments can be merged by name), rows ascending within a term."""
        from scipy import sparse

        order = np.argsort(np.array(terms, dtype=object)) if terms else np.zeros(0, np.int64)
        rank = np.empty(len(terms), np.int64)
        rank[order] = np.arange(len(terms))
        matrix = sparse.csr_matrix((np.minimum(counts, MAX_TF), (rank[term_ids], rows)),
                                   shape=(len(terms), len(lengths)))
        matrix.sort_indices()
        return cls([terms[i] for i in order], matrix.indptr.astype(np.int64), matrix.indices.astype(np.int32),
                   matrix.data.astype(np.uint16), lengths.astype(np.int32))

    # ------------------------------------------------------------ files

    @staticmethod
    def write_merged(folder: Path, parts: list[tuple["Postings", np.ndarray]]) -> int:
        """The postings of `parts` (each with the rows it keeps, ascending) one after another, written to `folder`
        as `save` writes them, term by term: each part's terms are already sorted by name, so the merged arrays are
        filled part by part, the output files mapped only while one part is written — never holding every (term,
        row) pair of the library at once (a 10^6-passage merge held ~6·10^7 of them three times over). Returns the
        number of passages."""
        terms = sorted(set().union(*(p.terms for p, _ in parts)))
        position = {term: i for i, term in enumerate(terms)}
        counts = np.zeros(len(terms), np.int64)
        to_global = []
        for part, keep in parts:
            local_global = np.fromiter((position[t] for t in part.terms), np.int64, len(part.terms))
            ok, term_of = _kept_postings(part, keep)
            np.add.at(counts, local_global, np.bincount(term_of[ok], minlength=len(part.terms)))
            to_global.append(local_global)
        used = counts > 0
        new_index = np.cumsum(used) - 1
        indptr = np.concatenate([[0], np.cumsum(counts[used])]).astype(np.int64)
        total = int(indptr[-1])
        (folder / "terms.json").write_text(json.dumps([t for t, u in zip(terms, used, strict=True) if u],
                                                      ensure_ascii=False), encoding="utf-8")
        np.save(folder / "postings_indptr.npy", indptr)
        for name, dtype in (("rows", np.int32), ("tf", np.uint16)):
            np.lib.format.open_memmap(folder / f"postings_{name}.npy", "w+", dtype, (total,)).flush()  # the files
        filled = np.zeros(len(indptr) - 1, np.int64)
        offset = 0
        for (part, keep), local_global in zip(parts, to_global, strict=True):
            ok, term_of = _kept_postings(part, keep)
            new_row = np.full(len(part), -1, np.int64)
            new_row[keep] = np.arange(len(keep)) + offset
            target = new_index[local_global[term_of[ok]]]  # non-decreasing: both vocabularies are sorted by name
            if len(target):
                rank = np.arange(len(target)) - np.searchsorted(target, target, side="left")
                dest = indptr[target] + filled[target] + rank
                rows_out = np.lib.format.open_memmap(folder / "postings_rows.npy", "r+")
                rows_out[dest] = new_row[np.asarray(part.rows)[ok]]
                rows_out.flush()
                del rows_out  # unmapped after each part: written pages leave the process
                tf_out = np.lib.format.open_memmap(folder / "postings_tf.npy", "r+")
                tf_out[dest] = np.asarray(part.tf)[ok]
                tf_out.flush()
                del tf_out
                unique, per = np.unique(target, return_counts=True)
                filled[unique] += per
            offset += len(keep)
        lengths = np.concatenate([np.asarray(p.lengths)[keep] for p, keep in parts]) if parts else np.zeros(0, np.int32)
        np.save(folder / "postings_lengths.npy", lengths.astype(np.int32))
        return len(lengths)

    def save(self, folder: Path) -> None:
        (folder / "terms.json").write_text(json.dumps(self.terms, ensure_ascii=False), encoding="utf-8")
        for name in ("indptr", "rows", "tf", "lengths"):
            np.save(folder / f"postings_{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path) -> "Postings":
        terms = json.loads((folder / "terms.json").read_text(encoding="utf-8"))
        arrays = {name: np.load(folder / f"postings_{name}.npy", mmap_mode="r") for name in ("indptr", "rows", "tf", "lengths")}
        postings = cls(terms, **arrays)
        if (not isinstance(terms, list) or len(postings.indptr) != len(terms) + 1
                or len(postings.rows) != len(postings.tf) or (len(terms) and postings.indptr[-1] != len(postings.rows))):
            raise ValueError(f"{folder}: postings files disagree")
        return postings


def _kept_postings(part: Postings, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(which postings of `part` belong to rows `keep`, the part's term of each posting)."""
    kept = np.zeros(len(part), bool)
    kept[keep] = True
    term_of = np.repeat(np.arange(len(part.terms)), np.diff(np.asarray(part.indptr)))
    return kept[np.asarray(part.rows)], term_of


class BM25:
    """Exact BM25 over several segments' postings. `visible[i]` False hides global passage i (removed documents):
    hidden passages score 0 and count in no statistic."""

    def __init__(self, parts: list[Postings], visible: np.ndarray, k1: float = K1, b: float = B):
        self.parts = parts
        self.k1, self.b = k1, b
        self.offsets = np.cumsum([0] + [len(p) for p in parts])
        self.visible = visible
        self._hidden_in = [not bool(visible[s:e].all()) for s, e in zip(self.offsets[:-1], self.offsets[1:], strict=False)]
        self._vocab = [{t: i for i, t in enumerate(p.terms)} for p in parts]
        lengths = np.concatenate([np.asarray(p.lengths) for p in parts]) if parts else np.zeros(0, np.int32)
        self.n = int(visible.sum())
        self.avg_len = float(lengths[visible].mean()) if self.n else 0.0
        # per passage: k1 * (1 - b + b * len / avg_len), the length part of the BM25 denominator
        self.norm = (k1 * (1 - b + b * lengths / self.avg_len)).astype(np.float32) if self.n else np.zeros(0, np.float32)
        self._hot: dict[str, list] = {}
        self._hot_bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _slices(self, term: str):
        for s, (part, vocab) in enumerate(zip(self.parts, self._vocab, strict=False)):
            i = vocab.get(term)
            if i is not None:
                lo, hi = int(part.indptr[i]), int(part.indptr[i + 1])
                yield s, part.rows[lo:hi], part.tf[lo:hi]

    def df(self, term: str) -> int:
        total = 0
        for s, rows, _ in self._slices(term):
            total += int(self.visible[self.offsets[s] + rows].sum()) if self._hidden_in[s] else len(rows)
        return total

    def _term(self, term: str) -> list[tuple[np.ndarray, np.ndarray]]:
        """(global rows, idf × saturated tf) of a term's postings in every segment. Common terms recur in nearly every
        question: theirs are kept (up to HOT_BUDGET bytes per loaded index), the rest computed each time."""
        with self._lock:
            found = self._hot.get(term)
        if found is not None:
            return found
        slices = list(self._slices(term))
        out = []
        if slices:
            weight = float(idf(self.n, self.df(term))) * (self.k1 + 1)
            for s, rows, tf in slices:
                at = rows if not self.offsets[s] else rows + int(self.offsets[s])
                tf = tf.astype(np.float32)
                out.append((at, (weight * tf / (tf + self.norm[at])).astype(np.float32)))
        size = sum(len(w) for _, w in out)
        if size >= HOT_MIN_POSTINGS:
            with self._lock:
                if self._hot_bytes + size * 12 <= HOT_BUDGET:
                    self._hot[term] = out
                    self._hot_bytes += size * 12
        return out

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """One score per passage, global rows (0 where no query term occurs, and for hidden passages)."""
        out = np.zeros(len(self), dtype=np.float32)
        if not self.n:
            return out
        for term, qtf in Counter(query_tokens).items():
            for at, weights in self._term(term):
                out[at] += weights if qtf == 1 else qtf * weights
        if not self.visible.all():
            out[~self.visible] = 0.0
        return out
