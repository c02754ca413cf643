"""The embedded store built to scale: sparse BM25 equals the textbook formula, top-k selection equals a full sort,
HNSW finds what an exact search finds, and a large-index layout answers as the small one does."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from rag.models.embedders import FakeEmbedder
from rag.search.retrieval import Retriever
from rag.store.dense import Dense, DenseSegment, build_hnsw, top_ids
from rag.store.library import ensure_index
from rag.store.sparse import BM25, Postings

WORDS = "知识产权 专利 商标 转化 运用 保护 高校 企业 示范 培育 目标 资金 奖励 服务 平台 数据".split()


def reference_bm25(token_lists: list[list[str]], query: list[str], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    """Okapi BM25 straight from token lists, as a textbook writes it."""
    n = len(token_lists)
    avg = sum(len(t) for t in token_lists) / n
    out = np.zeros(n)
    for term, qtf in Counter(query).items():
        df = sum(1 for tokens in token_lists if term in tokens)
        if not df:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for i, tokens in enumerate(token_lists):
            tf = tokens.count(term)
            if tf:
                out[i] += qtf * idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(tokens) / avg))
    return out


def random_passages(n: int, seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [list(rng.choice(WORDS, size=int(rng.integers(1, 30)))) for _ in range(n)]


def test_sparse_bm25_equals_the_textbook_formula_across_segments_and_hidden_passages():
    a, b = random_passages(60, 1), random_passages(40, 2)
    query = ["专利", "转化", "专利", "不存在的词"]
    one = BM25([Postings.from_tokens(a + b)], np.ones(100, bool))
    two = BM25([Postings.from_tokens(a), Postings.from_tokens(b)], np.ones(100, bool))
    expected = reference_bm25(a + b, query)
    assert np.allclose(one.scores(query), expected, rtol=1e-5)
    assert np.allclose(two.scores(query), expected, rtol=1e-5)
    # hiding passages is the same as never having indexed them: statistics count only what is visible
    visible = np.ones(100, bool)
    visible[10:30] = False
    kept = [t for i, t in enumerate(a + b) if visible[i]]
    hidden_scores = BM25([Postings.from_tokens(a), Postings.from_tokens(b)], visible).scores(query)
    assert np.allclose(hidden_scores[visible], reference_bm25(kept, query), rtol=1e-5)
    assert not hidden_scores[~visible].any()


def test_postings_merged_from_kept_rows_are_as_if_built_from_the_kept_tokens(tmp_path):
    a, b = random_passages(30, 3), random_passages(20, 4)
    keep = np.array([0, 3, 4, 10, 29])
    Postings.write_merged(tmp_path, [(Postings.from_tokens(a), keep), (Postings.from_tokens(b), np.arange(len(b)))])
    merged = Postings.load(tmp_path)
    direct = Postings.from_tokens([a[i] for i in keep] + b)
    assert merged.terms == direct.terms
    for name in ("indptr", "rows", "tf", "lengths"):
        assert np.array_equal(getattr(merged, name), getattr(direct, name))


def test_top_ids_equals_a_full_sort_with_ties_broken_by_id():
    rng = np.random.default_rng(5)
    for trial in range(50):
        scores = rng.integers(0, 6, size=int(rng.integers(1, 300))).astype(np.float32)
        scores[rng.random(len(scores)) < 0.2] = -np.inf
        limit = int(rng.integers(1, 40))
        full = np.lexsort((np.arange(len(scores)), -scores))[:limit]
        assert list(top_ids(scores, limit)) == list(full), trial


def clustered_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, dim))
    x = centres[rng.integers(0, 40, n)] + 0.4 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_hnsw_finds_what_an_exact_search_finds_and_respects_filters(tmp_path):
    vectors = clustered_vectors(30_000, 64, 6)
    build_hnsw(vectors, tmp_path / "v.hnsw")
    import faiss

    visible = np.ones(len(vectors), bool)
    approx = Dense([DenseSegment(vectors, faiss.read_index(str(tmp_path / "v.hnsw")))], visible)
    exact = Dense([DenseSegment(vectors, None)], visible)
    rng = np.random.default_rng(7)  # questions near some passages, as real questions are
    queries = vectors[rng.integers(0, len(vectors), 30)] + 0.3 * rng.standard_normal((30, 64)).astype(np.float32) / 8
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    recall = np.mean([len(set(approx.top(q, 50)) & set(exact.top(q, 50))) / 50 for q in queries])
    assert recall >= 0.9
    allowed = np.zeros(len(vectors), bool)
    allowed[::2] = True  # half the passages: the filtered graph search, not the exact fallback
    for q in queries[:5]:
        found = approx.top(q, 20, allowed)
        assert len(found) == 20 and allowed[found].all()
    few = np.zeros(len(vectors), bool)
    few[[5, 500, 5000]] = True
    assert sorted(approx.top(queries[0], 20, few)) == [5, 500, 5000]


@pytest.mark.parametrize("question", ["湖南专利转化目标是多少", "杭州知识产权强市的资金怎么安排", "乌海市十四五规划的主要任务",
                                      "沈阳运营服务体系建设", "高价值专利培育"])
def test_an_index_with_hnsw_segments_answers_like_the_flat_one(real_settings, tmp_path, question):
    embedder = FakeEmbedder()
    flat, _ = ensure_index(real_settings, embedder)
    graph, _ = ensure_index(real_settings.replace(index_dir=tmp_path / "hnsw", hnsw_min=10), embedder)
    assert any(s.hnsw is not None for s in graph.segments) and all(s.hnsw is None for s in flat.segments)
    a = [c.chunk.chunk_id for c in Retriever(flat, embedder, real_settings).search(question)]
    b = [c.chunk.chunk_id for c in Retriever(graph, embedder, real_settings).search(question)]
    assert a == b


def test_the_synthetic_library_relabels_places_and_bulk_builds_into_one_searchable_segment(real_settings, tmp_path):
    import itertools

    from rag.evaluation.synthetic import synthetic_documents
    from rag.store.embedded import bulk_build, load_index, writer_lock
    from rag.store.segments import new_config

    docs = list(itertools.islice(synthetic_documents(real_settings.data_dir), 25))
    seeds, made = docs[:5], docs[5:]
    assert len({d.region for d in made}) == len(made)  # many regions
    for doc in made:
        assert not any(name in doc.text for name in ("湖南", "杭州", "沈阳", "乌海", "河南")), doc.doc_id
    settings = real_settings.replace(index_dir=tmp_path / "index", hnsw_min=500)
    embedder = FakeEmbedder()
    with writer_lock(settings.index_dir):
        config = bulk_build(settings.index_dir, new_config(settings, embedder), iter(docs), settings, embedder, batch=300)
    index = load_index(settings.index_dir, embedder)
    assert len(config["segments"]) == 1 and len(index) == config["chunks"] and len(index.documents) == 25
    assert index.segments[0].hnsw is not None  # above hnsw_min: the one merged segment carries a graph
    target = made[3]
    hits = Retriever(index, embedder, settings).search(f"{target.city}专利转化", filters={"region": target.province})
    assert hits and all(h.chunk.doc_id == target.doc_id for h in hits)
    assert {c.doc_id for c in index.chunks_of(seeds[0].doc_id)} == {seeds[0].doc_id}


def test_scale_sizes_are_read_with_a_clear_message():
    from rag.evaluation.bench_scale import parse_sizes

    assert parse_sizes("1e4, 1e5,1000000") == [10_000, 100_000, 1_000_000]
    with pytest.raises(SystemExit, match="逗号分隔"):
        parse_sizes("many")


def test_kept_weights_of_common_terms_score_exactly_as_computed_ones(monkeypatch):
    import rag.store.sparse as sparse

    a, b = random_passages(80, 8), random_passages(50, 9)
    visible = np.ones(130, bool)
    visible[5:9] = False
    query = ["专利", "转化", "专利", "知识产权"]
    cold = BM25([Postings.from_tokens(a), Postings.from_tokens(b)], visible).scores(query)
    monkeypatch.setattr(sparse, "HOT_MIN_POSTINGS", 1)
    hot = BM25([Postings.from_tokens(a), Postings.from_tokens(b)], visible)
    first, second = hot.scores(query), hot.scores(query)  # the second from kept weights
    assert hot._hot and np.array_equal(first, second) and np.allclose(first, cold, rtol=1e-6)


def test_a_streamed_merge_writes_what_one_segment_of_the_visible_documents_holds(tmp_path):
    """Issue 22 part 2: the merge copies lines and postings without making passages objects; what it writes equals a
    segment made directly from the documents left visible (a hidden, removed document in the first segment)."""
    from rag.ingest.documents import load_corpus
    from rag.settings import PROJECT_ROOT
    from rag.store.embedded import SEGMENTS, SegmentReader, _merge, write_segment
    from rag.store.segments import make_segment

    from .conftest import make_settings

    settings = make_settings(PROJECT_ROOT / "data", tmp_path / "unused")
    embedder = FakeEmbedder()
    docs = sorted(load_corpus(PROJECT_ROOT / "data").documents, key=lambda d: d.doc_id)
    assert len(docs) >= 4
    index_dir = tmp_path / "index"
    first = write_segment(index_dir, make_segment(docs[:3], settings, embedder)) | {"hidden": [docs[1].doc_id]}
    second = write_segment(index_dir, make_segment(docs[3:], settings, embedder))
    merged = _merge(index_dir, [first, second], embedder.dim, hnsw_min=0)
    visible = [docs[0], docs[2], *docs[3:]]
    direct = write_segment(index_dir, make_segment(visible, settings, embedder))
    got = SegmentReader(index_dir / SEGMENTS / merged["name"], merged, embedder.dim)
    want = SegmentReader(index_dir / SEGMENTS / direct["name"], direct, embedder.dim)
    assert merged["chunks"] == direct["chunks"] == len(got) and merged["docs"] == direct["docs"]
    assert got.documents == want.documents
    assert [got.record(i) for i in range(len(got))] == [want.record(i) for i in range(len(want))]
    assert [got.text(i) for i in range(len(got.documents))] == [want.text(i) for i in range(len(want.documents))]
    assert np.array_equal(got.doc_codes, want.doc_codes) and np.array_equal(got.vectors, want.vectors)
    assert got.postings.terms == want.postings.terms
    for name in ("indptr", "rows", "tf", "lengths"):
        assert np.array_equal(getattr(got.postings, name), getattr(want.postings, name)), name


def test_an_hnsw_graph_built_in_blocks_from_a_file_finds_the_exact_neighbours(tmp_path, monkeypatch):
    import faiss

    import rag.store.dense as dense

    monkeypatch.setattr(dense, "ADD_BLOCK", 300)
    monkeypatch.setattr(dense, "TRAIN_SAMPLE", 50)
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(2000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    on_disk = np.lib.format.open_memmap(tmp_path / "v.npy", "w+", np.float32, vectors.shape)
    on_disk[:] = vectors
    on_disk.flush()
    build_hnsw(tmp_path / "v.npy", tmp_path / "g.hnsw")
    graph = faiss.read_index(str(tmp_path / "g.hnsw"))
    assert graph.ntotal == 2000
    _, found = graph.search(vectors[:50], 1)
    assert (found[:, 0] == np.arange(50)).mean() >= 0.95
