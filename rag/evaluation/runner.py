"""Evaluation: dataset reading, per-question records, metrics that need no LLM, reports and charts."""

from __future__ import annotations

import json
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import RagError
from rag.language.text import compact
from rag.settings import Settings

# Named configurations for `rag eval --compare`: settings overrides applied to the base settings.
CONFIGS: dict[str, dict[str, Any]] = {
    "vanilla": {"chunker": "vanilla", "contextual_headers": False, "retrieval_mode": "bm25"},
    "bm25": {"retrieval_mode": "bm25"},
    "dense": {"retrieval_mode": "dense"},
    "hybrid": {"retrieval_mode": "hybrid"},
    "hybrid-noheader": {"retrieval_mode": "hybrid", "contextual_headers": False},
}
RETRIEVAL_CONFIGS = ["vanilla", "bm25", "dense", "hybrid-noheader", "hybrid"]


@dataclass
class EvalQuestion:
    id: str
    question: str
    key_points: list  # each a string, or a list of equivalent forms
    evidence: list[str]
    answerable: bool
    history: list[dict] = field(default_factory=list)
    doc: str = ""
    kind: str = ""
    split: str = ""
    must_not: list[str] = field(default_factory=list)  # strings an answer must never contain (injected claims)


def load_dataset(path: Path, split: str | None = None) -> list[EvalQuestion]:
    """Read a JSONL evaluation set (only rows of `split` when given); a malformed line raises RagError naming it."""
    if not path.exists():
        raise RagError(f"{path}: no such dataset", f"评测集 {path} 不存在。")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            key_points = raw.get("key_points", raw.get("labels", [])) or []
            rows.append(EvalQuestion(
                id=str(raw["id"]), question=raw["question"],
                key_points=[key_points] if isinstance(key_points, str) else [_key_point(k) for k in key_points],
                evidence=[raw["evidence"]] if isinstance(raw.get("evidence"), str) else list(raw.get("evidence") or []), answerable=bool(raw.get("answerable", True)),
                history=list(raw.get("history", [])), doc=_doc_field(raw.get("doc", "")), kind=raw.get("kind", ""),
                split=raw.get("split", ""), must_not=list(raw.get("must_not", [])),
            ))
        except (ValueError, KeyError, TypeError) as exc:
            raise RagError(f"{path}:{number}: bad row ({exc})", f"评测集第 {number} 行格式有误。") from exc
    if split:
        rows = [r for r in rows if r.split == split]
        if not rows:
            raise RagError(f"{path}: no rows with split {split!r}", f"评测集 {path} 中没有 split 为 {split} 的问题。")
    return rows


def _key_point(value) -> str | list[str]:
    """A key point, or a list of equivalent forms of it (["五千元", "5000元"]: any one counts)."""
    return [str(v) for v in value] if isinstance(value, list) else str(value)


def _doc_field(value) -> str:
    """`doc` is a file name, a doc_id or a list of them (INTERFACES.md); kept as one string, '+'-joined."""
    if isinstance(value, list):
        return "+".join(str(v) for v in value)
    return str(value or "")


def evidence_rank(contexts: list[dict], evidence: list[str]) -> int | None:
    """1-based rank of the first context containing any evidence string (NFKC, whitespace removed)."""
    wanted = [compact(e) for e in evidence if e]
    for ctx in contexts:
        text = compact(ctx["text"])
        if any(e in text for e in wanted):
            return ctx["rank"]
    return None


def _figures_form(text: str) -> str:
    """A form in which the same figure written differently compares equal: 三年 = 3年, 1-2年 = 1—2年."""
    from rag.language.facts import normalise_numbers

    return re.sub(r"[-—–－~～]+", "-", compact(normalise_numbers(text)))


