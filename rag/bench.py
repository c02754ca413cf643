"""`rag bench`: index build time, chunk sizes, retrieval latency, answer timings per backend, peak memory."""

from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path

from rag.documents import load_corpus
from rag.embedders import make_embedder
from rag.engine import Engine
from rag.evaluation import _percentile, load_dataset
from rag.index import make_segment
from rag.library import ensure_index
from rag.pipeline import stream_answer
from rag.settings import Settings


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_bench(settings: Settings, args) -> int:
    """Print figures; no assertions (targets live in the README)."""
    embedder = make_embedder(settings.embedder)
    questions = load_dataset(Path(args.dataset))
    if not args.skip_build:
        started = time.perf_counter()
        make_segment(load_corpus(settings.data_dir).documents, settings, embedder)
        print(f"index build (chunk + embed + BM25, not saved): {time.perf_counter() - started:.1f} s")
    index, _ = ensure_index(settings, embedder)
    sizes = [len(c.text) for c in index.chunks]
    q = statistics.quantiles(sizes, n=10)
    print(f"chunks: {len(sizes)}; chars mean {statistics.mean(sizes):.0f}, min {min(sizes)}, p10 {q[0]:.0f}, "
          f"median {statistics.median(sizes):.0f}, p90 {q[-1]:.0f}, max {max(sizes)}")
    engine = Engine(settings, embedder=embedder, index=index)
    engine.retriever.search("预热", k=settings.top_k)
    latencies = []
    for item in questions:
        started = time.perf_counter()
        engine.retriever.search(item.question, k=settings.top_k)
        latencies.append((time.perf_counter() - started) * 1000)
    print(f"retrieval over {len(latencies)} questions: p50 {_percentile(latencies, 0.5):.1f} ms, "
          f"p95 {_percentile(latencies, 0.95):.1f} ms ({settings.embedder}, k={settings.top_k})")
    for backend in args.backends or []:
        variant = settings.replace(llm_backend=backend)
        eng = Engine(variant, embedder=embedder, index=index)
        if backend != "extractive":
            started = time.perf_counter()
            llm = eng.llm
            if hasattr(llm, "load"):
                llm.load()
            print(f"{backend}: model load {time.perf_counter() - started:.1f} s")
        firsts, totals = [], []
        subset = [x for x in questions if x.answerable][: args.limit or None]
        for item in subset:
            started = time.perf_counter()
            first = None
            for event in stream_answer(item.question, item.history, engine=eng):
                if event.kind == "token" and first is None:
                    first = time.perf_counter() - started
            total = time.perf_counter() - started
            totals.append(total)
            firsts.append(first if first is not None else total)
        print(f"{backend}: {len(subset)} answers; first token p50 {_percentile(firsts, 0.5):.2f} s, "
              f"p95 {_percentile(firsts, 0.95):.2f} s; total p50 {_percentile(totals, 0.5):.2f} s, "
              f"p95 {_percentile(totals, 0.95):.2f} s")
    print(f"peak memory (max RSS): {_peak_mb():.0f} MB")
    return 0
