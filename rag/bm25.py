"""Okapi BM25 over jieba tokens, stored as plain JSON token lists (no pickle)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np


class BM25:
    """Scores a tokenised query against tokenised passages. Statistics are rebuilt on load (milliseconds)."""

    def __init__(self, corpus_tokens: list[list[str]], k1: float = 1.2, b: float = 0.75):
        self.corpus_tokens = corpus_tokens
        self.k1, self.b = k1, b
        self.doc_len = np.array([len(t) for t in corpus_tokens], dtype=np.float32)
        self.avg_len = float(self.doc_len.mean()) if len(corpus_tokens) else 0.0
        n = len(corpus_tokens)
        df: Counter[str] = Counter()
        self.postings: dict[str, list[tuple[int, int]]] = {}
        for i, tokens in enumerate(corpus_tokens):
            for term, tf in Counter(tokens).items():
                df[term] += 1
                self.postings.setdefault(term, []).append((i, tf))
        # The "+1" form of idf stays positive even for terms in most passages.
        self.idf = {term: math.log(1 + (n - d + 0.5) / (d + 0.5)) for term, d in df.items()}

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """One score per passage (0 where no query term occurs)."""
        out = np.zeros(len(self.corpus_tokens), dtype=np.float32)
        if not self.avg_len:
            return out
        norm = self.k1 * (1 - self.b + self.b * self.doc_len / self.avg_len)
        for term, qtf in Counter(query_tokens).items():
            postings = self.postings.get(term)
            if not postings:
                continue
            idx = np.fromiter((p[0] for p in postings), dtype=np.int64)
            tf = np.fromiter((p[1] for p in postings), dtype=np.float32)
            out[idx] += qtf * self.idf[term] * tf * (self.k1 + 1) / (tf + norm[idx])
        return out

    def to_json(self) -> dict:
        return {"k1": self.k1, "b": self.b, "tokens": self.corpus_tokens}

    @classmethod
    def from_json(cls, data: dict) -> "BM25":
        return cls(data["tokens"], data.get("k1", 1.2), data.get("b", 0.75))
