"""`rag bench`: index build time, chunk sizes, retrieval latency, answer timings per backend, peak memory."""

from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path

from rag.answer.pipeline import retrieve, stream_answer, understand_question
from rag.engine import Engine
from rag.evaluation.runner import load_dataset, percentile
from rag.ingest.documents import load_corpus
from rag.models.embedders import make_embedder
from rag.settings import Settings
from rag.store.library import ensure_index
from rag.store.segments import make_segment


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_add_bench(settings: Settings, args) -> int:
    """`rag bench --adds N`: into a copy of `data/` and a fresh index, one real document added (passages embedded and
    seconds), then N small documents added one by one (seconds per add, by hundreds: flat means linear in total)."""
    import shutil
    import tempfile

    from rag.store.embedded import read_config
    from rag.store.library import add_documents

    embedder = make_embedder(settings.embedder, settings)
    with tempfile.TemporaryDirectory(prefix="rag-add-bench-") as tmp:
        data = Path(tmp) / "data"
        shutil.copytree(settings.data_dir, data, ignore=shutil.ignore_patterns(".*"))
        variant = settings.replace(data_dir=data, index_dir=Path(tmp) / "index")
        index, _ = ensure_index(variant, embedder)
        print(f"index of {len(index.documents)} documents, {len(index)} passages ({embedder.name})")
        sample = ("海州市专利转化运用专项行动方案（2024—2026年）\n一、工作目标\n".encode()
                  + "到2026年，全市高校和科研院所专利转化率达到15%，培育专利密集型产品200个。\n".encode() * 3
                  + "二、重点任务\n（一）盘活存量专利。组织高校对存量专利开展全面盘点，建立存量专利数据库。\n".encode() * 4)
        report = add_documents(variant, embedder, [("bench-one.txt", sample)])
        print(f"1 add: {report.passages_embedded} passages embedded (only the new document's), {report.seconds:.2f} s")
        block, times = [], []
        started_all = time.perf_counter()
        for i in range(args.adds):
            text = f"第{i}号通知\n一、事项\n关于第{i}批知识产权示范企业认定事项，办理时限{i % 30 + 1}个工作日。\n".encode()
            started = time.perf_counter()
            add_documents(variant, embedder, [(f"small-{i:04d}.txt", text)])
            block.append(time.perf_counter() - started)
            if len(block) == 100 or i == args.adds - 1:
                times.append(statistics.mean(block))
                config = read_config(variant.index_dir) or {}
                print(f"  adds {i + 2 - len(block)}–{i + 1}: mean {statistics.mean(block) * 1000:.0f} ms per add, "
                      f"{config['chunks']} passages, {len(config['segments'])} segments")
                block = []
        total = time.perf_counter() - started_all
        print(f"{args.adds} small adds one by one: {total:.1f} s in all; mean per add first hundred "
              f"{times[0] * 1000:.0f} ms, last hundred {times[-1] * 1000:.0f} ms")
    print(f"peak memory (max RSS): {_peak_mb():.0f} MB")
    return 0


def run_bench(settings: Settings, args) -> int:
    """Print figures; no assertions (targets live in the README)."""
    if getattr(args, "adds", 0):
        return run_add_bench(settings, args)
    if getattr(args, "ocr", False):
        from rag.evaluation.ocr_bench import run as run_ocr_bench

        out = Path(args.out) if getattr(args, "out", None) else None
        run_ocr_bench(settings.data_dir, out, angle=args.angle, scale=settings.ocr_scale, limit=args.limit)
        return 0
    if getattr(args, "scale", None):
        from rag.evaluation.bench_scale import run_scale_bench

        return run_scale_bench(settings, args)
    embedder = make_embedder(settings.embedder, settings)
    questions = load_dataset(Path(args.dataset))
    if not args.skip_build:
        started = time.perf_counter()
        make_segment(load_corpus(settings.data_dir).documents, settings, embedder)
        print(f"index build (chunk + embed + BM25, not saved): {time.perf_counter() - started:.1f} s")
    index, _ = ensure_index(settings, embedder)
    sizes = [len(c.text) for c in index.chunks]  # today's corpus: a few hundred
    q = statistics.quantiles(sizes, n=10)
    print(f"chunks: {len(sizes)}; chars mean {statistics.mean(sizes):.0f}, min {min(sizes)}, p10 {q[0]:.0f}, "
          f"median {statistics.median(sizes):.0f}, p90 {q[-1]:.0f}, max {max(sizes)}")
    engine = Engine(settings, embedder=embedder, index=index)
    retrieve(understand_question("预热", None, engine), engine)
    latencies = []
    for item in questions:  # the answer path's first two steps, as `rag search` and /api/search run them
        started = time.perf_counter()
        retrieve(understand_question(item.question, item.history, engine), engine)
        latencies.append((time.perf_counter() - started) * 1000)
    print(f"understand + retrieve over {len(latencies)} questions: p50 {percentile(latencies, 0.5):.1f} ms, "
          f"p95 {percentile(latencies, 0.95):.1f} ms ({settings.embedder}, k={settings.top_k})")
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
        print(f"{backend}: {len(subset)} answers; first token p50 {percentile(firsts, 0.5):.2f} s, "
              f"p95 {percentile(firsts, 0.95):.2f} s; total p50 {percentile(totals, 0.5):.2f} s, "
              f"p95 {percentile(totals, 0.95):.2f} s")
    print(f"peak memory (max RSS): {_peak_mb():.0f} MB")
    return 0