def key_point_recall(answer: str, key_points: list[str]) -> float | None:
    """Share of key points in the answer: verbatim (NFKC, no whitespace), or as the same figure written another way."""
    if not key_points:
        return None
    text, figures = compact(answer), _figures_form(answer)

    def found(point: str | list[str]) -> bool:
        forms = point if isinstance(point, list) else [point]
        return any(compact(k) in text or _figures_form(k) in figures for k in forms)

    return sum(found(k) for k in key_points) / len(key_points)


def citations_hold_evidence(citations: list[dict], evidence: list[str]) -> bool:
    wanted = [compact(e) for e in evidence if e]
    return any(any(e in compact(c["text"]) for e in wanted) for c in citations)


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0–1) of `values`, linearly interpolated (numpy's default); 0 for none."""
    return float(np.percentile(values, q * 100)) if len(values) else 0.0


def run_questions(questions: list[EvalQuestion], settings: Settings, engine, retrieval_only: bool,
                  progress: bool = True, vanilla: bool = False) -> list[dict]:
    """One result row per question, in the contract shape of results.jsonl."""
    from rag.answer.pipeline import answer, retrieve, understand_question

    rows = []
    for n, item in enumerate(questions, 1):
        started = time.perf_counter()
        if retrieval_only:
            # the path answers take, its first two steps: understand, retrieve
            query = understand_question(item.question, item.history, engine)
            contexts = [c.to_context() for c in retrieve(query, engine)]
            row: dict[str, Any] = {"answer": "", "refused": False, "citations": [], "contexts": contexts,
                                   "rewritten_question": query.original}
        else:
            if vanilla:
                from rag.answer.vanilla import vanilla_answer

                result = vanilla_answer(item.question, item.history, engine)
            else:
                result = answer(item.question, history=item.history, settings=settings, engine=engine)
            data: dict[str, Any] = result.to_dict()
            row = {key: data[key] for key in ("answer", "refused", "citations", "contexts", "rewritten_question",
                                              "refusal_reason", "timings", "trace")}
        latency = (time.perf_counter() - started) * 1000
        row = {"id": item.id, "question": item.question} | row | {"latency_ms": round(latency, 1)}
        row["answerable"] = item.answerable
        row["evidence_rank"] = evidence_rank(row["contexts"], item.evidence) if item.answerable else None
        row["key_point_recall"] = key_point_recall(row["answer"], item.key_points) if not retrieval_only else None
        row["citation_has_evidence"] = (citations_hold_evidence(row["citations"], item.evidence)
                                        if item.answerable and not retrieval_only else None)
        row["doc"], row["kind"], row["split"] = item.doc, item.kind, item.split
        if item.must_not and not retrieval_only:
            row["must_not_violated"] = [m for m in item.must_not if compact(m) in compact(row["answer"])]
        rows.append(row)
        if progress and not retrieval_only:
            mark = "refused" if row["refused"] else f"kp={row['key_point_recall']}"
            print(f"  [{n}/{len(questions)}] {item.id} {latency / 1000:.1f}s {mark}", file=sys.stderr)
    return rows


def summarise(rows: list[dict], retrieval_only: bool) -> dict:
    """Retrieval hit@1/3/5 and MRR; answer-level scores unless retrieval-only; latency p50/p95."""
    answerable = [r for r in rows if r["answerable"]]
    single = [r for r in answerable if r.get("doc") not in ("multi", "none")]
    unanswerable = [r for r in rows if not r["answerable"]]

    def hit(rs: list[dict], k: int) -> float:
        return sum(1 for r in rs if r["evidence_rank"] and r["evidence_rank"] <= k) / max(1, len(rs))

    latencies = [r["latency_ms"] for r in rows]
    contexts = [c for r in rows for c in r["contexts"]]
    summary: dict[str, Any] = {
        "questions": len(rows),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "hit@1": hit(answerable, 1),
        "hit@3": hit(answerable, 3),
        "hit@5": hit(answerable, 5),
        "mrr": sum(1 / r["evidence_rank"] for r in answerable if r["evidence_rank"]) / max(1, len(answerable)),
        "single_doc_hit@3": hit(single, 3),
        "mean_passage_chars": statistics.mean(len(c["text"]) for c in contexts) if contexts else 0,
        "latency_p50_ms": percentile(latencies, 0.5),
        "latency_p95_ms": percentile(latencies, 0.95),
    }
    if not retrieval_only:
        answered = [r for r in answerable if not r["refused"]]
        recalls = [r["key_point_recall"] for r in answerable if r["key_point_recall"] is not None]
        summary |= {
            "key_point_recall": statistics.mean(recalls) if recalls else 0.0,
            "answered_with_citations": sum(1 for r in answered if r["citations"]) / max(1, len(answered)),
            "citations_contain_evidence": sum(1 for r in answered if r["citation_has_evidence"]) / max(1, len(answered)),
            "correct_refusals": sum(1 for r in unanswerable if r["refused"]) / max(1, len(unanswerable)),
            "wrong_refusals": sum(1 for r in answerable if r["refused"]) / max(1, len(answerable)),
            "must_not_violations": sum(1 for r in rows if r.get("must_not_violated")),
            "by_kind": by_kind(rows),
            "by_doc": by_kind(rows, key="doc"),
        }
    return summary


def row_score(row: dict) -> float:
    """One number per answered question: key-point recall (0 when refused) if answerable, else 1 for a refusal."""
    if not row["answerable"]:
        return 1.0 if row["refused"] else 0.0
    if row["refused"]:
        return 0.0
    return row["key_point_recall"] if row["key_point_recall"] is not None else 1.0


def by_kind(rows: list[dict], key: str = "kind") -> dict[str, dict]:
    """Per `kind` (or per `doc`): questions, score (see `row_score`), key-point recall, wrong and correct refusals."""
    kinds: dict[str, list[dict]] = {}
    for r in rows:
        kinds.setdefault(r.get(key) or "-", []).append(r)
    out = {}
    for kind, rs in sorted(kinds.items()):
        answerable = [r for r in rs if r["answerable"]]
        recalls = [r["key_point_recall"] for r in answerable if r["key_point_recall"] is not None]
        out[kind] = {
            "questions": len(rs),
            "score": statistics.mean(row_score(r) for r in rs),
            "key_point_recall": statistics.mean(recalls) if recalls else None,
            "wrong_refusals": sum(1 for r in answerable if r["refused"]),
            "answerable": len(answerable),
            "correct_refusals": sum(1 for r in rs if not r["answerable"] and r["refused"]),
            "unanswerable": len(rs) - len(answerable),
        }
    return out


def failures(rows: list[dict], retrieval_only: bool) -> list[dict]:
    """Questions that missed: evidence not in the top 3, or (with answers) a lost key point or a wrong refusal."""
    out = []
    for r in rows:
        why = []
        if r["answerable"] and (not r["evidence_rank"] or r["evidence_rank"] > 3):
            why.append(f"evidence rank {r['evidence_rank'] or '>k'}")
        if not retrieval_only:
            if r["answerable"] and r["refused"]:
                why.append("wrongly refused")
            elif r["answerable"] and r["key_point_recall"] is not None and r["key_point_recall"] < 1:
                why.append(f"key points {r['key_point_recall']:.2f}")
            if r.get("must_not_violated"):
                why.append("says " + "、".join(r["must_not_violated"]))
            if r["answerable"] and not r["refused"] and not r["citation_has_evidence"]:
                why.append("citations lack the evidence")
            if not r["answerable"] and not r["refused"]:
                why.append("answered an unanswerable question")
        if why:
            out.append({"id": r["id"], "kind": r.get("kind", ""), "question": r["question"], "why": "; ".join(why),
                        "answer": r["answer"][:120]})
    return out


METRIC_LABELS = [
    ("hit@1", "hit@1"), ("hit@3", "hit@3"), ("hit@5", "hit@5"), ("mrr", "MRR"),
    ("single_doc_hit@3", "单文档 hit@3"), ("mean_passage_chars", "段落平均字数"),
    ("key_point_recall", "要点召回"), ("answered_with_citations", "回答带出处"),
    ("citations_contain_evidence", "出处含证据"), ("correct_refusals", "正确拒答"),
    ("wrong_refusals", "误拒率"), ("must_not_violations", "复述注入内容"), ("latency_p50_ms", "p50 毫秒"),
    ("latency_p95_ms", "p95 毫秒"),
]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value <= 1.0 else f"{value:.0f}"
    return str(value)


def write_report(out: Path, runs: dict[str, dict], fails: dict[str, list[dict]], dataset: Path) -> None:
    """report.md: one table of every run, the failures of each, and the chart."""
    present = [(key, label) for key, label in METRIC_LABELS if any(key in s for s in runs.values())]
    lines = [f"# 评测报告 — `{dataset}`", "", time.strftime("%Y-%m-%d %H:%M"), ""]
    for name, summary in runs.items():
        st = summary.get("settings", {})
        lines.append(f"- **{name}**：后端 {st.get('llm_backend', '')}，模型 {st.get('llm_model', '') if st.get('llm_backend') not in ('extractive', None) else '—（不用模型）'}，"
                     f"嵌入 {st.get('embedder', '')}，检索 {st.get('retrieval_mode', '')}，索引 `{summary.get('index', '')}`，"
                     f"题数 {summary.get('questions', '')}")
    lines.append("")
    lines.append("| 运行 | " + " | ".join(label for _, label in present) + " |")
    lines.append("|---|" + "---|" * len(present))
    for name, summary in runs.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(summary.get(key, "")) for key, _ in present) + " |")
    lines += ["", "![comparison](comparison.png)", ""]
    lines += [
        "指标：*hit@k* — 可回答题中证据出现在前 k 个段落的比例；*MRR* — 第一个含证据段落排名的倒数均值；*要点召回* — 回答中出现的"
        "要点比例（拒答记 0）；*回答带出处* 与 *出处含证据* — 针对已回答的可回答题；*正确拒答* — 不可回答题中拒答的比例；"
        "*误拒率* — 可回答题中被拒答的比例。",
        "",
    ]
    lines += _group_table(runs, "by_kind", "按题型（kind）")
    lines += _group_table(runs, "by_doc", "按文档（doc）")
    for name, rows in fails.items():
        lines.append(f"## 未通过的题 — {name}（{len(rows)}）")
        lines.append("")
        if not rows:
            lines += ["无", ""]
            continue
        lines.append("| 编号 | 题型 | 问题 | 原因 | 回答 |")
        lines.append("|---|---|---|---|---|")
        for f in rows:
            answer = f["answer"].replace("\n", " ").replace("|", "\\|")
            lines.append(f"| {f['id']} | {f['kind']} | {f['question']} | {f['why']} | {answer} |")
        lines.append("")
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")


