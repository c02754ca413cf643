"""Several runs side by side, by kind: re-scores each results.jsonl against the dataset with today's metric.

    .venv/bin/python scripts/compare_runs.py --dataset eval/staff_questions.jsonl before=runs/a/results.jsonl after=runs/b/results.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag.evaluation.runner import by_kind, key_point_recall, load_dataset


def rescore(results: Path, dataset: dict) -> list[dict]:
    rows = []
    for line in results.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        item = dataset.get(row["id"])
        if item is None:
            continue
        row["kind"], row["answerable"] = item.kind, item.answerable
        row["key_point_recall"] = key_point_recall(row["answer"], item.key_points) if item.answerable else None
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", required=True)
    parser.add_argument("runs", nargs="+", help="name=path/to/results.jsonl")
    args = parser.parse_args()
    dataset = {q.id: q for q in load_dataset(Path(args.dataset))}
    tables = {}
    for spec in args.runs:
        name, path = spec.split("=", 1)
        rows = rescore(Path(path), dataset)
        answerable = [r for r in rows if r["answerable"]]
        tables[name] = (by_kind(rows), {
            "key points": sum(r["key_point_recall"] or 0 for r in answerable if not r["refused"]) / max(1, len(answerable)),
            "wrong refusals": f"{sum(r['refused'] for r in answerable)}/{len(answerable)}",
            "correct refusals": f"{sum(r['refused'] for r in rows if not r['answerable'])}/{sum(not r['answerable'] for r in rows)}",
        })
    names = list(tables)
    kinds = sorted({k for t, _ in tables.values() for k in t})
    print("| kind | n | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for kind in kinds:
        n = next(t[kind]["questions"] for t, _ in tables.values() if kind in t)
        cells = []
        for t, _ in tables.values():
            k = t.get(kind)
            cells.append("" if not k else f"{k['score']:.2f}" + (f" ({k['wrong_refusals']}/{k['answerable']} wr)" if k["wrong_refusals"] else ""))
        print(f"| {kind} | {n} | " + " | ".join(cells) + " |")
    for metric in ("key points", "wrong refusals", "correct refusals"):
        values = [tables[name][1][metric] for name in names]
        print(f"| **{metric}** | | " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in values) + " |")


if __name__ == "__main__":
    main()
