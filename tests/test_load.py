from rag.evaluation.loadcheck import run_load_check
from rag.evaluation.runner import load_dataset
from rag.settings import PROJECT_ROOT


def test_fifty_concurrent_questions_on_loopback(real_engine):
    questions = [q.question for q in load_dataset(PROJECT_ROOT / "eval" / "questions.jsonl")]
    report = run_load_check(real_engine.settings, questions, concurrency=50, engine=real_engine)
    print(report)
    assert report["requests"] == 50 and report["ok"] == 50 and report["errors"] == 0
    assert report["status_codes"] == [200] and report["p95_ms"] >= report["p50_ms"] > 0
