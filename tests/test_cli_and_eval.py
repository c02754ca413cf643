import json

import pytest

from rag.cli import main
from rag.evaluation.runner import (
    CONFIGS,
    check_floors,
    evidence_rank,
    key_point_recall,
    load_dataset,
    summarise,
)
from rag.language.text import compact
from rag.settings import PROJECT_ROOT

from .conftest import DATA


@pytest.fixture
def cli_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RAG_DATA_DIR", str(DATA))
    monkeypatch.setenv("RAG_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("RAG_EMBEDDER", "fake")
    monkeypatch.setenv("RAG_LLM_BACKEND", "extractive")
    return tmp_path


def test_cli_index_search_ask(cli_env, capsys):
    assert main(["index"]) == 0
    assert "个段落" in capsys.readouterr().out
    assert main(["index"]) == 0
    assert "无需更新" in capsys.readouterr().out  # nothing changed, nothing rebuilt
    assert main(["search", "沈阳知识产权证券化由谁牵头", "--k", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and {"rank", "score", "doc_id", "title", "section", "text"} <= set(rows[0])
    assert main(["ask", "湖南要做强哪些地理标志品牌？", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "浏阳花炮" in data["answer"] and data["citations"][0]["title"]
    assert main(["ask", "广东省知识产权质押融资的目标是多少？"]) == 0
    assert "没有找到" in capsys.readouterr().out


def test_cli_errors_are_messages_not_tracebacks(cli_env, capsys):
    assert main(["search", "知识产权"]) == 2
    assert "索引尚未建立" in capsys.readouterr().err
    main(["index"])
    capsys.readouterr()
    assert main(["search", ""]) == 2
    assert "不能为空" in capsys.readouterr().err
    assert main(["search", "知识产权", "--doc", "nope"]) == 2
    assert "没有这些文档" in capsys.readouterr().err
    assert main(["index", "--embedder", "fake:64"]) == 0  # another embedder: rebuilt, not refused
    assert "已重建" in capsys.readouterr().out


def test_mismatched_index_is_refused(cli_env, capsys, monkeypatch):
    main(["index"])
    capsys.readouterr()
    monkeypatch.setenv("RAG_EMBEDDER", "fake:64")
    assert main(["search", "知识产权"]) == 2
    assert "拒绝加载" in capsys.readouterr().err


def test_dataset_is_well_formed_and_evidence_is_verbatim():
    rows = load_dataset(PROJECT_ROOT / "eval" / "questions.jsonl")
    assert len(rows) >= 80 and len({r.id for r in rows}) == len(rows)
    unanswerable = [r for r in rows if not r.answerable]
    assert len(unanswerable) >= 12 and all(not r.key_points and not r.evidence for r in unanswerable)
    corpus = "".join(compact(p.read_text(encoding="utf-8")) for p in DATA.glob("*.txt"))
    for r in rows:
        for e in r.evidence:
            assert compact(e) in corpus, (r.id, e)
        if r.answerable:
            assert r.key_points and r.evidence, r.id
    docs = {r.doc for r in rows}
    assert {"henan-2020", "hangzhou-2016", "wuhai-2022", "shenyang-2020", "hunan-2022", "multi"} <= docs
    assert any(r.history for r in rows)


def test_metrics_on_crafted_rows():
    contexts = [{"rank": 1, "text": "无关"}, {"rank": 2, "text": "全年知识产权质押融资额超过 15亿元。"}]
    assert evidence_rank(contexts, ["全年知识产权质押融资额超过15亿元"]) == 2
    assert evidence_rank(contexts, ["不存在"]) is None
    assert key_point_recall("目标为15亿元", ["15亿", "郑州"]) == 0.5
    rows = [
        {"answerable": True, "evidence_rank": 1, "refused": False, "citations": [{"text": "x"}], "key_point_recall": 1.0,
         "citation_has_evidence": True, "latency_ms": 10, "contexts": [{"text": "abc"}], "doc": "a"},
        {"answerable": True, "evidence_rank": 2, "refused": True, "citations": [], "key_point_recall": 0.0,
         "citation_has_evidence": False, "latency_ms": 30, "contexts": [{"text": "abcde"}], "doc": "b"},
        {"answerable": False, "evidence_rank": None, "refused": True, "citations": [], "key_point_recall": None,
         "citation_has_evidence": None, "latency_ms": 20, "contexts": [], "doc": "none"},
    ]
    s = summarise(rows, retrieval_only=False)
    assert s["hit@1"] == 0.5 and s["hit@3"] == 1.0 and s["mrr"] == 0.75
    assert s["wrong_refusals"] == 0.5 and s["correct_refusals"] == 1.0 and s["answered_with_citations"] == 1.0
    assert s["latency_p50_ms"] == 20
    assert check_floors({"run": s}, _floors({"hit@1": 0.9, "wrong_refusals": {"max": 0.05}})) == [
        "run: hit@1 = 0.500 < 0.9", "run: wrong_refusals = 0.500 > 0.05"]


def _floors(data):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "floors.json"
    path.write_text(json.dumps(data))
    return path


def test_eval_command_writes_results_summary_report_and_chart(cli_env, capsys):
    out = cli_env / "run"
    assert main(["eval", "--retrieval-only", "--out", str(out), "--limit", "12"]) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 12
    assert {"id", "question", "answer", "refused", "citations", "contexts", "latency_ms"} <= set(rows[0])
    assert rows[0]["answer"] == "" and rows[0]["refused"] is False
    assert {"rank", "doc_id", "title", "section", "text", "score"} <= set(rows[0]["contexts"][0])
    summary = json.loads((out / "summary.json").read_text())
    assert 0 <= summary["hit@1"] <= 1 and "mrr" in summary
    assert "hit@1" in (out / "report.md").read_text(encoding="utf-8") and (out / "comparison.png").stat().st_size > 1000
    assert main(["eval", "--backend", "extractive", "--out", str(out / "answers"), "--limit", "5"]) == 0
    summary = json.loads((out / "answers" / "summary.json").read_text())
    assert "key_point_recall" in summary and "correct_refusals" in summary


def test_eval_compare_runs_configurations_side_by_side(cli_env, capsys):
    out = cli_env / "cmp"
    assert main(["eval", "--compare", "vanilla", "bm25", "hybrid", "answer:extractive", "--out", str(out), "--limit", "6"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"vanilla", "bm25", "hybrid", "answer:extractive"}
    assert (out / "vanilla" / "results.jsonl").exists() and (out / "answer-extractive" / "results.jsonl").exists()
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| vanilla |" in report and "| answer:extractive |" in report
    assert set(CONFIGS) >= {"vanilla", "bm25", "dense", "hybrid", "hybrid-noheader"}


def test_key_points_match_the_same_figure_written_another_way():
    from rag.evaluation.runner import key_point_recall

    assert key_point_recall("沈阳三年内建成[1]。", ["3年"]) == 1.0
    assert key_point_recall("每1-2年制定一次[1]。", ["1—2年"]) == 1.0
    assert key_point_recall("达到15亿元", ["15亿", "30%"]) == 0.5
    assert key_point_recall("第二十二届", ["第二十二届"]) == 1.0


def test_eval_accepts_any_dataset_in_the_documented_shape(cli_env, capsys):
    """Rows without key_points, with `labels`, with evidence as one string: results and a report, no traceback."""
    dataset = cli_env / "mine.jsonl"
    rows = [
        {"id": "a", "question": "沈阳证券化产品发几单", "answerable": True},
        {"id": "b", "question": "杭州技术市场交易额目标", "labels": ["100亿"], "evidence": "技术市场交易额达100亿元"},
        {"id": "c", "question": "广东的质押融资目标", "answerable": False, "extra": {"anything": 1}},
    ]
    dataset.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert main(["index"]) == 0
    assert main(["eval", "--dataset", str(dataset), "--out", str(cli_env / "run")]) == 0
    results = [json.loads(line) for line in (cli_env / "run" / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in results] == ["a", "b", "c"] and results[1]["key_point_recall"] == 1.0
    assert "未通过的题" in (cli_env / "run" / "report.md").read_text(encoding="utf-8")


def test_ask_works_from_an_index_without_its_documents(cli_env, capsys, monkeypatch):
    assert main(["index"]) == 0
    monkeypatch.setenv("RAG_DATA_DIR", str(cli_env / "no-such-dir"))
    capsys.readouterr()
    assert main(["ask", "湖南要做强哪些地理标志品牌？"]) == 0
    assert "浏阳花炮" in capsys.readouterr().out


def test_eval_finds_the_projects_datasets_from_any_directory(tmp_path, monkeypatch):
    from rag.evaluation.runner import resolve_dataset
    from rag.settings import PROJECT_ROOT

    monkeypatch.chdir(tmp_path)
    assert resolve_dataset("eval/questions.jsonl") == PROJECT_ROOT / "eval" / "questions.jsonl"
    assert resolve_dataset("staff_questions.jsonl") == PROJECT_ROOT / "eval" / "staff_questions.jsonl"
    (tmp_path / "mine.jsonl").write_text("", encoding="utf-8")
    assert resolve_dataset("mine.jsonl").resolve() == (tmp_path / "mine.jsonl").resolve()  # the current directory first
