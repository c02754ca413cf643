"""Sweep the evidence threshold behind refusals on one split; print key points, wrong and correct refusals.

    .venv/bin/python scripts/tune_refusal.py --split dev           # choose on dev
    .venv/bin/python scripts/tune_refusal.py --split test          # then look once at test, without re-choosing
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag.engine import Engine  # noqa: E402
from rag.evaluation.runner import load_dataset, run_questions, summarise  # noqa: E402
from rag.settings import Settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="eval/staff_questions.jsonl")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--values", default="0.2,0.25,0.3,0.34,0.4,0.45,0.5,0.6")
    args = parser.parse_args()
    questions = load_dataset(Path(args.dataset), args.split)
    base = Settings.load({"llm_backend": "extractive"})
    engine = Engine(base)
    print(f"{args.dataset} split={args.split} ({len(questions)} questions)")
    print("min_cover  key_points  wrong_refusals  correct_refusals")
    for value in (float(v) for v in args.values.split(",")):
        engine.settings = base.replace(evidence_min_cover=value)
        summary = summarise(run_questions(questions, engine.settings, engine, retrieval_only=False, progress=False), False)
        print(f"{value:9.2f}  {summary['key_point_recall']:10.3f}  {summary['wrong_refusals']:14.3f}  "
              f"{summary['correct_refusals']:16.3f}")


if __name__ == "__main__":
    main()