def _group_table(runs: dict[str, dict], key: str, heading: str) -> list[str]:
    """One row per kind (or document): each run's score and wrong refusals."""
    groups = sorted({k for s in runs.values() for k in s.get(key, {})})
    if not groups:
        return []
    lines = [f"## {heading}", "", "得分 = 可回答题的要点召回（拒答记 0），不可回答题拒答记 1；误拒 = 拒答数/可回答数。", ""]
    lines.append("| 分组 | 题数 | " + " | ".join(f"{name} 得分 | {name} 误拒" for name in runs) + " |")
    lines.append("|---|---|" + "---|---|" * len(runs))
    for group in groups:
        cells, n = [], ""
        for s in runs.values():
            k = s.get(key, {}).get(group)
            if not k:
                cells += ["", ""]
                continue
            n = k["questions"]
            cells += [f"{k['score']:.2f}", f"{k['wrong_refusals']}/{k['answerable']}"]
        lines.append(f"| {group} | {n} | " + " | ".join(cells) + " |")
    return lines + [""]


def write_chart(out: Path, runs: dict[str, dict]) -> Path:
    """comparison.png: grouped bars of the 0–1 metrics for every run, each bar labelled with its value; wrong
    refusals also as a count (refused/answerable)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [(k, k) for k, _ in METRIC_LABELS
            if k not in ("mean_passage_chars", "latency_p50_ms", "latency_p95_ms", "must_not_violations") and any(k in s for s in runs.values())]
    fig, ax = plt.subplots(figsize=(max(7, 1.3 * len(keys) * max(1, len(runs)) / 2), 4.5))
    width = 0.8 / max(1, len(runs))
    for i, (name, summary) in enumerate(runs.items()):
        xs = [j + i * width for j in range(len(keys))]
        values = [summary.get(k, 0) or 0 for k, _ in keys]
        bars = ax.bar(xs, values, width, label=name)
        labels = []
        for (k, _), v in zip(keys, values, strict=True):
            if k == "wrong_refusals" and summary.get("answerable"):
                labels.append(f"{v:.2f}\n({round(v * summary['answerable'])}/{summary['answerable']})")
            else:
                labels.append(f"{v:.2f}")
        ax.bar_label(bars, labels=labels, fontsize=6, padding=1)
    ax.set_xticks([j + width * (len(runs) - 1) / 2 for j in range(len(keys))])
    ax.set_xticklabels([k for k, _ in keys], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.2)
    ax.legend(fontsize=8)
    ax.set_title("evaluation (key_point_recall: 0 when refused; wrong_refusals: lower is better)", fontsize=9)
    fig.tight_layout()
    path = out / "comparison.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _engine_for(settings: Settings, name: str, embedder):
    """An engine for a named configuration; variants with other chunkers get their own index directory (embedded,
    also when the configured store is a shared database, which a comparison must not rebuild)."""
    from rag.engine import Engine
    from rag.store.library import ensure_index

    overrides = CONFIGS.get(name, {})
    variant = settings.replace(**overrides)
    if variant.chunker != settings.chunker or variant.contextual_headers != settings.contextual_headers:
        variant = variant.replace(index_dir=settings.index_dir.parent / ".variants" / name, store="embedded")
    index, _ = ensure_index(variant, embedder)
    engine = Engine(variant, embedder=embedder, index=index)
    return variant, engine


def evaluate(dataset: Path, out: Path, settings: Settings, configs: list[str], limit: int | None = None,
             split: str | None = None) -> dict[str, dict]:
    """Run each configuration over the dataset; write results, summary, report and chart under `out`.

    A configuration is a retrieval setup from CONFIGS (retrieval only) or "answer:<backend>" (full answers).
    """
    from rag.models.embedders import make_embedder

    questions = load_dataset(dataset, split)[: limit or None]
    embedder = make_embedder(settings.embedder, settings)  # loaded once, shared by every configuration
    out.mkdir(parents=True, exist_ok=True)
    runs, fails = {}, {}
    for name in configs:
        backend = name.split(":", 1)[1] if name.startswith("answer:") else None
        vanilla = backend == "vanilla"  # the vanilla recipe end to end, with the configured model
        if vanilla:
            backend = settings.llm_backend if settings.llm_backend != "extractive" else "local"
        config = "vanilla" if vanilla else ("hybrid" if backend else name)
        variant, engine = _engine_for(settings, config, embedder)
        if backend:
            variant = variant.replace(llm_backend=backend)
            engine.settings = variant  # the model is made from the settings on first use
        label = name if len(configs) > 1 else "run"
        only_retrieval = backend is None  # retrieval configurations never generate
        print(f"running {name} ({len(questions)} questions)", file=sys.stderr)
        rows = run_questions(questions, variant, engine, retrieval_only=only_retrieval, vanilla=vanilla)
        run_dir = out if len(configs) == 1 else out / name.replace(":", "-")
        run_dir.mkdir(parents=True, exist_ok=True)
        with (run_dir / "results.jsonl").open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        summary = summarise(rows, retrieval_only=only_retrieval)
        summary["config"] = name
        summary["index"] = str(variant.store if variant.store not in ("", "embedded") else variant.index_dir)
        summary["settings"] = {k: v for k, v in variant.public_dict().items()
                               if k in ("chunker", "chunk_max_tokens", "contextual_headers", "retrieval_mode", "dense_weight",
                                        "top_k", "embedder", "llm_backend", "llm_model")}
        (run_dir / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
        runs[label if len(configs) == 1 else name] = summary
        fails[label if len(configs) == 1 else name] = failures(rows, only_retrieval)
    if len(configs) > 1:
        (out / "summary.json").write_text(json.dumps(runs, ensure_ascii=False, indent=1), encoding="utf-8")
    # The results and summaries are on disk already; a report or chart that fails must not lose them.
    for step in (lambda: write_report(out, runs, fails, dataset), lambda: write_chart(out, runs)):
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - any report error is reported, never fatal
            print(f"warning: report not written ({type(exc).__name__}: {exc})", file=sys.stderr)
    return runs


def check_floors(runs: dict[str, dict], floors_path: Path) -> list[str]:
    """Metrics under the floors of `floors_path` ({"metric": minimum, "wrong_refusals": {"max": x}})."""
    floors = json.loads(floors_path.read_text(encoding="utf-8"))
    problems = []
    for name, summary in runs.items():
        for metric, floor in floors.items():
            if metric == "min_kind_score":  # every kind of question, not just the average
                for kind, scores in summary.get("by_kind", {}).items():
                    if scores["score"] < floor:
                        problems.append(f"{name}: kind {kind} score = {scores['score']:.3f} < {floor}")
                continue
            if metric not in summary:
                continue
            value = summary[metric]
            if isinstance(floor, dict) and "max" in floor:
                if value > floor["max"]:
                    problems.append(f"{name}: {metric} = {value:.3f} > {floor['max']}")
            elif value < floor:
                problems.append(f"{name}: {metric} = {value:.3f} < {floor}")
    return problems


def resolve_dataset(name: str | Path) -> Path:
    """A dataset path as given (from the current directory), else the project's own (eval/questions.jsonl works from
    any directory), else the path as given (load_dataset then says it is missing, in Chinese)."""
    from rag.settings import PROJECT_ROOT

    path = Path(name).expanduser()
    if path.exists() or path.is_absolute():
        return path
    for base in (PROJECT_ROOT, PROJECT_ROOT / "eval"):
        if (base / path).exists():
            return base / path
    return path


def run_cli(args, settings: Settings) -> int:
    """`rag eval`: print the summary table; with --gate, exit 1 under the floors."""
    if args.compare is not None:
        configs = args.compare or RETRIEVAL_CONFIGS
    elif args.retrieval_only:
        configs = [settings.retrieval_mode]
    else:
        configs = [f"answer:{settings.llm_backend}"]
    out = Path(args.out)
    runs = evaluate(resolve_dataset(args.dataset), out, settings, configs, args.limit, getattr(args, "split", None))
    keys = [k for k, _ in METRIC_LABELS if any(k in s for s in runs.values())]
    print("run".ljust(22) + "".join(k[:12].rjust(13) for k in keys))
    for name, summary in runs.items():
        print(name.ljust(22) + "".join(_fmt(summary.get(k, "")).rjust(13) for k in keys))
    for name, summary in runs.items():
        if summary.get("by_kind"):
            print(f"\n{name} by kind:  " + "  ".join(f"{kind} {k['score']:.2f} ({k['wrong_refusals']}/{k['answerable']} wrongly refused)"
                                                 for kind, k in summary["by_kind"].items()))
    print(f"\nwritten: {out}/results.jsonl, summary.json, report.md, comparison.png")
    if args.gate:
        floors_path = resolve_dataset("eval/floors-retrieval.json" if args.retrieval_only else "eval/floors-answers.json")
        problems = check_floors(runs, floors_path)
        if problems:
            print("REGRESSION (under the floors of " + str(floors_path) + "):\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
        print(f"gate passed ({floors_path})")
    return 0
